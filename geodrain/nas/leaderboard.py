"""The leaderboard of a search, the analogue of the paper's Tables 1 and 2: every measured or trained
architecture in the paper's notation with its validation AP (blank if not trained), throughput, latency at
batch 1, parameters, FLOPs and whether it meets the constraint, ordered by e(n). Written as CSV and Markdown."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..model.arch import Arch
from ..output import write_text
from .efficiency import Measurement
from .space import gflop_per_chip, parameter_count, preset_label
from .study import TrainingRecord

COLUMNS = ["rank", "key", "notation", "preset", "status", "ap", "feasible", "efficiency", "throughput_chips_s",
           "best_batch", "latency_ms_b1", "params", "gflop_per_chip", "train_s", "trial"]
MD_HEADERS = ["#", "architecture", "preset", "status", "AP", "feasible", "e(n) chips/s", "throughput chips/s",
              "batch", "latency b1 ms", "params M", "GFLOP", "train s"]


@dataclass
class Row:
    arch: Arch
    measurement: Measurement | None
    training: TrainingRecord | None
    feasible: bool | None          # None: not trained
    winner: bool
    efficiency: float | None       # e(n) in the search's metric
    params: int
    gflop: float
    trial: int | None = None
    rank: int = 0

    @property
    def status(self) -> str:
        if self.winner:
            return "winner"
        if self.feasible is None:
            return "untrained"
        return "feasible" if self.feasible else "infeasible"

    @property
    def ap(self) -> float | None:
        return None if self.training is None or not math.isfinite(self.training.ap) else self.training.ap

    def values(self) -> dict:
        """The row as numbers (None where not measured or not trained)."""
        m, t = self.measurement, self.training
        return {"rank": self.rank, "key": self.arch.key, "notation": self.arch.notation,
                "preset": preset_label(self.arch), "status": self.status, "ap": self.ap, "feasible": self.feasible,
                "efficiency": self.efficiency, "throughput_chips_s": m.chips_per_s if m else None,
                "best_batch": m.best_batch if m else None, "latency_ms_b1": m.latency_ms if m else None,
                "params": self.params, "gflop_per_chip": self.gflop, "train_s": t.seconds if t else None,
                "trial": self.trial}

    def record(self) -> dict:
        """The row as CSV cells: fixed decimals, blanks for missing values."""
        v = self.values()
        digits = {"ap": 4, "efficiency": 1, "throughput_chips_s": 1, "latency_ms_b1": 4, "gflop_per_chip": 4,
                  "train_s": 1}
        out = {k: ("" if v[k] is None else v[k]) for k in COLUMNS}
        out.update({k: _num(v[k], d) for k, d in digits.items()})
        out["feasible"] = "" if self.feasible is None else ("yes" if self.feasible else "no")
        return out


def _num(x: float | None, digits: int) -> str:
    return "" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def build_rows(space: Sequence[Arch], measured: dict[str, Measurement], trained: dict[str, TrainingRecord],
               metric: str, min_ap: float, context_px: int, winner: Arch | None = None,
               trial_of: dict[str, int] | None = None) -> list[Row]:
    """Rows of every architecture of ``space`` that was measured or trained, by descending e(n)."""
    rows = []
    for arch in space:
        m, t = measured.get(arch.key), trained.get(arch.key)
        if m is None and t is None:
            continue
        rows.append(Row(arch, m, t, None if t is None else t.score >= min_ap,
                        winner is not None and arch.key == winner.key, m.efficiency(metric) if m else None,
                        parameter_count(arch, context_px), gflop_per_chip(arch, context_px),
                        (trial_of or {}).get(arch.key)))
    rows.sort(key=lambda r: (-(r.efficiency or 0.0), r.arch.key))
    for i, r in enumerate(rows, 1):
        r.rank = i
    return rows


def write_csv(rows: Iterable[Row], path: str | Path) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r.record())
    return write_text(Path(path), buf.getvalue())


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_cells(r: Row) -> list[str]:
    d = r.record()
    name = f"**{d['notation']}**" if r.winner else d["notation"]
    return [d["rank"], name, d["preset"], d["status"], d["ap"], d["feasible"], d["efficiency"],
            d["throughput_chips_s"], d["best_batch"], d["latency_ms_b1"], f"{r.params / 1e6:.2f}",
            d["gflop_per_chip"], d["train_s"]]


def write_markdown(rows: Sequence[Row], path: str | Path, header: Sequence[str] = ()) -> Path:
    text = "\n".join([*header, "", markdown_table(MD_HEADERS, (_md_cells(r) for r in rows)), ""])
    return write_text(Path(path), text)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))
