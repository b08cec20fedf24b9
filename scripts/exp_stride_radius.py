#!/usr/bin/env python
"""Experiment: detection's window stride, merge radius and point placement, each combination's threshold
chosen on the calibration scenes and applied unchanged to the unseen test scenes, in one run.

Detection merges the windows at or above the threshold (greedy, strongest first, within the merge radius) and
places each crossing at the score-weighted mean of its windows' points (window centre + regressed offset).
Variants: the stride of the sliding windows (24 px, the default, or 8 px: every crossing then has a window
within 4 px of its centre), the merge radius (m), and the placement ("probability": detect's; "window centre":
the score-weighted mean of the windows' centres, ignoring the regressed offsets).

    python scripts/exp_stride_radius.py models/sppnet-k3-s3-f256 --scenes runs/deploy/scenes --work runs/exp_merge
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine  # noqa: E402
from exp_merge import scene_dir, threshold_counts, windows  # noqa: E402

from geodrain.datasets.scene import open_scene  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402


def seeds(text: str) -> list[int]:
    """"8001-8016" or "9001,9002" -> seeds."""
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", default=None)
    ap.add_argument("--cal", default="8001-8016")
    ap.add_argument("--test", default="9001-9003")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--scenes", type=Path, default=None, help="folder of existing scenes named s<seed>")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-exp-merge")
    ap.add_argument("--tolerance", type=float, default=10.0)
    ap.add_argument("--strides", default="24,8")
    ap.add_argument("--radii", default="20,30")
    ap.add_argument("--placements", default="probability,window centre")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.bundle)
    cal, test = seeds(args.cal), seeds(args.test)
    truth = {s: open_scene(scene_dir(s, args.scenes, args.work, args.size)).crossings.xy for s in cal + test}
    tol = args.tolerance
    print(f"# exp_stride_radius {bundle.model_id} on {machine()}: calibration seeds {args.cal} "
          f"({sum(len(truth[s]) for s in cal)} crossings), test seeds {args.test} "
          f"({sum(len(truth[s]) for s in test)} crossings), {args.size}² px, tolerance {tol:g} m, fp32")
    print("| stride px | merge radius m | placement | calibration TP | calibration FP | calibration F1 | threshold "
          "| test TP | test FP | test FN | test P | test R | test F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for stride in [int(v) for v in args.strides.split(",")]:
        tag = "" if stride == 24 else f"_stride{stride}"
        data = {s: (windows(bundle, scene_dir(s, args.scenes, args.work, args.size),
                            args.work / f"windows_{bundle.model_id.replace('@', '_')}_{s}{tag}.npz", stride), truth[s])
                for s in cal + test}
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
