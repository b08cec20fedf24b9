"""What ``geodrain schedule`` found: per-batch results, the engines, and the report folder it writes.

The folder holds ``schedule.json`` (everything), ``schedule.md`` (the tables), ``schedule.csv`` (one row
per batch size) and ``engines.csv``. The helpers for report folders are shared with
:mod:`geodrain.profiling`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import OutputError, OutputExistsError
from ..output import atomic_file, write_text


# -- report-folder helpers --------------------------------------------------------------------------------
def check_report_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse an existing report folder unless ``overwrite``, a file in its place, or a missing parent."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"report path is a file, not a folder: {out}")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"report folder exists: {out}")
    if not out.absolute().parent.is_dir():
        raise OutputError(f"output folder does not exist: {out.absolute().parent}")
    return out


def prepare_report_dir(path: str | Path, overwrite: bool = False) -> Path:
    """Check the report folder (:func:`check_report_dir`) and create it."""
    out = check_report_dir(path, overwrite)
    out.mkdir(exist_ok=True)
    return out


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(_finite(obj), indent=2, default=_jsonable, ensure_ascii=False, allow_nan=False)
    write_text(path, text + "\n")


def write_csv(path: Path, rows: Sequence[dict], columns: Sequence[str]) -> None:
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _cell(row.get(k)) for k in columns})


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.4g}"
    return str(v)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return _finite(obj.to_dict())
    return str(obj)


def _finite(obj: Any) -> Any:
    """NaN and infinities become null (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def fmt_stages(stages: list[list[list[str]]]) -> str:
    """Stages [[[a]], [[b], [c, d]]] -> 'a -> b ∥ c,d': stages in order, concurrent groups separated by
    '∥', the operators of a group (one stream, in order) by ','."""
    return " -> ".join(" ∥ ".join(",".join(g) for g in stage) for stage in stages)


# -- the schedule report ----------------------------------------------------------------------------------
@dataclass
class BlockSchedule:
    """The optimized schedule of one non-trivial block at one batch size (operator names)."""

    block: int
    stages: list[list[list[str]]]
    cost_ms: float
    sequential_cost_ms: float
    states: int
    stages_costed: int


@dataclass
class BatchResult:
    batch_size: int
    sequential_ms: float
    optimized_ms: float
    eager_ms: float
    max_abs_diff: float
    outputs_equal: bool
    blocks: list[BlockSchedule] = field(default_factory=list)

    @property
    def speedup(self) -> float:
        return self.sequential_ms / self.optimized_ms if self.optimized_ms > 0 else math.nan

    @property
    def chips_per_s(self) -> float:
        return self.batch_size / (self.optimized_ms / 1e3) if self.optimized_ms > 0 else math.nan

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(speedup=self.speedup, chips_per_s=self.chips_per_s,
                 sequential_us_per_chip=1e3 * self.sequential_ms / self.batch_size,
                 optimized_us_per_chip=1e3 * self.optimized_ms / self.batch_size)
        return d

    def row(self) -> dict:
        d = self.to_dict()
        d["schedule"] = "; ".join(fmt_stages(b.stages) for b in self.blocks)
        return d


@dataclass
class ScheduleReport:
    bundle: str
    model_id: str
    notation: str
    device: str
    device_class: str
    cost_model: str
    cost_note: str
    timing: str
    max_group: int
    max_groups: int
    operators: list[str]
    blocks: list[dict]
    batches: list[BatchResult] = field(default_factory=list)
    engines: list[dict] = field(default_factory=list)
    best_engine: dict | None = None
    notes: list[str] = field(default_factory=list)
    created: str = ""
    torch_version: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["batches"] = [b.to_dict() for b in self.batches]
        return d

    def batch(self, n: int) -> BatchResult | None:
        return next((b for b in self.batches if b.batch_size == n), None)

    def best_batch(self) -> BatchResult | None:
        return max(self.batches, key=lambda b: b.chips_per_s) if self.batches else None

    def manifest_entry(self) -> dict:
        """What goes under ``inference[device_class]`` of the bundle's manifest."""
        entry: dict[str, Any] = {
            "schedule": {
                "cost_model": self.cost_model, "timing": self.timing, "r": self.max_group, "s": self.max_groups,
                "batches": [{"batch_size": b.batch_size, "sequential_ms": b.sequential_ms,
                             "optimized_ms": b.optimized_ms, "speedup": b.speedup,
                             "chips_per_s": b.chips_per_s, "outputs_equal": b.outputs_equal,
                             "stages": [fmt_stages(s.stages) for s in b.blocks]} for b in self.batches],
            },
            "measured_with": "geodrain schedule",
            "date": self.created,
        }
        if self.best_engine is not None:
            entry["engine"] = dict(self.best_engine["config"])
        return _finite(entry)

    # -- rendering ---------------------------------------------------------------------------------------
    def batch_table(self) -> str:
        rows = [(b.batch_size, b.eager_ms, b.sequential_ms, b.optimized_ms, b.speedup,
                 1e3 * b.optimized_ms / b.batch_size, b.chips_per_s, "yes" if b.outputs_equal else "NO",
                 "; ".join(fmt_stages(s.stages) for s in b.blocks)) for b in self.batches]
        return markdown_table(["batch", "eager ms", "sequential ms", "optimized ms", "speedup",
                               "µs/chip", "chips/s", "output = eager", "optimized stages"], rows)

    def engine_table(self) -> str:
        rows = [(e["engine"], e.get("batch_size"), e.get("batch_ms"), e.get("ms_per_chip"),
                 e.get("chips_per_s"), e.get("max_abs_diff"), e.get("error", "")) for e in self.engines]
        return markdown_table(["engine", "batch", "batch ms", "ms/chip", "chips/s", "max |Δ| vs fp32",
                               "error"], rows)

    def markdown(self) -> str:
        parts = [f"# IOS schedule of {self.bundle}", "",
                 f"- model: `{self.model_id}` {self.notation}",
                 f"- device: {self.device_class} ({self.device}); torch {self.torch_version}",
                 f"- cost model: **{self.cost_model}**: {self.cost_note}",
                 f"- latencies: {self.timing}; eager: the model called from Python"
                 + (" (CUDA events around one call)" if self.device.startswith("cuda") else ""),
                 f"- IOS limits: r = {self.max_group} operators per group, s = {self.max_groups} groups per stage",
                 "- blocks: " + "; ".join(f"{b['index']}: {', '.join(b['ops'])} (width {b['width']})"
                                           for b in self.blocks if len(b["ops"]) > 1),
                 "", "## Sequential vs optimized schedule", "", self.batch_table(), ""]
        if self.engines:
            parts += ["## Engines", "", self.engine_table(), ""]
            if self.best_engine:
                parts += [f"Fastest: **{self.best_engine['engine']}** at batch {self.best_engine['batch_size']}"
                          f" ({self.best_engine['chips_per_s']:.0f} chips/s).", ""]
        if self.notes:
            parts += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        parts.append(f"_{self.created}_")
        return "\n".join(parts) + "\n"

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"cost model: {self.cost_model} ({self.cost_note})", self.batch_table()]
        if self.engines:
            lines.append(self.engine_table())
        if self.best_engine:
            lines.append(f"fastest engine: {self.best_engine['engine']} "
                         f"({self.best_engine['chips_per_s']:.0f} chips/s at batch {self.best_engine['batch_size']})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def write(self, out_dir: str | Path, overwrite: bool = False) -> Path:
        out = prepare_report_dir(out_dir, overwrite)
        write_json(out / "schedule.json", self.to_dict())
        write_text(out / "schedule.md", self.markdown())
        write_csv(out / "schedule.csv", [b.row() for b in self.batches],
                  ["batch_size", "eager_ms", "sequential_ms", "optimized_ms", "speedup",
                   "sequential_us_per_chip", "optimized_us_per_chip", "chips_per_s", "outputs_equal",
                   "max_abs_diff", "schedule"])
        write_csv(out / "engines.csv", self.engines,
                  ["engine", "batch_size", "batch_ms", "ms_per_chip", "chips_per_s", "max_abs_diff", "error"])
        return out
