"""DEM-derived layers, the hydrologic evidence of a candidate crossing and where its channel crosses the road.

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
* ``embank``: the largest local relief (m) within 6 m (a raised embankment under the point);
* ``along_road``: the share of the main channel 20-60 m out (cells draining at least half the largest
  upstream area within 25 m, and at least 2000 m²) that lies within 8 m of a raised cell: a road's own ditch
  runs along the embankment (near 1, as at a field boundary or an intersection on a road), a stream leaves it
  (near 0); NaN where no such channel is there;
* ``valley_along``: ``along_road`` asked of the valley without the road. The raised embankment (grown by one
  cell) is taken out of the window, down to the lowest ground within 12 m of it (its ditches, the valley floor
  beside it), and the window is routed with every edge an outlet, so a stream runs on along its valley where
  the road had dammed it and a ditch still runs along the road, whichever edge the window's water leaves by;
  the share of that routing's main channel 20-60 m out (cells draining at least half the largest upstream
  area within 20 m, and at least 2000 m²) within 8 m of the embankment. Filling towards the lowest edge cell
  (``along_road``) sends a stream dammed by the road along the road's ditch wherever that edge lies on the
  stream's own side of the road; with the road taken out that cannot happen. NaN where no such channel is
  there.

With a snapping distance, each point first moves to where the main channel within that distance crosses
the embankment (:meth:`Hydrology.snap`): the DEM's place of the crossing, which corrects an imagery point a
few metres off and brings two points proposed for one crossing onto one cell.

The windows are read by :class:`geodrain.read.DemSource` (any CRS and resolution, warped onto cells of
``res_m`` in the imagery's CRS). Invalid DEM cells (nodata, NaN) are filled from their nearest valid neighbour for the smoothing and marked
as nodata for the flow routing; a point whose window holds less than half valid cells gets NaN evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from scipy import ndimage as ndi

DEM_FEATURES = ("emb_flow", "flow_near", "channel_pair", "embank", "dam_depth", "along_road", "valley_along")
NODATA = -9999.0


def fill_invalid(z: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Invalid cells take the value of their nearest valid cell (for smoothing only)."""
    if valid.all():
        return z.astype(np.float64)
    _, (i, j) = ndi.distance_transform_edt(~valid, return_indices=True)
    return z[i, j].astype(np.float64)


def without(z: np.ndarray, gone: np.ndarray, res_m: float, reach_m: float = 12.0) -> np.ndarray:
    """``z`` with the cells ``gone`` (a road embankment) lowered to the lowest kept cell within ``reach_m``
    along both axes (a square; the nearest kept cell's value where none is that near): the road taken out down to its ditches and the
    valley floor beside it, so the valley's water runs on where the road had dammed it, while a road's
    ditches stay a channel along it."""
    if not gone.any() or gone.all():
        return z.astype(np.float64)
    r = max(1, int(round(reach_m / res_m)))
    low = ndi.minimum_filter(np.where(gone, np.inf, z), size=2 * r + 1, mode="nearest")
    low = np.where(np.isfinite(low), low, fill_invalid(z, ~gone))
    return np.where(gone, low, z).astype(np.float64)


def valley_dem(zf: np.ndarray, rel: np.ndarray, valid: np.ndarray, res_m: float) -> np.ndarray:
    """The window's DEM (gaps filled, ``zf``) with its raised embankment (local relief ``rel`` above
    RAISED_M, grown by one cell) taken down to the lowest ground within VALLEY_REACH_M (:func:`without`)."""
    return without(zf, ndi.binary_dilation((rel > RAISED_M) & valid), res_m, VALLEY_REACH_M)


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


def _rays(n_dir: int, r0: float, r1: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    a = np.linspace(0, 2 * np.pi, n_dir, endpoint=False)
    r = np.arange(r0, r1 + 1e-9, step)
    return np.cos(a)[:, None] * r[None, :], np.sin(a)[:, None] * r[None, :]


SNAP_M = 25.0          # a crossing snaps to the channel's passage across the embankment within this distance
SNAP_MIN_AREA_M2 = 2000.0   # ... when that channel drains at least this area inside the window
CREST_M = 0.15        # the crest: flow-path cells this close to the most raised one
RAISED_M = 0.3         # a raised cell (embankment) stands this much above its 15 m surroundings
ALONG_RING_M = (20.0, 60.0)   # along_road: the stretch of the main channel looked at
ALONG_NEAR_M = 8.0            # ... and how close to a raised cell counts as running along the road
VALLEY_NEAR_M = 20.0          # valley_along: the main channel drains at least half the most within this distance
VALLEY_REACH_M = 12.0         # ... and the embankment is taken down to the lowest ground within this distance


@dataclass
class Hydrology:
    """The layers of one DEM window that the evidence and the snapping read (cells of ``res`` metres)."""

    res: float
    valid: np.ndarray
    rel: np.ndarray      # local relief (m)
    ua: np.ndarray       # upstream area (m²), the window draining through its lowest edge cell
    dam: np.ndarray      # fill depth (m), every edge cell an outlet
    ua_valley: np.ndarray   # upstream area (m²) with the embankment taken out, every edge cell an outlet

    @classmethod
    def of(cls, z: np.ndarray, valid: np.ndarray, res_m: float) -> "Hydrology | None":
        """The layers of a window, or None when less than half of it is valid."""
        if valid.mean() < 0.5:
            return None
        zf = fill_invalid(z, valid)
        rel = local_relief(zf, res_m)
        return cls(res_m, valid, rel, upstream_area(zf, valid, res_m), fill_depth(zf, valid),
                   upstream_area(valley_dem(zf, rel, valid, res_m), valid, res_m, outlets="edge"))

    def _dist(self, row: float, col: float) -> np.ndarray:
        h, w = self.valid.shape
        rr, cc = np.ogrid[0:h, 0:w]
        return np.hypot(rr + 0.5 - row, cc + 0.5 - col) * self.res

    def evidence(self, row: float, col: float) -> dict[str, float]:
        """The evidence (:data:`DEM_FEATURES`) of a point at (row, col) (cell units, fractional)."""
        valid, rel, ua = self.valid, self.rel, self.ua
        d = self._dist(row, col)
        near = (d <= 25.0) & valid
        raised = near & (rel > RAISED_M)
        emb_flow = float(ua[raised].max()) if raised.any() else 0.0
        flow_near = float(ua[near].max()) if near.any() else 0.0
        ring = (d <= 30.0) & valid
        dam_depth = float(self.dam[ring].max()) if ring.any() else 0.0
        core = (d <= 6.0) & valid
        embank = float(rel[core].max()) if core.any() else 0.0
        h, w = valid.shape
        dx, dy = _rays(16, 15.0, 50.0, self.res)
        ri = np.clip(np.round(row - 0.5 + dy / self.res).astype(int), 0, h - 1)
        ci = np.clip(np.round(col - 0.5 + dx / self.res).astype(int), 0, w - 1)
        depth = np.maximum(0.0, -np.where(valid[ri, ci], rel[ri, ci], 0.0).min(1))
        half = len(depth) // 2
        pair = float(np.max(np.minimum(depth[:half], depth[half:])))
        valley = (d <= VALLEY_NEAR_M) & valid
        valley_top = float(self.ua_valley[valley].max()) if valley.any() else 0.0
        along_road, valley_along = self._along(d, [self._channel(self.ua, d, flow_near),
                                                   self._channel(self.ua_valley, d, valley_top)])
        return {"emb_flow": float(np.log10(1.0 + emb_flow)), "flow_near": float(np.log10(1.0 + flow_near)),
                "channel_pair": pair, "embank": embank, "dam_depth": dam_depth,
                "along_road": along_road, "valley_along": valley_along}

    def _channel(self, ua: np.ndarray, d: np.ndarray, top: float) -> np.ndarray:
        """The main channel of routing ``ua`` 20-60 m out: cells draining at least half ``top`` and at least
        2000 m² (``d``: cell distances in m from the point)."""
        lo, hi = ALONG_RING_M
        return (d >= lo) & (d <= hi) & self.valid & (ua >= max(0.5 * top, SNAP_MIN_AREA_M2))

    def _along(self, d: np.ndarray, channels: list[np.ndarray]) -> list[float]:
        """For each channel mask, the share of its cells within 8 m of a raised cell (NaN for an empty mask;
        0 where nothing is raised); the distance to the embankment is computed once, and only when needed."""
        raised = (self.rel > RAISED_M) & self.valid
        to_raised = ndi.distance_transform_edt(~raised) * self.res \
            if raised.any() and any(c.any() for c in channels) else None
        return [float("nan") if not c.any() else 0.0 if to_raised is None
                else float(np.mean(to_raised[c] <= ALONG_NEAR_M)) for c in channels]

    def snap(self, row: float, col: float, radius_m: float = SNAP_M,
             min_area_m2: float = SNAP_MIN_AREA_M2) -> tuple[float, float] | None:
        """Where the main channel within ``radius_m`` of (row, col) crosses the embankment: among the cells
        carrying at least half the largest upstream area there (the channel's flow path), the centre of those
        within ``CREST_M`` of the most raised one (the embankment's crest). None when no channel there drains
        ``min_area_m2``, or when its flow crosses no raised cell (a ditch, a valley without a road)."""
        d = self._dist(row, col)
        near = (d <= radius_m) & self.valid
        if not near.any():
            return None
        top = float(self.ua[near].max())
        if top < min_area_m2:
            return None
        path = near & (self.ua >= 0.5 * top)
        highest = float(self.rel[path].max())
        if highest < RAISED_M:       # the flow runs along a ditch or a valley here, not across an embankment
            return None
        crest = path & (self.rel >= highest - CREST_M)
        r, c = np.nonzero(crest)
        return float(r.mean()) + 0.5, float(c.mean()) + 0.5


@dataclass
class DemEvidence:
    """The DEM's word on merged crossings: evidence columns and, where the channel's passage across the
    embankment was found, the snapped point."""

    evidence: dict[str, np.ndarray]
    xy: np.ndarray           # snapped points (the input point where nothing was found)
    snapped: np.ndarray      # bool: moved to the channel's passage
    seconds: float = 0.0


def crossing_evidence(dem, xy: np.ndarray, *, half_m: float = 160.0, res_m: float = 2.0,
                      snap_m: float | None = None) -> DemEvidence:
    """Hydrologic evidence (:data:`DEM_FEATURES`) at map points ``xy`` (n, 2), each from a window of about
    +-``half_m`` at ``res_m`` cells read from ``dem`` (a :class:`geodrain.read.DemSource`). With ``snap_m`` each point first moves to where the main channel within ``snap_m``
    crosses the embankment (:meth:`Hydrology.snap`) and its evidence is measured there. A point whose window
    is less than half valid gets NaN evidence and stays."""
    import time

    t0 = time.perf_counter()
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    out = {k: np.full(len(xy), np.nan) for k in DEM_FEATURES}
    new_xy = xy.copy()
    snapped = np.zeros(len(xy), bool)
    for n, (x, y) in enumerate(xy):
        t, side = dem.window_transform(x, y, half_m, res_m)
        z, valid = dem.read(t, side, side)
        hyd = Hydrology.of(z, valid, abs(t.a) * dem.units_m)
        if hyd is None:
            continue
        c, r = ~t @ (x, y)
        if snap_m:
            moved = hyd.snap(r, c, snap_m)
            if moved is not None:
                r, c = moved
                new_xy[n] = t @ (c, r)
                snapped[n] = True
        for k, v in hyd.evidence(r, c).items():
            out[k][n] = v
    return DemEvidence(out, new_xy, snapped, time.perf_counter() - t0)
