#!/usr/bin/env python
"""Experiment: detection's window stride, merge radius and point placement, each combination's threshold
chosen on the calibration scenes and applied unchanged to the unseen test scenes, in one run.

Detection merges the windows at or above the threshold (greedy, strongest first, within the merge radius) and
places each crossing at the score-weighted mean of its windows' points (window centre + regressed offset).
Variants: the stride of the sliding windows (24 px, the default, or 8 px: every crossing then has a window
within 4 px of its centre), the merge radius (m), and the placement ("probability": detect's; "window centre":
the score-weighted mean of the windows' centres, ignoring the regressed offsets).

    python scripts/experiments/exp_stride_radius.py models/sppnet-k3-s3-f256 --scenes runs/deploy/scenes --work runs/exp_merge
"""

from __future__ import annotations

import numpy as np

from common import cache_name, candidates, machine, parser, scene_dir, setup
from exp_merge import threshold_counts

from geodrain.datasets.scene import open_scene


def main() -> None:
    ap = parser(__doc__, cal="8001-8016", work="geodrain-exp-merge")
    ap.add_argument("--strides", default="24,8")
    ap.add_argument("--radii", default="20,30")
    ap.add_argument("--placements", default="probability,window centre")
    args = ap.parse_args()
    bundle, cal, test = setup(args)
    truth = {s: open_scene(scene_dir(s, args)).crossings.xy for s in cal + test}
    tol = args.tolerance
    print(f"# exp_stride_radius {bundle.model_id} on {machine()}: calibration seeds {args.cal} "
          f"({sum(len(truth[s]) for s in cal)} crossings), test seeds {args.test} "
          f"({sum(len(truth[s]) for s in test)} crossings), {args.size}² px, tolerance {tol:g} m, fp32")
    print("| stride px | merge radius m | placement | calibration TP | calibration FP | calibration F1 | threshold "
          "| test TP | test FP | test FN | test P | test R | test F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for stride in [int(v) for v in args.strides.split(",")]:
        data = {s: (candidates(bundle, scene_dir(s, args), stride=stride, cache=cache_name(args, bundle, s, stride)),
                    truth[s]) for s in cal + test}
        n_cal = sum(len(truth[s]) for s in cal)
        scores = np.unique(np.concatenate([data[s][0].score for s in cal]))[::-1]
        grid = scores[np.unique(np.linspace(0, min(len(scores), 20 * n_cal) - 1, 300).round().astype(int))]
        for radius in [float(v) for v in args.radii.split(",")]:
            for rule in args.placements.split(","):
                best = max((2 * tp / (tp + fp + nt), t, tp, fp) for t in grid
                           for tp, fp, nt in [threshold_counts(data, cal, t, rule, radius, tol)])
                f1, thr, ctp, cfp = best
                t, f, nt = threshold_counts(data, test, thr, rule, radius, tol)
                p = t / (t + f) if t + f else 0.0
                print(f"| {stride} | {radius:g} | {rule} | {ctp} | {cfp} | {f1:.3f} | {thr:.5f} | {t} | {f} | "
                      f"{nt - t} | {p:.3f} | {t / nt:.3f} | {2 * t / (t + f + nt):.3f} |", flush=True)


if __name__ == "__main__":
    main()
