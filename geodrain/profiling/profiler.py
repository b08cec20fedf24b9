"""Profile a bundle's model over batch sizes and record the best batch size in its manifest."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from ..infer.runtime import RunConfig, default_config, resolve_device
from ..model.bundle import Bundle, device_class, load_bundle
from ..schedule.report import check_report_dir
from .collect import BatchProfile, profile_batch
from .report import ProfileReport
from .select import default_memory_cap_gb, pick_batch_size

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


def engine_config(bundle: Bundle, device: torch.device, precision: str | None = None,
                  channels_last: bool | None = None, cuda_graph: bool | None = None
                  ) -> tuple[RunConfig, list[str]]:
    """The torch engine to profile: the bundle's tuned engine for this device (``geodrain schedule``) or
    the default one, with any of precision / channels-last / CUDA graph overridden."""
    notes: list[str] = []
    tuned = bundle.tuned(device).get("engine")
    base = default_config(device, 1)
    if tuned:
        try:
            cfg = RunConfig.from_dict({**tuned, "device": str(device)})
        except Exception:  # noqa: BLE001 - a tuned record for another device type
            cfg = base
        if cfg.backend == "onnx":
            notes.append("the tuned engine is ONNX Runtime, which torch.profiler cannot see into: "
                         "profiling the default torch engine instead")
            cfg = base
        base = cfg
    over = {k: v for k, v in (("precision", precision), ("channels_last", channels_last),
                              ("cuda_graph", cuda_graph)) if v is not None}
    return replace(base, **over), notes


def profile_model(model: torch.nn.Module, config: RunConfig, batch_sizes: Sequence[int], iters: int = 20,
                  profile_iters: int = 10, progress: bool = True) -> tuple[list[BatchProfile], list[str]]:
    """Profile ``config`` at each batch size; an out-of-memory batch ends the sweep."""
    rows: list[BatchProfile] = []
    notes: list[str] = []
    for bs in tqdm(list(batch_sizes), desc="profile", unit="batch", disable=not progress):
        try:
            rows.append(profile_batch(model, replace(config, batch_size=int(bs)), iters, profile_iters))
        except torch.cuda.OutOfMemoryError:
            rows.append(BatchProfile(int(bs), error="out of memory"))
            notes.append(f"out of device memory at batch {bs}: larger batch sizes skipped")
            torch.cuda.empty_cache()
            break
    return rows, notes


def profile_bundle(bundle: Bundle | str | Path | None, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, *,
                   device: str | torch.device = "auto", precision: str | None = None,
                   channels_last: bool | None = None, cuda_graph: bool | None = None,
                   memory_cap_gb: float | None = None, tolerance: float = 0.05, iters: int = 20,
                   profile_iters: int = 10, record: bool = False, out_dir: str | Path | None = None,
                   overwrite: bool = False, plots: bool = True, progress: bool = True) -> ProfileReport:
    """Profile the bundle's model per batch size (torch.profiler), pick the batch size, record it under
    ``inference[device_class]["batch_size"]`` with a ``"profile"`` summary, write the report folder."""
    if out_dir is not None:
        check_report_dir(out_dir, overwrite)
    bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    dev = resolve_device(device)
    config, notes = engine_config(bundle, dev, precision, channels_last, cuda_graph)
    cap = memory_cap_gb if memory_cap_gb is not None else default_memory_cap_gb(dev)
    rows, more = profile_model(bundle.model, config, sorted(set(int(b) for b in batch_sizes)), iters,
                               profile_iters, progress)
    notes += more
    best, why = pick_batch_size(rows, cap, tolerance)
    if dev.type == "cuda":
        notes += ["library loads (lazy module loading) and engine set-up happen once per process, mostly at "
                  "the first batch size profiled; the first-call API table shows them",
                  "peak memory is what the engine itself allocates (weights, activations, workspaces, CUDA-graph "
                  "pool) above what the process held before, the larger of its first call and later calls",
                  "the host waits for the GPU inside the blocking copy of the (N, 5) results to host memory, so "
                  "that wait is counted as memcpy API time rather than as a synchronize call",
                  "'other' kernels are mostly the convolutions' bias adds and ReLUs (separate kernels in eager "
                  "PyTorch), layout conversions, input copies and the input normalization"]
    else:
        notes.append("no CUDA: CPU operator self times by class instead of kernels; peak memory = weights + "
                     "the largest net allocation seen by the profiler")
    report = ProfileReport(
        bundle=str(bundle.path), model_id=bundle.model_id, notation=bundle.arch.notation, device=str(dev),
        device_class=device_class(dev), engine=config.label, config=config.to_dict(),
        mode="cuda" if dev.type == "cuda" else "cpu", memory_cap_gb=cap, batches=rows, best_batch_size=best,
        selection=why, notes=notes, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        torch_version=torch.__version__)
    if record and best is not None:
        bundle.update_manifest(inference={report.device_class: report.manifest_entry()})
    if out_dir is not None:
        report.write(out_dir, overwrite, plots)
    return report


