#!/usr/bin/env python
"""Diagnostic: how much each kind of distractor fools a bundle. Every merged crossing of windows >= 0.5 that is
not a true crossing, by what lies under it (common.attribute), with how many reach a window score of 0.99 and
the bundle's window threshold, and how many distractor points of each kind the scenes hold.

    python scripts/experiments/false_candidates.py models/sppnet-k3-s3-f256 --scenes runs/ws/scenes \
        --cal 8001-8006 --work runs/ws --radius 40
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from common import machine, parser, scene_crossings, scene_dir, setup, table


def main() -> None:
    ap = parser(__doc__, cal="8001-8006", work="geodrain-ws")
    ap.add_argument("--radius", type=float, default=None)
    args = ap.parse_args()
    bundle, cal, _ = setup(args)
    radius = args.radius or bundle.merge_radius_m
    agg, points = defaultdict(list), Counter()
    for s in cal:
        d = scene_crossings(bundle, scene_dir(s, args), args.work, radius_m=radius)
        if d.scene.distractors is not None:
            points.update(d.scene.distractors["kind"].astype(str).tolist())
        for u, y, sc, n in zip(d.under, d.y, d.crossings.score, d.crossings.n_windows):
            if y == 0:
                agg[u].append((float(sc), int(n)))
    print(f"# false_candidates {bundle.model_id} on {machine()}: seeds {args.cal}, windows >= 0.5 merged at "
          f"{radius:g} m; window threshold {bundle.threshold:g}")
    rows = []
    for k in sorted(set(agg) | set(points), key=lambda k: -len(agg.get(k, []))):
        v = np.array(agg.get(k, []), float).reshape(-1, 2)
        rows.append({"under": k, "distractor_points": points.get(k, 0), "false_merged": len(v),
                     "window_ge_0.99": int((v[:, 0] >= 0.99).sum()),
                     "window_ge_threshold": int((v[:, 0] >= bundle.threshold).sum()),
                     "median_windows": float(np.median(v[:, 1])) if len(v) else float("nan")})
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
