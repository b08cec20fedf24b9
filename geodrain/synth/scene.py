"""``generate_scene``: one synthetic NAIP-like watershed, deterministic per seed.

Stages: parameters and vector layout (single process, all randomness from ``default_rng(seed)``), then the
rasters tile by tile (two forked worker processes, or threads where fork is unavailable; a tile depends only
on its position, so the result does not depend on scheduling), then the vector layers and ``scene.json``, all
in a temporary folder that is renamed into place at the end.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from ..output import atomic_folder
from . import io
from .layout import build_layout
from .params import draw_params
from .render import Renderer

MIN_SIZE, MAX_SIZE = 512, 16384


@dataclass
class SceneResult:
    """Paths and counts of a generated scene."""

    outdir: Path
    naip: Path
    dem: Path
    truth: Path
    roads_gpkg: Path
    streams_gpkg: Path
    scene_json: Path
    crossings: int
    culverts: int
    bridges: int
    roads: int
    streams: int
    hard_negatives: int
    seconds: float


def _tiles(size: int, core: int):
    for r in range(0, size, core):
        for c in range(0, size, core):
            yield r, c, min(core, size - r), min(core, size - c)


_RENDERER: Renderer | None = None  # the renderer inherited by forked tile workers


def _tile_in_worker(r: int, c: int, h: int, w: int):
    return _RENDERER.tile(r, c, h, w)


def _pool(renderer: Renderer, workers: int):
    """Forked worker processes where available (the rendering is partly GIL-bound), else threads."""
    global _RENDERER
    if workers > 1 and "fork" in mp.get_all_start_methods():
        _RENDERER = renderer
        return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")), _tile_in_worker
    return ThreadPoolExecutor(max_workers=workers), renderer.tile


def _render_rasters(renderer: Renderer, folder: Path, size: int, transform: Affine, workers: int,
                    progress: Callable[[int, int], None] | None) -> None:
    global _RENDERER
    core = 512 if size <= 1024 else 1024
    tiles = list(_tiles(size, core))
    pool, fn = _pool(renderer, workers)
    try:
        with pool, rasterio.open(folder / "naip.tif", "w", **io.naip_profile(size, transform)) as img, \
                rasterio.open(folder / "dem.tif", "w", **io.dem_profile(size, transform)) as dem:
            io.tag_naip(img)
            # keep a bounded number of tiles in flight and write them in order
            it = iter(tiles)
            pending = [(t, pool.submit(fn, *t)) for t in islice(it, 2 * workers)]
            done = 0
            while pending:
                (r, c, h, w), fut = pending.pop(0)
                rgbn, z = fut.result()
                img.write(rgbn, window=Window(c, r, w, h))
                dem.write(z, 1, window=Window(c, r, w, h))
                done += 1
                if progress is not None:
                    progress(done, len(tiles))
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(fn, *nxt)))
    finally:
        _RENDERER = None


def generate_scene(outdir, seed: int = 0, size: int = 4096, overwrite: bool = False, *,
                   workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> SceneResult:
    """Generate a synthetic NAIP-like scene with truth into ``outdir``.

    ``size`` is the side in pixels (= metres), 512 to 16384. The same ``seed`` and ``size`` give identical
    rasters and vectors. Raises :class:`~geodrain.errors.OutputExistsError` when ``outdir`` already holds
    a scene and ``overwrite`` is False, :class:`~geodrain.errors.OutputError` when it cannot be written.
    ``progress(done, total)`` is called after each raster tile.
    """
    t0 = time.perf_counter()
    size = int(size)
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    out = io.check_outdir(outdir, overwrite)
    rng = np.random.default_rng(seed)
    params = draw_params(rng, int(seed), size)
    layout = build_layout(rng, params)
    renderer = Renderer(layout, rng)
    transform = Affine(1.0, 0.0, params.origin_x, 0.0, -1.0, params.origin_y)
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    with atomic_folder(out) as tmp:
        _render_rasters(renderer, tmp, size, transform, workers, progress)
        counts = io.write_vectors(layout, tmp)
        seconds = time.perf_counter() - t0
        io.write_json(tmp / "scene.json", dict(
            generator="geodrain synth", seed=int(seed), size=size, crs=io.CRS,
            transform=list(transform)[:6], pixel_size_m=1.0, counts=counts, params=params.to_json(),
            seconds=round(seconds, 2)))
    return SceneResult(out, out / "naip.tif", out / "dem.tif", out / "truth.gpkg", out / "roads.gpkg",
                       out / "streams.gpkg", out / "scene.json", counts["crossings"], counts["culverts"],
                       counts["bridges"], counts["roads"], counts["streams"], counts["hard_negatives"],
                       round(seconds, 2))
