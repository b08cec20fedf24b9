"""How detection runs the model: which engine, in which run configuration, on blocks of which size.

The choices follow the bundle (its context, the configuration ``geodrain schedule`` / ``profile`` tuned for
this device class) and the device, with the user's overrides (:class:`geodrain.settings.DetectOptions`).
"""

from __future__ import annotations

import torch

from ..errors import RasterError
from ..model.bundle import Bundle
from ..model.sppnet import FEATURE_STRIDE
from ..window import WindowGrid
from .base import Engine
from .chip import ChipEngine
from .dense import MIN_EXACT_CONTEXT, DenseEngine
from .runtime import RunConfig, default_config

ENGINES = ("auto", "dense", "chip")


def choose_engine(name: str, backend: str, stride: int, bundle: Bundle) -> str:
    """``dense`` or ``chip``: the one named, or (``auto``) dense when the stride and the bundle's context let
    it give the chip engine's results, chip otherwise and for ONNX Runtime."""
    if name not in ENGINES:
        raise RasterError(f"unknown engine {name!r}: use auto, dense or chip")
    if name != "auto":
        return name
    if backend == "onnx":
        return "chip"
    dense_ok = stride % FEATURE_STRIDE == 0 and bundle.context_px >= MIN_EXACT_CONTEXT
    return "dense" if dense_ok else "chip"


def run_config(bundle: Bundle, device: torch.device, *, backend: str = "torch", batch_size: int | None = None,
               precision: str | None = None, cuda_graph: bool | None = None) -> RunConfig:
    """The tuned configuration for this device class (``geodrain schedule`` / ``profile``), with overrides."""
    tuned = bundle.tuned(device)
    batch = batch_size or bundle.best_batch_size(device)
    if backend == "onnx":
        return RunConfig("onnx", str(device), "fp32", False, False, batch)
    if "engine" in tuned and tuned["engine"].get("backend", "torch") == "torch":
        base = RunConfig.from_dict({**tuned["engine"], "device": str(device), "batch_size": batch})
    else:
        base = default_config(device, batch)
    precision = precision or base.precision
    graph = base.cuda_graph if cuda_graph is None else cuda_graph
    if device.type != "cuda":
        precision, graph = ("fp32" if precision == "fp16" else precision), False
    return RunConfig("torch", str(device), precision, base.channels_last and device.type == "cuda", graph, batch)


def default_block_px(device: torch.device, engine: str) -> int:
    if device.type == "cuda":
        return 2048 if engine == "dense" else 1024
    return 1024


def make_engine(kind: str, bundle: Bundle, config: RunConfig, grid: WindowGrid, block_px: int) -> Engine:
    """The engine that runs ``bundle`` in ``config`` on blocks of ``grid``: detection's default
    :data:`geodrain.detect.EngineFactory`."""
    cls = DenseEngine if kind == "dense" else ChipEngine
    return cls(bundle, config, grid, block_px)
