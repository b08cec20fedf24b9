#!/usr/bin/env python
"""Dense shared-feature engine against chip-by-chip inference: same scenes, model and stride, one run.

CPU mode (default on a machine without CUDA): for each unseen-seed scene, end-to-end `geodrain detect` with
``--engine dense`` and ``--engine chip``: seconds, the chip/dense time ratio (target >= 8 on 2 cores) and F1
of both against the truth at 10 m (target: equal).

GPU mode (``--gpu``): end to end on a large mosaic (default 16384² px, a 4 x 4 mirror-tiling of a generated
scene, DEFLATE-compressed GeoTIFF) in Mpx/s including reading and decoding (target >= 100 Mpx/s: a 2.5 Gpx
watershed in under 30 s), and where the time goes: read/decode (all threads), host->device copy, conv
trunk, SPP + head, merge, write, each with its own measured ceiling.

    python scripts/bench_dense.py --work /tmp/bench --seeds 301,302,303 --size 2048
    python scripts/bench_dense.py --gpu --work /tmp/bench --mosaic 16384
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table, tile_raster  # noqa: E402

from geodrain.blocks import BlockReader  # noqa: E402
from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.infer.config import default_block_px  # noqa: E402
from geodrain.evaluate import evaluate_files  # noqa: E402
from geodrain.infer.runtime import prepare_module, resolve_device  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.read import open_source  # noqa: E402
from geodrain.synth import generate_scene  # noqa: E402
from geodrain.window import WindowGrid, plan_blocks  # noqa: E402


def scene(work: Path, seed: int, size: int) -> Path:
    d = work / f"scene_{seed}_{size}"
    if not (d / "naip.tif").exists():
        generate_scene(d, seed=seed, size=size, overwrite=True)
    return d


def cpu_compare(args, bundle) -> list[dict]:
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        d = scene(args.work, seed, args.size)
        row = {"seed": seed, "size": args.size}
        for engine in ("dense", "chip"):
            out = args.work / f"{engine}_{seed}.gpkg"
            r = detect(d / "naip.tif", out, model=bundle,
                       options=DetectOptions(engine=engine, device="cpu", stride=args.stride, overwrite=True),
                       progress=False)
            ev, _ = evaluate_files(out, d / "truth.gpkg", 10.0)
            row[f"{engine}_s"] = r.seconds
            row[f"{engine}_f1"] = ev.f1
            row[f"{engine}_crossings"] = len(r.crossings)
        row["chip_over_dense"] = row["chip_s"] / row["dense_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def cuda_ms(fn, iters: int = 10) -> float:
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def gpu_breakdown(args, bundle, raster: Path) -> dict:
    """Each stage alone on the same blocks, with its ceiling measured on this machine."""
    device = torch.device("cuda")
    opts = DetectOptions(engine="dense", device="cuda", block_px=args.block, stride=args.stride,
                         read_threads=args.threads).resolved(bundle)
    config = opts.resolve(bundle, device).run
    source = open_source(raster, opts.bands, bundle.gsd)
    grid = WindowGrid(source.grid.width, source.grid.height, bundle.window_px, opts.stride, bundle.context_px)
    block_px = args.block or default_block_px(device, "dense")
    plans = plan_blocks(grid, block_px, source.block_shape)
    px_total = source.grid.width * source.grid.height
    res = {"raster_px": px_total, "blocks": len(plans), "block_px": block_px}

    # read + decode, all threads (what the pipeline overlaps with the GPU)
    threads = args.threads or 16
    reader = BlockReader(source, grid, None, opts.min_valid, threads, 2 * threads)
    t0 = time.perf_counter()
    blocks = []
    for b in reader.blocks(plans):
        if len(blocks) < 2:
            blocks.append(b)
    read_s = time.perf_counter() - t0
    res["read_decode_mpx_s"] = px_total / read_s / 1e6
    # ceiling: the same reads on one thread x threads
    t0 = time.perf_counter()
    for p in plans[:4]:
        source.read(p.read_row, p.read_col, p.read_height, p.read_width)
    one = (time.perf_counter() - t0) / 4
    res["read_one_thread_mpx_s"] = (plans[0].read_height * plans[0].read_width) / one / 1e6
    res["read_threads"] = threads

    b = blocks[0]
    host = torch.from_numpy(b.data).pin_memory()
    h2d_ms = cuda_ms(lambda: host.to(device, non_blocking=True))
    res["h2d_gb_s"] = host.numel() / (h2d_ms / 1e3) / 1e9
    model = prepare_module(bundle.model, config)
    x = host.to(device)[None].to(torch.float16 if config.precision == "fp16" else torch.float32)
    if config.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        trunk_ms = cuda_ms(lambda: model.features(x))
        f = model.features(x)
        rows, cols = model.window_grid(x.shape[-2], x.shape[-1], opts.stride)
        head_ms = cuda_ms(lambda: model.head_dense(f, opts.stride, rows, cols))
        # ceiling of the trunk: a bare fp16 conv stack of the same shapes at large batch (cuDNN best case)
    px_block = x.shape[-2] * x.shape[-1]
    res["trunk_mpx_s"] = px_block / (trunk_ms / 1e3) / 1e6
    res["trunk_tflops"] = bundle.arch.conv_flops_per_px() * px_block / (trunk_ms / 1e3) / 1e12
    res["head_windows_per_s"] = rows * cols / (head_ms / 1e3)
    res["head_mpx_s"] = px_block / (head_ms / 1e3) / 1e6
    copy = torch.empty(1 << 28, dtype=torch.uint8, device=device)
    res["d2d_copy_gb_s"] = 2 * copy.numel() / (cuda_ms(lambda: copy.clone()) / 1e3) / 1e9
    source.close()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-bench")
    ap.add_argument("--model", default=None)
    ap.add_argument("--seeds", default="301,302,303")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--mosaic", type=int, default=16384)
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--stride", type=int, default=None, help="window step (px; default: the bundle's)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.model)
    result: dict = {"machine": machine(), "model": bundle.model_id}
    print(f"# bench_dense on {result['machine']}, model {bundle.model_id}")
    if not args.gpu:
        rows = cpu_compare(args, bundle)
        result["cpu"] = rows
        print(table(rows, ["seed", "size", "dense_s", "chip_s", "chip_over_dense", "dense_f1", "chip_f1",
                           "dense_crossings", "chip_crossings"]))
    else:
        if resolve_device("auto").type != "cuda":
            sys.exit("--gpu needs CUDA")
        base = scene(args.work, int(args.seeds.split(",")[0]), 4096)
        mosaic = args.work / f"mosaic_{args.mosaic}.tif"
        if not mosaic.exists():
            t0 = time.perf_counter()
            tile_raster(base / "naip.tif", mosaic, args.mosaic // 4096)
            result["mosaic_write_s"] = time.perf_counter() - t0
        runs = []
        for i in range(2):   # the first run includes cuDNN autotuning and CUDA graph capture
            r = detect(mosaic, args.work / "dense_mosaic.gpkg", model=bundle, progress=False,
                       options=DetectOptions(engine="dense", device="cuda", block_px=args.block, stride=args.stride,
                                             read_threads=args.threads, overwrite=True))
            runs.append({"run": i + 1, "seconds": r.seconds, "mpx_s": r.source.grid.width * r.source.grid.height
                         / r.seconds / 1e6, "crossings": len(r.crossings), **r.timings, **r.config})
        result["end_to_end"] = runs
        result["breakdown"] = gpu_breakdown(args, bundle, mosaic)
        print(table(runs, ["run", "seconds", "mpx_s", "crossings", "read_wait_s", "infer_s", "merge_s", "write_s"]))
        print(json.dumps(result["breakdown"], indent=1))
        best = max(r["mpx_s"] for r in runs)
        print(f"end to end {best:.1f} Mpx/s -> a 2.5 Gpx watershed in {2500 / best:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
