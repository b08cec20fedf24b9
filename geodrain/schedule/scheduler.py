"""Schedule a bundle's model with IOS per batch size, time the engines, record the result.

Per batch size: trace the model into blocks, run the IOS dynamic programme on each non-trivial block with
the chosen cost model, then compare the sequential schedule (one operator after another) with the
optimized one, both executed by :class:`~geodrain.schedule.executor.ScheduleExecutor` and, on CUDA,
captured whole in one CUDA graph each and timed over interleaved replays. The optimized schedule's output
is checked against the eager model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import DeviceError
from ..infer.runtime import GraphedCall, RunConfig, prepare_module, resolve_device
from ..model.bundle import Bundle, device_class, load_bundle
from .cost import COST_NOTES, make_cost, resolve_cost_model
from .dag import Schedule
from .engines import fastest, time_engines
from .executor import ScheduleExecutor
from .graph import Block, OpGraph, trace_model
from .ios import optimize_block
from .report import BatchResult, BlockSchedule, ScheduleReport, check_report_dir
from .timing import compare_events, compare_host, compare_replays

MIN_SWEEP = 64          # the sweep always covers 1, 2, 4, ... 64 (unless capped lower)
RISE = 1.02             # beyond 64, keep doubling while throughput rises by at least 2 %


@dataclass(frozen=True)
class ScheduleOptions:
    """IOS limits and measurement effort."""

    max_group: int = 3      # r: operators per group
    max_groups: int = 8     # s: groups per stage
    cost: str = "auto"      # auto | cuda-graph | cpu | analytic
    replays: int = 20       # CUDA-graph replays per timed stage sample
    repeats: int = 5        # timed samples per stage or schedule (median)
    seed: int = 0


def random_chips(model: torch.nn.Module, batch: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    side, bands = model.input_px, model.arch.bands
    return (torch.rand(batch, bands, side, side, generator=g) * 255).to(device)


def sequential(graph: OpGraph) -> Schedule:
    return [((i,),) for i in range(len(graph.ops))]


def optimize_graph(graph: OpGraph, cost: Callable, options: ScheduleOptions
                   ) -> tuple[Schedule, list[BlockSchedule]]:
    """The IOS schedule of every block, concatenated, and the non-trivial blocks' details."""
    schedule: Schedule = []
    details: list[BlockSchedule] = []
    for block in graph.blocks:
        res = optimize_block(block.dag, _local_cost(block, cost), options.max_group, options.max_groups)
        schedule += [block.to_global(stage) for stage in res.schedule]
        if block.trivial:
            continue
        seq = sum(_stage_cost(res.stage_costs, ((i,),), block, cost) for i in range(block.dag.n))
        details.append(BlockSchedule(block.index, [graph.stage_names(block.to_global(s)) for s in res.schedule],
                                     res.cost * 1e3, seq * 1e3, res.states, res.stages_costed))
    return schedule, details


def _stage_cost(known: dict, stage, block: Block, cost: Callable) -> float:
    c = known.get(stage)
    return c if c is not None else cost(block.to_global(stage))


def _local_cost(block: Block, cost: Callable) -> Callable:
    return lambda stage: cost(block.to_global(stage))


def schedule_batch(graph: OpGraph, model: torch.nn.Module, device: torch.device, batch: int,
                   cost_model: str, options: ScheduleOptions) -> BatchResult:
    """IOS at one batch size: optimize, then time sequential vs optimized and check the output."""
    x = random_chips(model, batch, device, options.seed)
    with torch.inference_mode():
        env = graph.evaluate(x)
        probe = ScheduleExecutor(graph, [], device)
        cost = make_cost(cost_model, graph, probe, env, options.replays, options.repeats)
        schedule, details = optimize_graph(graph, cost, options)
        del env, cost
        seq_exec = ScheduleExecutor(graph, sequential(graph), device)
        opt_exec = ScheduleExecutor(graph, schedule, device)
        reference = model(x)
        if device.type == "cuda":
            seq_graph, opt_graph = GraphedCall(seq_exec, x), GraphedCall(opt_exec, x)
            t_seq, t_opt = compare_replays([seq_graph.graph, opt_graph.graph], device, options.repeats)
            out = opt_graph(x).clone()
            del seq_graph, opt_graph
        else:
            t_seq, t_opt = compare_host([lambda: seq_exec(x), lambda: opt_exec(x)], options.repeats)
            out = opt_exec(x)
        if device.type == "cuda":
            (t_eager,) = compare_events([lambda: model(x)], device, 3 * options.repeats)
        else:
            (t_eager,) = compare_host([lambda: model(x)], options.repeats)
    diff = float((out.float() - reference.float()).abs().max())
    equal = bool(torch.allclose(out.float(), reference.float(), rtol=1e-4, atol=1e-5))
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return BatchResult(batch, t_seq * 1e3, t_opt * 1e3, t_eager * 1e3, diff, equal, details)


def batch_sweep(batch_sizes: Sequence[int] | None, max_batch: int,
                run: Callable[[int], BatchResult]) -> Iterator[BatchResult]:
    """Given sizes, or 1, 2, 4 ... (at least to 64, then while throughput rises, at most ``max_batch``)."""
    if batch_sizes:
        for b in batch_sizes:
            yield run(b)
        return
    b, prev = 1, None
    while b <= max_batch:
        res = run(b)
        yield res
        if b >= MIN_SWEEP and prev is not None and not res.chips_per_s >= RISE * prev.chips_per_s:
            return
        prev, b = res, b * 2


def schedule_model(model: torch.nn.Module, device: torch.device, batch_sizes: Sequence[int] | None = None,
                   max_batch: int = 1024, options: ScheduleOptions = ScheduleOptions(),
                   progress: bool = True) -> tuple[OpGraph, str, list[BatchResult], list[str]]:
    """Trace ``model`` (already on ``device``) and schedule it per batch size; (graph, cost model,
    per-batch results, notes)."""
    try:
        cost_model = resolve_cost_model(options.cost, device)
    except ValueError as e:
        raise DeviceError(str(e)) from None
    graph = trace_model(model)
    notes: list[str] = []
    results: list[BatchResult] = []
    bar = tqdm(desc="IOS schedule", unit="batch", disable=not progress,
               total=len(batch_sizes) if batch_sizes else None)
    run = lambda b: schedule_batch(graph, model, device, b, cost_model, options)  # noqa: E731
    try:
        for res in batch_sweep(batch_sizes, max_batch, run):
            results.append(res)
            bar.update(1)
            bar.set_postfix(batch=res.batch_size, speedup=f"{res.speedup:.2f}")
    except torch.cuda.OutOfMemoryError:
        done = results[-1].batch_size if results else 0
        notes.append(f"out of GPU memory after batch {done}: sweep stopped")
        torch.cuda.empty_cache()
    finally:
        bar.close()
    return graph, cost_model, results, notes


def schedule_bundle(bundle: Bundle | str | Path | None, *, device: str | torch.device = "auto",
                    batch_sizes: Sequence[int] | None = None, max_batch: int = 1024,
                    options: ScheduleOptions = ScheduleOptions(), engines: bool = True,
                    engine_batch: int | None = None, engine_iters: int = 10, record: bool = False,
                    out_dir: str | Path | None = None, overwrite: bool = False,
                    progress: bool = True) -> ScheduleReport:
    """Run IOS on a bundle's model, time the engines, write the report folder and record the fastest
    engine and the schedule in the bundle's manifest under ``inference[device_class]``."""
    if out_dir is not None:
        check_report_dir(out_dir, overwrite)
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    dev = resolve_device(device)
    model = prepare_module(bundle.model, RunConfig("torch", str(dev), "fp32", False, False, 1))
    graph, cost_model, results, notes = schedule_model(model, dev, batch_sizes, max_batch, options, progress)
    if cost_model == "cpu":
        notes.append("on the CPU the optimized and the sequential schedule execute the same operators "
                     "one after another: their difference is noise")
    report = _new_report(bundle, dev, graph, cost_model, options, results, notes)
    if engines and results:
        eb = engine_batch or report.best_batch().batch_size
        bar = tqdm(desc="engines", disable=not progress, unit="engine")
        report.engines = time_engines(bundle.model, dev, eb, bundle.onnx_path, engine_iters, options.seed,
                                      lambda label: (bar.update(1), bar.set_postfix_str(label)))
        bar.close()
        report.best_engine = fastest(report.engines)
    if record and results:
        bundle.update_manifest(inference={report.device_class: report.manifest_entry()})
    if out_dir is not None:
        report.write(out_dir, overwrite)
    return report


def _new_report(bundle: Bundle, dev: torch.device, graph: OpGraph, cost_model: str, options: ScheduleOptions,
                results: list[BatchResult], notes: list[str]) -> ScheduleReport:
    timing = ("whole schedule captured in one CUDA graph, median per replay (CUDA events)"
              if dev.type == "cuda" else "CPU wall clock, median of runs")
    blocks = [{"index": b.index, "ops": graph.op_names(b.ops), "width": b.width} for b in graph.blocks]
    notes = list(notes)
    if any(not r.outputs_equal for r in results):
        notes.append("the optimized schedule's output differs from the eager model's at some batch size")
    if any(math.isnan(r.optimized_ms) for r in results):
        notes.append("some latencies could not be measured")
    return ScheduleReport(
        bundle=str(bundle.path), model_id=bundle.model_id, notation=bundle.arch.notation, device=str(dev),
        device_class=device_class(dev), cost_model=cost_model, cost_note=COST_NOTES[cost_model], timing=timing,
        max_group=options.max_group, max_groups=options.max_groups, operators=[op.name for op in graph.ops],
        blocks=blocks, batches=results, notes=notes,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), torch_version=torch.__version__)
