"""Terrain: a coarse regional surface (plane + undulation + carved valleys) and the 1 m DEM of a tile.

The coarse grid (cells of a few metres, reaching a little past the scene) carries the smooth parts: the
regional slope, low-frequency undulation, valleys along the streams whose beds fall monotonically
downstream, and a smoothed "road grade" surface. A tile's DEM upsamples these and adds the 1 m detail: the
stream channel, road ditches and the road embankments (1.5-2.5 m fills with side slopes, continuous over
every stream: the digital dams), pond surfaces and a little micro-relief.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy.ndimage import gaussian_filter1d
from shapely.geometry import Point

from . import noise
from .geometry import along
from .params import SceneParams

PAD_M = 320.0  # how far the coarse grid reaches past the scene
MIN_BED_SLOPE = 0.0015  # stream beds fall at least 1.5 m per km downstream


def _catmull_taps(t: np.ndarray, n: int):
    i0 = np.floor(t).astype(np.int64)
    f = (t - i0).astype(np.float32)
    f2, f3 = f * f, f * f * f
    w = [(-f3 + 2 * f2 - f) / 2, (3 * f3 - 5 * f2 + 2) / 2, (-3 * f3 + 4 * f2 + f) / 2, (f3 - f2) / 2]
    idx = [np.clip(i0 + k - 1, 0, n - 1) for k in range(4)]
    return idx, w


class Terrain:
    """The coarse terrain of a scene. ``cell`` metres per coarse cell; cell (0, 0) starts at -PAD_M."""

    def __init__(self, p: SceneParams):
        self.size = p.size
        self.cell = float(max(4.0, np.ceil(p.size / 4096.0) * 2.0))
        self.n = int(np.ceil((p.size + 2 * PAD_M) / self.cell))
        n, cell = self.n, self.cell
        xs = (np.arange(n) + 0.5) * cell - PAD_M
        a = np.deg2rad(p.slope_direction_deg)
        self.downslope = np.array([np.cos(a), np.sin(a)])
        c = p.size / 2.0
        plane = -(p.slope_m_per_km / 1000.0) * ((xs[None, :] - c) * self.downslope[0]
                                                 + (xs[:, None] - c) * self.downslope[1])
        k = p.keys["terrain"]
        und = noise.fbm(k, 0, 0, n, n, p.undulation_scale_m / cell, octaves=3, gain=0.45)
        hills = noise.fbm(k + 11, 0, 0, n, n, 220.0 / cell, octaves=2)
        self.base = (p.elevation_m + plane + 0.5 * p.undulation_m * und + 0.6 * hills).astype(np.float32)
        gy, gx = np.gradient(self.base, cell)  # the base has no detail below ~100 m: no smoothing needed
        self._gx, self._gy = gx.astype(np.float32), gy.astype(np.float32)
        self.surface = self.base
        self.grade = self.base

    # -- sampling ---------------------------------------------------------------------------------------
    def _ij(self, xy: np.ndarray):
        xy = np.atleast_2d(np.asarray(xy, float))
        j = np.clip(((xy[:, 0] + PAD_M) / self.cell - 0.5), 0, self.n - 1.001)
        i = np.clip(((xy[:, 1] + PAD_M) / self.cell - 0.5), 0, self.n - 1.001)
        return i, j

    def sample(self, xy: np.ndarray, arr: np.ndarray | None = None) -> np.ndarray:
        """Bilinear sample of a coarse array (default: the base surface) at scene points (n, 2)."""
        arr = self.base if arr is None else arr
        i, j = self._ij(xy)
        i0, j0 = np.floor(i).astype(int), np.floor(j).astype(int)
        fi, fj = i - i0, j - j0
        return ((1 - fi) * (1 - fj) * arr[i0, j0] + (1 - fi) * fj * arr[i0, j0 + 1]
                + fi * (1 - fj) * arr[i0 + 1, j0] + fi * fj * arr[i0 + 1, j0 + 1])

    def downslope_angle(self, x: float, y: float) -> float | None:
        """Heading of steepest descent of the smoothed surface at a point (None on flats)."""
        n1 = self.n - 1
        ii = min(max(int((y + PAD_M) / self.cell), 0), n1)
        jj = min(max(int((x + PAD_M) / self.cell), 0), n1)
        gx, gy = float(self._gx[ii, jj]), float(self._gy[ii, jj])
        if gx * gx + gy * gy < 1e-10:
            return None
        return float(np.arctan2(-gy, -gx))

    def window(self, arr: np.ndarray, row0: int, col0: int, h: int, w: int) -> np.ndarray:
        """Catmull-Rom upsampling of a coarse array to the 1 m pixels of a window."""
        tr = (np.arange(row0, row0 + h) + 0.5 + PAD_M) / self.cell - 0.5
        tc = (np.arange(col0, col0 + w) + 0.5 + PAD_M) / self.cell - 0.5
        ri, rw = _catmull_taps(tr, self.n)
        ci, cw = _catmull_taps(tc, self.n)
        r_lo, r_hi = int(ri[0].min()), int(ri[3].max()) + 1
        sub = arr[r_lo:r_hi]
        tmp = np.zeros((r_hi - r_lo, w), np.float32)
        for k in range(4):
            tmp += sub[:, ci[k]] * cw[k][None, :]
        out = np.zeros((h, w), np.float32)
        for k in range(4):
            out += tmp[ri[k] - r_lo, :] * rw[k][:, None]
        return out

    # -- valleys and road grade -------------------------------------------------------------------------
    def carve(self, streams) -> None:
        """Carve valleys along the streams (beds monotone downstream) and derive the road grade surface."""
        n, cell = self.n, self.cell
        bed = np.full((n, n), np.inf, np.float32)
        halfw = np.zeros((n, n), np.float32)
        floor = np.zeros((n, n), np.float32)
        step = cell / 3.0
        beds: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        by_id = {st.id: st for st in streams}
        for st in sorted(streams, key=lambda t: t.id):   # parents before their tributaries
            s = np.arange(0.0, st.line.length + step, step)
            s[-1] = min(s[-1], st.line.length)
            pts, _ = along(st.line, s)
            # the valley follows the meander belt's axis, with a floor as wide as the belt
            axis = gaussian_filter1d(pts, (25.0 + 2.5 * st.width) / step, axis=0, mode="nearest")
            axis[0], axis[-1] = pts[0], pts[-1]
            dev = np.hypot(*(pts - axis).T)
            fl = float(np.percentile(dev, 95)) + 0.5 * st.width + 2.0
            z = self.sample(axis)
            depth = st.style["valley_depth"]
            b = np.minimum.accumulate(z) - depth
            # a minimum gradient so every bed falls downstream, ending at the parent's bed at the confluence
            end = float(b[-1])
            if st.parent in beds:
                ps, pb = beds[st.parent]
                end = float(np.interp(by_id[st.parent].line.project(Point(float(pts[-1][0]), float(pts[-1][1]))), ps, pb))
            b = np.maximum(np.minimum(b, end + MIN_BED_SLOPE * (s[-1] - s)), end)
            beds[st.id] = (s, b)
            i, j = self._ij(axis)
            ii, jj = np.round(i).astype(int), np.round(j).astype(int)
            np.minimum.at(bed, (ii, jj), b.astype(np.float32))
            halfw[ii, jj] = np.maximum(halfw[ii, jj], st.style["valley_half_m"])
            floor[ii, jj] = np.maximum(floor[ii, jj], fl)
        seeds = np.isfinite(bed)
        if not seeds.any():
            self.surface = self.base
        else:
            d, (ni, nj) = ndi.distance_transform_edt(~seeds, return_indices=True)
            d = (d * cell).astype(np.float32)
            nb = bed[ni, nj]
            W = halfw[ni, nj]
            F = floor[ni, nj]
            del ni, nj
            t = np.clip((d - F) / np.maximum(W, 1.0), 0.0, 1.0)
            f = t * t * (3 - 2 * t)  # smooth valley walls
            f = 0.35 * t + 0.65 * f
            surf = nb + (self.base - nb) * f
            self.surface = np.minimum(self.base, surf).astype(np.float32)
        sm = ndi.gaussian_filter(self.surface, 35.0 / cell)
        self.grade = np.maximum(self.surface, sm).astype(np.float32)


def channel_depth(width: np.ndarray) -> np.ndarray:
    return 0.35 + 0.075 * width


def dem_tile(terrain: Terrain, row0: int, col0: int, h: int, w: int, *, key: int, streams: dict | None,
             roads: dict | None, pond_level: np.ndarray | None, relief: np.ndarray | None = None) -> np.ndarray:
    """The 1 m DEM of a window (float32) from the coarse terrain and the tile's distance fields.

    ``streams`` and ``roads`` hold flat pixel indices ``i`` of the window near a stream / road and, per such
    pixel, the distance ``d`` to the nearest centreline and that stream's half width ``hw`` and ``bank`` /
    that road's ``hw``, ``shoulder``, ``emb``, ``side``, ``toe`` and ``ditch`` (and optionally ``fill``: the
    pixel lies in an earth fill across the ditch, a ramp from the road down to the field). ``relief`` is
    field-scale relief (strip berms, waterway swales, terraces) added to the surface.
    """
    dem = terrain.window(terrain.surface, row0, col0, h, w)
    micro = np.float32(0.1) * noise.lattice(key, row0, col0, h, w, 24.0)
    dem += micro
    if relief is not None:
        dem += relief
    flat = dem.reshape(-1)
    if streams is not None:
        # stream channel: a bowl inside the banks, easing out over the bank zone (no micro-relief in it)
        d, hw, bank = streams["d"], streams["hw"], streams["bank"]
        m = d < hw + bank + 0.5
        i = streams["i"][m]
        t = np.clip((d[m] - 0.5 * hw[m]) / np.maximum(0.5 * hw[m] + bank[m], 0.5), 0.0, 1.0)
        inner = 1.0 - t * t * (3 - 2 * t)
        flat[i] -= channel_depth(2 * streams["hw0"][m]) * inner + micro.reshape(-1)[i] * inner
    if pond_level is not None:
        m = np.isfinite(pond_level)
        if m.any():
            dem[m] = np.minimum(dem[m], pond_level[m])
    if roads is not None:
        d = roads["d"]
        # road ditches just outside the embankment toe
        dd = d - roads["toe"]
        m = (dd > 0) & (dd < roads["ditch"])
        flat[roads["i"][m]] -= (0.25 + 0.2 * roads["emb"][m]) * np.sin(np.pi * dd[m] / roads["ditch"][m])
        # embankment: flat top over road and shoulders, side slopes down to the terrain
        m = d < roads["toe"] + 1.0
        if m.any():
            i = roads["i"][m]
            xy = np.column_stack([col0 + i % w + 0.5, row0 + i // w + 0.5])
            top = terrain.sample(xy, terrain.grade) + roads["emb"][m]
            run = np.maximum(0.0, d[m] - roads["hw"][m] - roads["shoulder"][m])
            flat[i] = np.maximum(flat[i], (top - run / roads["side"][m]).astype(np.float32))
        fill = roads.get("fill")
        if fill is not None and fill.any():
            # field entrances and driveways: a ramp (6:1, 0.15 m below the road edge) across the ditch
            i = roads["i"][fill]
            xy = np.column_stack([col0 + i % w + 0.5, row0 + i // w + 0.5])
            top = terrain.sample(xy, terrain.grade) + roads["emb"][fill] - 0.15
            run = np.maximum(0.0, d[fill] - roads["hw"][fill] - roads["shoulder"][fill])
            flat[i] = np.maximum(flat[i], (top - run / 6.0).astype(np.float32))
    return dem
