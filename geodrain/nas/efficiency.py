"""e(n): the inference efficiency of an architecture on the device it is deployed on, without training.

Each architecture is built with random weights on the device and timed with the engine configuration that
detection uses when nothing was tuned (:func:`geodrain.infer.runtime.default_config`: fp16 channels-last
CUDA graphs on a GPU, fp32 on the CPU) over a short sweep of batch sizes; throughput is the best chips/s of
the sweep, latency the time of one chip at batch 1. Repetitions are kept small on purpose (the whole
175-architecture sweep takes about a minute on a GPU) and the medians are what is stored.
"""

from __future__ import annotations

import gc
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..errors import SearchError
from ..infer.runtime import default_config, measure_chip_throughput
from ..model.arch import Arch
from ..model.bundle import device_class
from ..model.sppnet import WINDOW_PX, build_model

METRICS = ("throughput", "latency")
GPU_BATCHES = (128, 256, 512, 1024)
CPU_BATCHES = (1, 4)
GPU_ITERS = 5
CPU_ITERS = 3


@dataclass(frozen=True)
class EfficiencySetup:
    """Where and how e(n) is measured; its :meth:`signature` names the stored measurements."""

    device: str
    device_class: str
    context_px: int
    bands: int
    batch_sizes: tuple[int, ...]
    iters: int

    @classmethod
    def for_device(cls, device: torch.device, context_px: int, bands: int = 4,
                   batch_sizes: tuple[int, ...] | None = None, iters: int | None = None) -> "EfficiencySetup":
        cuda = device.type == "cuda"
        sizes = tuple(sorted(set(batch_sizes))) if batch_sizes else (GPU_BATCHES if cuda else CPU_BATCHES)
        if min(sizes) < 1:
            raise SearchError("efficiency batch sizes must be positive")
        return cls(str(device), device_class(device), int(context_px), int(bands), sizes,
                   int(iters or (GPU_ITERS if cuda else CPU_ITERS)))

    @property
    def input_px(self) -> int:
        return WINDOW_PX + 2 * self.context_px

    @property
    def engine(self) -> str:
        return default_config(torch.device(self.device), 1).label

    def signature(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("device")  # the class (GPU model) matters, not which of several identical GPUs
        d["batch_sizes"] = list(self.batch_sizes)
        d["engine"] = self.engine
        return d


@dataclass
class Measurement:
    """One architecture's measured efficiency."""

    key: str
    chips_per_s: float                  # best throughput over the batch sweep
    best_batch: int
    latency_ms: float                   # one chip at batch 1
    sweep: dict[int, float] = field(default_factory=dict)   # batch size -> chips/s (nan: failed, e.g. OOM)
    engine: str = ""

    def efficiency(self, metric: str) -> float:
        """e(n) in chips/s, higher is better: best-batch throughput, or 1 / latency at batch 1."""
        if metric == "latency":
            return 1e3 / self.latency_ms
        return self.chips_per_s

    def to_attrs(self) -> dict[str, Any]:
        d = asdict(self)
        d["sweep"] = {str(b): (v if math.isfinite(v) else None) for b, v in self.sweep.items()}
        return d

    @classmethod
    def from_attrs(cls, d: dict[str, Any]) -> "Measurement":
        sweep = {int(b): (float(v) if v is not None else math.nan) for b, v in d.get("sweep", {}).items()}
        return cls(d["key"], float(d["chips_per_s"]), int(d["best_batch"]), float(d["latency_ms"]), sweep,
                   d.get("engine", ""))


def _chips_per_s(model: torch.nn.Module, device: torch.device, batch: int, iters: int) -> float:
    try:
        return float(measure_chip_throughput(model, default_config(device, batch), iters=iters)["chips_per_s"])
    except torch.cuda.OutOfMemoryError:
        return math.nan
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def measure_arch(arch: Arch, setup: EfficiencySetup) -> Measurement:
    """Throughput over the batch sweep and latency at batch 1 of ``arch`` (random weights) on the device."""
    device = torch.device(setup.device)
    with torch.device(device):
        model = build_model(Arch(arch.k1, arch.spp, arch.fc, arch.width, setup.bands), setup.context_px).eval()
    try:
        sweep = {b: _chips_per_s(model, device, b, setup.iters) for b in setup.batch_sizes}
        b1 = sweep[1] if 1 in sweep else _chips_per_s(model, device, 1, setup.iters)
    finally:
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    finite = {b: v for b, v in sweep.items() if math.isfinite(v)}
    if not finite or not math.isfinite(b1):
        raise SearchError(f"could not time {arch.key} on {setup.device_class} at any batch size (out of memory?)")
    best = max(finite, key=lambda b: finite[b])
    return Measurement(arch.key, finite[best], best, 1e3 / b1, sweep, setup.engine)
