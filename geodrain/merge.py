"""Merge stage: window scores -> candidate points in map units -> one point per crossing.

A window whose crossing probability reaches the threshold proposes a point: its centre plus the regressed
offset, through the raster's affine transform. Points on invalid pixels (nodata, outside the AOI) are
dropped. Candidates from all blocks and files are merged at the end, in map units: the strongest candidate
claims every unclaimed candidate within ``radius`` metres; the crossing is their score-weighted mean with
the maximum score and the number of supporting windows. Merging after all blocks means nothing is reported
twice or lost at a block or file seam.

This module holds the pieces (:func:`decode`, :func:`clusters`, :func:`merge_candidates`);
:mod:`geodrain.postprocess` puts them together into the one path every caller uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.spatial import cKDTree

from .model.boxes import decode_boxes
from .infer.base import WindowScores
from .window import Block, WindowGrid


@dataclass
class Candidates:
    """Points proposed by single windows, in map coordinates.

    ``floor`` is the probability they were decoded at: every window scoring at least ``floor`` (and landing
    on a valid pixel) is here, so any threshold at or above it can be applied later.
    """

    xy: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    size: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    centre: np.ndarray | None = None   # each window's centre (map units); None: the points themselves
    floor: float = 0.0

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
        return Candidates(self.xy[keep], self.score[keep], self.size[keep], self.centre[keep], self.floor)

    def at(self, threshold: float) -> "Candidates":
        """The candidates scoring at least ``threshold`` (all of them when it is not above the floor)."""
        if threshold <= self.floor:
            return self
        out = self.subset(self.score >= threshold)
        out.floor = float(threshold)
        return out

    @classmethod
    def concat(cls, parts: list["Candidates"], floor: float | None = None) -> "Candidates":
        """One set of the ``parts`` (decoded at the same floor, which ``floor`` may state for empty sets)."""
        floor = min((p.floor for p in parts), default=0.0) if floor is None else floor
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls(floor=floor)
        return cls(np.concatenate([p.xy for p in parts]), np.concatenate([p.score for p in parts]),
                   np.concatenate([p.size for p in parts]), np.concatenate([p.centre for p in parts]), floor)


@dataclass
class Crossings:
    """Merged detections: one row per crossing, map coordinates in the raster's CRS."""

    xy: np.ndarray
    score: np.ndarray
    n_windows: np.ndarray
    size_m: np.ndarray

    def __len__(self) -> int:
        return len(self.score)

    def subset(self, keep: np.ndarray) -> "Crossings":
        return Crossings(self.xy[keep], self.score[keep], self.n_windows[keep], self.size_m[keep])

    @classmethod
    def empty(cls) -> "Crossings":
        return cls(np.zeros((0, 2)), np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros((0, 2), np.float32))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def decode(scores: WindowScores, block: Block, grid: WindowGrid, transform, threshold: float) -> Candidates:
    """Candidates of one block: windows scoring at least ``threshold`` (their floor) whose point lands on a
    valid pixel."""
    prob = sigmoid(scores.logits)
    hit = prob >= threshold
    if not hit.any():
        return Candidates(floor=threshold)
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
                      (sizes[ok] * gsd).astype(np.float32), np.column_stack([wx, wy]), threshold)


Weights = Callable[[Candidates, np.ndarray], np.ndarray]


def probability_weights(cands: Candidates, members: np.ndarray) -> np.ndarray:
    """Detection's position weights: each window's probability."""
    return cands.score[members].astype(np.float64)


def clusters(cands: Candidates, radius: float) -> list[tuple[int, np.ndarray]]:
    """Greedy score-ordered clustering within ``radius`` (map units), without chaining: (the strongest
    window, the indices of every window it claims) per cluster, strongest cluster first."""
    order = np.argsort(-cands.score, kind="stable")
    tree = cKDTree(cands.xy)
    claimed = np.zeros(len(cands), bool)
    out = []
    for i in order:
        if claimed[i]:
            continue
        members = np.array([j for j in tree.query_ball_point(cands.xy[i], radius) if not claimed[j]])
        claimed[members] = True
        out.append((int(i), members))
    return out


def merge_candidates(cands: Candidates, radius: float, *, weights: Weights = probability_weights,
                     at_centres: bool = False) -> Crossings:
    """One crossing per cluster (:func:`clusters`): the ``weights``-weighted mean of its windows' points (or,
    with ``at_centres``, of their window centres) and sizes, its strongest window's score, its window count."""
    if len(cands) == 0:
        return Crossings.empty()
    points = cands.centre if at_centres else cands.xy
    xy, score, count, size = [], [], [], []
    for i, members in clusters(cands, radius):
        w = weights(cands, members)
        xy.append((points[members] * w[:, None]).sum(0) / w.sum())
        score.append(cands.score[i])
        count.append(len(members))
        size.append((cands.size[members] * w[:, None]).sum(0) / w.sum())
    return Crossings(np.array(xy), np.array(score, np.float32), np.array(count, np.int32),
                     np.array(size, np.float32))
