"""Running a plan: the finished tasks are skipped, the others run here or on Dask, and every task's
candidates are merged in the output CRS.

The same machinery serves a one-file watershed and a statewide run: in one process the pending tasks run as
one stream (:func:`geodrain.tasks.run_tasks`); with a cluster they run on its workers
(:func:`geodrain.distributed.run_on_cluster`). Either way each finished task is saved in the work folder as
it arrives (when the run has one), and the final merge reads every task's candidates in task order, whether
this run computed them or an earlier one did, so a resumed run merges exactly what an uninterrupted run
merges.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .merge import Candidates, Crossings
from .plan import RunPlan, file_progress
from .runstate import WorkDir
from .tasks import RunSpec, Runtime, StreamStats, TaskOutput, run_tasks


@dataclass
class Execution:
    outputs: list[TaskOutput]             # every task's output, in task order
    computed: list[str]                   # keys computed by this run
    reused: list[str]                     # keys found finished in the work folder
    stats: StreamStats = field(default_factory=StreamStats)
    seconds: float = 0.0

    @property
    def evaluated(self) -> int:
        return sum(o.evaluated for o in self.outputs)


class Progress:
    """A progress bar in km², with files finished, crossings so far (merged per task) and chips/s."""

    def __init__(self, plan: RunPlan, enabled: bool):
        self.plan = plan
        self.tasks_of_file = file_progress(plan)
        self.files_total = len(self.tasks_of_file)
        self.left = dict(self.tasks_of_file)
        self.files_done = 0
        self.crossings = 0
        self.evaluated = 0
        self.area = {t.key: t.area_km2 for t in plan.tasks}
        self.inputs = {t.key: t.inputs for t in plan.tasks}
        self.partial: dict[str, float] = {}
        self.t0 = time.perf_counter()
        self.total = plan.area_km2
        self.shown = 0.0
        self.bar = tqdm(total=plan.area_km2, unit="km²", desc="detect", disable=not enabled,
                        dynamic_ncols=True, smoothing=0.1, bar_format="{l_bar}{bar}| {n:,.2f}/{total:,.2f} km² "
                        "[{elapsed}<{remaining}{postfix}]")

    def _postfix(self) -> None:
        rate = self.evaluated / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix_str(f"files {self.files_done}/{self.files_total}, ~{self.crossings} crossings, "
                                 f"{rate:,.0f} chips/s", refresh=False)

    def _advance(self, step: float) -> None:
        step = max(0.0, min(step, self.total - self.shown))
        self.shown += step
        self.bar.update(step)

    def block(self, key: str, fraction: float, evaluated: int) -> None:
        step = self.area[key] * fraction
        self.partial[key] = self.partial.get(key, 0.0) + step
        self.evaluated += evaluated
        self._advance(step)
        self._postfix()

    def task(self, out: TaskOutput, computed: bool) -> None:
        done_part = self.partial.pop(out.key, 0.0)
        self._advance(self.area.get(out.key, 0.0) - done_part)
        self.crossings += out.crossings
        if computed and done_part == 0.0:
            self.evaluated += out.evaluated
        for i in self.inputs.get(out.key, ()):
            self.left[i] -= 1
            if self.left[i] == 0:
                self.files_done += 1
        self._postfix()

    def close(self) -> None:
        self.bar.close()


def execute(plan: RunPlan, run: RunSpec, *, work: WorkDir | None = None, cluster=None, retries: int = 2,
            rt: Runtime | None = None, progress: bool = True) -> Execution:
    """Run the plan's unfinished tasks and return every task's output in task order: on ``cluster`` (a
    :class:`geodrain.distributed.ClusterInfo`) or in this process with ``rt`` (default: the process's
    runtime for ``run``)."""
    t0 = time.perf_counter()
    keys = [t.key for t in plan.tasks]
    done = work.finished(keys) if work is not None else set()
    todo = [t for t in plan.tasks if t.key not in done]
    computed: list[str] = []
    memory: dict[str, TaskOutput] = {}
    stats = StreamStats()
    bar = Progress(plan, progress)
    if work is not None:
        work.log(event="start", tasks=len(keys), reused=len(done), to_compute=len(todo),
                 workers=getattr(cluster, "workers", 0))
        if done and progress:
            print(f"geodrain: resuming: {len(done)} of {len(keys)} tasks already done in {work.path}", file=sys.stderr)
        for k in sorted(done):
            bar.task(work.load(k), computed=False)

    spec_of = {t.key: t for t in plan.tasks}

    def arrived(out: TaskOutput) -> None:
        if work is not None:
            work.save(out, plan.groups_by_index[spec_of[out.key].group].crs)
        else:
            memory[out.key] = out
        computed.append(out.key)
        bar.task(out, computed=True)

    try:
        if cluster is not None and todo:
            from .distributed import run_on_cluster

            for out in run_on_cluster(cluster, todo, run, retries=retries):
                arrived(out)
        elif todo and cluster is None:
            def on_block(spec, block) -> None:
                bar.block(spec.key, block.plan.nrows * block.plan.ncols / max(spec.windows, 1), block.n_windows)

            for out in run_tasks(todo, run, rt=rt, on_block=on_block, stats=stats):
                out.info = {**(rt.info() if rt is not None else {}), "worker": "local"}
                arrived(out)
    finally:
        bar.close()
    outputs = [work.load(k) if work is not None else memory[k] for k in keys]
    if work is not None:
        work.log(event="end", computed=len(computed))
    return Execution(outputs, computed, sorted(done), stats, time.perf_counter() - t0)


def merged(plan: RunPlan, outputs: list[TaskOutput], threshold: float, radius_m: float, *, scoring=None,
           dem=None) -> tuple[Candidates, Crossings]:
    """All tasks' candidates in the output CRS (in task order) and the crossings they give at ``threshold``
    and ``radius_m`` (:func:`geodrain.postprocess.report`: with the bundle's calibrated ``scoring`` and a
    ``dem`` read in the output CRS where given), inside the AOI if there is one."""
    from pyproj import Transformer

    from .postprocess import report

    parts = []
    out_wkt = plan.crs.to_wkt()
    transformers: dict[int, Transformer] = {}
    for spec, out in zip(plan.tasks, outputs):
        c = out.candidates
        g = plan.groups_by_index[spec.group]
        if len(c) and g.crs != plan.crs:
            tr = transformers.setdefault(spec.group, Transformer.from_crs(g.crs.to_wkt(), out_wkt, always_xy=True))
            xy = np.column_stack(tr.transform(c.xy[:, 0], c.xy[:, 1]))
            centre = np.column_stack(tr.transform(c.centre[:, 0], c.centre[:, 1]))
            c = Candidates(xy, c.score, c.size, centre, c.floor)
        parts.append(c)
    cands = Candidates.concat(parts, floor=min((o.candidates.floor for o in outputs), default=threshold))
    units = float(plan.crs.linear_units_factor[1])
    inside = None
    aoi_group = next((g for g in plan.groups if g.aoi is not None), None)
    if aoi_group is not None:
        if aoi_group.crs == plan.crs:
            inside = aoi_group.aoi.contains
        else:
            to_aoi = Transformer.from_crs(out_wkt, aoi_group.crs.to_wkt(), always_xy=True)

            def inside(xy: np.ndarray) -> np.ndarray:
                return aoi_group.aoi.contains(np.column_stack(to_aoi.transform(xy[:, 0], xy[:, 1])))
    return cands, report(cands, threshold, radius_m / units, inside=inside, scoring=scoring, dem=dem, units_m=units)
