"""Tree crowns, sun geometry, hillshade and cast shadows for a tile.

Crowns are drawn from their centre points with one nearest-seed distance transform: a pixel belongs to the
crown of its nearest tree if it lies within that tree's (ragged) radius, and is shaded as a spheroid lit by
the scene's sun. Shadows are cast from a height field (crowns, buildings, bridge decks) by a doubling sweep
toward the sun, so the cost grows with log(shadow length).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi



@dataclass
class Sun:
    azimuth_deg: float
    elevation_deg: float

    @property
    def to_sun(self) -> np.ndarray:
        """Horizontal unit vector toward the sun in scene coordinates (x east, y south)."""
        a = np.deg2rad(self.azimuth_deg)
        return np.array([np.sin(a), -np.cos(a)])

    @property
    def vector(self) -> np.ndarray:
        e = np.deg2rad(self.elevation_deg)
        h = self.to_sun * np.cos(e)
        return np.array([h[0], h[1], np.sin(e)], np.float32)

    @property
    def tan(self) -> float:
        return float(np.tan(np.deg2rad(self.elevation_deg)))


def hillshade(dem: np.ndarray, sun: Sun) -> np.ndarray:
    """Cosine of the incidence angle relative to flat ground (1 on the flat)."""
    gy, gx = np.gradient(dem)
    L = sun.vector
    num = -gx * L[0] - gy * L[1] + L[2]
    cos_i = num / np.sqrt(1.0 + gx * gx + gy * gy)
    return (np.maximum(cos_i, 0.0) / L[2]).astype(np.float32)


def _shift(a: np.ndarray, dy: int, dx: int, fill: float) -> np.ndarray:
    """out[i, j] = a[i + dy, j + dx] (fill outside)."""
    out = np.full_like(a, fill)
    H, W = a.shape
    ys, yd = (slice(dy, H), slice(0, H - dy)) if dy >= 0 else (slice(0, H + dy), slice(-dy, H))
    xs, xd = (slice(dx, W), slice(0, W - dx)) if dx >= 0 else (slice(0, W + dx), slice(-dx, W))
    out[yd, xd] = a[ys, xs]
    return out


def cast_shadow(height: np.ndarray, sun: Sun, max_h: float) -> np.ndarray:
    """Soft shadow (0..1) of a height field: how far the sun ray from each pixel passes below occluders."""
    if max_h <= 0.3:
        return np.zeros_like(height)
    s = sun.to_sun
    tan_e = sun.tan
    reach = int(np.ceil(max_h / tan_e)) + 1
    # M(p) = max_{1<=j<=k} h(p + j s) - j tan_e, by doubling k
    m = _shift(height, int(round(s[1])), int(round(s[0])), -1e9) - np.float32(tan_e)
    k = 1
    while k < reach:
        dy, dx = int(round(k * s[1])), int(round(k * s[0]))
        m = np.maximum(m, _shift(m, dy, dx, -1e9) - np.float32(k * tan_e))
        k *= 2
    sh = np.clip((m - height - 0.2) / 1.2, 0.0, 1.0)
    return ndi.gaussian_filter(sh, 0.6).astype(np.float32)


def crowns(trees, row0: int, col0: int, H: int, W: int, rag_noise: np.ndarray):
    """The crown pixels of the trees in a window.

    Returns None when no crown touches the window, else flat pixel indices, the tree of each pixel, its
    normalised radial distance t (0 centre, 1 rim) and the unit offsets (ux, uy) from the crown centre.
    """
    if len(trees) == 0:
        return None
    rmax = float(trees.r.max()) * 1.3 + 2
    m = ((trees.x > col0 - rmax) & (trees.x < col0 + W + rmax) &
         (trees.y > row0 - rmax) & (trees.y < row0 + H + rmax))
    if not m.any():
        return None
    idx = np.flatnonzero(m)
    ci = np.floor(trees.y[idx] - row0).astype(np.int64)
    cj = np.floor(trees.x[idx] - col0).astype(np.int64)
    inside = (ci >= 0) & (ci < H) & (cj >= 0) & (cj < W)
    idx, ci, cj = idx[inside], ci[inside], cj[inside]
    if len(idx) == 0:
        return None
    seed = np.full((H, W), -1, np.int64)
    seed[ci, cj] = idx
    d, (ni, nj) = ndi.distance_transform_edt(seed < 0, return_indices=True)
    px = np.flatnonzero(d.reshape(-1) < rmax)
    near = seed[ni.reshape(-1)[px], nj.reshape(-1)[px]]
    r, c = np.divmod(px, W)
    rag = 1.0 + 0.16 * rag_noise.reshape(-1)[px]
    rad = np.maximum(trees.r[near] * rag, 0.5)
    dy = (r + row0 + 0.5) - trees.y[near]
    dx = (c + col0 + 0.5) - trees.x[near]
    dist = np.hypot(dx, dy)
    keep = dist < rad
    if not keep.any():
        return None
    px, near, rad, dx, dy, dist = px[keep], near[keep], rad[keep], dx[keep], dy[keep], dist[keep]
    return (px, near, np.clip(dist / rad, 0.0, 1.0).astype(np.float32), (dx / rad).astype(np.float32),
            (dy / rad).astype(np.float32))
