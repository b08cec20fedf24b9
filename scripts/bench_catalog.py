#!/usr/bin/env python
"""Statewide-style runs: many overlapping files in two UTM zones, one process against Dask workers, resume.

One generated scene is cut into ``--tiles`` x ``--tiles`` overlapping files of ``--tile-px``² px, the western
half reprojected from UTM zone 14 to zone 13 (:func:`geodrain.synth.tiles.cut_tiles`), and detected with
``geodrain detect`` in child processes, in one run of this script:

1. one process (``clean``): wall time and peak memory;
2. ``--workers N`` (a Dask LocalCluster): wall time, its ratio to the one-process run, each worker's peak
   memory (recorded by the tasks), and whether the crossings are the same;
3. resume: a one-process run killed with SIGKILL once half of its tasks are finished, then ``--resume``:
   the resumed run's time, the work it redid, the overhead of the interruption ((killed + resumed) / clean),
   and whether the output is byte-identical to the clean run's (both with the same SOURCE_DATE_EPOCH);
4. scoring: the clean run's crossings against the truth at 10 m (precision, recall, F1), duplicates (two
   crossings within 10 m of one true crossing, or within the merge radius of each other), and the same near
   the seams between files; with ``--reference``, the scene itself (one file, one CRS) over the same area.

    python scripts/bench_catalog.py --scene runs/s16384 --tiles 4 --tile-px 4096 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402

EPOCH = "1700000000"


def geodrain(*args: str) -> list[str]:
    return [sys.executable, "-m", "geodrain.cli", *args]


def run(cmd: list[str], log) -> float:
    t0 = time.perf_counter()
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    subprocess.run(cmd, check=True, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, stdout=log, stderr=log)
    return time.perf_counter() - t0


def task_meta(work: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [json.loads(pq.read_schema(p).metadata[b"geodrain_task"]) for p in sorted((work / "tasks").glob("*.parquet"))]


def memory(metas: list[dict]) -> dict[str, float]:
    """Peak RSS (MB) per process that ran tasks, from the tasks' records."""
    peak: dict[str, float] = {}
    for m in metas:
        key = f"{m['info'].get('worker', '?')}:{m['info'].get('pid')}"
        peak[key] = max(peak.get(key, 0.0), float(m["info"].get("peak_rss_mb", 0.0)))
    return peak


def killed_at_half(cmd: list[str], work: Path, log) -> tuple[float, int, int]:
    """Run ``cmd`` and SIGKILL it once half of its tasks are finished: (seconds, finished, total)."""
    t0 = time.perf_counter()
    log.write("$ " + " ".join(cmd) + "   # killed at 50 %\n")
    log.flush()
    proc = subprocess.Popen(cmd, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH}, stdout=log, stderr=log)
    total = None
    while proc.poll() is None:
        if total is None and (work / "manifest.json").is_file():
            total = json.loads((work / "manifest.json").read_text())["tasks"]
        if total and len(list((work / "tasks").glob("*.parquet"))) >= total / 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    return time.perf_counter() - t0, len(list((work / "tasks").glob("*.parquet"))), int(total or 0)


def score(pred_path: Path, truth_path: Path, tiles: list[Path], radius_m: float) -> dict:
    """Precision/recall/F1 at 10 m, duplicates, and the same within 150 m of a seam between files."""
    import geopandas as gpd
    import rasterio
    from shapely.geometry import box
    from shapely.ops import unary_union

    from geodrain.evaluate import match_points, score_matching

    pred = gpd.read_file(pred_path, layer="crossings")
    truth = gpd.read_file(truth_path, layer="crossings").to_crs(pred.crs)
    p, t = np.c_[pred.geometry.x, pred.geometry.y], np.c_[truth.geometry.x, truth.geometry.y]
    ev = score_matching(match_points(p, t, 10.0), 10.0)
    from scipy.spatial import cKDTree

    near_truth = cKDTree(p).query_ball_point(t, 10.0) if len(p) else [[] for _ in t]
    dup_truth = sum(1 for hits in near_truth if len(hits) > 1)
    close_pairs = len(cKDTree(p).query_pairs(radius_m)) if len(p) else 0
    # seams: the boundaries of the files' footprints (in the output CRS), where two files overlap
    edges = []
    for f in tiles:
        with rasterio.open(f) as src:
            poly = gpd.GeoSeries([box(*src.bounds)], crs=src.crs).to_crs(pred.crs).iloc[0]
        edges.append(poly.exterior)
    seams = unary_union(edges).buffer(150.0)
    outer = unary_union([gpd.GeoSeries([box(*rasterio.open(f).bounds)], crs=rasterio.open(f).crs)
                         .to_crs(pred.crs).iloc[0] for f in tiles]).buffer(-150.0)
    zone = seams.intersection(outer)      # seams inside the mosaic, not its outer edge
    tin = np.array([zone.contains(g) for g in truth.geometry], dtype=bool)
    pin = np.array([zone.contains(g) for g in pred.geometry], dtype=bool)
    ev_seam = score_matching(match_points(p[pin], t[tin], 10.0), 10.0) if tin.any() or pin.any() else None
    return {"crossings": len(pred), "truth": len(truth), "precision": ev.precision, "recall": ev.recall,
            "f1": ev.f1, "truth_with_2_detections": dup_truth, "pairs_within_merge_radius": close_pairs,
            "seam_truth": int(tin.sum()), "seam_crossings": int(pin.sum()),
            "seam_f1": ev_seam.f1 if ev_seam else float("nan"),
            "seam_truth_with_2_detections": sum(1 for hits, inside in zip(near_truth, tin) if inside and len(hits) > 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scene", type=Path, required=True, help="a scene from `geodrain synth` (generated if missing)")
    ap.add_argument("--size", type=int, default=16384, help="scene size when it is generated")
    ap.add_argument("--seed", type=int, default=8202)
    ap.add_argument("--tiles", type=int, default=4, help="tiles per side")
    ap.add_argument("--tile-px", type=int, default=4096)
    ap.add_argument("--overlap", type=int, default=300, help="overlap of neighbouring tiles (px = m)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--task-size", type=int, default=4096)
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--work", type=Path, default=Path("runs/bench_catalog"))
    ap.add_argument("--reference", action="store_true", help="also detect on the scene itself (one file, one CRS)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--log", type=Path, default=None, help="child output (default: WORK/children.log)")
    args = ap.parse_args()

    from geodrain.model.bundle import load_bundle
    from geodrain.synth import generate_scene
    from geodrain.synth.tiles import cut_tiles

    args.work.mkdir(parents=True, exist_ok=True)
    log = open(args.log or args.work / "children.log", "a")
    if not (args.scene / "naip.tif").exists():
        generate_scene(args.scene, seed=args.seed, size=args.size)
    tiles_dir = args.work / "tiles"
    if not (tiles_dir / "truth.gpkg").exists():
        cut_tiles(args.scene, tiles_dir, rows=args.tiles, cols=args.tiles, overlap_px=args.overlap,
                  tile_px=args.tile_px, overwrite=True)
    tiles = sorted(tiles_dir.glob("tile_*.tif"))
    bundle = load_bundle(args.model)
    common = ["--task-size", str(args.task_size), "--device", args.device, "-q", "--overwrite", "--keep-work"]
    if args.model:
        common += ["-m", args.model]

    def out(name: str) -> list[str]:
        for p in (args.work / f"{name}.work",):
            if p.exists():
                import shutil

                shutil.rmtree(p)
        return ["-o", str(args.work / f"{name}.gpkg"), "--work-dir", str(args.work / f"{name}.work")]

    rows = []
    t_clean = run(geodrain("detect", str(tiles_dir), *out("clean"), *common), log)
    m_clean = task_meta(args.work / "clean.work")
    rows.append({"run": "1 process", "seconds": t_clean, "time_vs_1_process": 1.0, "tasks_computed": len(m_clean),
                 "peak_rss_mb_per_process": max(memory(m_clean).values())})
    t_dask = run(geodrain("detect", str(tiles_dir), *out("dask"), *common, "--workers", str(args.workers)), log)
    m_dask = task_meta(args.work / "dask.work")
    mem = memory(m_dask)
    rows.append({"run": f"--workers {args.workers}", "seconds": t_dask, "time_vs_1_process": t_dask / t_clean,
                 "tasks_computed": len(m_dask), "peak_rss_mb_per_process": max(mem.values()),
                 "workers": len(mem)})
    resume_cmd = geodrain("detect", str(tiles_dir), *out("resumed"), *common)
    t_killed, finished, total = killed_at_half(resume_cmd, args.work / "resumed.work", log)
    t_resume = run(resume_cmd + ["--resume"], log)
    rows.append({"run": f"killed at {finished}/{total} tasks", "seconds": t_killed,
                 "time_vs_1_process": t_killed / t_clean,
                 "tasks_computed": finished})
    rows.append({"run": "--resume", "seconds": t_resume, "time_vs_1_process": t_resume / t_clean,
                 "tasks_computed": total - finished})
    t_noop = run(resume_cmd + ["--resume"], log)           # all tasks finished: plan, check, merge, write
    rows.append({"run": "--resume, nothing left", "seconds": t_noop, "time_vs_1_process": t_noop / t_clean,
                 "tasks_computed": 0})
    same_bytes = (args.work / "resumed.gpkg").read_bytes() == (args.work / "clean.gpkg").read_bytes()
    import geopandas as gpd

    a = gpd.read_file(args.work / "clean.gpkg", layer="crossings")
    b = gpd.read_file(args.work / "dask.gpkg", layer="crossings")
    same_dask = len(a) == len(b) and np.allclose(np.sort(a.geometry.x), np.sort(b.geometry.x), atol=1e-6)
    scores = [{"run": f"{len(tiles)} files, 2 UTM zones", **score(args.work / "clean.gpkg", tiles_dir / "truth.gpkg",
                                                                  tiles, bundle.merge_radius_m)}]
    if args.reference:
        ref_raster = args.work / "scene_covered.tif"
        if not ref_raster.exists():
            shift = json.loads((tiles_dir / "tiles.json").read_text())["shift"]
            _covered_scene(args.scene / "naip.tif", ref_raster, args.tiles, args.tile_px, args.overlap, shift)
        t_ref = run(geodrain("detect", str(ref_raster), *out("scene"), *common), log)
        rows.append({"run": "the scene itself (1 file)", "seconds": t_ref, "time_vs_1_process": t_ref / t_clean,
                     "tasks_computed": len(task_meta(args.work / "scene.work"))})
        scores.append({"run": "the scene itself (1 file, 1 CRS)",
                       **score(args.work / "scene.gpkg", tiles_dir / "truth.gpkg", [ref_raster],
                               bundle.merge_radius_m)})
    head = (f"# bench_catalog on {machine()}: {bundle.model_id}, {len(tiles)} files of {args.tile_px}² px "
            f"overlapping by {args.overlap} m, {sum('26913' in t.name for t in tiles)} in UTM 13N and "
            f"{sum('26914' in t.name for t in tiles)} in UTM 14N, task size {args.task_size} px, device {args.device}")
    print(head)
    print(table(rows, ["run", "seconds", "time_vs_1_process", "tasks_computed", "peak_rss_mb_per_process",
                       "workers"]))
    print(f"\n1 process / --workers {args.workers} time: {t_clean / t_dask:.2f}; interrupted at 50 % and resumed / "
          f"clean: {(t_killed + t_resume) / t_clean:.2f} (overhead {(t_killed + t_resume) / t_clean - 1:+.1%})")
    print(f"resumed output byte-identical to the clean run's: {same_bytes}; "
          f"--workers {args.workers} crossings equal to one process's: {same_dask}")
    print("worker peak RSS (MB): " + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(mem.items())))
    print()
    print(table(scores, ["run", "crossings", "truth", "precision", "recall", "f1", "truth_with_2_detections",
                         "pairs_within_merge_radius", "seam_truth", "seam_crossings", "seam_f1",
                         "seam_truth_with_2_detections"]))
    per_tile = t_clean / len(tiles)
    print(f"\nper file ({args.tile_px}² px at 1 m = {args.tile_px ** 2 / 1e6:.1f} km²), one process: {per_tile:.1f} s")
    if args.json:
        args.json.write_text(json.dumps({"runs": rows, "scores": scores, "byte_identical": same_bytes,
                                         "dask_equal": same_dask, "worker_rss_mb": mem, "per_file_s": per_tile,
                                         "files": len(tiles), "tile_px": args.tile_px}, indent=1))


def _covered_scene(src_path: Path, dst: Path, n: int, tile: int, overlap: int, shift: tuple[float, float]) -> None:
    """The part of the scene the tiles cover, as one file moved like the tiles (in zone 14)."""
    import rasterio
    from rasterio.windows import Window

    side = (n - 1) * (tile - overlap) + tile
    with rasterio.open(src_path) as src:
        win = Window(0, 0, side, side)
        t = src.window_transform(win)
        moved = rasterio.Affine(t.a, t.b, t.c + shift[0], t.d, t.e, t.f + shift[1])
        prof = {**src.profile, "width": side, "height": side, "transform": moved}
        with rasterio.open(dst, "w", **prof) as out:
            for r in range(0, side, 2048):
                w = Window(0, r, side, min(2048, side - r))
                out.write(src.read(window=w), window=Window(0, r, side, w.height))


if __name__ == "__main__":
    main()
