#!/usr/bin/env bash
# Experiment, run on the previous deployed bundle (k1-s3-f256: 12 scenes on an H200, then a CPU fine-tuning
# stage; in the history at d521f4d): that fine-tuning stage again, with crossing-centred crops balanced by road
# surface (`geodrain train --balance-by road_kind`), then the same calibration and unseen-scene evaluation.
# Needs that recipe's GPU-stage bundle ($GPU_BUNDLE) and its scenes under $WORK.
# Writes runs/balanced (not models/): docs/results/cpu/eval_balanced_finetune.log has the result.
#
#   scripts/experiments/exp_balanced_finetune.sh        # about 35 min on 2 CPU cores
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
WORK=${WORK:-runs/deploy}
GPU_BUNDLE=${GPU_BUNDLE:-$WORK/gpu-sppnet-k1-s3-f256}
OUT=${OUT:-runs/balanced}
for s in 1001 1002 1003 1004 1005 1006 1007 1008 1009 1010 1011 1012 8001 8002 9001 9002 9003; do
    [ -f "$WORK/scenes/s$s/naip.tif" ] || geodrain synth "$WORK/scenes/s$s" --seed "$s" --size 4096 -q
done
TRAIN=$(for s in 1001 1002 1003 1004 1005 1006 1007 1008 1009 1010 1011 1012; do printf '%s ' "$WORK/scenes/s$s"; done)
# shellcheck disable=SC2086
geodrain train $TRAIN -o "$OUT" --init "$GPU_BUNDLE" --lr 0.002 --epochs 6 --crops 2500 --device cpu \
    --name sppnet-k1-s3-f256 --balance-by road_kind --overwrite
geodrain calibrate "$OUT" "$WORK/scenes/s8001" "$WORK/scenes/s8002" --device cpu
python scripts/eval_bundle.py "$OUT" --scenes "$WORK/scenes/s9001" "$WORK/scenes/s9002" "$WORK/scenes/s9003" \
    --device cpu --work "$WORK/eval"
