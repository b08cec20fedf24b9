"""DEM-derived layers and the hydrologic evidence of a candidate crossing, on a numpy window and its affine.

A drainage crossing is a raised road embankment with a channel on both sides, and the water of a whole
catchment has to get across it: in a DEM the embankment is a digital dam, and after filling its depressions
the flow spills across the road near the crossing. A field boundary or a road intersection has no channel
and no flow across the road; a field entrance's ditch fill carries only the small flow of a road ditch.

:func:`crossing_evidence` measures, around each candidate point, in a small window (default 320 m at 2 m):

* ``emb_flow``: log10 of 1 + the largest upstream area (m²) of a raised cell (the embankment: higher than
  its 15 m surroundings by 0.3 m) within 25 m, after priority-flood filling of the window towards its single
  lowest edge cell (pyflwdir, ``outlets="min"``: all the window's water has to leave by its lowest point, so
  the water of a valley crosses the road where the valley does, while a road ditch carries it along);
* ``flow_near``: log10 of 1 + the largest upstream area (m²) of any cell within 25 m (same routing);
* ``dam_depth``: the deepest fill (m) within 30 m when every edge cell is an outlet (a digital dam ponds the
  valley behind it; a ditch fill ponds only its ditch);
* ``channel_pair``: the depth (m) of the shallower of two channels on opposite sides of the point (the lowest
  local relief along rays 15-50 m out, the best of 16 directions);
* ``embank``: the largest local relief (m) within 6 m (a raised embankment under the point).

Invalid DEM cells (nodata, NaN) are filled from their nearest valid neighbour for the smoothing and marked
as nodata for the flow routing; a point whose window holds less than half valid cells gets NaN evidence.
"""

from __future__ import annotations

import numpy as np
from affine import Affine
from scipy import ndimage as ndi

DEM_FEATURES = ("emb_flow", "flow_near", "channel_pair", "embank", "dam_depth")
NODATA = -9999.0


def _valid(z: np.ndarray, nodata: float | None) -> np.ndarray:
    v = np.isfinite(z)
    if nodata is not None and np.isfinite(nodata):
        v &= z != nodata
    return v


def fill_invalid(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid cells take the value of their nearest valid cell (for smoothing only)."""
    if valid.all():
        return z.astype(np.float64)
    _, (i, j) = ndi.distance_transform_edt(~valid, return_indices=True)
    return z[i, j].astype(np.float64)


def local_relief(z: np.ndarray, res_m: float, sigma_m: float = 15.0) -> np.ndarray:
    """DEM minus its Gaussian smoothing (sigma in metres): channels negative, embankments positive."""
    return z - ndi.gaussian_filter(z, sigma_m / res_m, mode="nearest")


def slope(z: np.ndarray, res_m: float) -> np.ndarray:
    """Slope (m/m) by central differences."""
    gy, gx = np.gradient(z, res_m)
    return np.hypot(gx, gy)


def fill_depth(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """How much priority-flood filling (every edge cell an outlet; pyflwdir) raises each cell (m)."""
    import pyflwdir

    zz = np.where(valid, z, NODATA).astype(np.float32)
    filled, _ = pyflwdir.dem.fill_depressions(zz, nodata=NODATA)
    return np.where(valid, filled.astype(np.float64) - z, 0.0)


def upstream_area(z: np.ndarray, valid: np.ndarray, res_m: float, outlets: str = "min") -> np.ndarray:
    """Upstream area (m²) of each cell after priority-flood filling (pyflwdir), D8; 0 on invalid cells.
    ``outlets="min"``: the window drains through its lowest edge cell only; ``"edge"``: through any."""
    import pyflwdir

    zz = np.where(valid, z, NODATA).astype(np.float32)
    _, d8 = pyflwdir.dem.fill_depressions(zz, nodata=NODATA, outlets=outlets)
    flw = pyflwdir.from_array(d8, ftype="d8", transform=Affine(res_m, 0, 0, 0, -res_m, 0), latlon=False,
                              cache=False)
    ua = flw.upstream_area(unit="cell").astype(np.float64) * res_m * res_m
    ua[~valid] = 0.0
    return np.maximum(ua, 0.0)


def _block_mean(z: np.ndarray, valid: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = (z.shape[0] // f) * f, (z.shape[1] // f) * f
    zz = np.where(valid, z, 0.0)[:h, :w].reshape(h // f, f, w // f, f)
    vv = valid[:h, :w].reshape(h // f, f, w // f, f)
    n = vv.sum((1, 3))
    out = zz.sum((1, 3)) / np.maximum(n, 1)
    return out, n >= (f * f + 1) // 2


def _rays(n_dir: int, r0: float, r1: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.linspace(0, 2 * np.pi, n_dir, endpoint=False)
    r = np.arange(r0, r1 + 1e-9, step)
    return np.cos(a)[:, None] * r[None, :], np.sin(a)[:, None] * r[None, :]


def window_evidence(z: np.ndarray, valid: np.ndarray, res_m: float, row: float, col: float) -> dict[str, float]:
    """The evidence of one point at (row, col) (cell units, fractional) of a window."""
    if valid.mean() < 0.5:
        return {k: float("nan") for k in DEM_FEATURES}
    zf = fill_invalid(z, valid)
    rel = local_relief(zf, res_m)
    ua = upstream_area(zf, valid, res_m)
    h, w = z.shape
    rr, cc = np.mgrid[0:h, 0:w]
    d = np.hypot(rr + 0.5 - row, cc + 0.5 - col) * res_m
    near = (d <= 25.0) & valid
    raised = near & (rel > 0.3)
    emb_flow = float(ua[raised].max()) if raised.any() else 0.0
    flow_near = float(ua[near].max()) if near.any() else 0.0
    dam = fill_depth(zf, valid)
    ring = (d <= 30.0) & valid
    dam_depth = float(dam[ring].max()) if ring.any() else 0.0
    core = (d <= 6.0) & valid
    embank = float(rel[core].max()) if core.any() else 0.0
    dx, dy = _rays(16, 15.0, 50.0, res_m)
    ri = np.clip(np.round(row - 0.5 + dy / res_m).astype(int), 0, h - 1)
    ci = np.clip(np.round(col - 0.5 + dx / res_m).astype(int), 0, w - 1)
    depth = np.maximum(0.0, -np.where(valid[ri, ci], rel[ri, ci], 0.0).min(1))
    half = len(depth) // 2
    pair = float(np.max(np.minimum(depth[:half], depth[half:])))
    return {"emb_flow": float(np.log10(1.0 + emb_flow)), "flow_near": float(np.log10(1.0 + flow_near)),
            "channel_pair": pair, "embank": embank, "dam_depth": dam_depth}


def crossing_evidence(dem: np.ndarray, transform: Affine, xy: np.ndarray, *, nodata: float | None = NODATA,
                      half_m: float = 160.0, res_m: float = 2.0) -> dict[str, np.ndarray]:
    """Hydrologic evidence (:data:`DEM_FEATURES`) at map points ``xy`` (n, 2) of a DEM array on ``transform``
    (north-up, square cells). The DEM is aggregated to ``res_m`` cells (block mean of valid cells) in a
    window of +-``half_m`` around each point; windows reaching past the array are padded as invalid."""
    if transform.b != 0 or transform.d != 0 or transform.e >= 0 or abs(abs(transform.e) - transform.a) > 1e-9:
        raise ValueError("crossing_evidence needs a north-up DEM with square cells")
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    cell = transform.a
    f = max(1, int(round(res_m / cell)))
    res = f * cell
    half = int(np.ceil(half_m / cell / f)) * f
    valid = _valid(dem, nodata)
    out = {k: np.full(len(xy), np.nan) for k in DEM_FEATURES}
    inv = ~transform
    H, W = dem.shape
    for n, (x, y) in enumerate(xy):
        c, r = inv @ (x, y)
        r0, c0 = int(np.floor(r)) - half, int(np.floor(c)) - half
        sub = np.full((2 * half, 2 * half), np.nan)
        ok = np.zeros((2 * half, 2 * half), bool)
        a0, a1 = max(r0, 0), min(r0 + 2 * half, H)
        b0, b1 = max(c0, 0), min(c0 + 2 * half, W)
        if a1 <= a0 or b1 <= b0:
            continue
        sub[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = dem[a0:a1, b0:b1]
        ok[a0 - r0:a1 - r0, b0 - c0:b1 - c0] = valid[a0:a1, b0:b1]
        zb, vb = _block_mean(np.where(ok, sub, 0.0), ok, f)
        ev = window_evidence(zb, vb, res, (r - r0) / f, (c - c0) / f)
        for k in DEM_FEATURES:
            out[k][n] = ev[k]
    return out
