"""Window stage: the sliding-window grid over a raster and its partition into blocks read with a halo.

Windows are ``size`` px squares at ``stride`` px; window (i, j) starts at pixel (i * stride, j * stride) of
the model-GSD grid, so its centre is at (j * stride + size / 2, i * stride + size / 2). The grid covers the
whole raster: the last row and column of windows may reach past the edge (those pixels are invalid).

Blocks partition the *window grid*: each window belongs to exactly one block, so every window is produced
exactly once, whatever the block size. A block's read region is its windows' union plus ``context`` px on
each side (the halo); block cores are multiples of the file's internal block size so that reads stay aligned
to the file's tiles or strips.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
import numpy as np

from .errors import RasterError

MIN_VALID = 0.5   # share of valid pixels a window needs to be evaluated (and trained)


@dataclass(frozen=True)
class WindowGrid:
    width: int
    height: int
    size: int = 100
    stride: int = 24
    context: int = 0

    def __post_init__(self) -> None:
        if self.stride <= 0 or self.stride > self.size:
            raise ValueError(f"stride must be in 1..{self.size}, got {self.stride}")

    @property
    def rows(self) -> int:
        return max(1, math.ceil(max(self.height - self.size, 0) / self.stride) + 1)

    @property
    def cols(self) -> int:
        return max(1, math.ceil(max(self.width - self.size, 0) / self.stride) + 1)

    def __len__(self) -> int:
        return self.rows * self.cols

    def centres(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (x, y) of window centres for window indices."""
        return cols * self.stride + self.size / 2, rows * self.stride + self.size / 2


@dataclass(frozen=True)
class BlockPlan:
    """One block: window index ranges it owns and the pixel region (with halo) it reads."""

    index: int
    row0: int            # first window row index
    col0: int
    nrows: int           # windows in this block
    ncols: int
    read_row: int        # pixel origin of the read region (may be negative: padded)
    read_col: int
    read_height: int
    read_width: int


def plan_blocks(grid: WindowGrid, block_px: int, align: tuple[int, int] = (1, 1),
                bounds: tuple[int, int, int, int] | None = None) -> list[BlockPlan]:
    """Blocks of about ``block_px`` px of window origins, aligned to the file's ``align`` block shape.

    ``bounds`` (row0, col0, row1, col1) in pixels keeps only blocks whose windows touch that region (an AOI).
    """
    core_h, core_w = (_aligned(block_px, a) for a in align)
    # window index ranges of each band of blocks: windows whose origin lies in [k*core, (k+1)*core)
    row_edges = _edges(grid.rows, grid.stride, core_h)
    col_edges = _edges(grid.cols, grid.stride, core_w)
    plans = []
    for r0, r1 in row_edges:
        for c0, c1 in col_edges:
            if bounds is not None:
                top, left = r0 * grid.stride, c0 * grid.stride
                bottom, right = (r1 - 1) * grid.stride + grid.size, (c1 - 1) * grid.stride + grid.size
                if bottom <= bounds[0] or top >= bounds[2] or right <= bounds[1] or left >= bounds[3]:
                    continue
            nr, nc = r1 - r0, c1 - c0
            plans.append(BlockPlan(len(plans), r0, c0, nr, nc,
                                   r0 * grid.stride - grid.context, c0 * grid.stride - grid.context,
                                   (nr - 1) * grid.stride + grid.size + 2 * grid.context,
                                   (nc - 1) * grid.stride + grid.size + 2 * grid.context))
    return plans


def _aligned(block_px: int, a: int) -> int:
    """The largest multiple of the file's block size ``a`` not above ``block_px`` (or ``block_px``)."""
    a = max(1, int(a))
    return (block_px // a) * a if a <= block_px else block_px


def _edges(n_windows: int, stride: int, core: int) -> list[tuple[int, int]]:
    edges, start = [], 0
    k = 1
    while start < n_windows:
        stop = min(n_windows, -(-k * core // stride))   # first window whose origin >= k*core
        if stop > start:
            edges.append((start, stop))
            start = stop
        k += 1
    return edges


def valid_fraction(valid: np.ndarray, plan: BlockPlan, grid: WindowGrid) -> np.ndarray:
    """(nrows, ncols) share of valid pixels in each window's ``size`` x ``size`` core."""
    ii = np.zeros((valid.shape[0] + 1, valid.shape[1] + 1), np.int64)
    ii[1:, 1:] = np.cumsum(np.cumsum(valid, 0, dtype=np.int64), 1)
    r = grid.context + grid.stride * np.arange(plan.nrows)
    c = grid.context + grid.stride * np.arange(plan.ncols)
    s = grid.size
    total = ii[r[:, None] + s, c[None, :] + s] - ii[r[:, None], c[None, :] + s] \
        - ii[r[:, None] + s, c[None, :]] + ii[r[:, None], c[None, :]]
    return total / float(s * s)


def extract_chips(data: np.ndarray, rows: np.ndarray, cols: np.ndarray, grid: WindowGrid) -> np.ndarray:
    """(N, C, S, S) chips with context of the windows at local indices (rows, cols) of a block's data."""
    s = grid.size + 2 * grid.context
    view = np.lib.stride_tricks.sliding_window_view(data, (s, s), axis=(1, 2))  # (C, H-s+1, W-s+1, s, s)
    chips = view[:, rows * grid.stride, cols * grid.stride]                       # (C, N, s, s)
    return np.ascontiguousarray(chips.transpose(1, 0, 2, 3))


def check_size(width: int, height: int, size: int, min_valid: float) -> None:
    """A raster too small for any window to reach the valid-fraction threshold is a user error."""
    if width < size / 2 or height < size / 2 or width * height < min_valid * size * size:
        raise RasterError(f"raster is {width} x {height} px at the model's GSD, smaller than the "
                          f"{size} x {size} px chip the model needs")



@dataclass
class Block:
    """What the window stage hands to an engine: a block's pixels, validity, and the windows to evaluate."""

    plan: BlockPlan
    data: np.ndarray      # (C, read_height, read_width) uint8
    valid: np.ndarray     # (read_height, read_width) bool
    keep: np.ndarray      # (nrows, ncols) bool: windows valid enough to evaluate

    @property
    def n_windows(self) -> int:
        return int(self.keep.sum())
