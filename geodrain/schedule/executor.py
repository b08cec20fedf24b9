"""Execute an IOS schedule: stages in order, the groups of a stage concurrently on CUDA streams.

Fork and join follow PyTorch's multi-stream rules, so the whole schedule can be captured in one CUDA graph
(side streams branch from the capturing stream and rejoin it before the stage ends): each side stream
first waits for an event recorded on the current stream, the first group runs on the current stream
itself, and the current stream waits for every side stream (join) before the next stage. Every side stream's
work is thus ordered after all earlier work of the current stream, which keeps the caching allocator's
reuse of freed blocks safe. Intermediate values live until the end of the call.

Without CUDA the groups of a stage run one after another (CPU execution has no streams).
"""

from __future__ import annotations

from typing import Any

import torch

from .dag import Schedule, Stage
from .graph import OpGraph


_STREAMS: dict[torch.device, list[torch.cuda.Stream]] = {}


def side_streams(device: torch.device, n: int) -> list[torch.cuda.Stream]:
    """``n`` side streams of ``device`` from a pool shared by all executors (created once: every stream
    that runs a cuBLAS call keeps a workspace of its own)."""
    pool = _STREAMS.setdefault(device, [])
    while len(pool) < n:
        pool.append(torch.cuda.Stream(device))
    return pool[:n]


class ScheduleExecutor:
    """Callable like the traced model: ``executor(x)`` runs ``schedule`` (global operator indices)."""

    def __init__(self, graph: OpGraph, schedule: Schedule, device: torch.device | str):
        self.graph = graph
        self.schedule = list(schedule)
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        if self.cuda and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        width = max((len(stage) for stage in self.schedule), default=1)
        self.streams = side_streams(self.device, width - 1) if self.cuda else []

    def __call__(self, *inputs: Any) -> Any:
        env = self.graph.start(inputs)
        for stage in self.schedule:
            self.run_stage(stage, env)
        return self.graph.result(env)

    def run_group(self, group: tuple[int, ...], env: dict) -> None:
        for op in group:
            self.graph.run_op(op, env)

    def run_stage(self, stage: Stage, env: dict) -> None:
        if not self.cuda or len(stage) == 1:
            for group in stage:
                self.run_group(group, env)
            return
        if len(stage) - 1 > len(self.streams):
            self.streams = side_streams(self.device, len(stage) - 1)
        main = torch.cuda.current_stream(self.device)
        sides = self.streams[:len(stage) - 1]
        fork = torch.cuda.Event()          # fork: recorded before any work of this stage is queued on main
        fork.record(main)
        for side in sides:
            side.wait_event(fork)
        self.run_group(stage[0], env)
        for side, group in zip(sides, stage[1:]):
            with torch.cuda.stream(side):
                self.run_group(group, env)
        for side in sides:                 # join
            main.wait_stream(side)


def stage_runner(executor: ScheduleExecutor, stage: Stage, env: dict):
    """A closure running one stage on a private copy of a reference environment (for timing)."""
    local = dict(env)

    def run() -> None:
        executor.run_stage(stage, local)

    return run
