"""Memory bounds: the batch and block sizes whose working set fits the memory a device has free.

A batch of chips (chip engine) or a block of pixels (dense engine) needs memory for every intermediate output
of the model: :func:`chip_bytes` and :func:`dense_bytes` count them (a forward pass of one chip, or of a small
block, with hooks on the model's layers, in the run's precision) and so overestimate the peak, which frees
outputs as it goes. :func:`fit` lowers a batch or block size whose working set would take more than
``MEMORY_FRACTION`` of what the device has free (``MemAvailable`` and any cgroup limit on the host, free CUDA
memory on a GPU) and says so: a setting is bounded, never a run killed by the kernel after minutes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:   # torch is imported to measure a torch model; the ONNX Runtime dense engine needs none
    import torch

MEMORY_FRACTION = 0.5      # of the free memory, for the model's working set (the rest: reader, merging, others)
_ELEMENT = {"fp32": 4, "fp16": 2, "bf16": 2}


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's free memory, or the host's MemAvailable within any cgroup limit."""
    if getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[0])
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if free is None:
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            free = 8 << 30
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 1 << 60:
                free = min(free, int(limit) - int(Path(usage_file).read_text().strip()))
            break
        except (OSError, ValueError):
            continue
    return max(int(free), 0)


def _outputs_bytes(module: torch.nn.Module, run) -> int:
    """Bytes of the input and every leaf module's output during ``run()`` (float32)."""
    import torch

    total = 0

    def add(_m, _i, out):
        nonlocal total
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                total += t.numel() * 4

    hooks = [m.register_forward_hook(add) for m in module.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            run()
    finally:
        for h in hooks:
            h.remove()
    return total


def chip_bytes(model, precision: str = "fp32") -> int:
    """Working memory of one chip in a batch (its input and every intermediate output)."""
    import torch

    side = int(model.input_px)
    x = torch.zeros(1, model.arch.bands, side, side)
    b = _outputs_bytes(model, lambda: model(x)) + x.numel() * 4
    return int(b * _ELEMENT.get(precision, 4) / 4)


@dataclass(frozen=True)
class DenseCost:
    per_px: float          # trunk outputs per input pixel
    per_window: float      # pooled features and head outputs per window


def dense_bytes(model, precision: str = "fp32") -> DenseCost:
    """Working memory of the dense engine per block pixel and per window."""
    import torch

    side = 64
    x = torch.zeros(1, model.arch.bands, side, side)
    trunk = _outputs_bytes(model.trunk, lambda: model.trunk(x)) + x.numel() * 4 * 2   # input and normalized input
    arch = model.arch
    per_window = (arch.spp_features + arch.fc + 8) * 4 * 2
    scale = _ELEMENT.get(precision, 4) / 4
    return DenseCost(trunk / side ** 2 * scale, per_window * scale)


def dense_bytes_bound(arch, precision: str = "fp32") -> DenseCost:
    """An upper bound of :func:`dense_bytes` from the architecture alone, without running the model (for the
    ONNX Runtime dense engine, which does not import torch): the input twice, then each conv stage's output,
    activation and pooled output at its resolution, in fp32 whatever the graph's precision."""
    c1, c2, c3 = arch.channels
    per_px = 4 * (2 * arch.bands + 3 * c1 + 3 * c2 / 4 + 3 * c3 / 16)
    return DenseCost(per_px, (arch.spp_features + arch.fc + 8) * 4 * 2)


def block_bytes(cost: DenseCost, block_px: int, window: int, context: int, stride: int) -> float:
    """Dense engine working memory of a block of ``block_px`` window origins a side."""
    side = block_px + window + 2 * context
    windows = (block_px / stride + 1) ** 2
    return cost.per_px * side ** 2 + cost.per_window * windows


@dataclass
class Fit:
    batch_size: int
    block_px: int
    notes: list[str]


def _gb(b: float) -> str:
    return f"{b / 2 ** 30:.1f} GB"


def fit(model, *, engine: str, batch_size: int, block_px: int, stride: int, raster_px: int,
        device: "str | torch.device", precision: str = "fp32", available: int | None = None,
        arch=None, context_px: int | None = None) -> Fit:
    """The batch (chip engine) and block size (dense engine) bounded by ``MEMORY_FRACTION`` of the free memory
    on ``device``, with a note for each one lowered. A block never needs more than the raster's side.
    ``model`` None (the dense engine in ONNX Runtime): the bound of ``arch`` and ``context_px`` is used."""
    free = available_bytes(device) if available is None else available
    budget = MEMORY_FRACTION * free
    notes = []
    kind = getattr(device, "type", str(device).split(":")[0])
    window, context = 100, int(model.context_px if model is not None else context_px or 0)
    block_eff = min(block_px, max(raster_px, window))      # a block larger than the raster reads the raster
    if engine == "chip":
        per_chip = chip_bytes(model, precision)      # the chip engine always runs a model
        windows_per_block = int((block_eff / stride + 1) ** 2)
        eff = min(batch_size, windows_per_block)            # a batch never spans blocks
        if eff * per_chip > budget:
            allowed = max(1, int(budget // per_chip))
            notes.append(f"a batch size of {batch_size} needs about {_gb(eff * per_chip)} but {kind} has "
                         f"{_gb(free)} free; using batches of {allowed}")
            batch_size = allowed
    # the block's pixels (data, validity, the reader's blocks ahead) and, for the dense engine, its feature maps
    per_px_data = 8
    if engine == "dense":
        cost = dense_bytes(model, precision) if model is not None else dense_bytes_bound(arch)
        need = block_bytes(cost, block_eff, window, context, stride)
    else:
        cost, need = None, per_px_data * (block_eff + window + 2 * context) ** 2
    if need > budget:
        lo, hi = 128, block_eff
        while hi - lo > 8:
            mid = (lo + hi) // 2
            m = block_bytes(cost, mid, window, context, stride) if cost else \
                per_px_data * (mid + window + 2 * context) ** 2
            lo, hi = (mid, hi) if m <= budget else (lo, mid)
        allowed = max(128, lo)
        notes.append(f"a block size of {block_px} px needs about {_gb(need)} but {kind} has {_gb(free)} free; "
                     f"using blocks of {allowed} px")
        block_px = allowed
    return Fit(batch_size, block_px, notes)


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB). On Linux the high-water mark of its own address space
    (VmHWM): ``getrusage``'s ru_maxrss survives exec, so a child started by a process that had already grown
    to 1.5 GB reports at least 1.5 GB whatever it uses itself."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
