"""On-the-fly training crops from rasters and truth points, for training sets of any size.

Each sample is a square crop with context around a grid of windows at the dense feature stride (8 px), so
one trunk pass trains many windows at once, and the computation is the one that dense detection runs. Crops
are centred near a crossing, near a hard negative, or anywhere, with random dihedral augmentation; window
labels follow :func:`geodrain.datasets.targets.grid_targets`. Crops are read as detection reads
(:meth:`geodrain.datasets.scene.Scene.read`: model GSD, 8-bit scaling, validity), windowed, with dataset
handles per worker process; nothing is loaded whole. A window detection would skip (valid share below
:data:`geodrain.window.MIN_VALID`) is not trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DatasetError
from ..model.sppnet import FEATURE_STRIDE, WINDOW_PX
from ..window import MIN_VALID, BlockPlan, WindowGrid, valid_fraction
from .augment import random_dihedral
from .scene import Scene
from .targets import IGNORE, grid_targets


@dataclass(frozen=True)
class CropSpec:
    """Crop geometry: ``windows`` x ``windows`` windows at the feature stride, plus context."""

    context_px: int = 16
    windows: int = 9

    @property
    def input_px(self) -> int:
        return WINDOW_PX + 2 * self.context_px

    @property
    def size(self) -> int:
        return self.input_px + FEATURE_STRIDE * (self.windows - 1)

    @property
    def first_centre(self) -> float:
        return self.context_px + WINDOW_PX / 2

    def valid_windows(self, valid: np.ndarray) -> np.ndarray:
        """(windows, windows) bool: the crop's windows with enough valid pixels to be evaluated."""
        n = self.windows
        grid = WindowGrid(self.size, self.size, WINDOW_PX, FEATURE_STRIDE, self.context_px)
        plan = BlockPlan(0, 0, 0, n, n, 0, 0, self.size, self.size)
        return valid_fraction(valid, plan, grid) >= MIN_VALID


def ignore_invalid(target: np.ndarray, valid_windows: np.ndarray) -> np.ndarray:
    """``target`` (rows, cols, 5) with the label of every window not in ``valid_windows`` set to ignored."""
    target[..., 0] = np.where(valid_windows, target[..., 0], IGNORE)
    return target


class SceneCropDataset(torch.utils.data.Dataset):
    """``length`` random crops per epoch from ``scenes``: (image uint8 (C, S, S), targets (n, n, 5)).

    ``mix`` = fractions of crops centred near crossings, near hard negatives (road intersections, waterway
    ends ...), along roads and streams away from crossings (the linear features a crossing detector most
    easily confuses with crossings), and anywhere. Crops are deterministic in (seed, epoch, index); call
    :meth:`set_epoch` between epochs.

    ``balance_by`` names a text attribute of the truth crossings (e.g. ``road_kind``): crops centred on
    crossings then draw each value of it, over all scenes, in proportion to the square root of its count
    instead of its count, so rare values are seen more often without a few examples dominating.

    A scene with hard examples mined by a trained model (``Scene.mined``, from ``geodrain mine``) has its
    hard-negative crops centred on the mined false positives half of the time, and its missed crossings drawn
    ``MISSED_WEIGHT`` times as often as its other crossings.
    """

    MISSED_WEIGHT = 4.0

    def __init__(self, scenes: list[Scene], spec: CropSpec, length: int, mix=(0.35, 0.15, 0.35, 0.15),
                 bands: tuple[int, ...] = (1, 2, 3, 4), augment: bool = True, seed: int = 0,
                 exclude: list[np.ndarray] | None = None, balance_by: str | None = None):
        self.scenes = scenes
        self.spec = spec
        self.length = int(length)
        self.mix = np.asarray(mix, float) / np.sum(mix)
        self.bands = tuple(bands)
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self._cross = [s.to_pixels(s.crossings.xy) if len(s.crossings) else np.zeros((0, 2)) for s in scenes]
        self._sizes = [s.crossings.sizes_m / s.gsd for s in scenes]
        self._hard = [s.to_pixels(s.hard_negatives.xy) if len(s.hard_negatives) else np.zeros((0, 2))
                      for s in scenes]
        # crossings reserved for validation: never placed as crop centres (still labelled if inside)
        self._centres = [c if exclude is None else c[~exclude[i]] for i, c in enumerate(self._cross)]
        self._mined_fp = [self._mined(s, "false_positive") for s in scenes]
        self._centre_p = [self._centre_weights(c, self._mined(s, "missed")) for s, c in zip(scenes, self._centres)]
        self._lines = [self._far_line_points(s, c) for s, c in zip(scenes, self._cross)]
        self._balanced = self._balanced_centres(balance_by, exclude) if balance_by else None

    def _balanced_centres(self, column: str, exclude: list[np.ndarray] | None):
        """(scene, centre index) of every training crossing and a probability each (value shares ~ sqrt(count))."""
        pairs, values = [], []
        for k, s in enumerate(self.scenes):
            if column not in s.crossings.attrs:
                raise DatasetError(f"{s.truth} has no crossing attribute '{column}' to balance by")
            v = s.crossings.attrs[column]
            v = v if exclude is None else v[~exclude[k]]
            pairs += [(k, i) for i in range(len(v))]
            values += list(v)
        if not pairs:
            return None
        _, inverse, counts = np.unique(np.asarray(values, dtype=str), return_inverse=True, return_counts=True)
        p = 1.0 / np.sqrt(counts[inverse])
        return np.asarray(pairs), p / p.sum()

    @staticmethod
    def _mined(scene: Scene, kind: str) -> np.ndarray:
        """Pixel positions of a scene's mined points of one kind (none without ``mined.gpkg``)."""
        if scene.mined is None or not len(scene.mined):
            return np.zeros((0, 2))
        pts = scene.mined.xy[scene.mined.kinds == kind]
        return scene.to_pixels(pts) if len(pts) else np.zeros((0, 2))

    @classmethod
    def _centre_weights(cls, centres: np.ndarray, missed: np.ndarray) -> np.ndarray | None:
        """Draw probabilities of a scene's crossing centres (None: uniform), missed crossings weighted up."""
        if not len(missed) or not len(centres):
            return None
        from scipy.spatial import cKDTree

        d, _ = cKDTree(missed).query(centres)
        w = np.where(d < 1.0, cls.MISSED_WEIGHT, 1.0)
        return w / w.sum()

    @staticmethod
    def _far_line_points(scene: Scene, cross: np.ndarray) -> np.ndarray:
        """Pixel points along the scene's roads and streams, farther than a window from any crossing."""
        if not scene.lines:
            return np.zeros((0, 2))
        pts = scene.to_pixels(np.concatenate(list(scene.lines.values())))
        if len(cross):
            from scipy.spatial import cKDTree

            d, _ = cKDTree(cross).query(pts, p=np.inf)
            pts = pts[d > WINDOW_PX / 2]
        return pts

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def crop_origin(self, i: int, rng: np.random.Generator) -> tuple[int, int, int]:
        """(scene index, column, row) of crop ``i``'s top-left corner, drawn from ``rng``."""
        k = int(rng.integers(len(self.scenes)))
        scene, size = self.scenes[k], self.spec.size
        kind = rng.choice(len(self.mix), p=self.mix)
        span = FEATURE_STRIDE * (self.spec.windows - 1) / 2 + 16
        pools = (self._centres[k], self._hard[k], self._lines[k])
        if kind == 0 and self._balanced is not None:
            pairs, p = self._balanced
            k, j = (int(v) for v in pairs[rng.choice(len(p), p=p)])
            scene = self.scenes[k]
            centre = self._centres[k][j] + rng.uniform(-span, span, 2)
        elif kind == 0 and self._centre_p[k] is not None:
            centre = pools[0][rng.choice(len(pools[0]), p=self._centre_p[k])] + rng.uniform(-span, span, 2)
        elif kind == 1 and len(self._mined_fp[k]) and (not len(pools[1]) or rng.random() < 0.5):
            mined = self._mined_fp[k]
            centre = mined[rng.integers(len(mined))] + rng.uniform(-span, span, 2)
        elif kind < len(pools) and len(pools[kind]):
            centre = pools[kind][rng.integers(len(pools[kind]))] + rng.uniform(-span, span, 2)
        else:
            centre = rng.uniform([0, 0], [scene.width, scene.height])
        col = int(np.clip(np.floor(centre[0]) - size // 2, 0, max(scene.width - size, 0)))
        row = int(np.clip(np.floor(centre[1]) - size // 2, 0, max(scene.height - size, 0)))
        return k, col, row

    def __getitem__(self, i: int):
        rng = np.random.default_rng((self.seed, self.epoch, i))
        k, col, row = self.crop_origin(i, rng)
        size = self.spec.size
        img, valid = self.scenes[k].read(col, row, size, self.bands)
        pts = self._cross[k] - np.array([col, row])
        near = (pts[:, 0] > -64) & (pts[:, 0] < size + 64) & (pts[:, 1] > -64) & (pts[:, 1] < size + 64)
        pts, sizes = pts[near], self._sizes[k][near]
        partial = not valid.all()
        if self.augment:
            # the validity mask turns with the image (one more channel: the same draws from rng)
            stack = np.concatenate([img, valid[None].astype(np.uint8)]) if partial else img
            stack, pts, sizes = random_dihedral(stack, pts, sizes, rng)
            img, valid = (stack[:-1], stack[-1] > 0) if partial else (stack, valid)
        n = self.spec.windows
        target = grid_targets(pts, sizes, self.spec.first_centre, FEATURE_STRIDE, n, n)
        if partial:
            target = ignore_invalid(target, self.spec.valid_windows(valid))
        return torch.from_numpy(np.ascontiguousarray(img)), torch.from_numpy(target)
