#!/usr/bin/env python
"""Diagnostic: where the DEM's snapping (geodrain.dem_features.Hydrology.snap) puts true crossings. Each true
crossing of the scenes is snapped from its own point and from a point moved 0-20 m in a random direction;
reported: how many snap, their distance to the truth along and across the road, by structure kind, and how
many lie within 10 m before and after.

    python scripts/experiments/snap_probe.py --scenes runs/ws/scenes --cal 8001-8006 --work runs/ws
"""

from __future__ import annotations

import numpy as np
import pyogrio

from common import load_scene, machine, parser, road_axes, scene_dir, table

from geodrain.dem_features import SNAP_M, crossing_evidence
from geodrain.read import open_dem


def main() -> None:
    ap = parser(__doc__, cal="8001-8006", work="geodrain-ws")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    per_kind: dict = {}
    for seed in [int(s) for s in __import__("common").seeds(args.cal)]:
        folder = scene_dir(seed, args)
        sc = load_scene(folder)
        truth = pyogrio.read_dataframe(folder / "truth.gpkg", layer="crossings")
        axes = road_axes(folder, truth)
        dem = open_dem(folder / "dem.tif", sc.crs, (sc.transform.c, sc.transform.f))
        ang = rng.uniform(0, 2 * np.pi, len(sc.truth_xy))
        r = rng.uniform(0, 20, len(sc.truth_xy))
        moved = sc.truth_xy + np.column_stack([np.cos(ang) * r, np.sin(ang) * r])
        for start, pts in (("truth", sc.truth_xy), ("0-20 m off", moved)):
            ev = crossing_evidence(dem, pts, snap_m=SNAP_M)
            d0, d1 = np.hypot(*(pts - sc.truth_xy).T), np.hypot(*(ev.xy - sc.truth_xy).T)
            rows.append({"scene": sc.name, "start": start, "crossings": len(pts), "snapped": int(ev.snapped.sum()),
                         "within_10m_before": int((d0 <= 10).sum()), "within_10m_after": int((d1 <= 10).sum()),
                         "median_m_after": float(np.median(d1[ev.snapped])) if ev.snapped.any() else float("nan")})
            if start != "truth":
                continue
            for i, row in truth.iterrows():
                if not ev.snapped[i]:
                    continue
                u = axes[i]
                v = ev.xy[i] - sc.truth_xy[i]
                per_kind.setdefault(row.kind, []).append((abs(v @ u), abs(v @ np.array([-u[1], u[0]]))))
        dem.close()
    print(f"# snap_probe on {machine()}: seeds {args.cal}, snapping within {SNAP_M:g} m")
    print(table(rows, list(rows[0])))
    krows = []
    for kind, v in per_kind.items():
        v = np.array(v)
        krows.append({"kind": kind, "snapped_from_truth": len(v), "along_road_median_m": float(np.median(v[:, 0])),
                      "along_road_p90_m": float(np.percentile(v[:, 0], 90)),
                      "across_road_median_m": float(np.median(v[:, 1]))})
    print("distance of the snapped point from the true crossing, snapped from the true point:")
    print(table(krows, list(krows[0])))


if __name__ == "__main__":
    main()
