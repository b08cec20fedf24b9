"""Stage cost models for the IOS dynamic programme: what one stage (concurrent groups) costs, in seconds.

``cuda-graph``  the stage captured in a CUDA graph (its groups on separate streams, with fork and join)
                and timed over replays with CUDA events: the measurement IOS prescribes.
``cpu``         each operator run on the CPU and timed by the wall clock. The CPU has no streams, so the
                groups run one after another and a stage costs the sum of its operators.
``analytic``    a FLOP/byte model of a GPU: each operator costs a launch plus the larger of its arithmetic
                and memory times; concurrent groups overlap (the stage costs its slowest group, but at
                least the device's total work) and each extra stream costs a fork/join overhead.

Every model is evaluated on a reference environment: the values of every operator for one input batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .dag import Stage
from .executor import ScheduleExecutor, stage_runner
from .graph import OpGraph
from .timing import capture_graph, time_host, time_replays

COST_MODELS = ("cuda-graph", "cpu", "analytic")

COST_NOTES = {
    "cuda-graph": "stage latencies measured on the GPU: each candidate stage captured in a CUDA graph "
                  "(groups on separate streams) and timed over replays with CUDA events",
    "cpu": "no CUDA: operator latencies measured on the CPU, where groups run sequentially (no streams), so "
           "a parallel stage costs the sum of its operators and no schedule beats sequential execution",
    "analytic": "no measurement: stage latencies from a FLOP/byte model of a generic GPU (launch overhead, "
                "roofline per operator, overlapping streams, fork/join overhead); indicative only",
}

StageCostFn = Callable[[Stage], float]


def resolve_cost_model(name: str, device: torch.device) -> str:
    """'auto' -> cuda-graph on a CUDA device, cpu otherwise; 'cuda-graph' needs CUDA."""
    name = (name or "auto").lower()
    if name == "auto":
        return "cuda-graph" if device.type == "cuda" else "cpu"
    if name not in COST_MODELS:
        raise ValueError(f"unknown cost model {name!r}: use auto, {', '.join(COST_MODELS)}")
    if name == "cuda-graph" and device.type != "cuda":
        raise ValueError("the cuda-graph cost model needs a CUDA device")
    return name


class CudaGraphCost:
    """A stage's GPU latency: captured once in a CUDA graph, median per-replay time over replays."""

    def __init__(self, executor: ScheduleExecutor, env: dict, replays: int = 20, repeats: int = 5):
        self.executor, self.env = executor, env
        self.replays, self.repeats = replays, repeats

    def __call__(self, stage: Stage) -> float:
        dev = self.executor.device
        graph = capture_graph(stage_runner(self.executor, stage, self.env), dev, warmup=1)
        return time_replays(graph, dev, self.replays, self.repeats, warmup=2)


class CpuCost:
    """A stage's CPU latency: the sum of its operators' wall-clock medians (the CPU runs groups one after
    another). Each operator is timed once, so every schedule of a block costs the same up to rounding."""

    def __init__(self, executor: ScheduleExecutor, env: dict, repeats: int = 5):
        self.executor, self.env, self.repeats = executor, env, repeats
        self.op_times: dict[int, float] = {}

    def op_time(self, op: int) -> float:
        t = self.op_times.get(op)
        if t is None:
            run = stage_runner(self.executor, (((op,),)), self.env)
            t = self.op_times[op] = time_host(run, self.repeats, warmup=1)
        return t

    def __call__(self, stage: Stage) -> float:
        return sum(self.op_time(op) for group in stage for op in group)


@dataclass(frozen=True)
class GpuModel:
    """Parameters of the analytic model: a recent data-centre GPU in fp32, kernels replayed from a CUDA
    graph (where a fork/join is a graph edge, cheaper than an eager event record + wait)."""

    flops: float = 50e12            # FLOP/s
    bandwidth: float = 2.0e12       # bytes/s
    launch: float = 3e-6            # s per kernel node
    fork_join: float = 1e-6         # s per extra concurrent stream in a stage


class AnalyticCost:
    """A stage's latency predicted from the FLOPs and bytes of its operators."""

    def __init__(self, graph: OpGraph, env: dict, model: GpuModel = GpuModel()):
        self.model = model
        self.work = [op_work(graph, i, env) for i in range(len(graph.ops))]

    def op_time(self, op: int) -> float:
        flops, nbytes = self.work[op]
        return max(flops / self.model.flops, nbytes / self.model.bandwidth)

    def __call__(self, stage: Stage) -> float:
        serial = [sum(self.model.launch + self.op_time(op) for op in g) for g in stage]
        total = sum(self.op_time(op) for g in stage for op in g)
        return max(max(serial), total) + self.model.fork_join * (len(stage) - 1)


def op_work(graph: OpGraph, index: int, env: dict) -> tuple[float, float]:
    """(FLOPs, bytes moved) of one operator, from the shapes in a reference environment."""
    op = graph.ops[index]
    flops = 0.0
    nbytes = 0.0
    for node in op.nodes:
        out = env.get(node)
        if not isinstance(out, torch.Tensor):
            continue
        nbytes += out.numel() * out.element_size()
        mod = graph.module_of(node)
        if mod is not None:
            nbytes += sum(p.numel() * p.element_size() for p in mod.parameters(recurse=False))
        if isinstance(mod, nn.modules.conv._ConvNd):
            k = math.prod(mod.kernel_size) * mod.in_channels // mod.groups
            flops += 2.0 * out.numel() * k
        elif isinstance(mod, nn.Linear):
            flops += 2.0 * out.numel() * mod.in_features
        else:
            flops += float(out.numel())
    for src in op.nodes[0].all_input_nodes:
        val = env.get(src)
        if isinstance(val, torch.Tensor):
            nbytes += val.numel() * val.element_size()
    return flops, nbytes


def make_cost(name: str, graph: OpGraph, executor: ScheduleExecutor, env: dict[Any, Any],
              replays: int = 20, repeats: int = 5) -> StageCostFn:
    if name == "cuda-graph":
        return CudaGraphCost(executor, env, replays, repeats)
    if name == "cpu":
        return CpuCost(executor, env, repeats)
    return AnalyticCost(graph, env)
