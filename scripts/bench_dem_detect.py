#!/usr/bin/env python
"""Benchmark: `geodrain detect` end to end with and without --dem, alternating in one run.

The DEM is the scene's dem.tif warped once (not timed) into another CRS, resolution and elevation unit — a
state plane CRS in US survey feet (EPSG:26852, NAD83 / Nebraska (ftUS)) at 2.5 ft cells with elevations in
feet, as county lidar often comes — so that detect's reading and resampling of the DEM count. Each repeat
runs, as separate processes (interpreter start, model load, reading, inference, merging, DEM evidence,
writing): the imagery-only command, then the same with --dem, then (with --dem-model) a DEM-aware bundle with
--dem. Reports each run's wall time, the crossings written, and the ratios of the summed wall times.

    python scripts/bench_dem_detect.py runs/ws/scenes/s9002 --work runs/bench_dem --repeat 2 \
        --dem-model runs/ws/bundles/dem-aware --cands-work runs/ws
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402

STATE_PLANE_FT = "EPSG:26852"
US_FT = 1200.0 / 3937.0


def dem_in_state_plane(src_path: Path, dst_path: Path, res_ft: float = 2.5) -> Path:
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    if dst_path.exists():
        return dst_path
    with rasterio.open(src_path) as src:
        t, w, h = calculate_default_transform(src.crs, STATE_PLANE_FT, src.width, src.height, *src.bounds,
                                              resolution=res_ft)
        profile = dict(driver="GTiff", width=w, height=h, count=1, dtype="float32", crs=STATE_PLANE_FT,
                       transform=t, nodata=-9999.0, tiled=True, blockxsize=512, blockysize=512,
                       compress="deflate", predictor=3, BIGTIFF="IF_SAFER")
        z = src.read(1).astype(np.float32)
        z = np.where(z == src.nodata, src.nodata, z / US_FT).astype(np.float32)
        tmp = dst_path.with_suffix(".tmp.tif")
        with rasterio.open(tmp, "w", **profile) as dst:
            out = np.full((h, w), -9999.0, np.float32)
            reproject(z, out, src_transform=src.transform, src_crs=src.crs, src_nodata=src.nodata,
                      dst_transform=t, dst_crs=STATE_PLANE_FT, dst_nodata=-9999.0, resampling=Resampling.bilinear)
            dst.write(out, 1)
        tmp.rename(dst_path)
    return dst_path


def run_detect(args: list[str]) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "geodrain.cli", "detect", *args, "-q", "--overwrite",
                        "--device", "cpu"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"detect failed: {p.stderr.strip()}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--model", default=None, help="imagery bundle (default: the deployed one)")
    ap.add_argument("--dem-model", default=None, help="a DEM-aware bundle run with --dem as a third variant")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--cands-work", type=Path, default=None,
                    help="work folder of scripts/eval_watershed.py holding this scene's cached window candidates: "
                         "also time the DEM step alone (in this process, on those candidates)")
    args = ap.parse_args()
    import geopandas as gpd

    args.work.mkdir(parents=True, exist_ok=True)
    dem = dem_in_state_plane(args.scene / "dem.tif", args.work / f"{args.scene.name}_dem_ftUS.tif")
    naip = str(args.scene / "naip.tif")
    model = ["-m", args.model] if args.model else []
    variants = {"imagery": [naip, *model], "imagery --dem": [naip, *model, "--dem", str(dem)]}
    if args.dem_model:
        variants["dem-aware --dem"] = [naip, "-m", args.dem_model, "--dem", str(dem)]
    rows, total = [], {k: 0.0 for k in variants}
    for k in range(args.repeat):
        for name, a in variants.items():
            out = args.work / f"{name.replace(' ', '_').replace('--', '')}.gpkg"
            wall = run_detect([*a, "-o", str(out)])
            total[name] += wall
            n = len(gpd.read_file(out, layer="crossings"))
            rows.append({"repeat": k + 1, "variant": name, "wall_s": wall, "crossings": n})
    print(f"# bench_dem_detect on {machine()}: {args.scene.name} ({naip}), DEM {dem.name} "
          f"({STATE_PLANE_FT}, 2.5 ft cells, elevations in feet)")
    print("# " + " ".join(sys.argv))
    print(table(rows, ["repeat", "variant", "wall_s", "crossings"]))
    base = total["imagery"]
    for name in variants:
        if name != "imagery":
            print(f"{name} / imagery end to end (summed over {args.repeat} repeats): {total[name] / base:.3f}")
    a = gpd.read_file(args.work / "imagery.gpkg", layer="crossings")
    b = gpd.read_file(args.work / "imagery_dem.gpkg", layer="crossings")
    same = len(a) == len(b) and np.allclose(np.c_[a.geometry.x, a.geometry.y], np.c_[b.geometry.x, b.geometry.y])
    print(f"imagery and imagery --dem wrote the same crossings: {same}")
    if args.cands_work is not None:
        step_alone(args, dem, base / args.repeat)


def step_alone(args, dem_path: Path, imagery_s: float) -> None:
    """The DEM step of detect (geodrain.postprocess.report with the DEM read in state plane feet) on the
    scene's cached window candidates, against report without it, 3 times each, in this process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "experiments"))
    from common import load_scene, scene_candidates

    from geodrain.model.bundle import load_bundle
    from geodrain.postprocess import report
    from geodrain.read import open_dem

    bundle = load_bundle(args.model)
    sc = bundle.scoring_for(bundle.stride_px)
    scene = load_scene(args.scene)
    cands, _ = scene_candidates(bundle, args.scene, args.cands_work, sc.floor)
    rows = []
    for k in range(3):
        t0 = time.perf_counter()
        plain = report(cands, sc.report_at, bundle.merge_radius_m if sc is None else sc.merge_radius_m, scoring=sc)
        t1 = time.perf_counter()
        src = open_dem(dem_path, scene.crs, (scene.transform.c, scene.transform.f))
        every = report(cands, 0.0, sc.merge_radius_m, scoring=sc, dem=src)
        src.close()
        t2 = time.perf_counter()
        rows.append({"repeat": k + 1, "report_s": t1 - t0, "report_with_dem_s": t2 - t1, "merged": len(every),
                     "reported": len(plain)})
    print(table(rows, ["repeat", "report_s", "report_with_dem_s", "merged", "reported"]))
    extra = float(np.median([r["report_with_dem_s"] - r["report_s"] for r in rows]))
    n = rows[0]["merged"]
    print(f"the DEM step alone: {extra:.1f} s ({1000 * extra / max(n, 1):.0f} ms per merged crossing); against the "
          f"imagery run's mean wall time {imagery_s:.1f} s: (imagery + DEM step) / imagery = "
          f"{(imagery_s + extra) / imagery_s:.3f}")


if __name__ == "__main__":
    main()
