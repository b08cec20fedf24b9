#!/usr/bin/env python
"""The window-score threshold of a bundle that maximizes pooled detection F1 on labelled scenes, computed as
`geodrain calibrate` does (geodrain.training.calibrate.f1_exact: windows at or above each candidate threshold
merged as detect merges them, matched at 10 m) but from the cached window candidates of
scripts/experiments/extract_candidates.py (floor 0.5), so no scene is run twice. With --record the threshold,
stride and merge radius go into the bundle's manifest (as `geodrain calibrate` records them).

    python scripts/experiments/threshold_from_candidates.py runs/ws/ft runs/ws/scenes/s80{01..06} --work runs/ws
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from common import TOLERANCE_M, load_scene, scene_candidates

from geodrain.model.bundle import load_bundle
from geodrain.training.calibrate import MAX_THRESHOLDS, WINDOWS_PER_CROSSING, f1_exact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("scenes", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--merge-radius", type=float, default=None, help="m (default: the bundle's)")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    radius = args.merge_radius or bundle.merge_radius_m
    cands, truths = [], []
    for s in args.scenes:
        cands.append(scene_candidates(bundle, s, args.work)[0])
        truths.append(load_scene(s).truth_xy)
    n_true = sum(len(t) for t in truths)
    scores = np.unique(np.concatenate([c.score for c in cands]))[::-1][:WINDOWS_PER_CROSSING * max(n_true, 1)]
    if len(scores) > MAX_THRESHOLDS:
        scores = scores[np.unique(np.linspace(0, len(scores) - 1, MAX_THRESHOLDS).round().astype(int))]
    f1, tps, fps = f1_exact(cands, truths, radius, TOLERANCE_M, scores)
    i = int(np.argmax(f1))
    thr = float((scores[i] + scores[i + 1]) / 2) if i + 1 < len(scores) else float(scores[i])
    res = {"threshold": round(thr, 4), "f1": round(float(f1[i]), 4), "true_positives": int(tps[i]),
           "false_positives": int(fps[i]), "truth_crossings": n_true, "tolerance_m": TOLERANCE_M,
           "stride_px": bundle.stride_px, "merge_radius_m": radius, "precision": "fp32",
           "scenes": [s.name for s in args.scenes], "measured_with": "scripts/experiments/threshold_from_candidates.py"}
    print(json.dumps(res))
    if args.record:
        bundle.update_manifest(threshold=res["threshold"], stride_px=bundle.stride_px,
                               merge_radius_m=radius, calibration=res)


if __name__ == "__main__":
    main()
