#!/usr/bin/env bash
# The dense engine at the bundle's stride (8 px) on a 16384² DEFLATE GeoTIFF on one CUDA machine, with the
# time split against each part's ceiling and the remedy for the limiting part (scripts/gpu_dense_split.py),
# in one time-boxed step of a few minutes. Prepare here first with scripts/gpu_carry.sh, then on the machine:
#     bash scripts/gpu_stride8.sh            (device tool: carry ["runs/gpu"], timeout_s 480)
# Results: $OUT/results (dense_split.log, dense_split.json, env.txt, steps.txt) and $OUT/results.tgz.
# Environment: MODEL (default: the deployed bundle), MOSAIC (16384), STRIDE (the bundle's), PYTHON (python3),
# DEVICE (cuda; cpu for a dry run here, with MOSAIC=2048), LIMIT (seconds, 420).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
if ! "$PY" -c "import rasterio" 2>/dev/null; then
    if ls runs/gpu/whl/*.whl >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            runs/gpu/whl/*.whl || exit 1
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "gpu_stride8: rasterio is missing and runs/gpu/whl holds no wheels (run scripts/gpu_carry.sh here)" >&2
        exit 1
    fi
fi
[ -f runs/gpu/scene_1024.tif ] || { echo "gpu_stride8: runs/gpu/scene_1024.tif is missing (scripts/gpu_carry.sh)" >&2; exit 1; }
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUTDIR=${OUT:-/tmp/geodrain-gpu-out}
RES=${RESULTS:-$OUTDIR/results}
WORK=${WORK:-/tmp/geodrain-split}
mkdir -p "$RES" "$WORK"
# shellcheck source=scripts/gpu_lib.sh
. "$ROOT/scripts/gpu_lib.sh"
"$PY" - > "$RES/env.txt" 2>&1 <<'PYEOF'
import os, sys, torch, rasterio, numpy
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "rasterio", rasterio.__version__, "gdal", rasterio.__gdal_version__, "numpy", numpy.__version__)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
print("cpus", os.cpu_count())
PYEOF
cat "$RES/env.txt"
MODEL_ARGS=()
[ -n "${MODEL:-}" ] && MODEL_ARGS=(--model "$MODEL")
STRIDE_ARGS=()
[ -n "${STRIDE:-}" ] && STRIDE_ARGS=(--stride "$STRIDE")
step dense_split "${LIMIT:-420}" "$PY" scripts/gpu_dense_split.py --raster runs/gpu/scene_1024.tif \
    --mosaic "${MOSAIC:-16384}" --device "${DEVICE:-cuda}" --work "$WORK" "${MODEL_ARGS[@]}" "${STRIDE_ARGS[@]}" \
    --json "$RES/dense_split.json"
rc=$?
echo "gpu_stride8: done (exit $rc)"; cat "$RES/steps.txt"
exit $rc
