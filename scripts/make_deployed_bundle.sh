#!/usr/bin/env bash
# How the deployed bundle in models/ was made, step by step (each step is a geodrain command):
#
#   1. training scenes (seeds 1001-1012, 4096² px), calibration scenes (8001, 8002), unseen test scenes
#      (9001-9003): `geodrain synth`, deterministic per seed
#   2. architecture: `geodrain nas ... --strategy exact --min-ap 0.97` on an H200 (scripts/gpu_session.sh):
#      the most efficient of the 175 architectures with validation chip AP >= 0.97 is
#      C64,1,1-P2,2-C128,3,1-P2,2-C256,3,1-P2,2-SPP3,2,1-F256 (docs/results/h200/nas)
#   3. training of that architecture on the GPU: STAGE=gpu (45 epochs x 4000 crops, 12 scenes)
#   4. fine-tuning on a CPU with crops along roads and streams away from crossings (hard negatives):
#      STAGE=finetune, from the GPU bundle
#   5. detection threshold calibrated on the calibration scenes (`geodrain calibrate`), the H200 efficiency
#      measurement of the architecture copied from the search's winner, and the unseen-seed evaluation
#      recorded in the manifest (scripts/eval_bundle.py)
#
#   STAGE=gpu      scripts/make_deployed_bundle.sh     # on a CUDA machine
#   STAGE=finetune scripts/make_deployed_bundle.sh     # then here (about 35 min on 2 CPU cores)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
WORK=${WORK:-runs/deploy}
NAME=${NAME:-sppnet-k1-s3-f256}
GPU_BUNDLE=${GPU_BUNDLE:-$WORK/gpu-$NAME}
NAS_WINNER=${NAS_WINNER:-$WORK/nas/winner}
mkdir -p "$WORK/scenes"
for s in 1001 1002 1003 1004 1005 1006 1007 1008 1009 1010 1011 1012 8001 8002 9001 9002 9003; do
    [ -f "$WORK/scenes/s$s/naip.tif" ] || geodrain synth "$WORK/scenes/s$s" --seed "$s" --size 4096 -q
done
TRAIN=$(for s in 1001 1002 1003 1004 1005 1006 1007 1008 1009 1010 1011 1012; do printf '%s ' "$WORK/scenes/s$s"; done)

case "${STAGE:-finetune}" in
gpu)
    # shellcheck disable=SC2086
    geodrain train $TRAIN -o "$GPU_BUNDLE" --arch k1-s3-f256 --epochs 45 --crops 4000 --workers 12 \
        --device cuda --name "$NAME" --overwrite
    ;;
finetune)
    # shellcheck disable=SC2086
    geodrain train $TRAIN -o "models/$NAME" --init "$GPU_BUNDLE" --lr 0.002 --epochs 6 --crops 2500 \
        --device cpu --name "$NAME" --overwrite
    geodrain calibrate "models/$NAME" "$WORK/scenes/s8001" "$WORK/scenes/s8002" --device cpu
    if [ -f "$NAS_WINNER/manifest.json" ]; then
        python - "$NAS_WINNER" "models/$NAME" <<'EOF'
import sys
from geodrain.model.bundle import load_bundle
winner, deployed = load_bundle(sys.argv[1]), load_bundle(sys.argv[2])
assert winner.arch == deployed.arch
# the efficiency measurement belongs to the architecture, so it carries over to the retrained weights
deployed.update_manifest(inference=winner.manifest.get("inference", {}), nas=winner.manifest.get("nas", {}))
EOF
    fi
    python scripts/eval_bundle.py "models/$NAME" --scenes "$WORK/scenes/s9001" "$WORK/scenes/s9002" \
        "$WORK/scenes/s9003" --device cpu --record --work "$WORK/eval"
    echo "$NAME" > models/DEFAULT
    ;;
esac
