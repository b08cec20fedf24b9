"""Timing primitives: CUDA-graph capture and event-timed replays, host wall-clock medians.

Operators of this model take microseconds on a GPU, less than the Python overhead of launching them, so
GPU candidates are captured in a CUDA graph and timed as replays between CUDA events.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


_WARMUP: dict[torch.device, torch.cuda.Stream] = {}


def _warmup_stream(device: torch.device) -> torch.cuda.Stream:
    """One warm-up stream per device, reused by every capture."""
    if device not in _WARMUP:
        _WARMUP[device] = torch.cuda.Stream(device)
    return _WARMUP[device]


def capture_graph(fn: Callable[[], object], device: torch.device, warmup: int = 2) -> torch.cuda.CUDAGraph:
    """Warm ``fn`` up on a side stream (handles, workspaces, lazy kernel loads), then capture it."""
    stream = _warmup_stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.inference_mode():
        with torch.cuda.stream(stream):
            for _ in range(warmup):
                fn()
        torch.cuda.current_stream(device).wait_stream(stream)
        torch.cuda.synchronize(device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
    torch.cuda.synchronize(device)
    return graph


def time_replays(graph: torch.cuda.CUDAGraph, device: torch.device, replays: int = 20,
                 repeats: int = 5, warmup: int = 3) -> float:
    """Median seconds per replay over ``repeats`` runs of ``replays`` back-to-back replays."""
    for _ in range(warmup):
        graph.replay()
    torch.cuda.synchronize(device)
    per_replay = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        per_replay.append(start.elapsed_time(end) / 1e3 / replays)
    return statistics.median(per_replay)


def time_host(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
              device: torch.device | None = None) -> float:
    """Median wall-clock seconds of ``fn`` (synchronizing CUDA around each call when given a CUDA device)."""
    sync = (lambda: torch.cuda.synchronize(device)) if device is not None and device.type == "cuda" else None
    with torch.inference_mode():
        for _ in range(warmup):
            fn()
        if sync:
            sync()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            if sync:
                sync()
            times.append(time.perf_counter() - t0)
    return statistics.median(times) if times else float("nan")


def replays_for(graph: torch.cuda.CUDAGraph, device: torch.device, target_s: float = 0.02,
                most: int = 50) -> int:
    """How many back-to-back replays take about ``target_s`` (at least 3, at most ``most``)."""
    graph.replay()
    torch.cuda.synchronize(device)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    graph.replay()
    end.record()
    end.synchronize()
    one = max(start.elapsed_time(end) / 1e3, 1e-6)
    return int(min(most, max(3, round(target_s / one))))


def compare_replays(graphs: list[torch.cuda.CUDAGraph], device: torch.device, repeats: int = 5,
                    target_s: float = 0.02) -> list[float]:
    """Median seconds per replay of each graph, the graphs' timed runs interleaved so that clock and
    thermal drift affect them alike."""
    counts = [replays_for(g, device, target_s) for g in graphs]
    samples: list[list[float]] = [[] for _ in graphs]
    for _ in range(repeats):
        for g, n, out in zip(graphs, counts, samples):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                g.replay()
            end.record()
            end.synchronize()
            out.append(start.elapsed_time(end) / 1e3 / n)
    return [statistics.median(s) for s in samples]


def compare_host(fns: list[Callable[[], object]], repeats: int = 5, device: torch.device | None = None
                 ) -> list[float]:
    """Median wall-clock seconds of each callable, their runs interleaved."""
    samples: list[list[float]] = [[] for _ in fns]
    for fn in fns:
        time_host(fn, repeats=0, warmup=1, device=device)
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            out.append(time_host(fn, repeats=1, warmup=0, device=device))
    return [statistics.median(s) for s in samples]


def compare_events(fns: list[Callable[[], object]], device: torch.device, repeats: int = 5) -> list[float]:
    """Median seconds of each callable between CUDA events recorded before and after one call (launch
    overhead included, host synchronization excluded); runs interleaved, after one warm-up call each."""
    samples: list[list[float]] = [[] for _ in fns]
    with torch.inference_mode():
        for fn in fns:
            fn()
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            for fn, out in zip(fns, samples):
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                out.append(start.elapsed_time(end) / 1e3)
    return [statistics.median(s) for s in samples]
