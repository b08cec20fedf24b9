"""Merge stage: window scores -> candidate points in map units -> one point per crossing.

A window whose crossing probability reaches the threshold proposes a point: its centre plus the regressed
offset, through the raster's affine transform. Points on invalid pixels (nodata, outside the AOI) are
dropped. Candidates from all blocks and files are merged at the end, in map units: the strongest candidate
claims every unclaimed candidate within ``radius`` metres; the crossing is their score-weighted mean (or,
with a placement radius, the mean of those near the strongest window's point) with the maximum score, the
number of supporting windows and their imagery evidence. Merging after all blocks means nothing is reported
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


IMAGERY_EVIDENCE = ("max_logit", "mean_logit", "log_windows")
"""The imagery evidence of a merged crossing (:func:`merge_candidates`): its strongest and mean window logit
and the log of its number of windows, what a score calibrator (:mod:`geodrain.scoring`) reads."""


@dataclass
class Crossings:
    """Merged detections: one row per crossing, map coordinates in the raster's CRS.

    ``score`` is the strongest window's probability; ``evidence`` holds per-crossing evidence columns (the
    imagery's, :data:`IMAGERY_EVIDENCE`, and, where a DEM was read, :data:`geodrain.dem_features.DEM_FEATURES`);
    ``probability`` is the calibrated probability that the crossing is real, where a calibrator scored it.
    """

    xy: np.ndarray
    score: np.ndarray
    n_windows: np.ndarray
    size_m: np.ndarray
    evidence: dict[str, np.ndarray] = field(default_factory=dict)
    probability: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.score)

    def subset(self, keep: np.ndarray) -> "Crossings":
        return Crossings(self.xy[keep], self.score[keep], self.n_windows[keep], self.size_m[keep],
                         {k: v[keep] for k, v in self.evidence.items()},
                         None if self.probability is None else self.probability[keep])

    def matrix(self, names) -> np.ndarray:
        """The evidence columns ``names`` as an (n, len(names)) array."""
        names = list(names)
        missing = [n for n in names if n not in self.evidence]
        if missing:
            raise KeyError(f"crossings carry no evidence {', '.join(missing)}")
        if not len(self):
            return np.zeros((0, len(names)))
        return np.column_stack([np.asarray(self.evidence[n], np.float64) for n in names])

    @property
    def reported_score(self) -> np.ndarray:
        """The score a user sees: the calibrated probability where there is one, else the window score."""
        return self.score if self.probability is None else self.probability

    @classmethod
    def empty(cls) -> "Crossings":
        return cls(np.zeros((0, 2)), np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros((0, 2), np.float32),
                   {k: np.zeros(0) for k in IMAGERY_EVIDENCE})


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


LOGIT_CLIP = 1e-7   # window probabilities are float32: their logits are finite within about +-16


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(p / (1.0 - p))


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
                     at_centres: bool = False, place_radius: float | None = None) -> Crossings:
    """One crossing per cluster (:func:`clusters`): the ``weights``-weighted mean of its windows' points (or,
    with ``at_centres``, of their window centres) and sizes, its strongest window's score, its window count
    and its imagery evidence (:data:`IMAGERY_EVIDENCE`, from all its windows).

    ``place_radius`` (map units): place the crossing from the windows whose points lie within this distance of
    the strongest window's point only (robust placement: windows further out still belong to the crossing,
    for de-duplication and evidence, but do not pull its point towards them)."""
    if len(cands) == 0:
        return Crossings.empty()
    points = cands.centre if at_centres else cands.xy
    lg = logit(cands.score)
    xy, score, count, size, mean_lg = [], [], [], [], []
    for i, members in clusters(cands, radius):
        placing = members
        if place_radius is not None:
            near = np.hypot(*(cands.xy[members] - cands.xy[i]).T) <= place_radius
            placing = members[near]
        w = weights(cands, placing)
        xy.append((points[placing] * w[:, None]).sum(0) / w.sum())
        score.append(cands.score[i])
        count.append(len(members))
        size.append((cands.size[placing] * w[:, None]).sum(0) / w.sum())
        mean_lg.append(lg[members].mean())
    count = np.array(count, np.int32)
    evidence = {"max_logit": logit(np.array(score, np.float64)), "mean_logit": np.array(mean_lg),
                "log_windows": np.log(count.astype(np.float64))}
    return Crossings(np.array(xy), np.array(score, np.float32), count, np.array(size, np.float32), evidence)
