#!/usr/bin/env python
"""Probe: the DEM evidence at real crossings and at the places that fool the imagery, on calibration scenes.

For each scene, the DEM evidence (geodrain.dem_features.crossing_evidence, as `detect --dem` reads it) at its
merged crossings that are real (windows >= 0.5 merged at 40 m, matched within 10 m) and at the points of its
truth's distractors layer where the imagery was fooled on an independent generator's scenes (field
boundaries, road intersections, farmsteads, streams beside roads); printed as 10th / 50th / 90th percentiles
per feature.

    python scripts/experiments/along_road_probe.py --scenes runs/ws/scenes --cal 8001-8004 --work runs/ws
"""

from __future__ import annotations

import numpy as np

from common import machine, parser, scene_crossings, scene_dir, setup, table
from fooled import RATES

from geodrain.dem_features import DEM_FEATURES, crossing_evidence
from geodrain.read import open_dem


def main() -> None:
    ap = parser(__doc__, cal="8001-8004", work="geodrain-ws")
    ap.add_argument("--half-m", type=float, default=100.0, help="half side (m) of the DEM window")
    args = ap.parse_args()
    bundle, cal, _ = setup(args)
    print(f"# along_road_probe on {machine()}: seeds {args.cal}, DEM windows of +-{args.half_m:g} m")
    groups: dict[str, list[np.ndarray]] = {}
    for seed in cal:
        d = scene_crossings(bundle, scene_dir(seed, args), args.work, radius_m=40.0)
        src = open_dem(d.scene.path / "dem.tif", d.scene.crs, (d.scene.transform.c, d.scene.transform.f))
        try:
            ev = crossing_evidence(src, d.crossings.xy[d.y == 1], half_m=args.half_m).evidence
            groups.setdefault("real crossing", []).append(np.column_stack([ev[f] for f in DEM_FEATURES]))
            dis = d.scene.distractors
            if dis is not None and len(dis):
                kinds = dis["kind"].to_numpy().astype(object)
                xy = np.column_stack([dis.geometry.x.to_numpy(), dis.geometry.y.to_numpy()])
                for k in RATES:
                    if (kinds == k).any():
                        ev = crossing_evidence(src, xy[kinds == k], half_m=args.half_m).evidence
                        groups.setdefault(k, []).append(np.column_stack([ev[f] for f in DEM_FEATURES]))
        finally:
            src.close()
    rows = []
    for name, parts in groups.items():
        m = np.concatenate(parts)
        row = {"where": name, "n": len(m)}
        for j, f in enumerate(DEM_FEATURES):
            v = m[:, j][np.isfinite(m[:, j])]
            row[f] = " / ".join(f"{np.percentile(v, q):.2f}" for q in (10, 50, 90)) if len(v) else "-"
        rows.append(row)
    print("10th / 50th / 90th percentile of each feature (NaN left out):")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
