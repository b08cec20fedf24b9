"""Detection: read -> window -> infer -> merge -> write, streamed block by block.

:func:`detect` is the library API behind ``geodrain detect``; this module only orchestrates the stages.
Settings are resolved once (:mod:`geodrain.settings`); blocks are read and prepared (validity, AOI, window
selection) on background threads, a bounded number ahead of the engine (:mod:`geodrain.blocks`), so reading
overlaps the model and memory stays bounded whatever the raster size. On a GPU the next block is queued
before the previous block's outputs are decoded (:func:`geodrain.merge.decode`), so decoding overlaps the
model too. Candidates are turned into crossings once at the end (:func:`geodrain.postprocess.report`: merged,
with a DEM given its evidence read around each crossing, scored by the bundle's calibrator where it has one)
and written atomically (:func:`geodrain.write.write_crossings`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from .aoi import load_aoi
from .blocks import BlockReader
from .errors import RasterError
from .infer.base import Engine
from .infer.config import make_engine
from .infer.runtime import RunConfig, resolve_device
from .merge import Candidates, Crossings, decode
from .model.bundle import Bundle, load_bundle
from .postprocess import report
from .read import DemSource, RasterSource, open_dem, open_source
from .settings import DetectOptions, DetectSettings
from .window import WindowGrid, check_size, plan_blocks
from .write import RunInfo, check_points_output, write_crossings

__all__ = ["detect", "DetectOptions", "DetectSettings", "DetectResult", "EngineFactory"]

EngineFactory = Callable[[str, Bundle, RunConfig, WindowGrid, int], Engine]
"""Builds the engine of a run: (engine kind, bundle, run configuration, window grid, block size) -> engine.
The default is :func:`geodrain.infer.config.make_engine`; experiments pass their own."""


@dataclass
class DetectResult:
    """What a detection run found, how, and how long it took."""

    crossings: Crossings
    output: Path | None
    source: RasterSource
    bundle: Bundle
    windows: int
    evaluated: int
    area_km2: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)      # how the model ran (DetectSettings.record())
    candidates: Candidates | None = None   # the window candidates (>= the decode floor) before merging
    settings: DetectSettings | None = None
    dem: DemSource | None = None

    @property
    def chips_per_s(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        return (f"{len(self.crossings)} crossings in {self.area_km2:.2f} km², {self.seconds:.1f} s, "
                f"{self.chips_per_s:,.0f} chips/s ({self.config.get('engine')} engine, "
                f"{self.config.get('run', {}).get('device', '?')})")

    def run_info(self) -> RunInfo:
        """The run as recorded in the output's metadata."""
        s, b = self.settings, self.bundle
        return RunInfo(model_id=b.model_id, model_path=str(b.path), architecture=b.arch.notation,
                       threshold=s.threshold, merge_radius_m=s.merge_radius_m, stride_px=s.stride,
                       min_valid_fraction=s.min_valid, gsd_m=b.gsd, input_gsd_m=self.source.native_gsd_m,
                       bands=s.bands, inputs=[f.path for f in self.source.files],
                       aoi=str(s.aoi) if s.aoi else "", engine=self.config, windows=self.windows,
                       windows_evaluated=self.evaluated, area_km2=self.area_km2, runtime_s=self.seconds,
                       score=s.score_kind, dem=[f.path for f in self.dem.files] if self.dem is not None else [],
                       dem_evidence=self.dem is not None)


def detect(inputs: str | Path | Sequence[str | Path], output: str | Path | None = None, *,
           model: str | Path | Bundle | None = None, options: DetectOptions | None = None,
           progress: bool = True, make_engine: EngineFactory = make_engine) -> DetectResult:
    """Find crossings in one raster or a mosaic of several and (with ``output``) write them.

    ``make_engine`` builds the engine (default: the dense or chip engine the settings name); experiments
    pass their own to run the model differently.
    """
    t_start = time.perf_counter()
    options = options or DetectOptions()
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if output is not None:
        output = check_points_output(output, options.overwrite)
    bundle = model if isinstance(model, Bundle) else load_bundle(model)
    device = resolve_device(options.device)
    settings = options.resolve(bundle, device)
    _ = bundle.model  # load and check the weights before any reading
    source = open_source(inputs, settings.bands, bundle.gsd, settings.scale)
    dem = None
    try:
        if settings.dem is not None:
            dem = _open_dem(settings, source)
        result = _detect(source, bundle, settings, make_engine, progress, t_start, dem)
    finally:
        source.close()
        if dem is not None:
            dem.close()
    if output is not None:
        t4 = time.perf_counter()
        result.output = write_crossings(result.crossings, output, source.grid.crs, source.files,
                                        result.run_info(), overwrite=settings.overwrite)
        result.timings["write_s"] = time.perf_counter() - t4
        result.seconds = time.perf_counter() - t_start
    return result


def _open_dem(settings: DetectSettings, source: RasterSource) -> DemSource:
    """The DEM read in the imagery's CRS, its windows aligned to the imagery's grid; refused when it does not
    reach the imagery."""
    from rasterio.warp import transform_bounds

    t = source.grid.transform
    dem = open_dem(settings.dem, source.grid.crs, (t.c, t.f), z_to_m=settings.dem_z_factor)
    x0, y0, x1, y1 = source.grid.bounds
    if not any(_overlaps(transform_bounds(f.crs, source.grid.crs, *_file_bounds(f)), (x0, y0, x1, y1))
               for f in dem.files):
        raise RasterError(f"the DEM ({', '.join(f.path for f in dem.files)}) does not overlap the imagery")
    for f in dem.files:
        if settings.dem_z_factor is None and abs(f.z_to_m - 1.0) > 1e-9:
            print(f"geodrain: warning: DEM {f.path}: elevations read in the unit of its CRS ({f.z_to_m:g} m); "
                  "give the DEM's elevation unit if it differs", file=sys.stderr)
    return dem


def _file_bounds(f) -> tuple[float, float, float, float]:
    xs, ys = zip(*[f.transform @ (c, r) for c in (0, f.width) for r in (0, f.height)])
    return min(xs), min(ys), max(xs), max(ys)


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _detect(source: RasterSource, bundle: Bundle, settings: DetectSettings, make_engine: EngineFactory,
            progress: bool, t_start: float, dem: DemSource | None = None) -> DetectResult:
    if source.native_gsd_m > 2.5 * bundle.gsd:
        print(f"geodrain: warning: input GSD {source.native_gsd_m:g} m is much coarser than the model's "
              f"{bundle.gsd:g} m; crossings may not be resolvable", file=sys.stderr)
    grid_w, grid_h = source.grid.width, source.grid.height
    check_size(grid_w, grid_h, bundle.window_px, settings.min_valid)
    grid = WindowGrid(grid_w, grid_h, bundle.window_px, settings.stride, bundle.context_px)
    aoi = load_aoi(settings.aoi, source.grid) if settings.aoi is not None else None
    plans = plan_blocks(grid, settings.block_px, source.block_shape, aoi.pixel_bounds if aoi else None)
    engine = make_engine(settings.engine, bundle, settings.run, grid, settings.block_px)
    threads = settings.read_threads
    reader = BlockReader(source, grid, aoi, settings.min_valid, threads, ahead=2 * threads)

    total_windows = sum(p.nrows * p.ncols for p in plans)
    t_infer = t_merge = t_wait = 0.0
    evaluated = 0
    parts: list[Candidates] = []
    area_km2 = source.grid.area_km2() if aoi is None else aoi.area_km2
    bar = tqdm(total=total_windows, unit="win", desc="detect", disable=not progress, smoothing=0.1,
               dynamic_ncols=True)
    t_loop = time.perf_counter()
    done = 0
    in_flight = None   # (pending scores, block): decoded after the next block is submitted to the engine

    def finish(pending, block) -> None:
        nonlocal t_infer, t_merge
        t1 = time.perf_counter()
        scores = pending.result()
        t2 = time.perf_counter()
        parts.append(decode(scores, block, grid, source.grid.transform, settings.decode_floor))
        t_infer += t2 - t1
        t_merge += time.perf_counter() - t2

    try:
        t0 = time.perf_counter()
        for block in reader.blocks(plans):
            t1 = time.perf_counter()
            t_wait += t1 - t0
            pending = engine.submit(block)
            t_infer += time.perf_counter() - t1
            if in_flight is not None:
                finish(*in_flight)      # the previous block's outputs, while the device runs this one
            in_flight = (pending, block)
            evaluated += block.n_windows
            done += block.plan.nrows * block.plan.ncols
            bar.update(block.plan.nrows * block.plan.ncols)
            elapsed = time.perf_counter() - t_loop
            bar.set_postfix_str(f"{area_km2 * done / total_windows:.2f} km², "
                                f"{evaluated / max(elapsed, 1e-9):,.0f} chips/s")
            t0 = time.perf_counter()
        if in_flight is not None:
            finish(*in_flight)
            in_flight = None
    finally:
        bar.close()
    engine.synchronize()
    if evaluated == 0:
        where = "inside the AOI" if aoi is not None else "in the raster"
        raise RasterError(f"no valid pixels {where}: every window is nodata, masked or outside "
                          f"(valid fraction < {settings.min_valid})")
    t3 = time.perf_counter()
    cands = Candidates.concat(parts, floor=settings.decode_floor)
    units = source.grid.units_m
    crossings = report(cands, settings.threshold, settings.merge_radius_m / units,
                       inside=aoi.contains if aoi is not None else None, scoring=settings.scoring, dem=dem,
                       units_m=units)
    t_merge += time.perf_counter() - t3
    seconds = time.perf_counter() - t_start
    return DetectResult(crossings, None, source, bundle, total_windows, evaluated, area_km2, seconds,
                        {"read_thread_s": reader.read_seconds, "read_wait_s": t_wait, "infer_s": t_infer,
                         "merge_s": t_merge, "loop_s": time.perf_counter() - t_loop}, settings.record(), cands,
                        settings, dem)
