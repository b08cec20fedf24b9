"""Time the inference engines of :mod:`geodrain.infer.runtime` on one device and pick the fastest.

Engines: eager fp32; fp32 in a CUDA graph; fp16 and bf16 channels-last, eager and in a CUDA graph; ONNX
Runtime on the bundle's ``model.onnx``. Each is timed on the same random chips already on the device (the
host->device copy is not timed, the (N, 5) result's copy back is) and compared with eager fp32.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..infer.runtime import ChipRunner, RunConfig, time_call


def engine_configs(device: torch.device, batch_size: int, onnx: bool = True) -> list[RunConfig]:
    """The configurations worth timing here (the first is the fp32 reference)."""
    dev = str(device)
    if device.type == "cuda":
        cfgs = [RunConfig("torch", dev, p, cl, graph, batch_size)
                for p, cl in (("fp32", False), ("fp16", True), ("bf16", True)) for graph in (False, True)]
    else:
        cfgs = [RunConfig("torch", dev, "fp32", False, False, batch_size),
                RunConfig("torch", dev, "bf16", True, False, batch_size)]
    if onnx:
        cfgs.append(RunConfig("onnx", dev, "fp32", False, False, batch_size))
    return cfgs


def time_engine(model: torch.nn.Module, config: RunConfig, chips: torch.Tensor,
                onnx_path: str | Path | None = None, iters: int = 10) -> tuple[dict, np.ndarray]:
    """One engine's median batch latency and throughput on ``chips`` (host tensor), and its output."""
    runner = ChipRunner(model, config, onnx_path)
    x = chips.numpy() if config.backend == "onnx" else runner._to_device(chips)
    out = runner(x)
    times = time_call(lambda: runner(x), runner.device, iters=iters, warmup=2)
    med = statistics.median(times)
    n = int(chips.shape[0])
    row = {"engine": config.label, "config": config.to_dict(), "batch_size": n, "batch_ms": med * 1e3,
           "ms_per_chip": med * 1e3 / n, "chips_per_s": n / med}
    del runner
    if torch.device(config.device).type == "cuda":
        torch.cuda.empty_cache()
    return row, out


def time_engines(model: torch.nn.Module, device: torch.device, batch_size: int,
                 onnx_path: str | Path | None = None, iters: int = 10, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> list[dict]:
    """Every engine of :func:`engine_configs`; failures are recorded, not raised."""
    g = torch.Generator().manual_seed(seed)
    bands, side = model.arch.bands, model.input_px
    chips = torch.rand(batch_size, bands, side, side, generator=g) * 255
    onnx_ok = onnx_path is not None and Path(onnx_path).is_file()
    rows: list[dict] = []
    reference: np.ndarray | None = None
    for cfg in engine_configs(device, batch_size, onnx_ok):
        if progress:
            progress(cfg.label)
        try:
            row, out = time_engine(model, cfg, chips, onnx_path, iters)
        except Exception as e:  # noqa: BLE001 - an engine unavailable here must not stop the others
            rows.append({"engine": cfg.label, "config": cfg.to_dict(), "batch_size": batch_size,
                         "error": " ".join(str(e).split())[:200]})
            continue
        if reference is None:
            reference = out
        row["max_abs_diff"] = float(np.abs(out - reference).max())
        rows.append(row)
    return rows


def fastest(rows: list[dict]) -> dict | None:
    ok = [r for r in rows if "chips_per_s" in r and np.isfinite(r.get("max_abs_diff", 0.0))]
    return max(ok, key=lambda r: r["chips_per_s"]) if ok else None
