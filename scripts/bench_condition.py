#!/usr/bin/env python
"""Runtime per km² and peak memory of `geodrain condition` and of the pass-rate evaluation, on a large
generated DEM against a 4096² part of it, each in its own child process (peak RSS = its VmHWM).

The DEM is a `geodrain synth --size 16384` scene (1 m cells, 268 km²); the points conditioned at are its true
crossings topped up with its hard negatives (road intersections, streams and ponds near roads, driveways ...)
to --points, as a detector's output mixes crossings and false detections. The small case is the scene's
top-left 4096² window with the points inside it, written by this script. Both cases condition at the points
and evaluate the pass rate of the true crossings on the conditioned DEM (whole-DEM routing: depression
filling is global), so the ratios show how each scales with the DEM.

    geodrain synth --seed 9100 --size 16384 runs/bench/s9100
    python scripts/bench_condition.py runs/bench/s9100 --work runs/bench
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, run_child, table  # noqa: E402

CONDITION = r"""
import json, sys, time
from benchlib import peak_rss_mb
from geodrain.condition import ConditionOptions, condition
t = time.perf_counter()
r = condition(sys.argv[1], sys.argv[2], sys.argv[3], options=ConditionOptions(overwrite=True), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(), "km2": r.dem.area_km2,
                  "crossings": len(r.outcomes), "breached": r.counts()["breached"], "cells": r.cells_changed,
                  **{k: round(v, 2) for k, v in r.timings.items()}}))
"""

EVALUATE = r"""
import json, sys, time
from benchlib import peak_rss_mb
from geodrain.hydrology.dem import open_dem
from geodrain.hydrology.passrate import dem_pass_rate, load_targets
t = time.perf_counter()
info = open_dem(sys.argv[1])
targets = load_targets(sys.argv[2], sys.argv[3], info.crs, 50.0, info.bounds)
res = dem_pass_rate(sys.argv[1], targets)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(), "km2": info.area_km2,
                  "crossings": len(res), "pass_rate": res.rate}))
"""


def bench_points(scene: Path, n: int) -> Path:
    """The scene's true crossings, then its hard negatives in id order, ``n`` points in all."""
    import pandas as pd

    out = scene / f"points_{n}.gpkg"
    if not out.exists():
        truth = gpd.read_file(scene / "truth.gpkg", layer="crossings")[["crossing_id", "geometry"]]
        neg = gpd.read_file(scene / "truth.gpkg", layer="hard_negatives").head(max(0, n - len(truth)))
        neg = neg.assign(crossing_id=np.arange(len(neg)) + 100000)[["crossing_id", "geometry"]]
        gpd.GeoDataFrame(pd.concat([truth, neg], ignore_index=True), crs=truth.crs).to_file(
            out, layer="crossings", driver="GPKG")
    return out


def crop_scene(scene: Path, out: Path, size: int, points: Path) -> Path:
    """The top-left ``size``² window of a scene's DEM with the crossings and streams in it."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "dem.tif").exists():
        return out
    with rasterio.open(scene / "dem.tif") as src:
        prof = src.profile.copy()
        win = Window(0, 0, size, size)
        prof.update(width=size, height=size, transform=src.window_transform(win))
        data = src.read(1, window=win)
        bounds = rasterio.windows.bounds(win, src.transform)
    with rasterio.open(out / "dem.tif", "w", **prof) as dst:
        dst.write(data, 1)
    truth = gpd.read_file(scene / "truth.gpkg", layer="crossings").clip(bounds)
    truth.to_file(out / "truth.gpkg", layer="crossings", driver="GPKG")
    pts = gpd.read_file(points, layer="crossings").clip(bounds)
    pts.to_file(out / points.name, layer="crossings", driver="GPKG")
    gpd.read_file(scene / "streams.gpkg").to_file(out / "streams.gpkg", driver="GPKG")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene", type=Path, help="a geodrain synth scene folder (dem.tif, truth.gpkg, streams.gpkg)")
    ap.add_argument("--work", type=Path, default=Path("runs/bench"))
    ap.add_argument("--small", type=int, default=4096, help="side of the small case (px)")
    ap.add_argument("--points", type=int, default=500, help="points to condition at")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    with rasterio.open(args.scene / "dem.tif") as src:
        side = src.width
    points = bench_points(args.scene, args.points)
    cases = {f"{args.small}²": crop_scene(args.scene, args.work / f"crop{args.small}", args.small, points),
             f"{side}²": args.scene}
    rows = []
    for name, d in cases.items():
        out = args.work / f"conditioned_{name.rstrip('²')}.tif"
        c = run_child(CONDITION, str(d / "dem.tif"), str(d / points.name), str(out))
        rows.append({"case": name, "step": "condition", **c, "s_per_km2": c["seconds"] / c["km2"]})
        print(json.dumps(rows[-1]), flush=True)
        e = run_child(EVALUATE, str(out), str(d / "truth.gpkg"), str(d / "streams.gpkg"))
        rows.append({"case": name, "step": "evaluate", **e, "s_per_km2": e["seconds"] / e["km2"]})
        print(json.dumps(rows[-1]), flush=True)
    print(f"# bench_condition on {machine()}; scene {args.scene.name}")
    print(table(rows, ["case", "step", "km2", "crossings", "breached", "seconds", "s_per_km2", "peak_rss_mb"]))
    small, big = rows[:2], rows[2:]
    for s, b in zip(small, big):
        print(f"{b['step']}: {big[0]['case']} / {small[0]['case']}: area x{b['km2'] / s['km2']:.1f}, "
              f"time x{b['seconds'] / s['seconds']:.2f}, s/km² x{b['s_per_km2'] / s['s_per_km2']:.2f}, "
              f"peak RSS x{b['peak_rss_mb'] / s['peak_rss_mb']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "scene": str(args.scene), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
