"""Tasks: a run cut into independent pieces, and the code that runs them (in this process or on a worker).

A :class:`TaskSpec` is a group of blocks of one CRS group's window grid (``window.plan_blocks``: each window in
exactly one block, so each window in exactly one task), with everything needed to run it anywhere: the files
its blocks read (and nothing else, so a task of a statewide mosaic opens a handful of files, not all of
them), the group's grid, the AOI and the other groups' claims near it (clipped), the bands and scale. Its
result, a :class:`TaskOutput`, holds the window candidates in the group's CRS.

:func:`run_tasks` runs a sequence of tasks as one stream: blocks are read and prepared on background threads
a bounded number ahead (across task boundaries), the engine runs block *n* while block *n − 1* is decoded, and
a task's output is yielded as soon as its last block is decoded. The single-process run passes all its tasks
at once; a Dask worker passes one. :class:`RunSpec` says how to run the model; the bundle is loaded once per
process (:func:`runtime`) and reused by every task that process runs.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from .catalog import Ownership
from .errors import BundleError
from .memory import peak_rss_mb
from .merge import Candidates, decode, merge_candidates
from .read import Grid, InputFile, RasterSource, build_vrt
from .window import Block, BlockPlan, WindowGrid


@dataclass(frozen=True)
class RunSpec:
    """How tasks run the model: the bundle (a path every worker can read, checked against ``model_id``),
    the engine and the device options; ``None`` = the device's default (resolved where the task runs)."""

    bundle_path: str
    model_id: str
    engine: str                      # dense | chip (resolved by the driver)
    backend: str = "torch"
    device: str = "auto"
    batch_size: int | None = None
    precision: str | None = None
    cuda_graph: bool | None = None
    block_px: int = 1024
    read_threads: int | None = None
    threshold: float = 0.5
    stride: int = 8
    merge_radius_m: float = 30.0


@dataclass(frozen=True)
class TaskSpec:
    """One task: blocks of one group's window grid and what reading and scoring them needs."""

    key: str                          # "g00-t000012": group, then the task's rank in the group (sorts in run order)
    group: int
    grid: Grid                        # the group's model-GSD grid
    window: WindowGrid
    blocks: tuple[BlockPlan, ...]
    files: tuple[InputFile, ...]      # the group's files that these blocks read, in mosaic order
    bands: tuple[int, ...]
    scale: float
    native_gsd_m: float
    min_valid: float
    aoi: object | None = None         # shapely geometry in the group's CRS (clipped to the task)
    ownership: Ownership | None = None  # claims of the groups near the task (None: one group)
    area_km2: float = 0.0             # the area whose windows this task scores (for progress and summaries)
    inputs: tuple[int, ...] = ()      # indices of ``files`` in the run's input list (for progress)

    @property
    def windows(self) -> int:
        return sum(p.nrows * p.ncols for p in self.blocks)

    def source(self) -> RasterSource:
        """The task's files as a mosaic on the group's grid: the same pixels as the whole group's mosaic
        (files that do not reach the task's blocks contribute nothing to them)."""
        files = list(self.files)
        return RasterSource(files, self.bands, self.grid, build_vrt(files, self.bands, self.grid), self.scale,
                            self.native_gsd_m)


@dataclass
class TaskOutput:
    key: str
    candidates: Candidates            # in the group's CRS
    windows: int                      # windows of the task's blocks
    evaluated: int                    # windows scored (valid, inside the AOI, owned by the group)
    crossings: int = 0                # the task's candidates merged on their own (progress only)
    seconds: float = 0.0
    info: dict = field(default_factory=dict)   # where and how it ran (worker, pid, device, engine, memory)


# --------------------------------------------------------------------------------------------------------
# the model, once per process
# --------------------------------------------------------------------------------------------------------
class Runtime:
    """A loaded bundle on a device in one run configuration, with one engine per window geometry."""

    loads = 0   # bundles loaded from disk by this process (the distributed test checks: once per worker)

    def __init__(self, bundle, device, config, engine: str, block_px: int, read_threads: int,
                 make_engine: Callable | None = None, threshold: float | None = None):
        self.bundle, self.device, self.config = bundle, device, config
        self.engine_kind, self.block_px, self.read_threads = engine, block_px, read_threads
        self._make_engine = make_engine
        self.threshold = threshold     # lets the int8 dense graph rescore the windows near it in fp32
        self.engines: dict = {}
        torch = sys.modules.get("torch")    # not imported where no model runs with it
        self.torch_threads = torch.get_num_threads() if torch is not None else None

    @classmethod
    def load(cls, run: RunSpec) -> "Runtime":
        """The runtime a worker builds from a :class:`RunSpec`: the bundle from disk (checked against the run's
        model id), the device and its run configuration resolved here."""
        from .blocks import default_read_threads
        from .infer.config import run_config
        from .infer.runtime import device_name
        from .model.bundle import load_bundle

        bundle = load_bundle(run.bundle_path)
        if bundle.model_id != run.model_id:
            raise BundleError(f"the model bundle at {run.bundle_path} here is {bundle.model_id}, but the run "
                              f"uses {run.model_id}")
        Runtime.loads += 1
        device = device_name(run.device)
        config = run_config(bundle, device, engine=run.engine, stride=run.stride, backend=run.backend,
                            batch_size=run.batch_size, precision=run.precision, cuda_graph=run.cuda_graph)
        if run.engine == "chip" or config.backend != "onnx":
            _ = bundle.model     # loaded once per worker, before its first task
        return cls(bundle, device, config, run.engine, run.block_px,
                   run.read_threads or default_read_threads(device, run.engine), threshold=run.threshold)

    def engine(self, window: WindowGrid):
        from .infer.config import make_engine

        key = (window.size, window.stride, window.context)
        if key not in self.engines:
            factory = self._make_engine or make_engine
            self.engines[key] = factory(self.engine_kind, self.bundle, self.config, window, self.block_px,
                                        self.threshold)
        return self.engines[key]

    def info(self) -> dict:
        """How tasks ran here (recorded with each task's result)."""
        return {"pid": os.getpid(), "device": str(self.device), "engine": self.engine_kind,
                "run": self.config.to_dict(), "torch_threads": self.torch_threads, "bundle_loads": Runtime.loads,
                "peak_rss_mb": round(peak_rss_mb(), 1)}


_RUNTIMES: dict[RunSpec, Runtime] = {}
_RUNTIME_LOCK = threading.Lock()
TASK_LOCK = threading.Lock()      # one task at a time per process (a worker's threads are its core budget)


def runtime(run: RunSpec) -> Runtime:
    """The process's :class:`Runtime` for ``run`` (the bundle is loaded on first use only)."""
    with _RUNTIME_LOCK:
        rt = _RUNTIMES.get(run)
        if rt is None:
            rt = _RUNTIMES[run] = Runtime.load(run)
        return rt


# --------------------------------------------------------------------------------------------------------
# running tasks
# --------------------------------------------------------------------------------------------------------
@dataclass
class _Open:
    """A task being run: its mosaic, AOI and the parts decoded so far."""

    spec: TaskSpec
    source: RasterSource
    aoi: object | None
    remaining: int
    parts: list = field(default_factory=list)
    evaluated: int = 0
    t0: float = field(default_factory=time.perf_counter)


def _owned(spec: TaskSpec, plan: BlockPlan) -> np.ndarray | None:
    """(nrows, ncols) whether this group owns each window of the block (None: every window)."""
    if spec.ownership is None:
        return None
    rows = np.arange(plan.row0, plan.row0 + plan.nrows)
    cols = np.arange(plan.col0, plan.col0 + plan.ncols)
    cx, cy = spec.window.centres(rows[:, None], cols[None, :])
    cx, cy = np.broadcast_arrays(cx, cy)
    x, y = spec.grid.transform @ (cx.ravel(), cy.ravel())
    return spec.ownership.owned(spec.group, np.asarray(x), np.asarray(y)).reshape(plan.nrows, plan.ncols)


def prepare_block(task: _Open, plan: BlockPlan) -> Block:
    """Read a block and mark the windows to score: valid enough, inside the AOI, owned by the group."""
    from .blocks import prepare_block as read_block

    spec = task.spec
    owned = _owned(spec, plan)
    if owned is not None and not owned.any():
        # nothing here is this group's: no read at all
        return Block(plan, np.zeros((len(spec.bands), 0, 0), np.uint8), np.zeros((0, 0), bool), owned)
    block = read_block(task.source, spec.window, task.aoi, spec.min_valid, plan)
    if owned is not None:
        block.keep &= owned
    return block


@dataclass
class StreamStats:
    read_s: float = 0.0      # time spent reading on the background threads
    wait_s: float = 0.0      # time the engine waited for a block
    infer_s: float = 0.0
    decode_s: float = 0.0
    first_block_at: float = 0.0   # time.perf_counter() when the first block was ready for the engine

    def as_dict(self) -> dict[str, float]:
        return {"read_thread_s": self.read_s, "read_wait_s": self.wait_s, "infer_s": self.infer_s,
                "merge_s": self.decode_s}


def run_tasks(specs: Sequence[TaskSpec], run: RunSpec, *, rt: Runtime | None = None,
              on_block: Callable[[TaskSpec, Block], None] | None = None,
              stats: StreamStats | None = None) -> Iterator[TaskOutput]:
    """Run tasks as one stream of blocks and yield each task's output as soon as it is complete (tasks without
    blocks first, then in the order given). ``rt``: the runtime (default: this process's for ``run``)."""
    from .aoi import AOI
    from .blocks import block_cache

    rt = rt or runtime(run)
    stats = stats if stats is not None else StreamStats()
    items = [(i, plan) for i, spec in enumerate(specs) for plan in spec.blocks]
    empties = [i for i, spec in enumerate(specs) if not spec.blocks]
    opened: dict[int, _Open] = {}
    threads = rt.read_threads
    ahead = max(1, 2 * threads)

    def open_task(i: int) -> _Open:
        if i not in opened:
            spec = specs[i]
            aoi = AOI(spec.aoi, spec.grid) if spec.aoi is not None else None
            opened[i] = _Open(spec, spec.source(), aoi, len(spec.blocks))
        return opened[i]

    def prepare(i: int, plan: BlockPlan) -> tuple[int, Block]:
        t0 = time.perf_counter()
        block = prepare_block(opened[i], plan)
        stats.read_s += time.perf_counter() - t0
        return i, block

    def close(i: int) -> TaskOutput:
        task = opened.pop(i)
        task.source.close()
        cands = Candidates.concat(task.parts, floor=run.threshold)
        radius = run.merge_radius_m / task.spec.grid.units_m
        return TaskOutput(task.spec.key, cands, task.spec.windows, task.evaluated,
                          crossings=len(merge_candidates(cands, radius)), seconds=time.perf_counter() - task.t0)

    for i in empties:     # a task with no blocks (nothing to score) is done at once
        yield TaskOutput(specs[i].key, Candidates(floor=run.threshold), 0, 0)
    if not items:
        return
    first = open_task(items[0][0])
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="geodrain-read")
    pending: deque = deque()
    it = iter(items)

    def submit_next() -> None:
        nxt = next(it, None)
        if nxt is not None:
            open_task(nxt[0])
            pending.append(pool.submit(prepare, *nxt))

    in_flight = None

    def finish(i: int, scores_pending, block: Block):
        t1 = time.perf_counter()
        scores = scores_pending.result()
        t2 = time.perf_counter()
        task = opened[i]
        task.parts.append(decode(scores, block, task.spec.window, task.spec.grid.transform, run.threshold))
        task.evaluated += block.n_windows
        task.remaining -= 1
        stats.infer_s += t2 - t1
        stats.decode_s += time.perf_counter() - t2
        return close(i) if task.remaining == 0 else None

    try:
        with block_cache(first.source, first.spec.blocks[0].read_height, first.spec.blocks[0].read_width, threads):
            for _ in range(ahead):
                submit_next()
            while pending:
                t0 = time.perf_counter()
                i, block = pending.popleft().result()
                stats.wait_s += time.perf_counter() - t0
                stats.first_block_at = stats.first_block_at or time.perf_counter()
                submit_next()
                t1 = time.perf_counter()
                scores_pending = rt.engine(specs[i].window).submit(block)
                stats.infer_s += time.perf_counter() - t1
                if on_block is not None:
                    on_block(specs[i], block)
                if in_flight is not None:
                    done = finish(*in_flight)   # the previous block, while the device runs this one
                    if done is not None:
                        yield done
                in_flight = (i, scores_pending, block)
            if in_flight is not None:
                done = finish(*in_flight)
                in_flight = None
                if done is not None:
                    yield done
            for engine in rt.engines.values():
                engine.synchronize()
    finally:
        for f in pending:
            f.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        for task in opened.values():
            task.source.close()
        opened.clear()


def run_one(spec: TaskSpec, run: RunSpec, worker: str = "") -> TaskOutput:
    """Run a single task (what a Dask worker executes), one at a time per process."""
    with TASK_LOCK:
        rt = runtime(run)
        (out,) = list(run_tasks([spec], run, rt=rt))
        out.info = {**rt.info(), "worker": worker}
        return out


def centre_rect_px(plans: Sequence[BlockPlan], window: WindowGrid) -> tuple[float, float, float, float]:
    """The pixel rectangle (col0, row0, col1, row1) of the window-centre cells of blocks, reaching the
    raster's edge for blocks on the edge: the rectangles of all blocks tile the raster exactly."""
    s, half = window.stride, window.size / 2
    r0 = min(p.row0 for p in plans)
    c0 = min(p.col0 for p in plans)
    r1 = max(p.row0 + p.nrows for p in plans)
    c1 = max(p.col0 + p.ncols for p in plans)
    top = 0.0 if r0 == 0 else r0 * s + half - s / 2
    left = 0.0 if c0 == 0 else c0 * s + half - s / 2
    bottom = float(window.height) if r1 >= window.rows else (r1 - 1) * s + half + s / 2
    right = float(window.width) if c1 >= window.cols else (c1 - 1) * s + half + s / 2
    return left, top, max(right, left), max(bottom, top)


def tile_blocks(plans: Sequence[BlockPlan], per_side: int) -> list[list[BlockPlan]]:
    """Blocks grouped into squares of ``per_side`` x ``per_side`` blocks, in row-major order of squares."""
    rows = {r: i for i, r in enumerate(sorted({p.row0 for p in plans}))}
    cols = {c: i for i, c in enumerate(sorted({p.col0 for p in plans}))}
    tiles: dict[tuple[int, int], list[BlockPlan]] = {}
    for p in plans:
        key = (rows[p.row0] // per_side, cols[p.col0] // per_side)
        tiles.setdefault(key, []).append(p)
    return [tiles[k] for k in sorted(tiles)]


def blocks_per_task(task_px: int, block_px: int) -> int:
    return max(1, int(math.floor(task_px / block_px + 1e-9)))
