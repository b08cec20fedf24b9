"""The boundary between inference and merging, and the engine interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..window import Block

if TYPE_CHECKING:   # torch is imported only by engines that run it (the ONNX Runtime engines do not)
    import torch

# with this much image context around each window, a window's feature cells never see the zero padding at a
# block's border, so the dense engines equal chip-by-chip inference (up to float rounding)
MIN_EXACT_CONTEXT = 16


@dataclass
class WindowScores:
    """Model outputs for the evaluated windows of one block (global window indices)."""

    rows: np.ndarray      # (N,) int
    cols: np.ndarray      # (N,) int
    logits: np.ndarray    # (N,) float32
    reg: np.ndarray       # (N, 4) float32: dx, dy, log w, log h

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def empty(cls) -> "WindowScores":
        return cls(np.zeros(0, int), np.zeros(0, int), np.zeros(0, np.float32), np.zeros((0, 4), np.float32))


class PendingScores:
    """The outputs of one block, possibly still being computed and copied back by the device.

    On CUDA the engine only enqueues the work and an asynchronous copy into pinned host memory, so the caller
    can decode the previous block (and the reader can prepare the next) while the GPU runs this one;
    :meth:`result` waits for the copy.
    """

    def __init__(self, rows: np.ndarray, cols: np.ndarray, out: torch.Tensor | np.ndarray | None):
        self.rows, self.cols = rows, cols
        self._event = None
        if out is not None and not isinstance(out, np.ndarray) and out.device.type == "cuda":
            import torch

            host = torch.empty(out.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(out, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
            out = host
        self._out = out

    def result(self) -> WindowScores:
        if self._out is None:
            return WindowScores.empty()
        if self._event is not None:
            self._event.synchronize()
        out = self._out if isinstance(self._out, np.ndarray) else self._out.float().numpy()
        return WindowScores(self.rows, self.cols, out[:, 0], out[:, 1:5])


class Engine(Protocol):
    """Runs the model on the kept windows of a block."""

    name: str
    block_px: int

    def submit(self, block: Block) -> PendingScores: ...

    def run(self, block: Block) -> WindowScores: ...

    def synchronize(self) -> None: ...
