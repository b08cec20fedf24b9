#!/usr/bin/env bash
# How the deployed bundle in models/ was made (each step a geodrain command or a script of this repository):
#
#   1. on a CUDA machine, scripts/gpu_deploy.sh: 48 training scenes (seeds 1001-1048), 4 calibration scenes
#      (8001-8004) and 3 unseen test scenes (9001-9003), all 4096² px from `geodrain synth`; two candidates
#      trained from scratch at once (the search's k1-s3-f256 and k3-s3-f256: 36 epochs x 6000 crops, the last
#      epoch kept); each one's threshold calibrated on the calibration scenes and evaluated on the unseen
#      ones; the higher calibration F1 chosen (k3-s3-f256: 0.893 against 0.865) and profiled on that GPU.
#      Logs: docs/results/h200/deploy/.
#   2. here, STAGE=install: the chosen bundle copied into models/ (scene folders in its provenance replaced by
#      the `geodrain synth` commands that regenerate them, the architecture's row of the H200 search
#      leaderboard recorded), made the default, and its CPU schedule and profile recorded in its manifest.
#
#   STAGE=gpu                                   scripts/make_deployed_bundle.sh   # on a CUDA machine
#   STAGE=install CHOSEN=/path/to/bundle_b      scripts/make_deployed_bundle.sh   # then here
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NAME=${NAME:-sppnet-k3-s3-f256}
case "${STAGE:-install}" in
gpu)
    scripts/gpu_deploy.sh
    ;;
install)
    python scripts/install_bundle.py "${CHOSEN:?path of the chosen bundle from gpu_deploy.sh}" "models/$NAME" \
        --size 4096 --leaderboard docs/results/h200/nas/leaderboard.csv --default --overwrite
    geodrain schedule "models/$NAME" --device cpu -o docs/results/cpu/schedule --overwrite -q
    geodrain profile "models/$NAME" --device cpu --batch-sizes 1,4,16,32 -o docs/results/cpu/profile --overwrite -q
    ;;
*)
    echo "STAGE must be gpu or install" >&2
    exit 2
    ;;
esac
