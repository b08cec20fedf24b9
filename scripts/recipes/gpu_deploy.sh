#!/usr/bin/env bash
# The deployed model, trained, chosen and measured in one run on a CUDA machine (H100/H200):
#
#   1. scenes: training seeds 1001-1048, calibration seeds 8001-8004, unseen test seeds 9001-9003, all
#      4096² px (`geodrain synth`, one process per core)
#   2. two candidates trained at once on the GPU from scratch, same data and schedule, the last epoch kept:
#      the architecture the accuracy-constrained search picked (ARCH_A, k1-s3-f256) and the same with a 3 x 3
#      first convolution (ARCH_B, k3-s3-f256; the paper's SPP-Net, at 7.9 M parameters, does not fit here)
#   3. each candidate's detection threshold calibrated on the calibration scenes (`geodrain calibrate`), then
#      evaluated on the unseen scenes (scripts/eval_bundle.py --record)
#   4. the candidate with the higher calibration F1 is chosen (the test scenes play no part in the choice),
#      profiled on this GPU (`geodrain profile`: batch size into its manifest)
#   5. scripts/recipes/gpu_bench.sh with the chosen bundle (read, chip engine and dense engine benchmarks)
#
# Results go to $OUT (results.tgz: logs and JSON; bundle_a.tgz, bundle_b.tgz: the two candidates).
# Environment: TRAIN_SEEDS, CAL_SEEDS, TEST_SEEDS, SIZE (4096), EPOCHS (36), CROPS (6000), WORKERS (7 per
# candidate), TRAIN_BUDGET (train --max-seconds, 200), TRAIN_LIMIT (hard limit, 300), ARCH_A, ARCH_B, DEVICE
# (cuda), PYTHON (python3), BENCH=0 to skip 5.
#
#   scripts/recipes/gpu_deploy.sh
#   DEVICE=cpu SIZE=1024 TRAIN_SEEDS="1001 1002" CAL_SEEDS=8001 TEST_SEEDS=9001 EPOCHS=1 CROPS=40 BENCH=0 \
#       scripts/recipes/gpu_deploy.sh          # dry run of the whole chain on a CPU
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/recipes/gpu_lib.sh
. "$ROOT/scripts/recipes/gpu_lib.sh"
WORK=${WORK:-/tmp/geodrain-deploy}
SIZE=${SIZE:-4096}
TRAIN_SEEDS=${TRAIN_SEEDS:-$(seq -s ' ' 1001 1048)}
CAL_SEEDS=${CAL_SEEDS:-"8001 8002 8003 8004"}
TEST_SEEDS=${TEST_SEEDS:-"9001 9002 9003"}
DEVICE=${DEVICE:-cuda}
ARCH_A=${ARCH_A:-k1-s3-f256}
ARCH_B=${ARCH_B:-k3-s3-f256}
mkdir -p "$WORK/scenes"
GD=("$PY" -m geodrain.cli)
dirs() { local s; for s in "$@"; do printf '%s ' "$WORK/scenes/s$s"; done; }

"$PY" - > "$RES/env.txt" 2>&1 <<'EOF'
import os, sys, torch
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none", "cpus", os.cpu_count())
EOF
cat "$RES/env.txt"

# 1. scenes
synth_one() { [ -f "$WORK/scenes/s$1/naip.tif" ] || "$PY" -m geodrain.cli synth "$WORK/scenes/s$1" --seed "$1" --size "$SIZE" -q --overwrite; }
export -f synth_one
export PY WORK SIZE
# shellcheck disable=SC2086
step synth 240 bash -c "printf '%s\n' $TRAIN_SEEDS $CAL_SEEDS $TEST_SEEDS | xargs -P $(nproc) -I{} bash -c 'synth_one {}'"

# 2. two candidates at once
train() {  # train NAME ARCH
    # shellcheck disable=SC2046
    step "train_$1" "${TRAIN_LIMIT:-300}" "${GD[@]}" train $(dirs $TRAIN_SEEDS) -o "$WORK/bundle_$1" --arch "$2" \
        --epochs "${EPOCHS:-36}" --crops "${CROPS:-6000}" --workers "${WORKERS:-7}" --device "$DEVICE" --keep last \
        --max-seconds "${TRAIN_BUDGET:-200}" --name "sppnet-$2" --overwrite
}
train a "$ARCH_A" &
pa=$!
sleep 2
train b "$ARCH_B" &
pb=$!
wait $pa $pb

# 3. calibrate and evaluate each
for c in a b; do
    B=$WORK/bundle_$c
    [ -f "$B/manifest.json" ] || continue
    # shellcheck disable=SC2046
    step "calibrate_$c" 120 "${GD[@]}" calibrate "$B" $(dirs $CAL_SEEDS) --device "$DEVICE"
    # shellcheck disable=SC2046
    step "eval_$c" 180 "$PY" scripts/eval_bundle.py "$B" --scenes $(dirs $TEST_SEEDS) --device "$DEVICE" \
        --record --work "$WORK/eval_$c" --json "$RES/eval_$c.json"
    tar czf "$OUTDIR/bundle_$c.tgz" -C "$WORK" "bundle_$c"
done

# 4. choose by calibration F1 and profile
CHOSEN=$("$PY" - "$WORK" <<'EOF'
import json, sys
from pathlib import Path
best = None
for c in "ab":
    m = Path(sys.argv[1]) / f"bundle_{c}" / "manifest.json"
    if m.exists():
        f1 = json.loads(m.read_text()).get("calibration", {}).get("f1", -1)
        print(f"candidate {c}: calibration F1 {f1}", file=sys.stderr)
        if best is None or f1 > best[0]:
            best = (f1, c)
print(best[1] if best else "")
EOF
)
echo "chosen: ${CHOSEN:-none}" | tee -a "$RES/steps.txt"
[ -n "$CHOSEN" ] || { pack; exit 1; }
B=$WORK/bundle_$CHOSEN
if [ "$DEVICE" = cuda ]; then
    step profile 90 "${GD[@]}" profile "$B" --device cuda --batch-sizes "${PROFILE_BATCHES:-1,8,32,64,128,256,512,1024}" \
        -o "$RES/profile" --no-plots -q
    tar czf "$OUTDIR/bundle_$CHOSEN.tgz" -C "$WORK" "bundle_$CHOSEN"
fi

# 5. benchmarks with the chosen bundle (the unseen scene 9001 is their scene)
if [ "${BENCH:-1}" = 1 ]; then
    first=${TEST_SEEDS%% *}
    mkdir -p "$WORK/bench"
    ln -sfn "$WORK/scenes/s$first" "$WORK/bench/scene_${first}_4096"
    MODEL=$B WORK=$WORK/bench SEED=$first RESULTS=$RES OUT=$OUTDIR PYTHON=$PY scripts/recipes/gpu_bench.sh
fi
pack
echo "gpu_deploy: done"; cat "$RES/steps.txt"
