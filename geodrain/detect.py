"""Detection: read -> window -> infer -> merge -> write, for one raster or a statewide set of files.

:func:`detect` is the library API behind ``geodrain detect``; this module only orchestrates the stages.
Settings are resolved once (:mod:`geodrain.settings`). The inputs are resolved, grouped by CRS and cut into
tasks (:mod:`geodrain.plan`, :mod:`geodrain.catalog`): groups of blocks of each group's mosaic, every window
scored by exactly one task. The tasks run in this process as one stream of blocks, read on background threads
ahead of the engine so that memory stays bounded whatever the raster size (:mod:`geodrain.tasks`), or on Dask
workers (:mod:`geodrain.distributed`); each finished task's candidates go to the run's work folder
(:mod:`geodrain.runstate`), so an interrupted run resumes where it stopped (:mod:`geodrain.runner`). All
candidates are then turned into crossings once, in one CRS (:func:`geodrain.postprocess.report`: merged, with
a DEM given its evidence read around each crossing, scored by the bundle's calibrator where it has one), and
written atomically (:func:`geodrain.write.write_crossings`).
"""

from __future__ import annotations

import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from .errors import GeodrainError, GeodrainWarning, RasterError
from .infer.base import Engine
from .infer.config import make_engine
from .infer.runtime import RunConfig, device_name
from .memory import fit as fit_memory
from .merge import Candidates, Crossings
from .model.bundle import Bundle, load_bundle
from .plan import DEFAULT_TASK_PX, RunPlan, plan_run, source_names
from .read import DemSource, RasterSource, open_dem
from .runner import execute, merged
from .runstate import WorkDir, default_work_dir, input_record
from .settings import DetectOptions, DetectSettings
from .tasks import RunSpec, Runtime
from .window import WindowGrid
from .write import RunInfo, check_points_output, utc_now, write_crossings

__all__ = ["detect", "DetectOptions", "DetectSettings", "DetectResult", "EngineFactory"]

EngineFactory = Callable[[str, Bundle, RunConfig, WindowGrid, int, "float | None"], Engine]
"""Builds the engine of a run: (engine kind, bundle, run configuration, window grid, block size, decode floor)
-> engine (the floor lets the int8 dense graph rescore the windows near it in fp32).
The default is :func:`geodrain.infer.config.make_engine`; experiments pass their own (in-process runs only)."""


class RunOptionError(GeodrainError, ValueError):
    """Options of a run that do not go together."""


@dataclass
class DetectResult:
    """What a detection run found, how, and how long it took."""

    crossings: Crossings
    output: Path | None
    source: RasterSource                  # the (first) CRS group's mosaic
    bundle: Bundle
    windows: int
    evaluated: int
    area_km2: float
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    config: dict = field(default_factory=dict)      # how the model ran (DetectSettings.record())
    candidates: Candidates | None = None   # the window candidates (>= the decode floor) before merging, output CRS
    settings: DetectSettings | None = None
    plan: RunPlan | None = None
    computed: list[str] = field(default_factory=list)   # tasks this run computed
    reused: list[str] = field(default_factory=list)     # tasks an earlier run had finished
    work_dir: Path | None = None
    created_utc: str = ""
    empty_km2: float = 0.0                  # of area_km2: blocks with no data (sparse files, gaps), skipped unread
    dem: DemSource | None = None
    engine_stats: dict = field(default_factory=dict)   # what the engines counted in this process

    @property
    def chips_per_s(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else float("nan")

    @property
    def crs(self):
        return self.plan.crs if self.plan is not None else self.source.grid.crs

    def summary(self) -> str:
        files = f"{len(self.plan.files)} files, " if self.plan is not None and len(self.plan.files) > 1 else ""
        resumed = f", {len(self.reused)} of {len(self.reused) + len(self.computed)} tasks resumed" \
            if self.reused else ""
        empty = f" ({self.empty_km2:,.2f} km² of it without data, skipped)" if self.empty_km2 > 0 else ""
        return (f"{len(self.crossings)} crossings in {files}{self.area_km2:,.2f} km²{empty}, {self.seconds:.1f} s, "
                f"{self.chips_per_s:,.0f} chips/s ({self.config.get('engine')} engine, "
                f"{self.config.get('run', {}).get('device', '?')}){resumed}")

    def run_info(self) -> RunInfo:
        """The run as recorded in the output's metadata (no timings: a resumed run writes the same bytes)."""
        s, b = self.settings, self.bundle
        groups = self.plan.groups if self.plan is not None else []
        return RunInfo(model_id=b.model_id, model_path=str(b.path), architecture=b.arch.notation,
                       threshold=s.threshold, merge_radius_m=s.merge_radius_m, stride_px=s.stride,
                       min_valid_fraction=s.min_valid, gsd_m=b.gsd, input_gsd_m=self.source.native_gsd_m,
                       bands=s.bands, inputs=list(self.plan.inputs) if self.plan else [f.path for f in self.source.files],
                       aoi=str(s.aoi) if s.aoi else "", engine=self.config, windows=self.windows,
                       windows_evaluated=self.evaluated, area_km2=self.area_km2, created_utc=self.created_utc,
                       crs=self.crs.to_string(), input_crs=tuple(g.crs.to_string() for g in groups),
                       empty_km2=self.empty_km2, score=s.score_kind,
                       dem=[f.path for f in self.dem.files] if self.dem is not None else [],
                       dem_evidence=self.dem is not None)


# Input pixels coarser than this many times the model's GSD are refused unless ``force``: a crossing (a few
# metres across) is not resolved, and upsampling a 32 m quarter-quad to 1 m takes minutes to find nothing.
MAX_GSD_RATIO = 2.5


def check_gsd(source: RasterSource, bundle: Bundle, force: bool) -> None:
    """Refuse (or, with ``force``, warn about) input much coarser than the model's GSD."""
    if source.native_gsd_m <= MAX_GSD_RATIO * bundle.gsd:
        return
    what = (f"input GSD {source.native_gsd_m:g} m is coarser than {MAX_GSD_RATIO:g} x the model's "
            f"{bundle.gsd:g} m")
    if not force:
        raise RasterError(f"{what}: crossings are not resolvable at this GSD and resampling it to "
                          f"{bundle.gsd:g} m would take long for nothing; use imagery of about {bundle.gsd:g} m "
                          "(NAIP is 0.6 or 1 m), or force the run", cli_hint={"force": "--force runs it anyway"})
    warnings.warn(f"{what}; crossings may not be resolvable (running because it was forced)", GeodrainWarning,
                  stacklevel=4)


def _check(options: DetectOptions, output) -> None:
    if options.resume and options.restart:
        raise RunOptionError("--resume and --restart do not go together")
    if options.workers is not None and options.scheduler:
        raise RunOptionError("--workers starts a local cluster and --scheduler uses an existing one: give one")
    if options.workers is not None and options.workers < 1:
        raise RunOptionError(f"--workers must be at least 1, got {options.workers}")
    if output is None and options.work_dir is None and (options.resume or options.keep_work or options.restart):
        raise RunOptionError("--resume, --restart and --keep-work need a work folder: an output or --work-dir")
    if options.task_px is not None and options.task_px < 1:
        raise RunOptionError(f"--task-size must be positive, got {options.task_px}")


@contextmanager
def _cluster(options: DetectOptions, progress: bool):
    if options.workers is None and not options.scheduler:
        yield None
        return
    from .distributed import open_cluster

    with open_cluster(options.workers, options.scheduler, options.worker_threads) as info:
        if progress:
            where = f"{info.workers} local workers" if info.cluster is not None else options.scheduler
            print(f"geodrain: Dask: {where}; dashboard {info.dashboard or 'not available'}", file=sys.stderr)
        yield info


def _manifest(plan: RunPlan, bundle: Bundle, s: DetectSettings, options: DetectOptions) -> dict:
    """What makes a run this run (compared on --resume)."""
    def aoi_record():
        return input_record(str(s.aoi)) if s.aoi is not None else None

    inputs = [input_record(f.path, {"width": f.width, "height": f.height, "count": f.count, "dtype": f.dtype,
                                    "crs": f.crs.to_string(), "transform": [round(v, 9) for v in list(f.transform)[:6]]})
              for f in plan.files]
    settings = {"stride": s.stride, "threshold": s.threshold, "merge_radius_m": s.merge_radius_m,
                "min_valid": s.min_valid, "bands": list(s.bands), "engine": s.engine, "backend": options.backend,
                "device": options.device, "batch_size": options.batch_size, "precision": options.precision,
                "cuda_graph": options.cuda_graph, "scale": s.scale, "aoi": aoi_record(),
                "crs": plan.crs.to_wkt(), "block_px": plan.block_px, "task_px": plan.task_px,
                "stac_asset": options.stac_asset, "scoring": s.scoring is not None,
                "dem": [input_record(p) for p in s.dem] if s.dem else None, "dem_z_factor": s.dem_z_factor}
    return {"model_id": bundle.model_id, "inputs": inputs, "settings": settings, "plan": plan.digest(),
            "tasks": len(plan.tasks)}


def detect(inputs: str | Path | Sequence[str | Path], output: str | Path | None = None, *,
           model: str | Path | Bundle | None = None, options: DetectOptions | None = None,
           progress: bool = True, make_engine: EngineFactory = make_engine) -> DetectResult:
    """Find crossings in one raster, a mosaic of several or a statewide set of files (folders, globs, list
    files, STAC; several CRSs) and (with ``output``) write them.

    With an output (or ``options.work_dir``) the run keeps its finished tasks in a work folder and can be
    resumed (``options.resume``); ``options.workers`` / ``options.scheduler`` run the tasks on Dask.
    ``make_engine`` builds the engine (default: the dense or chip engine the settings name); experiments pass
    their own to run the model differently (in this process only).
    """
    t_start = time.perf_counter()
    options = options or DetectOptions()
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    _check(options, output)
    if output is not None:
        output = check_points_output(output, options.overwrite)
    bundle = model if isinstance(model, Bundle) else load_bundle(model)
    with _cluster(options, progress) as cluster:
        device = device_name(options.device)   # a name: torch is imported only by the engines that use it
        plan_device = device
        if cluster is not None and options.device == "auto":
            from .distributed import cuda_on_workers

            plan_device = "cuda" if cuda_on_workers(cluster.client) else "cpu"
        settings = options.resolve(bundle, plan_device if cluster is not None else device)
        work_path = Path(options.work_dir) if options.work_dir is not None else \
            (default_work_dir(output) if output is not None else None)
        previous = WorkDir.peek(work_path) if (options.resume and work_path is not None) else None
        before = (previous or {}).get("settings", {})
        block_px = options.block_px or before.get("block_px") or settings.block_px
        task_px = options.task_px or before.get("task_px") or DEFAULT_TASK_PX
        settings = replace(settings, block_px=int(block_px))
        torch_model = settings.engine == "chip" or settings.run.backend != "onnx"
        if torch_model:
            _ = bundle.model  # load and check the weights before any reading

        def make_plan(s: DetectSettings) -> RunPlan:
            return plan_run(inputs, bands=s.bands, gsd_m=bundle.gsd, window_px=bundle.window_px, stride=s.stride,
                            context_px=bundle.context_px, min_valid=s.min_valid, block_px=s.block_px,
                            task_px=int(task_px), scale=s.scale, aoi=s.aoi, aoi_layer=s.aoi_layer,
                            crs=options.crs, stac_asset=options.stac_asset)

        plan = make_plan(settings)
        try:
            for g in plan.groups:
                check_gsd(g.source, bundle, settings.force)
            fitted = fit_memory(bundle.model if torch_model else None, engine=settings.engine,
                                batch_size=settings.run.batch_size, block_px=settings.block_px, stride=settings.stride,
                                raster_px=max(max(g.source.grid.width, g.source.grid.height) for g in plan.groups),
                                device=settings.run.device, precision=settings.run.precision, arch=bundle.arch,
                                context_px=bundle.context_px)
        except BaseException:
            plan.close()
            raise
        for note in fitted.notes:
            warnings.warn(note, GeodrainWarning, stacklevel=2)
        if fitted.batch_size != settings.run.batch_size:
            settings = replace(settings, run=replace(settings.run, batch_size=fitted.batch_size))
        if fitted.block_px != settings.block_px:          # blocks smaller than asked: plan them again
            plan.close()
            settings = replace(settings, block_px=fitted.block_px)
            plan = make_plan(settings)
        try:
            return _run(plan, bundle, settings, options, device, cluster, work_path, output, progress,
                        make_engine, t_start)
        finally:
            plan.close()


def _run(plan: RunPlan, bundle: Bundle, settings: DetectSettings, options: DetectOptions, device, cluster,
         work_path: Path | None, output: Path | None, progress: bool, make_engine: EngineFactory,
         t_start: float) -> DetectResult:
    if progress and (len(plan.files) > 1 or len(plan.tasks) > 1):
        print(f"geodrain: {plan.summary()}", file=sys.stderr)
    # tasks decode every window from the decode floor (the threshold, or the calibrated scoring's floor)
    run = RunSpec(str(Path(bundle.path).resolve()), bundle.model_id, settings.engine, options.backend, options.device,
                  settings.run.batch_size, options.precision, options.cuda_graph, settings.block_px,
                  options.read_threads, settings.decode_floor, settings.stride, settings.merge_radius_m)
    rt = None if cluster is not None else Runtime(bundle, device, settings.run, settings.engine, settings.block_px,
                                                  settings.read_threads, make_engine, settings.decode_floor)
    dem = _open_dem(settings, plan) if settings.dem is not None else None     # refused before any task runs
    if dem is not None:
        settings = _dem_scoring_for(settings, dem)
        _import_behind()
    try:
        work = WorkDir.open(work_path, _manifest(plan, bundle, settings, options), resume=options.resume,
                            restart=options.restart) if work_path is not None else None
    except BaseException:
        if dem is not None:
            dem.close()
        raise
    try:
        try:
            ex = execute(plan, run, work=work, cluster=cluster, retries=options.retries, rt=rt, progress=progress)
        except BaseException as e:
            if work is not None:
                if work.finished(t.key for t in plan.tasks):
                    if isinstance(e, KeyboardInterrupt):     # the CLI adds this to its one line
                        e.geodrain_note = (f"finished tasks are kept in {work.path}; the same command with "
                                           "--resume continues the run")
                elif not options.resume:
                    work.remove()         # nothing finished: nothing to resume, nothing left behind
            raise
        if ex.evaluated == 0:
            if work is not None and not options.keep_work:
                work.remove()          # nothing to resume: every task ran and none had a window to score
            where = "inside the AOI" if settings.aoi is not None else "in the raster"
            raise RasterError(f"no valid pixels {where}: every window is nodata, masked or outside "
                              f"(valid fraction < {settings.min_valid})")
        t3 = time.perf_counter()
        cands, crossings = merged(plan, ex.outputs, settings.threshold, settings.merge_radius_m,
                                  scoring=settings.scoring, dem=dem)
        timings = {**ex.stats.as_dict(), "loop_s": ex.seconds}
        if ex.stats.first_block_at:     # set-up and the first read (start-up cost; scripts/bench_detect.py)
            timings["first_block_s"] = ex.stats.first_block_at - t_start
        timings["merge_s"] = timings.get("merge_s", 0.0) + time.perf_counter() - t3
        config = settings.record()
        engine_stats: dict = {}    # e.g. the int8 graph's rescored windows (not in the output: it differs on resume)
        for engine in (rt.engines.values() if rt is not None else ()):
            engine_stats.update(getattr(engine, "stats", dict)())
        result = DetectResult(crossings, None, plan.groups[0].source, bundle, plan.windows, ex.evaluated,
                              plan.area_km2, time.perf_counter() - t_start, timings, config, cands, settings, plan,
                              ex.computed, ex.reused, work.path if work is not None else None,
                              work.created_utc if work is not None else utc_now(), plan.empty_km2, dem,
                              engine_stats)
        if output is not None:
            t4 = time.perf_counter()
            result.output = write_crossings(crossings, output, plan.crs, [], result.run_info(),
                                            overwrite=settings.overwrite, sources=source_names(plan, crossings.xy))
            result.timings["write_s"] = time.perf_counter() - t4
            result.seconds = time.perf_counter() - t_start
            if work is not None and not options.keep_work:
                work.remove()
        return result
    finally:
        if work is not None:
            work.close()
        if dem is not None:
            dem.close()


def _open_dem(settings: DetectSettings, plan: RunPlan) -> DemSource:
    """The DEM read in the output CRS (where crossings are merged), its windows aligned to the first group's
    grid when that is the output CRS; refused when it reaches none of the imagery."""
    from rasterio.warp import transform_bounds

    first = plan.groups[0].source.grid
    anchor = (first.transform.c, first.transform.f) if first.crs == plan.crs else (0.0, 0.0)
    dem = open_dem(settings.dem, plan.crs, anchor, z_to_m=settings.dem_z_factor)
    try:
        if not any(_overlaps(transform_bounds(f.crs, g.crs, *_file_bounds(f)), g.source.grid.bounds)
                   for f in dem.files for g in plan.groups):
            raise RasterError(f"the DEM ({', '.join(f.path for f in dem.files)}) does not overlap the imagery")
    except BaseException:
        dem.close()
        raise
    for f in dem.files:
        if settings.dem_z_factor is None and abs(f.z_to_m - 1.0) > 1e-9:
            warnings.warn(f"DEM {f.path}: elevations read in the unit of its CRS ({f.z_to_m:g} m); give the "
                          "DEM's elevation unit if it differs", GeodrainWarning, stacklevel=3)
    return dem


def _dem_scoring_for(settings: DetectSettings, dem: DemSource) -> DetectSettings:
    """The settings a run with ``dem`` scores by: the bundle's DEM calibrator, unless a DEM file is coarser
    than the cells it was shown to help at; then (with a warning) the imagery calibrator, the DEM's evidence
    still written."""
    sc = settings.scoring
    if sc is None or sc.dem is None or sc.dem.max_cell_m is None:
        return settings
    coarse = [f for f in dem.files if f.res_m > sc.dem.max_cell_m * (1 + 1e-6)]
    if not coarse:
        return settings
    f = max(coarse, key=lambda f: f.res_m)
    warnings.warn(f"DEM {f.path} has cells of {f.res_m:.3g} m, coarser than the {sc.dem.max_cell_m:g} m up to which "
                  "the bundle's DEM calibrator was measured to help: scores use the imagery evidence only (the "
                  "DEM's evidence is still written)", GeodrainWarning, stacklevel=4)
    return replace(settings, scoring=replace(sc, dem=None))


def _import_behind() -> None:
    """Import the flow routing the DEM evidence needs (pyflwdir and numba: most of a second) on a thread while
    the imagery is scored, which releases the interpreter; the evidence's own import then finds it loaded."""
    import threading

    def load():
        try:
            import geodrain.dem_features  # noqa: F401
            import pyflwdir  # noqa: F401
        except Exception:        # the evidence's own import reports it
            pass

    threading.Thread(target=load, name="geodrain-import", daemon=True).start()


def _file_bounds(f) -> tuple[float, float, float, float]:
    xs, ys = zip(*[f.transform @ (c, r) for c in (0, f.width) for r in (0, f.height)])
    return min(xs), min(ys), max(xs), max(ys)


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

