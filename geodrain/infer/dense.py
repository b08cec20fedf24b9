"""The dense engine: the conv trunk runs once over each block, every window is pooled from the shared map.

SPP-Net's own idea (He et al. 2014): convolve the image once and apply spatial pyramid pooling to each
window's region of the feature map. Window (i, j) of a block read at ``(row0 - context, col0 - context)``
covers feature cells ``[context/8 + i*stride/8, +12)``; the SPP bins are the exact adaptive-pool bins of that
12 x 12 region (:func:`geodrain.model.sppnet.pool_windows`), and the FC head runs as one matrix product
over all windows of the block. With a bundle trained with >= 16 px of context (the default), the result equals
chip-by-chip inference up to float rounding; the stride must be a multiple of the 8 px feature stride.

On CUDA the block is padded to one fixed shape so that the whole computation can be captured in a CUDA
graph and replayed for every block.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DeviceError
from ..model.bundle import Bundle
from ..model.sppnet import FEATURE_STRIDE, SPPNet
from ..window import Block, WindowGrid
from .base import MIN_EXACT_CONTEXT, PendingScores, WindowScores  # noqa: F401 - re-exported
from .runtime import GraphedCall, RunConfig, prepare_module


class DenseModule(torch.nn.Module):
    """``forward(block) -> (1, rows, cols, 5)`` for a fixed window step; exportable to ONNX."""

    def __init__(self, model: SPPNet, step_px: int):
        super().__init__()
        self.model = model
        self.step_px = step_px

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_dense(x, self.step_px)


def check_dense(grid: WindowGrid, bundle: Bundle) -> None:
    if grid.stride % FEATURE_STRIDE:
        raise DeviceError(f"the dense engine needs a stride that is a multiple of {FEATURE_STRIDE} px "
                          f"(got {grid.stride}); use a stride of 8, 16, 24 ... px, or the chip engine",
                          cli_hint={"engine": "--engine chip"})


class DenseEngine:
    name = "dense"

    def __init__(self, bundle: Bundle, config: RunConfig, grid: WindowGrid, block_px: int = 1024):
        check_dense(grid, bundle)
        if config.backend == "onnx":
            raise DeviceError("the dense engine runs with torch; ONNX Runtime runs the chip engine",
                              cli_hint={"engine": "--engine chip"})
        self.config = config
        self.grid = grid
        self.block_px = block_px
        self.device = torch.device(config.device)
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[config.precision]
        self.module = DenseModule(prepare_module(bundle.model, config), grid.stride).eval()
        self.exact = bundle.context_px >= MIN_EXACT_CONTEXT
        self._graph: GraphedCall | None = None
        self._shape: tuple[int, int] | None = None
        self._staging: torch.Tensor | None = None
        self._staging_np: np.ndarray | None = None
        self._staging_event = None

    def _input(self, data: np.ndarray, shape: tuple[int, int] | None) -> torch.Tensor:
        if self.device.type == "cuda" and shape is not None:
            # one host copy: the block goes straight into a reused pinned buffer of the static shape
            if self._staging is None:
                self._staging = torch.zeros((data.shape[0], *shape), dtype=torch.uint8).pin_memory()
                self._staging_np = self._staging.numpy()
            else:
                self._staging_np[:, data.shape[1]:, :] = 0
                self._staging_np[:, :, data.shape[2]:] = 0
            self._staging_np[:, :data.shape[1], :data.shape[2]] = data
            t = self._staging.to(self.device, non_blocking=True)
            self._staging_event = torch.cuda.Event()
            self._staging_event.record()
        else:
            t = torch.from_numpy(data)
            if shape is not None and tuple(t.shape[1:]) != shape:
                pad = torch.zeros((t.shape[0], *shape), dtype=t.dtype)
                pad[:, :t.shape[1], :t.shape[2]] = t
                t = pad
            if self.device.type == "cuda":
                t = t.pin_memory().to(self.device, non_blocking=True)
        x = t[None].to(self.dtype)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def submit(self, block: Block) -> PendingScores:
        rows, cols = np.nonzero(block.keep)
        grows, gcols = rows + block.plan.row0, cols + block.plan.col0
        if len(rows) == 0:
            return PendingScores(grows, gcols, None)
        # Only the part of the block its kept windows (with context) cover: a block at the edge of the data
        # (a nodata collar, a sparse file) costs what its valid windows need. The crop starts at a multiple of
        # the stride, so the feature cells stay aligned and the scores are the same.
        r_lo, c_lo = int(rows.min()), int(cols.min())
        span = self.grid.size + 2 * self.grid.context
        s = self.grid.stride
        data = block.data[:, r_lo * s:int(rows.max()) * s + span, c_lo * s:int(cols.max()) * s + span]
        rows, cols = rows - r_lo, cols - c_lo
        with torch.inference_mode():
            if self.config.cuda_graph:
                if self._shape is None:
                    # the first (interior) block's full read fixes the static shape; smaller ones are padded
                    self._shape = (block.plan.read_height, block.plan.read_width)
                if data.shape[1] > self._shape[0] or data.shape[2] > self._shape[1]:
                    out = self.module(self._input(data, None))
                else:
                    if self._staging_event is not None:
                        self._staging_event.synchronize()   # the previous copy out of the buffer is done
                    x = self._input(data, self._shape)
                    if self._graph is None:
                        self._graph = GraphedCall(self.module, x)
                    out = self._graph(x)
            else:
                out = self.module(self._input(data, None))
            sel = out[0, torch.as_tensor(rows, device=out.device), torch.as_tensor(cols, device=out.device)]
        return PendingScores(grows, gcols, sel.float())   # a copy: graph replays do not overwrite it

    def run(self, block: Block) -> WindowScores:
        return self.submit(block).result()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def export_dense_onnx(bundle: Bundle, path, step_px: int = 24, block_windows: int = 32) -> float:
    """Export the dense computation for a fixed block of ``block_windows``^2 windows; returns the max
    |onnx - torch| on a random block."""
    import warnings

    from .runtime import onnxruntime


    ort = onnxruntime()

    model = bundle.model.eval().cpu()
    side = model.input_px + step_px * (block_windows - 1)
    module = DenseModule(model, step_px).eval()
    x = torch.rand(1, model.arch.bands, side, side) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), input_names=["block"], output_names=["windows"],
                          opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = module(x).numpy()
    got = sess.run(None, {"block": x.numpy()})[0]
    return float(np.abs(got - ref).max())
