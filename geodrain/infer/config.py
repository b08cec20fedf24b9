"""How detection runs the model: which engine, in which run configuration, on blocks of which size.

The choices follow the bundle (its context, the configuration ``geodrain schedule`` / ``profile`` tuned for
this device class) and the device, with the user's overrides (:class:`geodrain.settings.DetectOptions`).
"""

from __future__ import annotations

import warnings

import torch

from ..errors import DeviceError, GeodrainWarning, RasterError, SettingsError
from ..model.bundle import Bundle
from ..model.sppnet import FEATURE_STRIDE
from ..window import WindowGrid
from .base import Engine
from .chip import ChipEngine
from .dense import MIN_EXACT_CONTEXT, DenseEngine
from .runtime import RunConfig, default_config

ENGINES = ("auto", "dense", "chip")
MIN_BLOCK_PX = 128     # a smaller block only multiplies the per-block work


def choose_engine(name: str, backend: str, stride: int, bundle: Bundle) -> str:
    """``dense`` or ``chip``: the one named, or (``auto``) dense when the stride and the bundle's context let
    it give the chip engine's results, chip for ONNX Runtime.

    ``auto`` never falls back to the chip engine silently: on a CPU it is 13-15 x slower at stride 24
    (docs/performance.md) and more at finer strides. A stride the dense engine cannot run is refused (the chip
    engine runs it when asked for); a bundle trained without enough context runs the chip engine, with a
    warning."""
    if name not in ENGINES:
        raise RasterError(f"unknown engine {name!r}: use auto, dense or chip")
    if name == "dense" and backend == "onnx":
        raise DeviceError("the dense engine runs with torch; ONNX Runtime runs the chip engine",
                          cli_hint={"engine": "--engine chip"})
    if name == "dense" and stride % FEATURE_STRIDE:
        raise DeviceError(f"the dense engine needs a stride that is a multiple of {FEATURE_STRIDE} px (got "
                          f"{stride}); use a stride of 8, 16, 24 ... px, or the chip engine",
                          cli_hint={"engine": "--engine chip"})
    if name != "auto":
        return name
    if backend == "onnx":
        return "chip"
    if stride % FEATURE_STRIDE:
        raise SettingsError(
            f"stride {stride} px is not a multiple of {FEATURE_STRIDE}: the dense engine cannot run it and the chip "
            f"engine, which can, is much slower (13-15 x at stride 24 on a CPU); use a stride of "
            f"{FEATURE_STRIDE}, {2 * FEATURE_STRIDE}, {3 * FEATURE_STRIDE} ... px, or choose the chip engine "
            "explicitly",
            cli_hint={"engine": "--engine chip runs it"})
    if bundle.context_px < MIN_EXACT_CONTEXT:
        warnings.warn(f"the bundle was trained with {bundle.context_px} px of context (the dense engine needs "
                      f"{MIN_EXACT_CONTEXT} to give the chip engine's scores): running the chip engine, which is "
                      "much slower", GeodrainWarning, stacklevel=3)
        return "chip"
    return "dense"


def run_config(bundle: Bundle, device: torch.device, *, backend: str = "torch", batch_size: int | None = None,
               precision: str | None = None, cuda_graph: bool | None = None) -> RunConfig:
    """The tuned configuration for this device class (``geodrain schedule`` / ``profile``), with overrides."""
    tuned = bundle.tuned(device)
    batch = bundle.best_batch_size(device) if batch_size is None else batch_size
    if backend == "onnx":
        return RunConfig("onnx", str(device), "fp32", False, False, batch)
    if "engine" in tuned and tuned["engine"].get("backend", "torch") == "torch":
        base = RunConfig.from_dict({**tuned["engine"], "device": str(device), "batch_size": batch})
    else:
        base = default_config(device, batch)
    precision = precision or base.precision
    graph = base.cuda_graph if cuda_graph is None else cuda_graph
    if device.type != "cuda":
        asked = [what for what, given in (("fp16", precision == "fp16"), ("CUDA graphs", cuda_graph)) if given]
        if asked:
            warnings.warn(f"{' and '.join(asked)} {'need' if len(asked) > 1 else 'needs'} a CUDA device: running "
                          f"fp32 on the {device.type}",
                          GeodrainWarning, stacklevel=3)
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
