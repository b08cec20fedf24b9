"""How a model runs on a device: device choice, precision, memory format, CUDA graphs, ONNX Runtime.

One place for these decisions, shared by the chip and dense engines and by the research commands
(``nas`` measures efficiency with it, ``schedule`` times its configurations, ``profile`` profiles it).
A :class:`ChipRunner` maps a batch of raw-DN chips (N, bands, S, S) to the model's (N, 5) outputs.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import DeviceError, import_optional

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without CUDA is a user error."""
    if isinstance(device, torch.device):
        return device
    name = (device or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda was requested but no CUDA GPU is available to torch here")
    try:
        return torch.device(name)
    except RuntimeError:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu or cuda") from None


def onnxruntime():
    """ONNX Runtime, an optional extra (``geodrain[cpu]``, or ``geodrain[gpu]`` on a CUDA machine)."""
    return import_optional("onnxruntime", "cpu", "the ONNX backend (ONNX Runtime)")


def ort_providers(device: torch.device) -> list[str]:
    ort = onnxruntime()
    available = ort.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise DeviceError("ONNX Runtime here has no CUDA provider (install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class RunConfig:
    """One way of running the model. ``backend`` is 'torch' or 'onnx'."""

    backend: str = "torch"
    device: str = "cpu"
    precision: str = "fp32"
    channels_last: bool = False
    cuda_graph: bool = False
    batch_size: int = 16

    def __post_init__(self) -> None:
        if self.backend not in ("torch", "onnx"):
            raise DeviceError(f"unknown backend {self.backend!r}: use torch or onnx")
        if self.precision not in PRECISIONS:
            raise DeviceError(f"unknown precision {self.precision!r}: use one of {', '.join(PRECISIONS)}")
        dev = torch.device(self.device)
        if dev.type != "cuda" and (self.cuda_graph or self.precision == "fp16"):
            raise DeviceError("fp16 and CUDA graphs need a CUDA device")
        if self.backend == "onnx" and (self.cuda_graph or self.precision != "fp32" or self.channels_last):
            raise DeviceError("the ONNX backend runs the fp32 export as is")

    @property
    def label(self) -> str:
        if self.backend == "onnx":
            return f"onnxruntime-{torch.device(self.device).type}"
        parts = ["torch", self.precision]
        if self.channels_last:
            parts.append("channels_last")
        if self.cuda_graph:
            parts.append("cudagraph")
        return "-".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


def default_config(device: torch.device, batch_size: int) -> RunConfig:
    """The configuration used when nothing was tuned: fp16 channels-last CUDA graph on GPU, fp32 on CPU."""
    if device.type == "cuda":
        return RunConfig("torch", str(device), "fp16", True, True, batch_size)
    return RunConfig("torch", "cpu", "fp32", False, False, batch_size)


def prepare_module(module: torch.nn.Module, config: RunConfig) -> torch.nn.Module:
    """A copy of ``module`` on the config's device, precision and memory format, in eval mode."""
    import copy

    m = copy.deepcopy(module).eval().to(torch.device(config.device))
    m = m.to(PRECISIONS[config.precision])
    if config.channels_last:
        m = m.to(memory_format=torch.channels_last)
    return m


class GraphedCall:
    """A CUDA graph of ``fn`` on a static input of fixed shape; inputs are copied in, outputs copied out."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, warmup: int = 3):
        self.static_in = example.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(warmup):
                fn(self.static_in)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.static_out = fn(self.static_in)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.static_in.copy_(x)
        self.graph.replay()
        return self.static_out


class ChipRunner:
    """Runs the chip model: (N, bands, S, S) raw DN (numpy or torch, any N) -> float32 numpy (N, 5)."""

    def __init__(self, model: torch.nn.Module, config: RunConfig, onnx_path: str | Path | None = None):
        self.config = config
        self.device = torch.device(config.device)
        self.batch_size = int(config.batch_size)
        self.input_px = int(getattr(model, "input_px", 100))
        self.bands = int(getattr(getattr(model, "arch", None), "bands", 4))
        self._session = None
        self._graphs: dict[int, GraphedCall] = {}
        if config.backend == "onnx":
            ort = onnxruntime()
            if onnx_path is None:
                raise DeviceError("the ONNX backend needs the bundle's model.onnx")
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            self._session = ort.InferenceSession(str(onnx_path), opts, providers=ort_providers(self.device))
            self.module = None
        else:
            self.module = prepare_module(model, config)
        self.dtype = PRECISIONS[config.precision]

    def _to_device(self, chips) -> torch.Tensor:
        t = torch.as_tensor(chips)
        if self.device.type == "cuda" and t.device.type == "cpu":
            t = t.pin_memory().to(self.device, non_blocking=True)
        else:
            t = t.to(self.device)
        t = t.to(self.dtype)
        if self.config.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _run_torch(self, x: torch.Tensor) -> torch.Tensor:
        if not self.config.cuda_graph:
            return self.module(x)
        n = x.shape[0]
        if n != self.batch_size:  # pad the last partial batch to the graph's static shape
            pad = torch.zeros((self.batch_size - n, *x.shape[1:]), dtype=x.dtype, device=x.device)
            x = torch.cat([x, pad]).contiguous(memory_format=torch.channels_last
                                              if self.config.channels_last else torch.contiguous_format)
        g = self._graphs.get(self.batch_size)
        if g is None:
            g = self._graphs[self.batch_size] = GraphedCall(self.module, x)
        return g(x)[:n]

    def run_device(self, chips: torch.Tensor) -> torch.Tensor:
        """Torch backend: a batch already on the device -> (N, 5) on the device, without synchronizing."""
        with torch.inference_mode():
            return self._run_torch(self._to_device(chips)).float()

    def __call__(self, chips) -> np.ndarray:
        n = len(chips)
        if n == 0:
            return np.zeros((0, 5), np.float32)
        outs = []
        for s in range(0, n, self.batch_size):
            part = chips[s:s + self.batch_size]
            if self._session is not None:
                arr = np.ascontiguousarray(np.asarray(part, dtype=np.float32))
                outs.append(self._session.run(None, {"chips": arr})[0])
            else:
                outs.append(self.run_device(part).clone() if self.config.cuda_graph else self.run_device(part))
        if self._session is not None:
            return np.concatenate(outs).astype(np.float32, copy=False)
        return torch.cat(outs).cpu().numpy()   # one device->host copy (and sync) per call

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def time_call(fn: Callable[[], object], device: torch.device, iters: int = 20, warmup: int = 3,
              min_seconds: float = 0.0) -> list[float]:
    """Wall times (s) of ``fn`` after warm-up, synchronizing CUDA around each call."""
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    t_start = time.perf_counter()
    while len(times) < iters or time.perf_counter() - t_start < min_seconds:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * iters:
            break
    return times


def measure_chip_throughput(model: torch.nn.Module, config: RunConfig, iters: int = 10,
                            onnx_path: str | Path | None = None, seed: int = 0) -> dict:
    """Median latency of one batch and the chips/s it implies, on random chips resident on the host."""
    runner = ChipRunner(model, config, onnx_path)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(config.batch_size, runner.bands, runner.input_px, runner.input_px, generator=g) * 255)
    if config.backend == "torch":
        x = runner._to_device(x)  # time the model, not the host->device copy
    times = time_call(lambda: runner(x), runner.device, iters=iters)
    med = statistics.median(times)
    return {"config": config.label, "batch_size": config.batch_size, "batch_ms": med * 1e3,
            "ms_per_chip": med * 1e3 / config.batch_size, "chips_per_s": config.batch_size / med}
