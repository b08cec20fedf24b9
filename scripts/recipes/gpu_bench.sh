#!/usr/bin/env bash
# The GPU benchmarks of a bundle (default: the deployed one) on one CUDA machine, each time-boxed:
#   bench_read    GDAL block cache at 128 MB vs sized for 16 threads x 2048² blocks (8192² mosaic)
#   bench_detect  chip engine at stride 24 (comparable with the recorded figures): end to end vs model only vs
#                 naive, on the 4096² unseen scene 9001 and on a 16384² mosaic of it (the issue's GPU target:
#                 end-to-end chips/s >= 0.8 x model only); the same for the dense engine at the bundle's
#                 stride (detect's defaults) on the mosaic
#   bench_dense   dense engine end to end on the 16384² mosaic at the bundle's stride, in Mpx/s, and where the
#                 time goes
#   bench_stride  dense engine at strides 24 and 8 on the 4096² scene, in child processes
# Results: $OUT/results (and results.tgz). Environment: MODEL, WORK, SEED (9001), PYTHON, SKIP_MOSAIC_CHIP=1.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/recipes/gpu_lib.sh
. "$ROOT/scripts/recipes/gpu_lib.sh"
WORK=${WORK:-/tmp/geodrain-bench}
SEED=${SEED:-9001}
MODEL_ARGS=()
[ -n "${MODEL:-}" ] && MODEL_ARGS=(--model "$MODEL")
mkdir -p "$WORK"
step bench_read 120 "$PY" scripts/bench_read.py --work "$WORK" --seed "$SEED" --mosaic 8192 --block 2048 --threads 16 \
    --json "$RES/bench_read.json"
step bench_dense 150 "$PY" scripts/bench_dense.py --gpu "${MODEL_ARGS[@]}" --work "$WORK" --seeds "$SEED" \
    --mosaic 16384 --json "$RES/bench_dense.json"
step bench_detect 90 "$PY" scripts/bench_detect.py "${MODEL_ARGS[@]}" --work "$WORK" --size 4096 --seed "$SEED" \
    --engine chip --stride 24 --device cuda --rss "" --json "$RES/bench_detect.json"
if [ -z "${SKIP_MOSAIC_CHIP:-}" ]; then
    step bench_detect_mosaic 150 "$PY" scripts/bench_detect.py "${MODEL_ARGS[@]}" --work "$WORK" --mosaic 16384 \
        --size 4096 --seed "$SEED" --engine chip --stride 24 --device cuda --rss "" --naive-windows 100 \
        --json "$RES/bench_detect_mosaic.json"
fi
step bench_detect_dense 150 "$PY" scripts/bench_detect.py "${MODEL_ARGS[@]}" --work "$WORK" --mosaic 16384 \
    --size 4096 --seed "$SEED" --engine dense --device cuda --rss "" --naive-windows 100 \
    --json "$RES/bench_detect_dense_mosaic.json"
step bench_stride 120 "$PY" scripts/bench_stride.py "${MODEL_ARGS[@]}" --work "$WORK" --size 4096 --seed "$SEED" \
    --device cuda --strides 24,8 --repeats 2 --json "$RES/bench_stride.json"
echo "gpu_bench: done"; cat "$RES/steps.txt"
