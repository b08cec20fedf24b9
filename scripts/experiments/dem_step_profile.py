#!/usr/bin/env python
"""Probe: where the DEM step's time goes, per merged crossing of a scene. For each of the scene's merged
crossings (the deployed bundle's cached window candidates, merged as detect merges), its DEM window is read
as detect reads it (geodrain.read.DemSource, +-100 m at 2 m cells) and each layer of
geodrain.dem_features.Hydrology is computed on its own, timed: the read, the local relief, the routing towards
the lowest edge cell (emb_flow, flow_near, along_road), the digital-dam fill (dam_depth), the valley without
the road (valley_along: the embankment taken out, then routed through every edge) and the evidence itself.
Medians in ms per crossing; and how many merged crossings the DEM calibrator's bound lets through to be read.

    python scripts/experiments/dem_step_profile.py runs/ws/scenes/s9002 --work runs/ws [--dem other_dem.tif]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from common import load_scene, machine, scene_candidates, table

from geodrain.dem_features import Hydrology, fill_depth, fill_invalid, local_relief, upstream_area, valley_dem
from geodrain.model.bundle import load_bundle
from geodrain.postprocess import crossings_at
from geodrain.read import open_dem


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene", type=Path)
    ap.add_argument("--work", type=Path, required=True, help="where the scene's window candidates are cached")
    ap.add_argument("--dem", type=Path, default=None, help="DEM to read (default: the scene's dem.tif)")
    ap.add_argument("--bundle", default=None)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    sc = bundle.scoring_for(bundle.stride_px)
    scene = load_scene(args.scene)
    cands, _ = scene_candidates(bundle, args.scene, args.work, sc.floor)
    merged = crossings_at(cands, sc.floor, sc.merge_radius_m)
    dem = open_dem(args.dem or args.scene / "dem.tif", scene.crs, (scene.transform.c, scene.transform.f))
    half, res = sc.dem.half_m, sc.dem.res_m
    steps = {k: [] for k in ("read", "relief", "routing_to_lowest_edge", "dam_fill", "valley_without_road",
                             "evidence", "all_layers")}
    for x, y in merged.xy:
        t0 = time.perf_counter()
        t, side = dem.window_transform(x, y, half, res)
        z, valid = dem.read(t, side, side)
        t1 = time.perf_counter()
        cell = abs(t.a) * dem.units_m
        zf = fill_invalid(z, valid)
        rel = local_relief(zf, cell)
        t2 = time.perf_counter()
        upstream_area(zf, valid, cell)
        t3 = time.perf_counter()
        fill_depth(zf, valid)
        t4 = time.perf_counter()
        upstream_area(valley_dem(zf, rel, valid, cell), valid, cell, outlets="edge")
        t5 = time.perf_counter()
        hyd = Hydrology.of(z, valid, cell)
        t6 = time.perf_counter()
        c, r = ~t @ (x, y)
        hyd.evidence(r, c)
        t7 = time.perf_counter()
        for k, v in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t7 - t6, t6 - t5)):
            steps[k].append(1000 * v)
    dem.close()
    print(f"# dem_step_profile on {machine()}: {args.scene.name}, DEM {Path(args.dem or args.scene / 'dem.tif').name}, "
          f"{len(merged)} merged crossings, windows +-{half:g} m at {res:g} m")
    print(table([{"step": k, "median_ms": float(np.median(v)), "mean_ms": float(np.mean(v))} for k, v in steps.items()],
                ["step", "median_ms", "mean_ms"]))
    reach = sc.dem.calibrator.max_probability(merged) >= sc.report_at
    print(f"the DEM calibrator's bound (max_probability) lets {int(reach.sum())} of {len(merged)} merged crossings "
          f"through at {sc.report_at:g}: only those have their DEM read by detect")


if __name__ == "__main__":
    main()
