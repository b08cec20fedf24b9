#!/usr/bin/env python
"""Benchmark of `geodrain detect` on one generated scene, all variants in one run, reported as ratios.

* end to end: time, chips/s, km²/min, share of time in read / infer / merge / write, peak RSS;
* model only: the same engine on the same windows with every block already in memory;
* naive: the reference code's way, each window read separately with rasterio and the model at batch 1
  (timed on the first --naive-windows windows and scaled to all);
* memory: peak RSS of detect on a 4096² scene and on a 16384² mosaic of it, in child processes.

Targets (issue "detect"): end to end <= 1.1 x model only on a 2-core CPU; end-to-end chips/s >= 0.8 x model-only
chips/s on an H100/H200; peak RSS(16384²) <= 1.2 x peak RSS(4096²).

    python scripts/bench_detect.py --work /tmp/bench --size 2048 --engine chip
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, peak_rss_mb, run_child, table, tile_raster  # noqa: E402

from geodrain.blocks import BlockReader  # noqa: E402
from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.infer.config import make_engine  # noqa: E402
from geodrain.infer.runtime import resolve_device  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.read import open_source  # noqa: E402
from geodrain.synth import generate_scene  # noqa: E402
from geodrain.window import WindowGrid, plan_blocks  # noqa: E402

RSS_CHILD = """
import json, sys
from benchlib import peak_rss_mb
from geodrain.detect import detect, DetectOptions
r = detect(sys.argv[1], sys.argv[2], model=sys.argv[3] or None,
           options=DetectOptions(engine=sys.argv[4], device=sys.argv[5], stride=int(sys.argv[6]), overwrite=True),
           progress=False)
print(json.dumps({"peak_rss_mb": peak_rss_mb(),
                  "seconds": r.seconds, "windows": r.evaluated, "crossings": len(r.crossings)}))
"""


def scene(work: Path, seed: int, size: int) -> Path:
    d = work / f"scene_{seed}_{size}"
    if not (d / "naip.tif").exists():
        generate_scene(d, seed=seed, size=size, overwrite=True)
    return d / "naip.tif"


def model_only(raster: Path, bundle, opts: DetectOptions, device) -> dict:
    """The engine alone on the same windows, blocks preloaded (no reading, merging or writing)."""
    s = opts.resolve(bundle, device)
    source = open_source(raster, s.bands, bundle.gsd)
    grid = WindowGrid(source.grid.width, source.grid.height, bundle.window_px, s.stride, bundle.context_px)
    plans = plan_blocks(grid, s.block_px, source.block_shape)
    reader = BlockReader(source, grid, None, s.min_valid, 2, 4)
    blocks = list(reader.blocks(plans))
    engine = make_engine(s.engine, bundle, s.run, grid, s.block_px)
    engine.run(blocks[0])                         # warm-up (CUDA graph capture, allocator)
    engine.synchronize()
    t0 = time.perf_counter()
    prev = None
    for b in blocks:                              # as detect runs it: the next block queued before the wait
        p = engine.submit(b)
        if prev is not None:
            prev.result()
        prev = p
    prev.result()
    engine.synchronize()
    seconds = time.perf_counter() - t0
    n = sum(b.n_windows for b in blocks)
    source.close()
    return {"variant": "model only", "seconds": seconds, "windows": n, "chips_per_s": n / seconds}


def naive(raster: Path, bundle, device, n_windows: int, stride: int) -> dict:
    """Each window read on its own (rasterio) and run at batch 1, as the reference code does."""
    model = bundle.model.to(device).eval()
    side = bundle.window_px + 2 * bundle.context_px
    with rasterio.open(raster) as src:
        rows = (src.height - bundle.window_px) // stride + 1
        cols = (src.width - bundle.window_px) // stride + 1
        total = rows * cols
        idx = list(np.ndindex(rows, cols))[:n_windows]
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i, j in idx:
                win = Window(j * stride - bundle.context_px, i * stride - bundle.context_px, side, side)
                chip = src.read(window=win, boundless=True, fill_value=0)
                model(torch.from_numpy(chip[None]).to(device).float())
        if device.type == "cuda":
            torch.cuda.synchronize()
        per = (time.perf_counter() - t0) / len(idx)
    return {"variant": f"naive (batch 1, {len(idx)} windows timed)", "seconds": per * total, "windows": total,
            "chips_per_s": 1 / per}


def speed(args, bundle, raster: Path, opts: DetectOptions, device) -> tuple[list[dict], dict, object]:
    """End to end, model only and naive on the same scene and windows."""
    mo = model_only(raster, bundle, opts, device)
    r = detect(raster, args.work / "bench.gpkg", model=bundle, options=opts, progress=False)
    e2e = {"variant": "end to end", "seconds": r.seconds, "windows": r.evaluated, "chips_per_s": r.chips_per_s,
           "km2_per_min": r.area_km2 / r.seconds * 60, "crossings": len(r.crossings),
           "peak_rss_mb": peak_rss_mb()}
    t = r.timings
    shares = {k: t.get(k, 0.0) / r.seconds for k in ("read_wait_s", "infer_s", "merge_s", "write_s")}
    shares["read_thread_s (overlapped)"] = t.get("read_thread_s", 0.0) / r.seconds
    e2e.update({f"share_{k}": v for k, v in shares.items()})
    nv = naive(raster, bundle, device, args.naive_windows, opts.stride)
    rows = [e2e, mo, nv]
    for row in rows:
        row["ratio_vs_e2e_time"] = row["seconds"] / r.seconds
    ratios = {
        "e2e_time_over_model_only": r.seconds / mo["seconds"],
        "e2e_chips_per_s_over_model_only": e2e["chips_per_s"] / mo["chips_per_s"],
        "naive_time_over_e2e": nv["seconds"] / r.seconds,
    }
    return rows, ratios, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-bench")
    ap.add_argument("--seed", type=int, default=202)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--mosaic", type=int, default=None,
                    help="time a mirror-tiling of the --size scene this many px on a side instead (GPU: whole-"
                         "watershed scale, where start-up costs that a 1-second run shows are amortized as in "
                         "real use)")
    ap.add_argument("--model", default=None, help="bundle (default: the deployed one)")
    ap.add_argument("--engine", default="chip", choices=["chip", "dense"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--stride", type=int, default=None, help="window step (px; default: the bundle's)")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--read-threads", type=int, default=None, help="reading threads (default: detect's)")
    ap.add_argument("--naive-windows", type=int, default=200)
    ap.add_argument("--rss", default="4096,16384", help="scene sizes for the peak-RSS comparison ('' to skip)")
    ap.add_argument("--rss-engine", default="dense")
    ap.add_argument("--rss-model", default=None,
                    help="bundle for the memory runs (default: --model); the pipeline's memory does not depend "
                         "on the weights, so a narrow model keeps a 16384² run short on a CPU")
    ap.add_argument("--memory-only", action="store_true", help="only the peak-RSS comparison")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    bundle = load_bundle(args.model)
    raster = scene(args.work, args.seed, args.size) if not args.memory_only else None
    if raster is not None and args.mosaic:
        base, raster = raster, args.work / f"mosaic_{args.mosaic}.tif"
        if not raster.exists():
            tile_raster(base, raster, args.mosaic // args.size)
        args.size = args.mosaic
    opts = DetectOptions(engine=args.engine, device=args.device, batch_size=args.batch_size, stride=args.stride,
                         read_threads=args.read_threads, overwrite=True).resolved(bundle)

    rows, ratios, r = [], {}, None
    if not args.memory_only:
        rows, ratios, r = speed(args, bundle, raster, opts, device)
    rss = []
    if args.rss:
        small = None
        for size in [int(s) for s in args.rss.split(",")]:
            base = scene(args.work, args.seed, min(size, 4096))
            path = base if size <= 4096 else args.work / f"mosaic_{size}.tif"
            if size > 4096 and not path.exists():
                tile_raster(base, path, size // 4096)
            res = run_child(RSS_CHILD, str(path), str(args.work / f"rss_{size}.gpkg"),
                            args.rss_model or args.model or "", args.rss_engine, args.device, str(opts.stride))
            res["size"] = size
            rss.append(res)
            small = small or res["peak_rss_mb"]
            res["rss_ratio_vs_smallest"] = res["peak_rss_mb"] / small
    print(f"# bench_detect on {machine()}")
    if r is not None:
        print(f"scene {raster} ({args.size}² px), stride {opts.stride} px, engine {args.engine}, {r.config['run']}, "
              f"{r.config['read_threads']} read threads\n")
        print(table(rows, ["variant", "seconds", "windows", "chips_per_s", "ratio_vs_e2e_time"]))
        print("\nend to end: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[0].items() if isinstance(v, float)))
        print("ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    if rss:
        print()
        print(table(rss, ["size", "peak_rss_mb", "rss_ratio_vs_smallest", "seconds", "windows"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows, "ratios": ratios, "rss": rss,
                                         "config": r.config if r is not None else None}, indent=2, default=str))


if __name__ == "__main__":
    main()
