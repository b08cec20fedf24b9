"""The chip engine: every window is cut out (with its context) and classified on its own, in batches.

This is the paper's way of running SPP-Net, at the bundle's tuned batch size. With torch the block is moved to
the device once and the chips are gathered there (a strided view), so host memory and the host-to-device
copy stay at one block; with ONNX Runtime the chips are gathered on the host.
"""

from __future__ import annotations

import numpy as np
import torch

from ..model.bundle import Bundle
from ..window import Block, WindowGrid, extract_chips
from .base import PendingScores, WindowScores
from .runtime import ChipRunner, RunConfig


class ChipEngine:
    name = "chip"

    def __init__(self, bundle: Bundle, config: RunConfig, grid: WindowGrid, block_px: int = 1024):
        self.config = config
        self.grid = grid
        self.block_px = block_px
        self.runner = ChipRunner(bundle.model, config, bundle.onnx_path)
        self.side = grid.size + 2 * grid.context
        self.device = torch.device(config.device)

    def submit(self, block: Block) -> PendingScores:
        rows, cols = np.nonzero(block.keep)
        grows, gcols = rows + block.plan.row0, cols + block.plan.col0
        if len(rows) == 0:
            return PendingScores(grows, gcols, None)
        bs = self.runner.batch_size
        if self.config.backend == "onnx":
            outs = [self.runner(extract_chips(block.data, rows[s:s + bs], cols[s:s + bs], self.grid))
                    for s in range(0, len(rows), bs)]
            return PendingScores(grows, gcols, np.concatenate(outs))
        t = torch.from_numpy(block.data)
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        view = t.unfold(1, self.side, self.grid.stride).unfold(2, self.side, self.grid.stride)
        r_all = torch.as_tensor(rows, device=self.device)
        c_all = torch.as_tensor(cols, device=self.device)
        outs = []
        for s in range(0, len(rows), bs):
            chips = view[:, r_all[s:s + bs], c_all[s:s + bs]].permute(1, 0, 2, 3)
            y = self.runner.run_device(chips)
            outs.append(y.clone() if self.config.cuda_graph else y)  # graph outputs are reused
        return PendingScores(grows, gcols, torch.cat(outs))   # one copy back per block, not waited for here

    def run(self, block: Block) -> WindowScores:
        return self.submit(block).result()

    def synchronize(self) -> None:
        self.runner.synchronize()
