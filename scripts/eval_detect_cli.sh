#!/usr/bin/env bash
# The watershed table's paths as a user runs them: `geodrain detect` (the deployed bundle, its defaults; then
# with --dem) on each unseen scene, then `geodrain evaluate` against the scene's truth, pooled over the scenes.
# It checks that scripts/eval_watershed.py (which replays detect's post-processing on cached candidates)
# measures what the command line writes.
#
#   scripts/eval_detect_cli.sh runs/ws/scenes 9002 9011 runs/eval_cli [MODEL]
set -euo pipefail
scenes=$1; first=$2; last=$3; out=$4; model=${5:-}
mkdir -p "$out"
for variant in imagery dem; do
  tp=0; fp=0; n=0
  for s in $(seq "$first" "$last"); do
    d="$scenes/s$s"
    args=("$d/naip.tif" -o "$out/${variant}_s$s.gpkg" -q --overwrite)
    [ -n "$model" ] && args+=(-m "$model")
    [ "$variant" = dem ] && args+=(--dem "$d/dem.tif")
    geodrain detect "${args[@]}"
    read -r a b c < <(geodrain evaluate "$out/${variant}_s$s.gpkg" "$d/truth.gpkg" --json |
      python -c "import json,sys; r=json.load(sys.stdin); print(r['true_positives'], r['false_positives'], r['truth'])")
    tp=$((tp + a)); fp=$((fp + b)); n=$((n + c))
  done
  python -c "tp,fp,n=$tp,$fp,$n; p=tp/(tp+fp); r=tp/n; print(f'$variant: scenes s$first-s$last, {n} crossings, detected {tp+fp}: TP {tp} FP {fp} precision {p:.3f} recall {r:.3f} F1 {2*p*r/(p+r):.3f}')"
done
