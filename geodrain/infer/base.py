"""The boundary between inference and merging, and the engine interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..window import Block


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


class Engine(Protocol):
    """Runs the model on the kept windows of a block."""

    name: str
    block_px: int

    def run(self, block: Block) -> WindowScores: ...

    def synchronize(self) -> None: ...
