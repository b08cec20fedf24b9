#!/usr/bin/env bash
# The main job on an embedded default, from a fresh clone: install, generate a sample watershed, detect
# its crossings with the deployed model, evaluate them against the truth, and draw a quicklook.
#   ./scripts/demo.sh [OUTDIR] [SEED] [SIZE]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup_env.sh"
OUT="${1:-$ROOT/demo}"
SEED="${2:-101}"
SIZE="${3:-2048}"
mkdir -p "$OUT"
geodrain synth "$OUT/watershed" --seed "$SEED" --size "$SIZE" --overwrite
geodrain detect "$OUT/watershed/naip.tif" -o "$OUT/crossings.gpkg" --overwrite
geodrain evaluate "$OUT/crossings.gpkg" "$OUT/watershed/truth.gpkg" --tolerance 10
geodrain show "$OUT/watershed/naip.tif" "$OUT/crossings.gpkg" --truth "$OUT/watershed/truth.gpkg" \
  -o "$OUT/quicklook.png" --overwrite
echo "demo outputs in $OUT: crossings.gpkg (open in QGIS), quicklook.png"
