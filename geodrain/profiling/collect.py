"""Profile one engine at one batch size with torch.profiler: latency, kernel/operator time by class,
CUDA API time by call, peak memory.

On CUDA each batch size gets a *cold* profile (engine built, first call: lazy module/library loads, cuDNN
set-up, CUDA-graph capture) and a *steady* profile (``profile_iters`` warm calls). Kernel shares come from
the steady profile; API shares are given for both. Without CUDA, CPU operator self times are classified
instead and peak memory is read from the profiler's allocation events.
"""

from __future__ import annotations

import gc
import statistics
from dataclasses import dataclass, field

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from ..infer.runtime import ChipRunner, RunConfig, time_call
from .classify import (API_CLASSES, KERNEL_CLASSES, classify_api, classify_cpu_op, classify_kernel,
                       is_cuda_api, shares)

MB = 1024.0 ** 2


@dataclass
class BatchProfile:
    """Everything measured at one batch size. Times per call (one batch) in microseconds."""

    batch_size: int
    batch_ms: float = float("nan")
    chips_per_s: float = float("nan")
    peak_mb: float = float("nan")                 # the engine's own peak: weights, activations, workspaces
    reserved_mb: float | None = None              # the allocator's peak reservation (whole process)
    cold_peak_mb: float | None = None             # CUDA: engine set-up and first call (graph capture)
    steady_peak_mb: float | None = None           # CUDA: later calls
    compute_us: dict[str, float] = field(default_factory=dict)      # kernel (GPU) or operator (CPU) time
    compute_share: dict[str, float] = field(default_factory=dict)
    copy_us: float = 0.0
    api_us: dict[str, float] = field(default_factory=dict)          # steady state
    api_share: dict[str, float] = field(default_factory=dict)
    api_cold_us: dict[str, float] = field(default_factory=dict)     # first call, engine set-up included
    api_cold_share: dict[str, float] = field(default_factory=dict)
    top_api: list[tuple[str, float]] = field(default_factory=list)
    top_api_cold: list[tuple[str, float]] = field(default_factory=list)
    top_kernels: list[tuple[str, str, float]] = field(default_factory=list)
    error: str | None = None

    @property
    def us_per_chip(self) -> float:
        return 1e3 * self.batch_ms / self.batch_size

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        d = asdict(self)
        d["us_per_chip"] = self.us_per_chip
        return d


def random_chips(bands: int, side: int, batch: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, bands, side, side, generator=g) * 255


def profile_batch(model: torch.nn.Module, config: RunConfig, iters: int = 20, profile_iters: int = 10,
                  seed: int = 0) -> BatchProfile:
    """Profile ``model`` run as ``config`` (a torch engine) at ``config.batch_size``."""
    dev = torch.device(config.device)
    res = BatchProfile(config.batch_size)
    chips = random_chips(model.arch.bands, model.input_px, config.batch_size, seed)
    if dev.type == "cuda":
        _profile_cuda(model, config, chips, res, iters, profile_iters)
    else:
        _profile_cpu(model, config, chips, res, iters, profile_iters)
    return res


def _latency(runner: ChipRunner, x, res: BatchProfile, iters: int) -> None:
    med = statistics.median(time_call(lambda: runner(x), runner.device, iters=iters, warmup=2))
    res.batch_ms = med * 1e3
    res.chips_per_s = res.batch_size / med


def _profile_cuda(model, config: RunConfig, chips, res: BatchProfile, iters: int, profile_iters: int) -> None:
    dev = torch.device(config.device)
    acts = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    gc.collect()  # earlier work's unreachable tensors must not be freed inside the measurement
    torch.cuda.synchronize(dev)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    with profile(activities=acts) as cold:
        runner = ChipRunner(model, config)
        x = runner._to_device(chips)
        runner(x)
        torch.cuda.synchronize(dev)
    res.api_cold_us, res.top_api_cold = _api_times(cold, 1)
    res.api_cold_share = shares(res.api_cold_us, API_CLASSES)
    res.cold_peak_mb = (torch.cuda.max_memory_allocated(dev) - base) / MB
    torch.cuda.reset_peak_memory_stats(dev)
    _latency(runner, x, res, iters)
    res.steady_peak_mb = (torch.cuda.max_memory_allocated(dev) - base) / MB
    # a CUDA graph's private pool counts as allocated only while it is captured: take the larger
    res.peak_mb = max(res.cold_peak_mb, res.steady_peak_mb)
    res.reserved_mb = torch.cuda.max_memory_reserved(dev) / MB
    torch.cuda.synchronize(dev)
    with profile(activities=acts) as steady:
        for _ in range(profile_iters):
            runner(x)
        torch.cuda.synchronize(dev)
    res.compute_us, res.copy_us, res.top_kernels = _kernel_times(steady, profile_iters)
    res.compute_share = shares(res.compute_us, KERNEL_CLASSES)
    res.api_us, res.top_api = _api_times(steady, profile_iters)
    res.api_share = shares(res.api_us, API_CLASSES)
    del runner, x
    torch.cuda.empty_cache()


def _profile_cpu(model, config: RunConfig, chips, res: BatchProfile, iters: int, profile_iters: int) -> None:
    runner = ChipRunner(model, config)
    x = chips if config.backend == "torch" else chips.numpy()
    runner(x)
    _latency(runner, x, res, iters)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(profile_iters):
            runner(x)
    res.compute_us, res.top_kernels = _cpu_op_times(prof, profile_iters)
    res.compute_share = shares(res.compute_us, KERNEL_CLASSES)
    params = sum(p.numel() * p.element_size() for p in runner.module.parameters()) if runner.module else 0
    res.peak_mb = (params + _peak_live_bytes(prof)) / MB


def _kernel_times(prof, n: int) -> tuple[dict[str, float], float, list[tuple[str, str, float]]]:
    """Per-call kernel time by class (µs), memcpy/memset time, and the heaviest kernels."""
    times = {c: 0.0 for c in KERNEL_CLASSES}
    copy = 0.0
    per_name: list[tuple[str, str, float]] = []
    for e in prof.key_averages():
        if e.device_type != DeviceType.CUDA:
            continue
        t = e.self_device_time_total / n
        cls = classify_kernel(e.key)
        if cls == "copy":
            copy += t
            continue
        times[cls] += t
        per_name.append((e.key[:120], cls, t))
    per_name.sort(key=lambda r: -r[2])
    return times, copy, per_name[:10]


def _api_times(prof, n: int) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Per-call CUDA API time by class (µs) and the most expensive calls by name."""
    times = {c: 0.0 for c in API_CLASSES}
    per_name: list[tuple[str, float]] = []
    for e in prof.key_averages():
        if e.device_type != DeviceType.CPU or not is_cuda_api(e.key):
            continue
        t = e.cpu_time_total / n
        times[classify_api(e.key)] += t
        per_name.append((e.key, t))
    per_name.sort(key=lambda r: -r[1])
    return times, per_name[:10]


def _cpu_op_times(prof, n: int) -> tuple[dict[str, float], list[tuple[str, str, float]]]:
    times = {c: 0.0 for c in KERNEL_CLASSES}
    per_name: list[tuple[str, str, float]] = []
    for e in prof.key_averages():
        if e.device_type != DeviceType.CPU or not e.key.startswith("aten::"):
            continue
        t = e.self_cpu_time_total / n
        cls = classify_cpu_op(e.key)
        times[cls] += t
        per_name.append((e.key, cls, t))
    per_name.sort(key=lambda r: -r[2])
    return times, per_name[:10]


def _peak_live_bytes(prof) -> float:
    """Largest net CPU allocation over the profiled calls: operators' own allocations (net of their frees)
    at their start, plus the frees the profiler records outside operators (``[memory]`` events)."""
    steps = sorted((e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                   for e in prof.events())
    live = peak = 0
    for _, delta in steps:
        live += delta
        peak = max(peak, live)
    return float(peak)
