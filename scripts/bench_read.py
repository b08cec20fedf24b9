#!/usr/bin/env python
"""Concurrent block reads of a 4-band DEFLATE GeoTIFF with GDAL's block cache at 128 MB and at the size
:func:`geodrain.blocks.block_cache` gives it, in one run: wall time, CPU time, Mpx/s and their ratios.

A pixel-interleaved tile is decoded once for all four bands only while its other bands stay in the cache;
when concurrent reads overflow the cache, tiles are decoded again per band.

    python scripts/bench_read.py --work /tmp/bench --mosaic 8192 --block 2048 --threads 16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table, tile_raster  # noqa: E402

from geodrain.blocks import MIN_CACHE_BYTES, cache_bytes  # noqa: E402
from geodrain.read import open_source  # noqa: E402
from geodrain.synth import generate_scene  # noqa: E402
from geodrain.window import WindowGrid, plan_blocks  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-bench")
    ap.add_argument("--seed", type=int, default=9001)
    ap.add_argument("--mosaic", type=int, default=8192, help="side of the mirror-tiled mosaic of a 4096² scene")
    ap.add_argument("--block", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    base = args.work / f"scene_{args.seed}_4096"
    if not (base / "naip.tif").exists():
        generate_scene(base, seed=args.seed, size=4096, overwrite=True)
    raster = args.work / f"mosaic_{args.mosaic}.tif"
    if not raster.exists():
        tile_raster(base / "naip.tif", raster, args.mosaic // 4096)
    source = open_source(raster, (1, 2, 3, 4), 1.0)
    grid = WindowGrid(source.grid.width, source.grid.height, 100, 24, 16)
    plans = plan_blocks(grid, args.block, source.block_shape)
    sized = cache_bytes(source, plans[0].read_height, plans[0].read_width, args.threads)
    px = source.grid.width * source.grid.height
    rows = []
    for label, size in (("128 MB (fixed)", MIN_CACHE_BYTES), ("block_cache", sized)):
        with rasterio.Env(GDAL_CACHEMAX=size):
            source.read(0, 0, 64, 64)
            t0, c0 = time.perf_counter(), time.process_time()
            with ThreadPoolExecutor(args.threads) as ex:
                list(ex.map(lambda p: source.read(p.read_row, p.read_col, p.read_height, p.read_width), plans))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append({"cache": label, "cache_mb": size / 2**20, "wall_s": wall, "cpu_s": cpu, "mpx_s": px / wall / 1e6})
    ratios = {"wall_fixed_over_sized": rows[0]["wall_s"] / rows[1]["wall_s"],
              "cpu_fixed_over_sized": rows[0]["cpu_s"] / rows[1]["cpu_s"]}
    print(f"# bench_read on {machine()}: {args.mosaic}² px, {len(plans)} blocks of {args.block}², "
          f"{args.threads} threads")
    print(table(rows, ["cache", "cache_mb", "wall_s", "cpu_s", "mpx_s"]))
    print("ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    source.close()
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
