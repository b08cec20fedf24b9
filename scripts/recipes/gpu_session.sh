#!/usr/bin/env bash
# Every GPU measurement of the project in one run on a CUDA machine (H100/H200), in order of importance,
# each step time-boxed so one failure or overrun does not lose the rest:
#
#   1. generate training scenes and unseen-seed test scenes (in parallel, one process per scene)
#   2. `geodrain nas` exact search on the GPU (175 efficiency measurements, then trainings) -> winner bundle
#   3. scripts/eval_bundle.py: chip AP / box AP / accuracy and detection P/R/F1 of the winner on unseen seeds
#   4. `geodrain profile` and `geodrain schedule` of the winner: H200 batch size and engine into its manifest
#   5. scripts/bench_detect.py (chip engine end to end vs model only vs naive)
#   6. scripts/bench_dense.py --gpu (dense engine end to end on a 16384² DEFLATE GeoTIFF, and its breakdown)
#
# Results go to RESULTS (default $OUT/results, tarred to $OUT/results.tgz after every step).
#   scripts/recipes/gpu_session.sh            # sizes from the environment, defaults below
# Environment: TRAIN_SEEDS, TEST_SEEDS, SIZE (4096), NAS_TIMEOUT (150), EPOCHS (12), CROPS (3000),
# WORKERS (12), MOSAIC (16384), NAS_ARGS (extra arguments), PYTHON (python3), DRY=1 for a CPU dry run.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-15}
# shellcheck source=scripts/recipes/gpu_lib.sh
. "$ROOT/scripts/recipes/gpu_lib.sh"
WORK=${WORK:-/tmp/geodrain-gpu}
SIZE=${SIZE:-4096}
TRAIN_SEEDS=${TRAIN_SEEDS:-"1001 1002 1003 1004 1005 1006 1007 1008 1009 1010 1011 1012"}
TEST_SEEDS=${TEST_SEEDS:-"9001 9002 9003"}
DEVICE=${DEVICE:-cuda}
mkdir -p "$WORK/scenes"
gd() { "$PY" -c 'import sys; from geodrain.cli import cli; sys.exit(cli())' "$@"; }

"$PY" - > "$RES/env.txt" 2>&1 <<'EOF'
import sys, os, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
for m in ("rasterio", "pyogrio", "geopandas", "shapely", "pyproj", "optuna", "onnxruntime"):
    try:
        mod = __import__(m); print(m, getattr(mod, "__version__", "?"))
    except Exception as e:
        print(m, "MISSING", e)
print("cpus", os.cpu_count())
EOF
cat "$RES/env.txt"

synth_all() {
    local pids=() s
    for s in $TRAIN_SEEDS $TEST_SEEDS; do
        [ -f "$WORK/scenes/s$s/naip.tif" ] || gd synth "$WORK/scenes/s$s" --seed "$s" --size "$SIZE" -q --overwrite &
        pids+=($!)
    done
    local rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    ls "$WORK/scenes"
    return $rc
}
step synth 150 bash -c "$(declare -f synth_all gd); PY=$PY WORK=$WORK SIZE=$SIZE TRAIN_SEEDS='$TRAIN_SEEDS' TEST_SEEDS='$TEST_SEEDS' synth_all"

mkdir -p "$WORK/bench"
ln -sfn "$WORK/scenes/s${TEST_SEEDS%% *}" "$WORK/bench/scene_${TEST_SEEDS%% *}_$SIZE"   # benches reuse it
train_dirs=""
for s in $TRAIN_SEEDS; do train_dirs="$train_dirs $WORK/scenes/s$s"; done
test_dirs=""
for s in $TEST_SEEDS; do test_dirs="$test_dirs $WORK/scenes/s$s"; done

# shellcheck disable=SC2086
step nas "${NAS_STEP_LIMIT:-$(( ${NAS_TIMEOUT:-150} + 150 ))}" "$PY" -c 'import sys; from geodrain.cli import cli; sys.exit(cli())' \
    nas $train_dirs -o "$RES/nas" --strategy exact --min-ap "${MIN_AP:-0.97}" --device "$DEVICE" \
    --epochs "${EPOCHS:-12}" --crops "${CROPS:-3000}" --workers "${WORKERS:-12}" --timeout "${NAS_TIMEOUT:-150}" \
    -q ${NAS_ARGS:-}
WIN="$RES/nas/winner"
if [ -f "$WIN/manifest.json" ]; then
    # shellcheck disable=SC2086
    step eval 120 "$PY" scripts/eval_bundle.py "$WIN" --scenes $test_dirs --device "$DEVICE" --record \
        --work "$WORK/eval" --json "$RES/eval.json"
    step profile 60 "$PY" -c 'import sys; from geodrain.cli import cli; sys.exit(cli())' profile "$WIN" \
        --device "$DEVICE" --batch-sizes "${PROFILE_BATCHES:-1,8,32,64,128,256,512,1024,2048}" -o "$RES/profile" -q
    step schedule 60 "$PY" -c 'import sys; from geodrain.cli import cli; sys.exit(cli())' schedule "$WIN" \
        --device "$DEVICE" -o "$RES/schedule" -q ${SCHEDULE_ARGS:-}
    MODEL=$WIN
else
    MODEL=${FALLBACK_MODEL:-}
fi
step bench_detect 90 "$PY" scripts/bench_detect.py ${MODEL:+--model "$MODEL"} --work "$WORK/bench" \
    --size "$SIZE" --seed "${TEST_SEEDS%% *}" --engine chip --device "$DEVICE" --rss "" --json "$RES/bench_detect.json"
if [ -z "${DRY:-}" ]; then
    step bench_dense 150 "$PY" scripts/bench_dense.py --gpu ${MODEL:+--model "$MODEL"} --work "$WORK/bench" \
        --seeds "${TEST_SEEDS%% *}" --mosaic "${MOSAIC:-16384}" --json "$RES/bench_dense.json"
fi
pack
echo "gpu_session: done"; cat "$RES/steps.txt"
