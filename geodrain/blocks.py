"""Reading blocks ahead of the engine: background threads, a bounded queue, a sized GDAL block cache.

:class:`BlockReader` reads each planned block (:func:`geodrain.window.plan_blocks`) from a
:class:`~geodrain.read.RasterSource` on a pool of threads, adds the AOI to its validity mask and marks the
windows valid enough to evaluate, at most ``ahead`` blocks before the engine consumes them: reading overlaps
the model and memory stays bounded whatever the raster size. While it reads, GDAL's block cache is sized for
the concurrent reads (:func:`block_cache`).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import rasterio

from .aoi import AOI
from .read import USER_CACHEMAX, RasterSource
from .window import Block, BlockPlan, WindowGrid, valid_fraction

if TYPE_CHECKING:
    import torch

MIN_CACHE_BYTES, MAX_CACHE_BYTES = 128 << 20, 2 << 30


def cache_bytes(source: RasterSource, block_h: int, block_w: int, threads: int) -> int:
    """A GDAL block cache that holds every tile of the blocks being read at once (128 MB to 2 GB).

    A pixel-interleaved tile is decoded once for all its bands only while the other bands' parts stay in the
    cache; when concurrent reads overflow it, each tile is decoded again for every band
    (``scripts/bench_read.py`` compares the two). The size depends on the threads and the block (and, for a
    striped file, its width), never on the raster's size; it is capped at 2 GB.
    """
    f = source.files[0]
    th, tw = f.block_shape
    rows = min(math.ceil(block_h / th) + 1, math.ceil(f.height / th))
    cols = min(math.ceil(block_w / tw) + 1, math.ceil(f.width / tw))
    per_block = rows * cols * th * tw * f.count * np.dtype(f.dtype).itemsize
    return int(min(MAX_CACHE_BYTES, max(MIN_CACHE_BYTES, 1.25 * threads * per_block)))


@contextmanager
def block_cache(source: RasterSource, block_h: int, block_w: int, threads: int):
    """Size GDAL's (process-wide) block cache for ``threads`` concurrent block reads while in the block."""
    if USER_CACHEMAX:
        yield
        return
    with rasterio.Env(GDAL_CACHEMAX=cache_bytes(source, block_h, block_w, threads)):
        yield


def default_read_threads(device: "torch.device", engine: str = "dense") -> int:
    """Decoding threads. The dense engine on a GPU consumes pixels faster than one thread decodes them, so it
    gets the cores (GDAL releases the GIL while decoding). The chip engine needs a few tens of Mpx/s even on
    a GPU, which two threads deliver; more threads only contend (H200, 4096² scene: end-to-end / model-only
    chips/s 0.82 with 2 threads, 0.64 with 16; docs/results/h200/read_threads/). On a CPU the model needs
    the cores."""
    if device.type == "cuda" and engine == "dense":
        return max(2, min(16, os.cpu_count() or 2))
    return 2


class BlockReader:
    """Reads and prepares blocks on background threads, at most ``ahead`` blocks in flight."""

    def __init__(self, source: RasterSource, grid: WindowGrid, aoi: AOI | None, min_valid: float,
                 threads: int, ahead: int):
        self.source, self.grid, self.aoi, self.min_valid = source, grid, aoi, min_valid
        self.threads = threads
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="geodrain-read")
        self.ahead = max(1, ahead)
        self.read_seconds = 0.0

    def prepare(self, plan: BlockPlan) -> Block:
        t0 = time.perf_counter()
        data, valid = self.source.read(plan.read_row, plan.read_col, plan.read_height, plan.read_width)
        if self.aoi is not None:
            valid &= self.aoi.mask(plan.read_row, plan.read_col, plan.read_height, plan.read_width)
        keep = valid_fraction(valid, plan, self.grid) >= self.min_valid
        self.read_seconds += time.perf_counter() - t0
        return Block(plan, data, valid, keep)

    def blocks(self, plans: Sequence[BlockPlan]) -> Iterator[Block]:
        if not plans:
            return
        with block_cache(self.source, plans[0].read_height, plans[0].read_width, self.threads):
            yield from self._blocks(plans)

    def _blocks(self, plans: Sequence[BlockPlan]) -> Iterator[Block]:
        pending: deque = deque()
        it = iter(plans)
        try:
            for plan in it:
                pending.append(self.pool.submit(self.prepare, plan))
                if len(pending) >= self.ahead:
                    break
            while pending:
                block = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(self.pool.submit(self.prepare, nxt))
                yield block
        finally:
            for f in pending:
                f.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
