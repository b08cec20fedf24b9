#!/usr/bin/env bash
# Exact accuracy-constrained efficiency search (Zhang et al. 2023, section 5.4) on a CUDA machine:
# e(n) = chips/s at the best batch size measured on this GPU for all 175 architectures of the paper's space
# (fp16 channels-last CUDA graphs, batches 128..1024, about a minute), then candidates trained in descending
# e(n) until the first with validation chip AP >= A. Sized to finish in about 4 minutes on an H100/H200: the
# search stops starting trainings after TIMEOUT seconds (the sweep included); a run stopped that way exits 1
# with "run the same command again to resume", and running it again continues from OUT/nas.db.
#
# Usage (from the repository root):
#   scripts/recipes/gpu_nas.sh OUT SCENE [SCENE ...]
# e.g.
#   geodrain synth scenes/s1 --seed 1 --size 4096; geodrain synth scenes/s2 --seed 2 --size 4096
#   scripts/recipes/gpu_nas.sh runs/nas-gpu scenes/s1 scenes/s2
#
# Settings (environment): MIN_AP (0.97), EPOCHS (2), CROPS per epoch (2000), BATCH (20, the paper's),
# CONTEXT (16), WORKERS (8 data-loading processes), TIMEOUT (200 s for the search), METRIC (throughput |
# latency), PYTHON (python3). Extra arguments for `geodrain nas` go in NAS_ARGS (e.g. "--k1 1,3 --overwrite").
#
# Writes OUT/leaderboard.{csv,md}, OUT/pareto.png, OUT/search.json, OUT/winner/ (the bundle, manifest key
# "nas"), OUT/nas.db (the resumable study) and OUT/nas.log; prints the summary and the top of the leaderboard.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
OUT=$1
shift
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-10}   # a readable log, not a progress bar per 0.1 s

"$PYTHON" - <<'EOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_nas.sh: no CUDA GPU visible to torch")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
EOF

mkdir -p "$OUT"
start=$(date +%s)
set +e
# shellcheck disable=SC2086
"$PYTHON" -c 'import sys; from geodrain.cli import cli; sys.exit(cli())' nas "$@" -o "$OUT" \
    --strategy exact --min-ap "${MIN_AP:-0.97}" --efficiency "${METRIC:-throughput}" --space paper \
    --device cuda --epochs "${EPOCHS:-2}" --crops "${CROPS:-2000}" --batch-size "${BATCH:-20}" \
    --context "${CONTEXT:-16}" --workers "${WORKERS:-8}" --timeout "${TIMEOUT:-200}" ${NAS_ARGS:-} \
    2>&1 | tee "$OUT/nas.log"
status=${PIPESTATUS[0]}
set -e
echo "gpu_nas.sh: exit $status after $(( $(date +%s) - start )) s; outputs in $OUT" | tee -a "$OUT/nas.log"
if [ -f "$OUT/leaderboard.md" ]; then
    head -n 30 "$OUT/leaderboard.md"
fi
exit "$status"
