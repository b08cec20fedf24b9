"""Position-keyed noise: the same value for the same scene pixel whichever window asks for it.

The renderer works tile by tile (with overlapping margins), so every noise field is a pure function of the
global pixel position and a key drawn once from the scene's random generator. Three kinds:

* :func:`white` -- independent per-pixel values from an integer hash of (row, col, key);
* :func:`lattice` -- smooth value noise: hashed values on a square lattice of a given cell size,
  interpolated with cubic B-spline weights (separable, no matrix products, so bit-for-bit reproducible);
* :func:`fbm` -- a weighted sum of lattice octaves.

All functions return float32 arrays with roughly zero mean and unit standard deviation.
"""

from __future__ import annotations

import numpy as np

_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
_P1 = np.uint32(0x9E3779B1)
_P2 = np.uint32(0x85EBCA77)

# standard deviation of a cubic B-spline interpolation of i.i.d. U(-1, 1) lattice values, averaged over the
# cell (measured); dividing by it gives unit-variance fields
_LATTICE_STD = 0.2765
_SERIES_STD = 0.4089  # the same for the 1-D spline


def _mix(h: np.ndarray) -> np.ndarray:
    """A 32-bit integer finaliser (xorshift-multiply); in place on a uint32 array."""
    h ^= h >> np.uint32(16)
    h *= _M1
    h ^= h >> np.uint32(15)
    h *= _M2
    h ^= h >> np.uint32(16)
    return h


def hash2(rows: np.ndarray, cols: np.ndarray, key: int) -> np.ndarray:
    """uint32 hash of broadcast integer coordinates and a key."""
    r = (np.asarray(rows).astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    c = (np.asarray(cols).astype(np.int64) & 0xFFFFFFFF).astype(np.uint32)
    k = np.uint32((int(key) * 0xC2B2AE3D) & 0xFFFFFFFF)
    h = _mix(c * _P2 + k)
    h = h + r * _P1
    return _mix(h)


def uniform(rows: np.ndarray, cols: np.ndarray, key: int) -> np.ndarray:
    """Uniform [0, 1) float32 values keyed by integer coordinates (broadcast)."""
    return (hash2(rows, cols, key) >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def hash_ids(ids: np.ndarray, key: int) -> np.ndarray:
    """Uniform [0, 1) float32 per integer id (e.g. per field or tree), keyed."""
    ids = np.asarray(ids)
    return uniform(ids, np.zeros_like(ids), key)


def white(key: int, row0: int, col0: int, h: int, w: int) -> np.ndarray:
    """Per-pixel noise with zero mean and unit variance (triangular distribution) for a window."""
    r = np.arange(row0, row0 + h, dtype=np.int64)[:, None]
    c = np.arange(col0, col0 + w, dtype=np.int64)[None, :]
    x = hash2(r, c, key)
    a = (x & np.uint32(0xFFFF)).astype(np.float32)
    b = (x >> np.uint32(16)).astype(np.float32)
    return (a + b - np.float32(65535.0)) * np.float32(2.449489742783178 / 65536.0)


def _bspline_taps(start: int, n: int, cell: float) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Lattice index offset, four weight vectors and the lattice span for pixels start..start+n-1."""
    t = (np.arange(start, start + n, dtype=np.float64) + 0.5) / cell
    i0 = np.floor(t).astype(np.int64)
    f = t - i0
    f2 = f * f
    f3 = f2 * f
    w = [(1 - 3 * f + 3 * f2 - f3) / 6.0,
         (4 - 6 * f2 + 3 * f3) / 6.0,
         (1 + 3 * f + 3 * f2 - 3 * f3) / 6.0,
         f3 / 6.0]
    lo = int(i0.min()) - 1
    return i0 - 1 - lo, [x.astype(np.float32) for x in w], int(i0.max()) + 3 - lo


def lattice(key: int, row0: int, col0: int, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth value noise of feature size ``cell`` pixels for the window (row0, col0, h, w).

    Values live on the lattice points (i * cell, j * cell) of the whole scene and are hashed from (i, j, key),
    so windows overlap seamlessly.
    """
    ri, rw, rn = _bspline_taps(row0, h, cell)
    ci, cw, cn = _bspline_taps(col0, w, cell)
    r_lo = int(np.floor((row0 + 0.5) / cell)) - 1
    c_lo = int(np.floor((col0 + 0.5) / cell)) - 1
    li = np.arange(r_lo, r_lo + rn, dtype=np.int64)[:, None]
    lj = np.arange(c_lo, c_lo + cn, dtype=np.int64)[None, :]
    lat = uniform(li, lj, key) * np.float32(2.0) - np.float32(1.0)
    # interpolate along columns first (small array), then rows
    tmp = np.zeros((rn, w), np.float32)
    for k in range(4):
        tmp += lat[:, ci + k] * cw[k][None, :]
    out = np.zeros((h, w), np.float32)
    for k in range(4):
        out += tmp[ri + k, :] * rw[k][:, None]
    out *= np.float32(1.0 / _LATTICE_STD)
    return out


def fbm(key: int, row0: int, col0: int, h: int, w: int, cell: float, octaves: int = 3,
        gain: float = 0.5, lacunarity: float = 2.0) -> np.ndarray:
    """Fractal sum of ``octaves`` lattice noises starting at feature size ``cell`` (unit variance)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    c = float(cell)
    for o in range(octaves):
        if c < 1.0:
            break
        out += np.float32(amp) * lattice(key + 7919 * (o + 1), row0, col0, h, w, c)
        total += amp * amp
        amp *= gain
        c /= lacunarity
    out *= np.float32(1.0 / np.sqrt(total))
    return out


def series(key: int, s: np.ndarray, cell: float) -> np.ndarray:
    """1-D smooth noise along a coordinate ``s`` (e.g. distance along a stream), unit variance."""
    t = np.asarray(s, np.float64) / cell
    i0 = np.floor(t).astype(np.int64)
    f = t - i0
    f2, f3 = f * f, f * f * f
    w = [(1 - 3 * f + 3 * f2 - f3) / 6.0, (4 - 6 * f2 + 3 * f3) / 6.0,
         (1 + 3 * f + 3 * f2 - 3 * f3) / 6.0, f3 / 6.0]
    out = np.zeros(t.shape, np.float64)
    for k in range(4):
        v = uniform(i0 - 1 + k, np.zeros_like(i0), key).astype(np.float64) * 2 - 1
        out += w[k] * v
    return (out / _SERIES_STD).astype(np.float32)


def lattice_at(key: int, rows: np.ndarray, cols: np.ndarray, cell: float) -> np.ndarray:
    """:func:`lattice` evaluated at scattered integer pixel positions (1-D arrays), for sparse subsets."""
    rows = np.asarray(rows)
    if rows.size == 0:
        return np.zeros(0, np.float32)
    tr = (rows.astype(np.float32) + np.float32(0.5)) / np.float32(cell)
    tc = (np.asarray(cols).astype(np.float32) + np.float32(0.5)) / np.float32(cell)
    i0 = np.floor(tr).astype(np.int64)
    j0 = np.floor(tc).astype(np.int64)
    ilo, jlo = int(i0.min()) - 1, int(j0.min()) - 1
    li = np.arange(ilo, int(i0.max()) + 3, dtype=np.int64)[:, None]
    lj = np.arange(jlo, int(j0.max()) + 3, dtype=np.int64)[None, :]
    lat = uniform(li, lj, key) * np.float32(2.0) - np.float32(1.0)

    def taps(f):
        f2, f3 = f * f, f * f * f
        return [(1 - 3 * f + 3 * f2 - f3) / 6, (4 - 6 * f2 + 3 * f3) / 6, (1 + 3 * f + 3 * f2 - 3 * f3) / 6, f3 / 6]

    wr, wc = taps(tr - i0), taps(tc - j0)
    ii, jj = i0 - 1 - ilo, j0 - 1 - jlo
    out = np.zeros(tr.shape, np.float32)
    for a in range(4):
        acc = np.zeros(tr.shape, np.float32)
        for b in range(4):
            acc += wc[b] * lat[ii + a, jj + b]
        out += wr[a] * acc
    out *= np.float32(1.0 / _LATTICE_STD)
    return out
