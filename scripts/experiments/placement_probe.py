#!/usr/bin/env python
"""Probe: can placement raise the recall ceiling? Part of every path's missed crossings are found but placed
more than 10 m from the truth (candidate_ceiling.py: within 10 m 176 of 185 on the calibration scenes, within
20 m 183). This probe asks, on calibration scenes only:

1. **Where the misplaced crossings lie**: each true crossing whose nearest merged crossing (windows >= the
   scoring's floor, merged as detect merges) is further than the tolerance, with its structure, the angle
   between stream and road, and the merged point's offset along and across the road.
2. **Other ways of placing a cluster** (the same clusters, geodrain.merge.clusters): the probability-weighted
   mean of its windows' points (deployed), the coordinate-wise weighted median, the weighted geometric median,
   the mean of the points nearer than the 75th-percentile distance from that median. True crossings matched
   one to one within the tolerance and within 5 m.
3. **Placing by the DEM**: the crest snap (geodrain.dem_features.Hydrology.snap: the filled routing's flow path
   across the embankment crest) and a *channel pair* (here only): the embankment's axis from the principal
   direction of its raised cells within 30 m; on each side, of the lines parallel to it 12-40 m out, the one
   where the channel is deepest below the line's median, and on it the lowest point within 30 m along the
   road; the crossing midway between the two sides' lowest points, on the embankment's centre line. Each is
   started from the true point, from the true point moved up to 20 m along its road, and from the merged
   crossings (moved always, or to the midpoint of the imagery's and the DEM's place).

    python scripts/experiments/placement_probe.py --scenes runs/ws/scenes --cal 8001-8008 --work runs/ws
"""

from __future__ import annotations

import numpy as np
import pyogrio
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from common import load_scene, machine, parser, road_axes, scene_candidates, scene_dir, setup, table

from geodrain.dem_features import RAISED_M, Hydrology, fill_invalid, local_relief
from geodrain.evaluate import match_points
from geodrain.merge import clusters
from geodrain.postprocess import crossings_at
from geodrain.read import open_dem

HALF_M, RES_M = 100.0, 2.0     # the DEM window the deployed DEM calibrator reads


def wmedian(v: np.ndarray, w: np.ndarray) -> float:
    o = np.argsort(v)
    c = np.cumsum(w[o])
    return float(v[o][np.searchsorted(c, c[-1] / 2)])


def geomedian(p: np.ndarray, w: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Weighted geometric median (Weiszfeld iterations from the weighted mean)."""
    m = (p * w[:, None]).sum(0) / w.sum()
    for _ in range(iterations):
        ww = w / np.maximum(np.hypot(*(p - m).T), 1e-3)
        m = (p * ww[:, None]).sum(0) / ww.sum()
    return m


def trimmed(p: np.ndarray, w: np.ndarray) -> np.ndarray:
    d = np.hypot(*(p - geomedian(p, w)).T)
    k = d <= np.percentile(d, 75)
    return (p[k] * w[k, None]).sum(0) / w[k].sum()


PLACEMENTS = {
    "weighted mean (deployed)": lambda p, w: (p * w[:, None]).sum(0) / w.sum(),
    "coordinate median": lambda p, w: np.array([wmedian(p[:, 0], w), wmedian(p[:, 1], w)]),
    "geometric median": geomedian,
    "trimmed mean": trimmed,
}


def channel_pair(zf: np.ndarray, rel: np.ndarray, valid: np.ndarray, row: float, col: float,
                 res: float) -> tuple[float, float] | None:
    """(row, col) midway between the channel's lowest points on either side of the embankment near (row,
    col), on the embankment's centre line; None where no straight embankment or no channel on both sides."""
    rr, cc = np.nonzero((rel > RAISED_M) & valid)
    k = np.hypot(rr + 0.5 - row, cc + 0.5 - col) * res <= 30.0
    if k.sum() < 20:
        return None
    pts = np.column_stack([rr[k], cc[k]]) + 0.5
    ev, vec = np.linalg.eigh(np.cov((pts - pts.mean(0)).T))
    if ev[1] < 4 * ev[0]:            # not one straight embankment (an intersection, a bend)
        return None
    u, n = vec[:, 1], vec[:, 0]
    here = np.array([row, col])
    centre = here + n * float(((pts - here) @ n).mean())
    t = np.arange(-30.0, 30.0 + 1e-9, res / 2) / res
    lows = []
    for side in (1, -1):
        best = None
        for off in np.arange(12.0, 40.0 + 1e-9, 2.0):
            q = centre[None, :] + side * (off / res) * n[None, :] + t[:, None] * u[None, :]
            z = ndi.map_coordinates(zf, [q[:, 0] - 0.5, q[:, 1] - 0.5], order=1, mode="nearest")
            depth = float(np.median(z) - z.min())
            if best is None or depth > best[0]:
                best = (depth, float(t[np.argmin(z)]))
        lows.append(best)
    if min(b[0] for b in lows) < 0.3:
        return None
    p = centre + u * (lows[0][1] + lows[1][1]) / 2
    return float(p[0]), float(p[1])


def dem_place(dem, xy: np.ndarray, how: str) -> np.ndarray:
    """Each point moved by the DEM (``how``: crest or pair); NaN where the DEM finds nothing."""
    out = np.full_like(xy, np.nan, dtype=np.float64)
    for i, (x, y) in enumerate(xy):
        t, side = dem.window_transform(x, y, HALF_M, RES_M)
        z, valid = dem.read(t, side, side)
        cell = abs(t.a) * dem.units_m
        c, r = ~t @ (x, y)
        if how == "crest":
            hyd = Hydrology.of(z, valid, cell)
            got = hyd.snap(r, c) if hyd is not None else None
        else:
            zf = fill_invalid(z, valid)
            got = channel_pair(zf, local_relief(zf, cell), valid, r, c, cell)
        if got is not None:
            out[i] = t @ (got[1], got[0])
    return out


def main() -> None:
    ap = parser(__doc__, cal="8001-8008", work="geodrain-ws")
    args = ap.parse_args()
    bundle, cal, _ = setup(args)
    sc = bundle.scoring_for(bundle.stride_px)
    floor, radius = (sc.floor, sc.merge_radius_m) if sc is not None else (0.5, bundle.merge_radius_m)
    tol = args.tolerance
    rng = np.random.default_rng(0)
    missed, n_true = [], 0
    placed = {k: [0, 0] for k in PLACEMENTS}
    starts = {f"{how} from {s}": [0, 0, []] for how in ("crest", "pair") for s in ("truth", "20 m along")}
    merged_rows = {"imagery (deployed)": 0, **{f"{how} {m}": 0 for how in ("crest", "pair")
                                                for m in ("always", "midpoint")}}
    for seed in cal:
        folder = scene_dir(seed, args)
        scene = load_scene(folder)
        truth = pyogrio.read_dataframe(folder / "truth.gpkg", layer="crossings")
        axes = road_axes(folder, truth)
        n_true += len(truth)
        cands, _ = scene_candidates(bundle, folder, args.work, floor)
        merged = crossings_at(cands, floor, radius)
        d, j = cKDTree(merged.xy).query(scene.truth_xy)
        for i in np.nonzero(d > tol)[0]:
            v = merged.xy[j[i]] - scene.truth_xy[i]
            u = axes[i]
            missed.append({"scene": scene.name, "kind": truth.kind.iloc[i],
                           "angle_deg": float(truth.angle_deg.iloc[i]), "off_m": float(d[i]),
                           "along_m": float(abs(v @ u)), "across_m": float(abs(v @ np.array([-u[1], u[0]]))),
                           "window_score": float(merged.score[j[i]]), "windows": int(merged.n_windows[j[i]])})
        for name, fn in PLACEMENTS.items():
            xy = np.array([fn(cands.xy[m], cands.score[m].astype(np.float64)) for _, m in clusters(cands, radius)])
            placed[name][0] += len(match_points(xy, scene.truth_xy, tol).pred_index)
            placed[name][1] += len(match_points(xy, scene.truth_xy, tol / 2).pred_index)
        dem = open_dem(folder / "dem.tif", scene.crs, (scene.transform.c, scene.transform.f))
        moved = scene.truth_xy + rng.uniform(-20, 20, len(truth))[:, None] * axes
        merged_rows["imagery (deployed)"] += len(match_points(merged.xy, scene.truth_xy, tol).pred_index)
        for how in ("crest", "pair"):
            for start, pts in (("truth", scene.truth_xy), ("20 m along", moved)):
                got = dem_place(dem, pts, how)
                ok = np.isfinite(got[:, 0])
                after = np.where(ok[:, None], got, pts)
                row = starts[f"{how} from {start}"]
                row[0] += int((np.hypot(*(pts - scene.truth_xy).T) <= tol).sum())
                row[1] += int((np.hypot(*(after - scene.truth_xy).T) <= tol).sum())
                row[2] += np.hypot(*(got[ok] - scene.truth_xy[ok]).T).tolist()
            got = dem_place(dem, merged.xy, how)
            ok = np.isfinite(got[:, 0])
            always = np.where(ok[:, None], got, merged.xy)
            merged_rows[f"{how} always"] += len(match_points(always, scene.truth_xy, tol).pred_index)
            merged_rows[f"{how} midpoint"] += len(match_points((always + merged.xy) / 2, scene.truth_xy,
                                                               tol).pred_index)
        dem.close()
    print(f"# placement_probe {bundle.model_id} on {machine()}: calibration seeds {args.cal}, {n_true} true "
          f"crossings, windows >= {floor:g} merged within {radius:g} m, tolerance {tol:g} m")
    print(f"\n1. true crossings whose nearest merged crossing is further than {tol:g} m ({len(missed)}):")
    print(table(missed, list(missed[0])) if missed else "(none)")
    print("\n2. placing each cluster of windows (true crossings matched one to one):")
    print(table([{"placement": k, f"within_{tol:g}_m": v[0], f"within_{tol / 2:g}_m": v[1]}
                 for k, v in placed.items()], ["placement", f"within_{tol:g}_m", f"within_{tol / 2:g}_m"]))
    print(f"\n3a. placing by the DEM from the true point and from a point moved up to 20 m along its road "
          f"({n_true} each):")
    print(table([{"start": k, "placed": len(v[2]), "median_m": float(np.median(v[2])),
                  "p90_m": float(np.percentile(v[2], 90)), f"within_{tol:g}_m_before": v[0],
                  f"within_{tol:g}_m_after": v[1]} for k, v in starts.items()],
                ["start", "placed", "median_m", "p90_m", f"within_{tol:g}_m_before", f"within_{tol:g}_m_after"]))
    print(f"\n3b. the merged crossings placed by the DEM (true crossings matched one to one within {tol:g} m):")
    print(table([{"placement": k, "matched": v} for k, v in merged_rows.items()], ["placement", "matched"]))


if __name__ == "__main__":
    main()
