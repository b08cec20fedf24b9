#!/usr/bin/env python
"""The dense engine end to end on a large DEFLATE GeoTIFF at the bundle's stride, and where the time goes.

Made for one short run on a CUDA machine (``scripts/gpu_stride8.sh``); ``--device cpu`` runs every part on a
small mosaic as a dry run. Imports only what `detect` needs (rasterio, no vector libraries), so the device
machine needs no more than the rasterio wheels.

1. a ``--mosaic`` px mirror-tiling of ``--raster`` (tiled 512², DEFLATE, predictor 2: like NAIP DOQQs);
2. ``detect`` on it, twice (the first run includes cuDNN autotuning and CUDA graph capture): Mpx/s end to end
   (output written as CSV when geopandas is there, else not written) and detect's own split;
3. each part alone on the same blocks, against its ceiling measured on this machine:
   read/decode (reading threads 2 / 8 / all cores; ceiling: one thread's rate x threads), host->device
   (ceiling: a 1 GB pinned copy), conv trunk (ceiling: a large fp16/bf16 matrix product's FLOP/s), SPP + head
   (as convolutions, as the gather of each window's SPP vector it replaced, with the pooling separable or
   direct, and torch.compile'd; ceilings: its FLOPs at the matrix product's rate, its pooled-map bytes at the
   device copy bandwidth), merge and write (from detect's run);
4. the limiting part named, and the remedies for it tried end to end: more decoding threads when reading is
   the limit; the compiled head in the engine when SPP + head is.

    python scripts/gpu_dense_split.py --raster runs/gpu/scene_1024.tif --mosaic 16384 --device cuda
    python scripts/gpu_dense_split.py --raster runs/gpu/scene_1024.tif --mosaic 2048 --device cpu  # dry run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table, tile_raster  # noqa: E402

from geodrain.blocks import BlockReader  # noqa: E402
from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.infer.config import default_block_px, make_engine, run_config  # noqa: E402
from geodrain.infer.runtime import prepare_module, resolve_device, torch_dtype  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.model.sppnet import FEATURE_STRIDE, WINDOW_CELLS, DenseHead  # noqa: E402
from geodrain.read import open_source  # noqa: E402
from geodrain.window import WindowGrid, plan_blocks  # noqa: E402


def dense_args(opts: DetectOptions) -> dict:
    """run_config's overrides from DetectOptions (the dense engine's stride, backend and precision)."""
    return {"stride": opts.stride, "backend": opts.backend, "precision": opts.precision}


def timer(device: torch.device):
    """ms of fn(): CUDA events on a GPU (median of iters after 2 warm-ups), wall clock on a CPU."""
    def run(fn, iters: int = 5) -> float:
        if device.type != "cuda":       # a dry run: once is enough, the CPU is not what is measured
            iters = 1
        for _ in range(2 if device.type == "cuda" else 1):
            fn()
        times = []
        for _ in range(iters):
            if device.type == "cuda":
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                fn()
                e.record()
                e.synchronize()
                times.append(s.elapsed_time(e))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)
    return run


def end_to_end(raster: Path, bundle, args, out: Path | None, runs: int = 2, **extra) -> list[dict]:
    rows = []
    for i in range(runs):
        opts = DetectOptions(engine="dense", device=args.device, stride=args.stride, block_px=args.block,
                             overwrite=True, **extra)
        r = detect(raster, out, model=bundle, options=opts, progress=False)
        px = r.source.grid.width * r.source.grid.height
        rows.append({"run": i + 1, "seconds": r.seconds, "mpx_s": px / r.seconds / 1e6, "windows": r.evaluated,
                     "crossings": len(r.crossings), **{k: round(v, 4) for k, v in r.timings.items()},
                     "read_threads": r.config["read_threads"], "block_px": r.config["block_px"],
                     "engine": r.config["run"]})
    return rows


def read_rates(source, grid, plans, threads_list, min_valid: float) -> list[dict]:
    px = sum(p.read_height * p.read_width for p in plans)
    out = []
    t0 = time.perf_counter()
    for p in plans[:4]:
        source.read(p.read_row, p.read_col, p.read_height, p.read_width)
    one = sum(p.read_height * p.read_width for p in plans[:4]) / (time.perf_counter() - t0) / 1e6
    for n in threads_list:
        reader = BlockReader(source, grid, None, min_valid, n, 2 * n)
        t0 = time.perf_counter()
        for _ in reader.blocks(plans):
            pass
        rate = px / (time.perf_counter() - t0) / 1e6
        out.append({"threads": n, "read_decode_mpx_s": rate, "ceiling_mpx_s": one * n, "share_of_ceiling": rate / (one * n)})
    return out


def head_variants(model, f: torch.Tensor, stride: int, rows: int, cols: int, ms, device, try_compile: bool):
    """SPP + head on one feature map: the variants, timed (ms) and checked against the default."""
    step = stride // FEATURE_STRIDE
    ref = model.head_dense(f, stride, rows, cols)
    variants = {"conv (default)": lambda: model.head_dense(f, stride, rows, cols),
                "gather (before)": lambda: model.head_dense_gather(f, stride, rows, cols)}
    head = DenseHead(model, step)

    def direct_pool():   # the same convolutions, each pooled map in one 2-D max pool instead of two 1-D ones
        fc = model.head.fc
        c = f.shape[1]
        out, off = None, 0
        for k in model.arch.levels:
            wk = fc.weight[:, off:off + c * k * k].reshape(fc.weight.shape[0], c, k, k)
            off += c * k * k
            s = WINDOW_CELLS // k
            m = torch.nn.functional.max_pool2d(f, s, stride=1) if s > 1 else f
            y = torch.nn.functional.conv2d(m[:, :, model.context_cells:, model.context_cells:], wk, stride=step,
                                           dilation=s)
            out = y if out is None else out + y
        return out

    def direct_head():
        h = torch.relu(direct_pool() + model.head.fc.bias.view(1, -1, 1, 1))
        w = torch.cat([model.head.score.weight, model.head.box.weight], 0)[:, :, None, None]
        b = torch.cat([model.head.score.bias, model.head.box.bias], 0)
        return torch.nn.functional.conv2d(h, w, b)

    if all(WINDOW_CELLS % k == 0 for k in model.arch.levels):
        variants["conv, direct 2-D pooling"] = direct_head
    res = []
    compiled = None
    if try_compile:
        t0 = time.perf_counter()
        try:
            compiled = torch.compile(head, mode="max-autotune-no-cudagraphs", dynamic=False)
            compiled(f)
            variants["conv, torch.compile"] = lambda: compiled(f)
            res.append({"variant": "(torch.compile warm-up)", "ms": (time.perf_counter() - t0) * 1e3})
        except Exception as e:  # noqa: BLE001 - report and go on: compilation is an experiment here
            res.append({"variant": f"torch.compile failed: {type(e).__name__}: {str(e)[:200]}", "ms": float("nan")})
            compiled = None
    for name, fn in variants.items():
        ms_ = ms(fn)
        out = fn()
        if out.shape[-1] != 5:      # (B, 5, rows', cols') maps of every window the feature map holds
            out = out.permute(0, 2, 3, 1)[:, :rows, :cols]
        diff = float((out.float() - ref.float()).abs().max())
        res.append({"variant": name, "ms": ms_, "max_abs_diff_vs_default": diff})
    return res, compiled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raster", type=Path, required=True, help="a generated scene's naip.tif to tile")
    ap.add_argument("--mosaic", type=int, default=16384)
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--stride", type=int, default=None, help="window stride (px; default: the bundle's)")
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-split")
    ap.add_argument("--compile", choices=["auto", "yes", "no"], default="auto",
                    help="try torch.compile on the SPP + head (auto: on a GPU)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    device = resolve_device(args.device)
    args.device = str(device)
    bundle = load_bundle(args.model)
    args.stride = args.stride or bundle.stride_px
    result: dict = {"machine": machine(), "model": bundle.model_id, "stride_px": args.stride, "device": str(device)}
    print(f"# gpu_dense_split on {result['machine']}, {bundle.model_id}, stride {args.stride} px", flush=True)

    import rasterio

    with rasterio.open(args.raster) as src:
        side = src.width
    mosaic = args.work / f"mosaic_{args.mosaic}.tif"
    if not mosaic.exists():
        t0 = time.perf_counter()
        tile_raster(args.raster, mosaic, max(1, args.mosaic // side))
        result["mosaic_write_s"] = time.perf_counter() - t0
    try:
        import geopandas  # noqa: F401 - the writer needs it

        out = args.work / "crossings.csv"
    except ImportError:
        out = None
        print("geopandas is not installed here: detect runs without writing its output", flush=True)

    e2e = end_to_end(mosaic, bundle, args, out)
    result["end_to_end"] = e2e
    print(table(e2e, ["run", "seconds", "mpx_s", "windows", "crossings", "first_block_s", "read_wait_s", "infer_s",
                      "merge_s", "write_s"]), flush=True)

    # each part alone
    opts = DetectOptions(engine="dense", device=args.device, stride=args.stride, block_px=args.block).resolved(bundle)
    config = run_config(bundle, device, engine="dense", **dense_args(opts))
    source = open_source(mosaic, opts.bands, bundle.gsd)
    grid = WindowGrid(source.grid.width, source.grid.height, bundle.window_px, opts.stride, bundle.context_px)
    block_px = args.block or default_block_px(device, "dense")
    plans = plan_blocks(grid, block_px, source.block_shape)
    px_total = source.grid.width * source.grid.height
    cores = os.cpu_count() or 2
    threads = sorted({2, min(8, cores), cores})
    reads = read_rates(source, grid, plans, threads, opts.min_valid)
    result["read"] = reads
    block = next(BlockReader(source, grid, None, opts.min_valid, 1, 1).blocks(plans[:1]))
    source.close()
    ms = timer(device)
    host = torch.from_numpy(block.data)
    if device.type == "cuda":
        host = host.pin_memory()
        big = torch.empty(1 << 30, dtype=torch.uint8).pin_memory()
        h2d_ceiling = big.numel() / (ms(lambda: big.to(device, non_blocking=True), 3) / 1e3) / 1e9
        h2d = host.numel() / (ms(lambda: host.to(device, non_blocking=True)) / 1e3) / 1e9
        del big
    else:
        h2d_ceiling = h2d = float("nan")
    torch_cfg = config if config.backend == "torch" else run_config(bundle, device, engine="dense",
                                                                   stride=args.stride, backend="torch")
    model = prepare_module(bundle.model, torch_cfg)
    dtype = torch_dtype(torch_cfg.precision)
    x = host.to(device)[None].to(dtype)
    if torch_cfg.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    n = 4096
    a = torch.randn(n, n, device=device, dtype=dtype)
    mm_tflops = 2 * n ** 3 / (ms(lambda: a @ a, 5) / 1e3) / 1e12
    del a
    copy = torch.empty(1 << 28, dtype=torch.uint8, device=device)
    copy_gb_s = 2 * copy.numel() / (ms(lambda: copy.clone(), 3) / 1e3) / 1e9
    del copy
    with torch.inference_mode():
        trunk_ms = ms(lambda: model.features(x))
        f = model.features(x)
        rows, cols = model.window_grid(x.shape[-2], x.shape[-1], args.stride)
        try_compile = args.compile == "yes" or (args.compile == "auto" and device.type == "cuda")
        heads, compiled = head_variants(model, f, args.stride, rows, cols, ms, device, try_compile)
    px_block = x.shape[-2] * x.shape[-1]
    scale = px_total / (block_px * block_px)       # blocks' worth of pixels in the mosaic (core area)
    trunk_flops = bundle.arch.conv_flops_per_px() * px_block
    c, fo = bundle.arch.channels[-1], bundle.arch.fc
    head_flops = rows * cols * 2 * c * fo * sum(k * k for k in bundle.arch.levels)
    pooled_bytes = f.numel() * f.element_size() * (1 + 2 * len(bundle.arch.levels))   # read f, write+read maps
    head_ms = next(h["ms"] for h in heads if h["variant"] == "conv (default)")
    best_head = min((h for h in heads if h["ms"] == h["ms"] and not h["variant"].startswith("(")),
                    key=lambda h: h["ms"])
    last = e2e[-1]
    best_read = max(reads, key=lambda r: r["read_decode_mpx_s"])
    parts = [
        {"part": "read/decode", "seconds": px_total / best_read["read_decode_mpx_s"] / 1e6,
         "ceiling_s": px_total / best_read["ceiling_mpx_s"] / 1e6,
         "note": f"{best_read['threads']} threads (detect used {last['read_threads']})"},
        {"part": "host->device", "seconds": block.data.nbytes * scale / (h2d * 1e9) if h2d == h2d else 0.0,
         "ceiling_s": block.data.nbytes * scale / (h2d_ceiling * 1e9) if h2d_ceiling == h2d_ceiling else 0.0,
         "note": f"{h2d:.1f} GB/s per block, 1 GB pinned copy {h2d_ceiling:.1f} GB/s"},
        {"part": "conv trunk", "seconds": trunk_ms / 1e3 * scale, "ceiling_s": trunk_flops / (mm_tflops * 1e12) * scale,
         "note": f"{trunk_flops / (trunk_ms / 1e3) / 1e12:.3g} TFLOP/s vs matrix product {mm_tflops:.3g}"},
        {"part": "SPP + head", "seconds": head_ms / 1e3 * scale,
         "ceiling_s": max(head_flops / (mm_tflops * 1e12), pooled_bytes / (copy_gb_s * 1e9)) * scale,
         "note": f"{head_flops / (head_ms / 1e3) / 1e12:.3g} TFLOP/s; best variant {best_head['variant']} "
                 f"{best_head['ms']:.2f} ms/block"},
        {"part": "merge", "seconds": last.get("merge_s", 0.0), "ceiling_s": float("nan"), "note": "decode + merge (CPU)"},
        {"part": "write", "seconds": last.get("write_s", float("nan")), "ceiling_s": float("nan"),
         "note": "CSV" if out is not None else "not written here"},
    ]
    for p in parts:
        p["share_of_e2e"] = p["seconds"] / last["seconds"]
        p["of_ceiling"] = p["ceiling_s"] / p["seconds"] if p["seconds"] else float("nan")
    result.update(parts=parts, heads=heads, matmul_tflops=mm_tflops, d2d_copy_gb_s=copy_gb_s,
                  block_px=block_px, blocks=len(plans), raster_px=px_total)
    print(f"\nread/decode alone ({len(plans)} blocks of {block_px}² px + halo):")
    print(table(reads, ["threads", "read_decode_mpx_s", "ceiling_mpx_s", "share_of_ceiling"]))
    print(f"\nSPP + head on one block ({rows} x {cols} windows):")
    print(table(heads, ["variant", "ms", "max_abs_diff_vs_default"]))
    print(f"\nwhere the time goes (the mosaic, {px_total / 1e6:.0f} Mpx; each part alone, scaled to the mosaic):")
    if config.backend != "torch":
        print(f"(detect ran the bundle's tuned {config.label} engine here; the parts below are the torch engine's, "
              "so they do not add up to its time)")
    print(table(parts, ["part", "seconds", "ceiling_s", "of_ceiling", "share_of_e2e", "note"]), flush=True)

    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    # the remedy for the limiting part, end to end
    compute = max(parts[2]["seconds"] + parts[3]["seconds"], 1e-9)
    limit = "read/decode" if parts[0]["seconds"] >= compute else "SPP + head" if parts[3]["seconds"] >= parts[2]["seconds"] else "conv trunk"
    result["limit"] = limit
    tries = []
    try:
        if limit == "read/decode" and best_read["threads"] != last["read_threads"]:
            rows_ = end_to_end(mosaic, bundle, args, out, runs=1, read_threads=best_read["threads"])
            tries.append({"remedy": f"{best_read['threads']} reading threads", **rows_[0]})
        if limit == "SPP + head" and compiled is not None and device.type == "cuda":
            tries.append({"remedy": "compiled SPP + head in the engine (no output written)",
                          **engine_with_compiled_head(mosaic, bundle, args, compiled)})
    except Exception as e:  # noqa: BLE001 - keep what was measured
        tries.append({"remedy": f"failed: {type(e).__name__}: {str(e)[:300]}", "seconds": float("nan"),
                      "mpx_s": float("nan")})
    result["remedies"] = tries
    print(f"\nlimit: {limit}")
    if tries:
        print(table(tries, ["remedy", "seconds", "mpx_s"]))
    best = max([r["mpx_s"] for r in e2e] + [t["mpx_s"] for t in tries])
    print(f"end to end {best:.1f} Mpx/s at stride {args.stride} -> a 2.5 Gpx watershed in {2500 / best:.1f} s "
          "(target: >= 200 Mpx/s)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


def engine_with_compiled_head(mosaic: Path, bundle, args, compiled) -> dict:
    """The engine loop of detect (reading threads, engine, decode of the outputs) with the compiled head."""
    from geodrain.infer.dense import DenseEngine

    device = torch.device(args.device)
    opts = DetectOptions(engine="dense", device=args.device, stride=args.stride, block_px=args.block).resolved(bundle)
    config = run_config(bundle, device, engine="dense", **dense_args(opts))
    source = open_source(mosaic, opts.bands, bundle.gsd)
    grid = WindowGrid(source.grid.width, source.grid.height, bundle.window_px, opts.stride, bundle.context_px)
    block_px = args.block or default_block_px(device, "dense")
    plans = plan_blocks(grid, block_px, source.block_shape)
    engine = make_engine("dense", bundle, config, grid, block_px)
    if not isinstance(engine, DenseEngine):
        return {"seconds": float("nan"), "mpx_s": float("nan")}
    model = engine.module.model
    compiled_head = compiled

    class Compiled(torch.nn.Module):
        def forward(self, x):
            f = model.features(x)
            rows, cols = model.window_grid(x.shape[-2], x.shape[-1], args.stride)
            return compiled_head(f).permute(0, 2, 3, 1)[:, :rows, :cols]

    engine.module = Compiled()
    threads = 16 if device.type == "cuda" else 2
    reader = BlockReader(source, grid, None, opts.min_valid, threads, 2 * threads)
    t0 = time.perf_counter()
    prev = None
    for b in reader.blocks(plans):
        p = engine.submit(b)
        if prev is not None:
            prev.result()
        prev = p
    if prev is not None:
        prev.result()
    engine.synchronize()
    seconds = time.perf_counter() - t0
    source.close()
    return {"seconds": seconds, "mpx_s": source.grid.width * source.grid.height / seconds / 1e6}


if __name__ == "__main__":
    main()
