"""Flips and 90-degree rotations of a square image together with the crossing points inside it."""

from __future__ import annotations

import numpy as np


def dihedral(image: np.ndarray, points: np.ndarray, sizes: np.ndarray, k: int, flip: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotate (C, H, W) by ``k`` quarter turns counter-clockwise, then mirror left-right if ``flip``.

    ``points`` (N, 2) are continuous pixel coordinates (x = column, y = row; pixel (r, c) spans
    [c, c+1) x [r, r+1)); ``sizes`` (N, 2) are (width, height) and swap under odd rotations.
    """
    _, h, w = image.shape
    pts = np.asarray(points, np.float32).reshape(-1, 2).copy()
    sz = np.asarray(sizes, np.float32).reshape(-1, 2).copy()
    for _ in range(k % 4):
        image = np.rot90(image, 1, axes=(1, 2))
        pts = np.stack([pts[:, 1], w - pts[:, 0]], 1)  # (x, y) -> (y, W - x)
        sz = sz[:, ::-1]
        h, w = w, h
    if flip:
        image = image[:, :, ::-1]
        pts[:, 0] = w - pts[:, 0]
    return np.ascontiguousarray(image), pts, np.ascontiguousarray(sz)


def random_dihedral(image: np.ndarray, points: np.ndarray, sizes: np.ndarray, rng: np.random.Generator):
    return dihedral(image, points, sizes, int(rng.integers(4)), bool(rng.integers(2)))
