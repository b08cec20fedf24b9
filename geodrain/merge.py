"""Merge stage: window scores -> candidate points in map units -> one point per crossing.

A window whose crossing probability reaches the threshold proposes a point: its centre plus the regressed
offset, through the raster's affine transform. Points on invalid pixels (nodata, outside the AOI) are
dropped. Candidates from all blocks and files are merged at the end, in map units: the strongest candidate
claims every unclaimed candidate within ``radius`` metres; the crossing is their score-weighted mean with
the maximum score and the number of supporting windows. Merging after all blocks means nothing is reported
twice or lost at a block or file seam.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from .datasets.targets import decode_boxes
from .infer.base import WindowScores
from .window import Block, WindowGrid


@dataclass
class Candidates:
    """Points proposed by single windows, in map coordinates."""

    xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    size: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    centre: np.ndarray | None = None   # each window's centre (map units); None: the points themselves

    def __post_init__(self) -> None:
        if self.centre is None:
            self.centre = np.array(self.xy, np.float64, copy=True).reshape(-1, 2)

    @property
    def offset(self) -> np.ndarray:
        """Distance of each point from its window's centre (map units)."""
        return np.hypot(*(self.xy - self.centre).T)

    def __len__(self) -> int:
        return len(self.score)

    def subset(self, keep: np.ndarray) -> "Candidates":
        return Candidates(self.xy[keep], self.score[keep], self.size[keep], self.centre[keep])

    @classmethod
    def concat(cls, parts: list["Candidates"]) -> "Candidates":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls()
        return cls(np.concatenate([p.xy for p in parts]), np.concatenate([p.score for p in parts]),
                   np.concatenate([p.size for p in parts]), np.concatenate([p.centre for p in parts]))


@dataclass
class Crossings:
    """Merged detections: one row per crossing, map coordinates in the raster's CRS."""

    xy: np.ndarray
    score: np.ndarray
    n_windows: np.ndarray
    size_m: np.ndarray

    def __len__(self) -> int:
        return len(self.score)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def decode(scores: WindowScores, block: Block, grid: WindowGrid, transform, threshold: float) -> Candidates:
    """Candidates of one block: windows at or above ``threshold`` whose point lands on a valid pixel."""
    prob = sigmoid(scores.logits)
    hit = prob >= threshold
    if not hit.any():
        return Candidates()
    rows, cols = scores.rows[hit], scores.cols[hit]
    offsets, sizes = decode_boxes(scores.reg[hit])
    half = grid.size / 2
    offsets = np.clip(offsets, -half, half - 1e-3)
    cx, cy = grid.centres(rows, cols)
    px, py = cx + offsets[:, 0], cy + offsets[:, 1]
    # validity of the pixel under the point, read from the block's mask
    lr = np.floor(py).astype(int) - block.plan.read_row
    lc = np.floor(px).astype(int) - block.plan.read_col
    inside = (lr >= 0) & (lr < block.valid.shape[0]) & (lc >= 0) & (lc < block.valid.shape[1])
    ok = np.zeros(len(px), bool)
    ok[inside] = block.valid[lr[inside], lc[inside]]
    x, y = transform @ (px[ok], py[ok])
    wx, wy = transform @ (cx[ok], cy[ok])
    gsd = abs(transform.a)
    return Candidates(np.column_stack([x, y]), prob[hit][ok].astype(np.float32),
                      (sizes[ok] * gsd).astype(np.float32), np.column_stack([wx, wy]))


def merge_candidates(cands: Candidates, radius: float) -> Crossings:
    """Greedy score-ordered clustering within ``radius`` (map units); no chaining across clusters."""
    n = len(cands)
    if n == 0:
        return Crossings(np.zeros((0, 2)), np.zeros(0, np.float32), np.zeros(0, np.int32),
                         np.zeros((0, 2), np.float32))
    order = np.argsort(-cands.score, kind="stable")
    tree = cKDTree(cands.xy)
    claimed = np.zeros(n, bool)
    xy, score, count, size = [], [], [], []
    for i in order:
        if claimed[i]:
            continue
        members = np.array([j for j in tree.query_ball_point(cands.xy[i], radius) if not claimed[j]])
        claimed[members] = True
        w = cands.score[members].astype(np.float64)
        xy.append((cands.xy[members] * w[:, None]).sum(0) / w.sum())
        score.append(cands.score[i])
        count.append(len(members))
        size.append((cands.size[members] * w[:, None]).sum(0) / w.sum())
    return Crossings(np.array(xy), np.array(score, np.float32), np.array(count, np.int32),
                     np.array(size, np.float32))
