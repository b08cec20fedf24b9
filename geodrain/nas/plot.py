"""The Pareto plot of a search: validation AP against e(n) for the trained architectures (top), every measured
e(n) as a rug (bottom), the constraint A, the Pareto front, the winner and the paper's SPP-Net #2."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..output import atomic_file
from .leaderboard import Row
from .space import is_paper_choice


def pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated in (higher e, higher AP), by ascending e."""
    front, best_ap = [], float("-inf")
    for e, ap in sorted(points, key=lambda p: (-p[0], -p[1])):
        if ap > best_ap:
            front.append((e, ap))
            best_ap = ap
    return sorted(front)


def plot_pareto(rows: Sequence[Row], path: str | Path, min_ap: float, metric: str, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.efficiency is not None]
    trained = [r for r in measured if r.ap is not None]
    fig, (top, rug) = plt.subplots(2, 1, figsize=(8, 6.5), sharex=True, height_ratios=(4, 1),
                                   constrained_layout=True)
    for ok, colour, label in ((True, "tab:green", "feasible"), (False, "tab:red", "infeasible")):
        pts = [r for r in trained if r.feasible is ok]
        if pts:
            top.scatter([r.efficiency for r in pts], [r.ap for r in pts], s=28, c=colour, label=label, zorder=3)
    front = pareto_front([(r.efficiency, r.ap) for r in trained])
    if len(front) > 1:
        top.step([p[0] for p in front], [p[1] for p in front], where="post", c="0.5", lw=1, zorder=2,
                 label="Pareto front")
    top.axhline(min_ap, c="k", ls="--", lw=1, label=f"A = {min_ap:g}")
    rug.vlines([r.efficiency for r in measured], 0, 1, colors="0.3", lw=0.8)
    for r in measured:
        if r.winner:
            _mark(top, rug, r, "*", "gold", 260, "winner")
        if is_paper_choice(r.arch):
            _mark(top, rug, r, "D", "tab:blue", 70, "SPP-Net #2 (paper)")
    top.set_ylabel("validation chip AP")
    top.legend(loc="lower left", fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(title or "accuracy-constrained efficiency search", fontsize=10)
    rug.set_yticks([])
    rug.set_ylabel(f"all {len(measured)}\nmeasured", fontsize=8)
    unit = "chips/s at batch 1" if metric == "latency" else "chips/s at the best batch size"
    rug.set_xlabel(f"e(n): {unit}")
    if measured and max(r.efficiency for r in measured) > 5 * min(r.efficiency for r in measured):
        rug.set_xscale("log")
    path = Path(path)
    try:
        with atomic_file(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return path


def _mark(top, rug, r: Row, marker: str, colour: str, size: int, label: str) -> None:
    if r.ap is not None:
        top.scatter([r.efficiency], [r.ap], marker=marker, s=size, c=colour, edgecolors="k", zorder=4,
                    label=f"{label}: {r.arch.key}")
    else:
        top.axvline(r.efficiency, c=colour, ls=":", lw=1.5, label=f"{label} (untrained): {r.arch.key}")
    rug.scatter([r.efficiency], [0.5], marker=marker, s=size, c=colour, edgecolors="k", zorder=4)
