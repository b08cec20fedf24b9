"""What ``geodrain profile`` found and the report folder it writes.

``profile.json`` (everything), ``profile.csv`` (one row per batch size), ``profile.md`` (the tables: the
paper's Fig. 6 and 7 as numbers, its Table 3, its Fig. 8), and the PNG plots of :mod:`.plots`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..output import write_text
from ..schedule.report import markdown_table, prepare_report_dir, write_csv, write_json
from .classify import API_CLASSES, KERNEL_CLASSES
from .collect import BatchProfile
from . import plots


@dataclass
class ProfileReport:
    bundle: str
    model_id: str
    notation: str
    device: str
    device_class: str
    engine: str
    config: dict
    mode: str                     # "cuda" (kernels, CUDA API) or "cpu" (operators)
    memory_cap_gb: float
    batches: list[BatchProfile] = field(default_factory=list)
    best_batch_size: int | None = None
    selection: str = ""
    notes: list[str] = field(default_factory=list)
    created: str = ""
    torch_version: str = ""

    @property
    def measured(self) -> list[BatchProfile]:
        return [b for b in self.batches if b.ok]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["batches"] = [b.to_dict() for b in self.batches]
        return d

    def manifest_entry(self) -> dict:
        """What goes under ``inference[device_class]``: the batch size and a summary of the profile."""
        rows = self.measured
        entry: dict[str, Any] = {"profile": {
            "engine": self.engine, "config": self.config, "batch_sizes": [r.batch_size for r in rows],
            "chips_per_s": [round(r.chips_per_s, 1) for r in rows],
            "peak_mb": [round(r.peak_mb, 1) for r in rows], "memory_cap_gb": round(self.memory_cap_gb, 2),
            "selection": self.selection, "measured_with": "geodrain profile", "date": self.created}}
        if self.best_batch_size is not None:
            entry["batch_size"] = self.best_batch_size
        return entry

    # -- tables ------------------------------------------------------------------------------------------
    def throughput_table(self) -> str:
        rows = [(r.batch_size, r.batch_ms, r.us_per_chip, r.chips_per_s, r.peak_mb, r.cold_peak_mb,
                 r.steady_peak_mb, r.reserved_mb,
                 "**best**" if r.batch_size == self.best_batch_size else (r.error or ""))
                for r in self.batches]
        return markdown_table(["batch", "batch ms", "µs/chip", "chips/s", "peak MB", "first call MB",
                               "later calls MB", "reserved MB (process)", ""], rows)

    def compute_table(self) -> str:
        what = "kernel" if self.mode == "cuda" else "CPU operator"
        rows = [(r.batch_size, *(r.compute_share.get(c, 0.0) for c in KERNEL_CLASSES),
                 sum(r.compute_us.values()), r.copy_us) for r in self.measured]
        return markdown_table(["batch", "conv %", "matmul %", "pool %", "other %", f"{what} µs/batch",
                               "memcpy µs/batch"], rows)

    def api_table(self, cold: bool = False) -> str:
        attr, us = ("api_cold_share", "api_cold_us") if cold else ("api_share", "api_us")
        rows = [(r.batch_size, *(getattr(r, attr).get(c, 0.0) for c in API_CLASSES),
                 sum(getattr(r, us).values())) for r in self.measured]
        return markdown_table(["batch", *(f"{c} %" for c in API_CLASSES), "API µs/batch"], rows)

    def markdown(self) -> str:
        parts = [f"# Inference profile of {self.bundle}", "",
                 f"- model: `{self.model_id}` {self.notation}",
                 f"- device: {self.device_class} ({self.device}); torch {self.torch_version}",
                 f"- engine: **{self.engine}**",
                 f"- chosen batch size: **{self.best_batch_size}**: {self.selection}", "",
                 "## Latency, throughput, memory (Fig. 6, 7)", "", self.throughput_table(), "",
                 f"## {'GPU kernel' if self.mode == 'cuda' else 'CPU operator'} time by class (Table 3)", "",
                 self.compute_table(), ""]
        if self.mode == "cuda":
            parts += ["## CUDA API time by call (Fig. 8)", "", "Steady state:", "", self.api_table(), "",
                      "First call (engine set-up, lazy loading, graph capture):", "", self.api_table(cold=True), ""]
            first = self.measured[0] if self.measured else None
            if first is not None and first.top_api:
                parts += [f"Heaviest API calls at batch {first.batch_size}, steady (µs per batch): "
                          + ", ".join(f"{n} {t:.1f}" for n, t in first.top_api[:6]), "",
                          f"Heaviest API calls at batch {first.batch_size}, first call (µs): "
                          + ", ".join(f"{n} {t:.1f}" for n, t in first.top_api_cold[:6]), ""]
        if self.notes:
            parts += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        parts.append(f"_{self.created}_")
        return "\n".join(parts) + "\n"

    def summary(self) -> str:
        lines = [f"engine: {self.engine} on {self.device_class}", self.throughput_table(), self.compute_table()]
        if self.mode == "cuda":
            lines.append(self.api_table())
        lines.append(f"batch size: {self.best_batch_size} ({self.selection})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def write(self, out_dir: str | Path, overwrite: bool = False, with_plots: bool = True) -> Path:
        out = prepare_report_dir(out_dir, overwrite)
        write_json(out / "profile.json", self.to_dict())
        write_text(out / "profile.md", self.markdown())
        write_csv(out / "profile.csv", [_csv_row(b) for b in self.batches], _csv_columns())
        rows = self.measured
        if with_plots and rows:
            title = f"{self.engine}, {self.device_class}"
            plots.plot_throughput(rows, out / "throughput.png", title)
            plots.plot_memory(rows, out / "memory.png", title, self.memory_cap_gb)
            plots.plot_kernels(rows, out / "kernels.png",
                               "kernel time" if self.mode == "cuda" else "CPU operator time")
            if self.mode == "cuda":
                plots.plot_api(rows, out / "api.png", "CUDA API time")
        return out


def _csv_columns() -> list[str]:
    return (["batch_size", "batch_ms", "us_per_chip", "chips_per_s", "peak_mb", "cold_peak_mb", "steady_peak_mb",
             "reserved_mb"]
            + [f"{c}_pct" for c in KERNEL_CLASSES] + ["copy_us"]
            + [f"api_{c}_pct" for c in API_CLASSES] + [f"api_cold_{c}_pct" for c in API_CLASSES] + ["error"])


def _csv_row(b: BatchProfile) -> dict:
    row = {"batch_size": b.batch_size, "batch_ms": b.batch_ms, "us_per_chip": b.us_per_chip,
           "chips_per_s": b.chips_per_s, "peak_mb": b.peak_mb, "reserved_mb": b.reserved_mb,
           "cold_peak_mb": b.cold_peak_mb, "steady_peak_mb": b.steady_peak_mb,
           "copy_us": b.copy_us, "error": b.error}
    row.update({f"{c}_pct": b.compute_share.get(c) for c in KERNEL_CLASSES})
    row.update({f"api_{c}_pct": b.api_share.get(c) for c in API_CLASSES})
    row.update({f"api_cold_{c}_pct": b.api_cold_share.get(c) for c in API_CLASSES})
    return row
