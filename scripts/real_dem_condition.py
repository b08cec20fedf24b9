#!/usr/bin/env python
"""Condition a real lidar DEM at points found from the DEM itself, and check the result.

Candidate crossings are where extracted streams meet raised ground: cells of the stream network (D8 upstream
area >= --stream-area after filling) where a barrier within 30 m holds water back, the --points highest ones
at least 60 m apart. They are written as crossings and `geodrain condition` runs on them (the real command). Then: is the output a valid DEM on the same grid, did only breach cells change,
and does water from each dammed bottom now pass its crossing (D8 after filling, within 5 m)?

    python scripts/real_dem_condition.py "$GEODRAIN_REAL_DEM" --work runs/real
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from shapely.geometry import Point

from geodrain.hydrology.breach import Breach, breach_window
from geodrain.hydrology.dem import DemReader, open_dem
from geodrain.hydrology.routing import FlowGrid, fill_depressions, route


def candidates(z: np.ndarray, tf, stream_area: float, n: int, step: int = 10, radius: float = 30.0,
               spacing: float = 60.0) -> list[dict]:
    """Points where extracted streams meet raised ground: stream cells (D8 upstream area >= ``stream_area``
    after filling) every ``step`` cells along the network where an embankment-like barrier within ``radius``
    holds water back (the test geodrain condition makes: a dammed low inside the disk); the ``n`` highest
    barriers at least ``spacing`` apart."""
    _, d8 = fill_depressions(z)
    grid = FlowGrid(d8, tf)
    acc = grid.accumulation("cell") * abs(tf.a) ** 2
    rows, cols = np.nonzero(acc >= stream_area)
    keep = (rows % step == 0) | (cols % step == 0)
    found = []
    for r, c in zip(rows[keep], cols[keep]):
        b = breach_window(z, int(r), int(c), radius / abs(tf.a), cell_m=abs(tf.a))
        if isinstance(b, Breach):
            found.append({"row": int(r), "col": int(c), "bottom": (int(b.rows[0]), int(b.cols[0])),
                          "dam_m": round(b.dam_m, 2), "upstream_m2": round(float(acc[r, c]))})
    out: list[dict] = []
    for f in sorted(found, key=lambda d: -d["dam_m"]):
        if all(np.hypot(f["row"] - o["row"], f["col"] - o["col"]) * abs(tf.a) >= spacing for o in out):
            out.append(f)
    return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dem", type=Path)
    ap.add_argument("--work", type=Path, default=Path("runs/real"))
    ap.add_argument("--points", type=int, default=5)
    ap.add_argument("--stream-area", type=float, default=500.0)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    info = open_dem(args.dem)
    with DemReader(info) as r:
        z = r.read_all()
    tf = info.transform
    print(f"# DEM {args.dem.name}: {info.width} x {info.height} cells of {info.cell_m:g} m, {info.crs}, "
          f"z {np.nanmin(z):.2f} .. {np.nanmax(z):.2f}, nodata {info.nodata}")
    cands = candidates(z, tf, args.stream_area, args.points)
    print(f"# {len(cands)} candidate crossings: where extracted streams (>= {args.stream_area:g} m² after "
          "filling) meet raised ground that holds water back within 30 m, highest first, 60 m apart")
    pts = args.work / "points.gpkg"
    xy = [tf @ (c["col"] + 0.5, c["row"] + 0.5) for c in cands]
    gpd.GeoDataFrame({"crossing_id": np.arange(1, len(cands) + 1),
                      "barrier_m": [c["dam_m"] for c in cands]},
                     geometry=[Point(p) for p in xy], crs=info.crs).to_file(pts, layer="crossings", driver="GPKG")
    for i, c in enumerate(cands, 1):
        print(f"  {i}: x {xy[i - 1][0]:.1f} y {xy[i - 1][1]:.1f}  holds water {c['dam_m']} m deep; the stream "
              f"there drains {c['upstream_m2']} m²")
    out = args.work / "conditioned.tif"
    cmd = [sys.executable, "-m", "geodrain.cli", "condition", str(args.dem), str(pts), "-o", str(out),
           "--radius", "30", "--overwrite"]
    print("$ geodrain condition " + " ".join(Path(a).name if "/" in a else a for a in cmd[4:]))
    p = subprocess.run(cmd, capture_output=True, text=True)
    print(p.stdout.strip())
    if p.returncode:
        print(p.stderr.strip())
        sys.exit(p.returncode)
    with rasterio.open(args.dem) as a, rasterio.open(out) as b:
        same = (a.crs == b.crs, a.transform == b.transform, a.shape == b.shape, a.nodata == b.nodata)
        za, zb = a.read(1), b.read(1)
    changed = zb != za
    lines = gpd.read_file(out.with_name(out.stem + "_breaches.gpkg"), layer="breaches")
    status = gpd.read_file(out.with_name(out.stem + "_breaches.gpkg"), layer="crossings")
    print(f"# output: same CRS, transform, shape, nodata: {all(same)}; finite {bool(np.isfinite(zb).all())}; "
          f"{int(changed.sum())} cells changed, all lowered: {bool(np.all(zb[changed] < za[changed]))}, "
          f"deepest cut {float((za - zb).max()):.2f} m")
    print(status[["crossing_id", "status", "radius_m", "dam_m", "max_cut_m"]].to_string(index=False))
    if len(lines):
        print(lines[["crossing_id", "length_m", "max_cut_m", "dam_m", "cells"]].to_string(index=False))
    from geodrain.hydrology.routing import fill_depressions

    filled, _ = fill_depressions(np.where(za == info.nodata, np.nan, za).astype(np.float32))
    depth = filled - za
    print(f"# the crop's depressions: {100 * float(np.mean(depth > 0.01)):.0f} % of its cells lie in one, up to "
          f"{float(np.nanmax(depth)):.1f} m deep (filled, the whole crop drains to its lowest spill points)")
    inv = ~tf
    for fill, how in ((False, "routed as is (water ponds in depressions)"),
                      (True, "routed after filling every depression")):
        print(f"# water from the dammed end of each breach, D8 {how}: does its path reach the open end?")
        grids = {name: route(np.where(data == info.nodata, np.nan, data).astype(np.float32), tf, fill=fill)
                 for name, data in (("before", za), ("after", zb))}
        for _, ln in lines.iterrows():
            (x0, y0), (x1, y1) = ln.geometry.coords[0], ln.geometry.coords[-1]
            c0, r0 = inv @ (x0, y0)
            verdict = []
            for name, grid in grids.items():
                path = grid.path(int(r0), int(c0), max_length_m=500)[0]
                pr, pc = np.unravel_index(path, za.shape)
                px, py = tf @ (pc + 0.5, pr + 0.5)
                d = float(np.hypot(px - x1, py - y1).min())
                verdict.append(f"{name}: {'reaches it' if d <= 2 else f'misses it by {d:.0f} m'}")
            print(f"  crossing {ln.crossing_id}: " + "; ".join(verdict))

if __name__ == "__main__":
    main()
