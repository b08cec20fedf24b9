"""Detection: read -> window -> infer -> merge -> write, streamed block by block.

:func:`detect` is the library API behind ``geodrain detect``. Blocks are read and prepared (validity, AOI,
window selection) on background threads, a bounded number ahead of the engine, so reading overlaps the model
and memory stays bounded whatever the raster size. On a GPU the next block is queued before the previous
block's outputs are decoded, so decoding overlaps the model too. Candidates are merged once at the end and the
output is written atomically.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from . import __version__
from .aoi import AOI, load_aoi
from .errors import DeviceError, RasterError
from .infer.base import MIN_EXACT_CONTEXT, Engine
from .infer.dense_ort import OrtDenseEngine, onnx_precision
from .infer.runtime import RunConfig, default_config, device_name, device_type
from .merge import Candidates, Crossings, decode, merge_candidates
from .model.bundle import Bundle, device_class, load_bundle
from .model.arch import FEATURE_STRIDE
from .read import NAIP_BANDS, RasterSource, block_cache, open_source
from .window import Block, BlockPlan, WindowGrid, check_size, plan_blocks, valid_fraction
from .write import check_output, write_points


@dataclass
class DetectOptions:
    """Everything ``geodrain detect`` can set; ``None`` means: the bundle's (or the device's) default."""

    stride: int | None = None
    threshold: float | None = None
    merge_radius_m: float | None = None
    min_valid: float = 0.5
    bands: tuple[int, ...] = NAIP_BANDS
    engine: str = "auto"              # auto | dense | chip
    backend: str | None = None        # torch | onnx (None: the bundle's tuned choice, else torch)
    device: str = "auto"
    batch_size: int | None = None
    precision: str | None = None      # fp32 | fp16 | bf16 | int8 (the dense ONNX graph on a CPU)
    cuda_graph: bool | None = None
    block_px: int | None = None
    read_threads: int | None = None
    aoi: str | Path | None = None
    scale: float | str = "auto"
    overwrite: bool = False

    def resolved(self, bundle: Bundle) -> "DetectOptions":
        """A copy with the stride, threshold and merge radius the bundle was calibrated with filled in."""
        return replace(self, stride=bundle.stride_px if self.stride is None else self.stride,
                       threshold=bundle.threshold if self.threshold is None else self.threshold,
                       merge_radius_m=bundle.merge_radius_m if self.merge_radius_m is None else self.merge_radius_m)


@dataclass
class DetectResult:
    crossings: Crossings
    output: Path | None
    source: RasterSource
    bundle: Bundle
    windows: int
    evaluated: int
    area_km2: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    candidates: Candidates | None = None   # the window candidates (>= threshold) before merging

    @property
    def chips_per_s(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else float("nan")

    def summary(self) -> str:
        return (f"{len(self.crossings)} crossings in {self.area_km2:.2f} km², {self.seconds:.1f} s, "
                f"{self.chips_per_s:,.0f} chips/s ({self.config.get('engine')} engine, "
                f"{self.config.get('run', {}).get('device', '?')})")


def choose_engine(name: str, options: DetectOptions, bundle: Bundle) -> str:
    if name not in ("auto", "dense", "chip"):
        raise RasterError(f"unknown engine {name!r}: use auto, dense or chip")
    if name != "auto":
        return name
    if options.backend == "onnx" and device_type(device_name(options.device)) != "cpu":
        return "chip"       # the dense engine's ONNX graphs run on the CPU; ONNX Runtime's CUDA provider: chips
    dense_ok = options.stride % FEATURE_STRIDE == 0 and bundle.context_px >= MIN_EXACT_CONTEXT
    return "dense" if dense_ok else "chip"


def run_config(bundle: Bundle, options: DetectOptions, device, engine: str = "chip") -> RunConfig:
    """The tuned configuration for this device class (``geodrain schedule`` / ``profile``; for the dense
    engine ``scripts/prepare_dense.py``), with overrides."""
    tuned = bundle.tuned(device)
    batch = options.batch_size or bundle.best_batch_size(device)
    if engine == "dense":
        precision = onnx_precision(bundle, options.stride, options.backend, options.precision,
                                   device_class(device))
        if precision is not None:
            return RunConfig("onnx", str(device), precision, False, False, batch)
    if options.precision == "int8":
        raise DeviceError("int8 runs only in the dense engine on the CPU (its prepared ONNX graph)")
    if options.backend == "onnx":
        return RunConfig("onnx", str(device), "fp32", False, False, batch)
    if "engine" in tuned and tuned["engine"].get("backend", "torch") == "torch":
        base = RunConfig.from_dict({**tuned["engine"], "device": str(device), "batch_size": batch})
    else:
        base = default_config(device, batch)
    precision = options.precision or base.precision
    graph = base.cuda_graph if options.cuda_graph is None else options.cuda_graph
    on_gpu = device_type(device) == "cuda"
    if not on_gpu:
        precision, graph = ("fp32" if precision == "fp16" else precision), False
    return RunConfig("torch", str(device), precision, base.channels_last and on_gpu, graph, batch)


def make_engine(kind: str, bundle: Bundle, config: RunConfig, grid: WindowGrid, block_px: int,
                threshold: float | None = None) -> Engine:
    """The engine; ``threshold`` lets the int8 dense graph score the windows near it again in fp32."""
    if kind == "dense" and config.backend == "onnx":
        return OrtDenseEngine(bundle, config, grid, block_px, threshold=threshold)
    if kind == "dense":
        from .infer.dense import DenseEngine

        return DenseEngine(bundle, config, grid, block_px)
    from .infer.chip import ChipEngine

    return ChipEngine(bundle, config, grid, block_px)


def default_block_px(device, engine: str) -> int:
    if device_type(device) == "cuda":
        return 2048 if engine == "dense" else 1024
    return 1024


def default_read_threads(device, engine: str = "dense") -> int:
    """Decoding threads. The dense engine on a GPU consumes pixels faster than one thread decodes them, so it
    gets the cores (GDAL releases the GIL while decoding). The chip engine needs a few tens of Mpx/s even on
    a GPU, which two threads deliver; more threads only contend (H200, 4096² scene: end-to-end / model-only
    chips/s 0.82 with 2 threads, 0.64 with 16; docs/results/h200/read_threads/). On a CPU the model needs
    the cores."""
    import os

    if device_type(device) == "cuda" and engine == "dense":
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

    def blocks(self, plans: Sequence[BlockPlan]):
        if not plans:
            return
        with block_cache(self.source, plans[0].read_height, plans[0].read_width, self.threads):
            yield from self._blocks(plans)

    def _blocks(self, plans: Sequence[BlockPlan]):
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


def detect(inputs: str | Path | Sequence[str | Path], output: str | Path | None = None, *,
           model: str | Path | Bundle | None = None, options: DetectOptions | None = None,
           progress: bool = True) -> DetectResult:
    """Find crossings in one raster or a mosaic of several and (with ``output``) write them."""
    t_start = time.perf_counter()
    options = options or DetectOptions()
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    if output is not None:
        output = check_output(output, options.overwrite)
    bundle = model if isinstance(model, Bundle) else load_bundle(model)
    options = options.resolved(bundle)
    if len(options.bands) != bundle.arch.bands:
        raise RasterError(f"--bands gives {len(options.bands)} band(s) but the model expects "
                          f"{bundle.arch.bands} ({', '.join(bundle.bands)})")
    device = device_name(options.device)    # a name: torch is imported only by the engines that use it
    source = open_source(inputs, options.bands, bundle.gsd, options.scale)
    try:
        return _detect(source, bundle, device, options, output, progress, t_start)
    finally:
        source.close()


def _detect(source: RasterSource, bundle: Bundle, device: str, options: DetectOptions,
            output: Path | None, progress: bool, t_start: float) -> DetectResult:
    if source.native_gsd_m > 2.5 * bundle.gsd:
        print(f"geodrain: warning: input GSD {source.native_gsd_m:g} m is much coarser than the model's "
              f"{bundle.gsd:g} m; crossings may not be resolvable", file=sys.stderr)
    grid_w, grid_h = source.grid.width, source.grid.height
    check_size(grid_w, grid_h, bundle.window_px, options.min_valid)
    grid = WindowGrid(grid_w, grid_h, bundle.window_px, options.stride, bundle.context_px)
    aoi = load_aoi(options.aoi, source.grid) if options.aoi is not None else None
    engine_kind = choose_engine(options.engine, options, bundle)
    config = run_config(bundle, options, device, engine_kind)
    block_px = options.block_px or default_block_px(device, engine_kind)
    plans = plan_blocks(grid, block_px, source.block_shape, aoi.pixel_bounds if aoi else None)
    threshold, radius = options.threshold, options.merge_radius_m
    engine = make_engine(engine_kind, bundle, config, grid, block_px, threshold)
    threads = options.read_threads or default_read_threads(device, engine_kind)
    reader = BlockReader(source, grid, aoi, options.min_valid, threads, ahead=2 * threads)

    total_windows = sum(p.nrows * p.ncols for p in plans)
    t_infer = t_merge = t_wait = 0.0
    t_first = None     # detect() call -> first block ready for the engine (set-up and first read)
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
        parts.append(decode(scores, block, grid, source.grid.transform, threshold))
        t_infer += t2 - t1
        t_merge += time.perf_counter() - t2

    try:
        t0 = time.perf_counter()
        for block in reader.blocks(plans):
            t1 = time.perf_counter()
            t_wait += t1 - t0
            t_first = t1 - t_start if t_first is None else t_first
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
                          f"(valid fraction < {options.min_valid})")
    t3 = time.perf_counter()
    cands = Candidates.concat(parts)
    crossings = merge_candidates(cands, radius / source.grid.units_m)
    if aoi is not None and len(crossings):
        inside = aoi.contains(crossings.xy)
        crossings = Crossings(crossings.xy[inside], crossings.score[inside], crossings.n_windows[inside],
                              crossings.size_m[inside])
    t_merge += time.perf_counter() - t3
    seconds = time.perf_counter() - t_start
    run = {"engine": engine_kind, "run": config.to_dict(), "block_px": block_px, "read_threads": threads,
           **getattr(engine, "stats", dict)()}
    result = DetectResult(crossings, None, source, bundle, total_windows, evaluated, area_km2, seconds,
                          {"read_thread_s": reader.read_seconds, "read_wait_s": t_wait, "infer_s": t_infer,
                           "merge_s": t_merge, "loop_s": time.perf_counter() - t_loop,
                           "first_block_s": t_first or 0.0}, run, cands)
    if output is not None:
        t4 = time.perf_counter()
        result.output = write_crossings(result, output, threshold, radius, options)
        result.timings["write_s"] = time.perf_counter() - t4
        result.seconds = time.perf_counter() - t_start
    return result


def source_names(source: RasterSource, xy: np.ndarray) -> list[str]:
    """The input file under each point (the last one given wins where files overlap, as in the mosaic)."""
    names = [""] * len(xy)
    for f in source.files:
        x0, y0, x1, y1 = f.bounds
        inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        for i in np.nonzero(inside)[0]:
            names[i] = Path(f.path).name
    return names


def write_crossings(result: DetectResult, output: Path, threshold: float, radius: float,
                    options: DetectOptions) -> Path:
    c = result.crossings
    columns = {
        "crossing_id": np.arange(1, len(c) + 1, dtype=np.int32),
        "score": np.round(c.score.astype(np.float64), 4),
        "n_windows": c.n_windows.astype(np.int32),
        "width_m": np.round(c.size_m[:, 0].astype(np.float64), 1) if len(c) else np.zeros(0),
        "height_m": np.round(c.size_m[:, 1].astype(np.float64), 1) if len(c) else np.zeros(0),
        "source": source_names(result.source, c.xy),
        "model": [result.bundle.model_id] * len(c),
    }
    metadata = {
        "geodrain_version": __version__,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model_id": result.bundle.model_id,
        "model_path": str(result.bundle.path),
        "architecture": result.bundle.arch.notation,
        "threshold": threshold,
        "merge_radius_m": radius,
        "stride_px": options.stride,
        "min_valid_fraction": options.min_valid,
        "gsd_m": result.bundle.gsd,
        "input_gsd_m": result.source.native_gsd_m,
        "bands": ",".join(map(str, options.bands)),
        "inputs": [f.path for f in result.source.files],
        "aoi": str(options.aoi) if options.aoi else "",
        "engine": result.config,
        "windows": result.windows,
        "windows_evaluated": result.evaluated,
        "area_km2": round(result.area_km2, 4),
        "runtime_s": round(result.seconds, 2),
        "crossings": len(c),
    }
    desc = (f"Drainage crossings detected by geodrain {__version__} with {result.bundle.model_id} "
            f"(threshold {threshold:.3f})")
    return write_points(c.xy, columns, result.source.grid.crs, output, metadata=metadata,
                        overwrite=options.overwrite, description=desc)
