"""Choose the batch size: the smallest within a tolerance of the best throughput, under a memory cap."""

from __future__ import annotations

import os
from typing import Sequence

import torch

from .collect import BatchProfile

DEFAULT_MEMORY_FRACTION = 0.8   # of the device's memory (CUDA) or of the host's RAM (CPU)


def default_memory_cap_gb(device: torch.device, fraction: float = DEFAULT_MEMORY_FRACTION) -> float:
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return fraction * total / 1024.0 ** 3


def pick_batch_size(rows: Sequence[BatchProfile], memory_cap_gb: float, tolerance: float = 0.05
                    ) -> tuple[int | None, str]:
    """(batch size, why): the smallest batch whose throughput is within ``tolerance`` of the best among
    batches whose peak memory fits under the cap; None when no batch was measured or none fits."""
    measured = [r for r in rows if r.ok and r.chips_per_s == r.chips_per_s]
    fits = [r for r in measured if r.peak_mb <= memory_cap_gb * 1024.0]
    if not fits:
        return None, ("no batch size was measured" if not measured
                      else f"no batch size fits under the {memory_cap_gb:.1f} GB memory cap")
    best = max(r.chips_per_s for r in fits)
    chosen = min(r.batch_size for r in fits if r.chips_per_s >= (1.0 - tolerance) * best)
    row = next(r for r in fits if r.batch_size == chosen)
    return chosen, (f"smallest batch within {100 * tolerance:g} % of the best throughput ({best:.0f} chips/s) "
                    f"under the {memory_cap_gb:.1f} GB memory cap: {row.chips_per_s:.0f} chips/s, "
                    f"peak {row.peak_mb:.0f} MB")
