"""How detection runs the model: which engine, in which run configuration, on blocks of which size.

The choices follow the bundle (its context, the configuration ``geodrain schedule`` / ``profile`` tuned for
this device class) and the device, with the user's overrides (:class:`geodrain.settings.DetectOptions`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ..errors import DeviceError, GeodrainWarning, RasterError, SettingsError
from ..model.arch import FEATURE_STRIDE
from ..model.bundle import Bundle, device_class
from ..window import WindowGrid
from .base import MIN_EXACT_CONTEXT, Engine
from .dense_ort import onnx_precision
from .runtime import RunConfig, default_config, device_type, onnxruntime

if TYPE_CHECKING:     # torch is imported by the engines that run it: the ONNX Runtime dense engine does not
    import torch

ENGINES = ("auto", "dense", "chip")
MIN_BLOCK_PX = 128     # a smaller block only multiplies the per-block work


def choose_engine(name: str, backend: str | None, stride: int, bundle: Bundle,
                  device: "str | torch.device" = "cpu") -> str:
    """``dense`` or ``chip``: the one named, or (``auto``) dense when the stride and the bundle's context let
    it give the chip engine's results (on a CPU with ONNX Runtime too: the bundle's dense graph; on a GPU
    ONNX Runtime runs the chip engine).

    ``auto`` never falls back to the chip engine silently: on a CPU it is 13-15 x slower at stride 24
    (docs/performance.md) and more at finer strides. A stride the dense engine cannot run is refused (the chip
    engine runs it when asked for); a bundle trained without enough context runs the chip engine, with a
    warning."""
    if name not in ENGINES:
        raise RasterError(f"unknown engine {name!r}: use auto, dense or chip")
    on_cpu = device_type(device) == "cpu"
    if name == "dense" and backend == "onnx" and not on_cpu:
        raise DeviceError("on a GPU the dense engine runs with torch; ONNX Runtime runs the chip engine there",
                          cli_hint={"engine": "--engine chip"})
    if name == "dense" and stride % FEATURE_STRIDE:
        raise DeviceError(f"the dense engine needs a stride that is a multiple of {FEATURE_STRIDE} px (got "
                          f"{stride}); use a stride of 8, 16, 24 ... px, or the chip engine",
                          cli_hint={"engine": "--engine chip"})
    if name != "auto":
        return name
    if backend == "onnx" and not on_cpu:
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


def run_config(bundle: Bundle, device: "str | torch.device", *, engine: str = "chip", stride: int | None = None,
               backend: str | None = None, batch_size: int | None = None, precision: str | None = None,
               cuda_graph: bool | None = None) -> RunConfig:
    """The tuned configuration for this device class (``geodrain schedule`` / ``profile``; for the dense
    engine on a CPU the prepared ONNX graph ``scripts/prepare_dense.py`` chose), with overrides."""
    tuned = bundle.tuned(device)
    batch = bundle.best_batch_size(device) if batch_size is None else batch_size
    if engine == "dense":
        graph = onnx_precision(bundle, bundle.stride_px if stride is None else stride, backend, precision,
                               device_class(device))
        if graph is not None:
            onnxruntime()            # not installed: said now, in one line naming the extra, before any work
            return RunConfig("onnx", str(device), graph, False, False, batch)
    if precision == "int8":
        raise DeviceError("int8 runs only in the dense engine on the CPU (its prepared ONNX graph)")
    if backend == "onnx":
        onnxruntime()
        return RunConfig("onnx", str(device), "fp32", False, False, batch)
    if "engine" in tuned and tuned["engine"].get("backend", "torch") == "torch":
        base = RunConfig.from_dict({**tuned["engine"], "device": str(device), "batch_size": batch})
    else:
        base = default_config(device, batch)
    precision = precision or base.precision
    graph = base.cuda_graph if cuda_graph is None else cuda_graph
    kind = device_type(device)
    if kind != "cuda":
        asked = [what for what, given in (("fp16", precision == "fp16"), ("CUDA graphs", cuda_graph)) if given]
        if asked:
            warnings.warn(f"{' and '.join(asked)} {'need' if len(asked) > 1 else 'needs'} a CUDA device: running "
                          f"fp32 on the {kind}",
                          GeodrainWarning, stacklevel=3)
        precision, graph = ("fp32" if precision == "fp16" else precision), False
    return RunConfig("torch", str(device), precision, base.channels_last and kind == "cuda", graph, batch)


def default_block_px(device: "str | torch.device", engine: str) -> int:
    if device_type(device) == "cuda":
        return 2048 if engine == "dense" else 1024
    return 1024


def make_engine(kind: str, bundle: Bundle, config: RunConfig, grid: WindowGrid, block_px: int,
                threshold: float | None = None) -> Engine:
    """The engine that runs ``bundle`` in ``config`` on blocks of ``grid``: detection's default
    :data:`geodrain.detect.EngineFactory`. ``threshold`` lets the int8 dense graph score the windows near it
    again in fp32."""
    if kind == "dense" and config.backend == "onnx":
        from .dense_ort import OrtDenseEngine

        return OrtDenseEngine(bundle, config, grid, block_px, threshold=threshold)
    if kind == "dense":
        from .dense import DenseEngine

        return DenseEngine(bundle, config, grid, block_px)
    from .chip import ChipEngine

    return ChipEngine(bundle, config, grid, block_px)
