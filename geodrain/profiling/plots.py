"""PNG plots of a profile (matplotlib's Agg renderer through ``Figure``, so no display and no pyplot state).

``throughput.png``  per-chip latency and chips/s per batch size (the paper's Fig. 6)
``memory.png``      peak memory per batch size (Fig. 7)
``api.png``         CUDA API time by call class, first call and steady state (Fig. 8)
``kernels.png``     kernel (or CPU operator) time by class (Table 3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..output import atomic_file
from .classify import API_CLASSES, KERNEL_CLASSES
from .collect import BatchProfile

COLORS = {"conv": "#1f77b4", "matmul": "#ff7f0e", "pool": "#2ca02c", "other": "#7f7f7f",
          "launch": "#1f77b4", "sync": "#d62728", "library": "#9467bd", "graph": "#17becf",
          "memcpy": "#ff7f0e", "alloc": "#8c564b"}


def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: Path) -> None:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def _stacked(ax, labels: Sequence[str], series: dict[str, list[float]], title: str) -> None:
    bottom = [0.0] * len(labels)
    for name, values in series.items():
        ax.bar(labels, values, bottom=bottom, label=name, color=COLORS.get(name))
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_ylabel("% of time")
    ax.set_xlabel("batch size")
    ax.set_title(title)
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))


def plot_throughput(rows: Sequence[BatchProfile], path: Path, title: str) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    bs = [r.batch_size for r in rows]
    ax.plot(bs, [r.us_per_chip for r in rows], "o-", color="#1f77b4")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency per chip (µs)", color="#1f77b4")
    ax2 = ax.twinx()
    ax2.plot(bs, [r.chips_per_s for r in rows], "s--", color="#d62728")
    ax2.set_ylabel("throughput (chips/s)", color="#d62728")
    ax.set_title(title)
    _save(fig, path)


def plot_memory(rows: Sequence[BatchProfile], path: Path, title: str, cap_gb: float | None = None) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    bs = [r.batch_size for r in rows]
    ax.plot(bs, [r.peak_mb for r in rows], "o-", label="peak allocated")
    if any(r.reserved_mb for r in rows):
        ax.plot(bs, [r.reserved_mb or 0 for r in rows], "^:", label="peak reserved")
    if cap_gb is not None and rows and max(r.peak_mb for r in rows) > 0.2 * cap_gb * 1024:
        ax.axhline(cap_gb * 1024, color="#d62728", linestyle="--", label="memory cap")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("MB")
    ax.set_title(title)
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_kernels(rows: Sequence[BatchProfile], path: Path, title: str) -> None:
    fig = _figure()
    labels = [str(r.batch_size) for r in rows]
    _stacked(fig.add_subplot(), labels, {c: [r.compute_share.get(c, 0.0) for r in rows] for c in KERNEL_CLASSES},
             title)
    _save(fig, path)


def plot_api(rows: Sequence[BatchProfile], path: Path, title: str) -> None:
    fig = _figure(10.0, 4.0)
    labels = [str(r.batch_size) for r in rows]
    for k, (attr, label) in enumerate((("api_cold_share", "first call"), ("api_share", "steady state"))):
        series = {c: [getattr(r, attr).get(c, 0.0) for r in rows] for c in API_CLASSES}
        _stacked(fig.add_subplot(1, 2, k + 1), labels, series, f"{title}: {label}")
    _save(fig, path)
