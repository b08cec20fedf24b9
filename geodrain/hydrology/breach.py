"""The breach at one crossing: a least-cost cut through the road embankment between the channel on each side.

Within a disk of ``radius`` around the crossing point:

1. the lowest cell is the channel on one side of the embankment (``low``);
2. filling the disk with ``low`` as its only outlet (pyflwdir's priority flood) gives every cell the depth
   water there must rise before it can reach ``low``; the deepest such cell is the lowest ground held back
   by the embankment: the channel on the other side (``high``). If it is held less than ``min_dam_m``, or
   lies on the edge of the disk (ground that keeps falling beyond the radius, such as a ditch running past,
   rather than a pond against the embankment), no dammed channel is found and nothing is cut;
3. the breach follows the least-cost path (scipy's Dijkstra, 8-connected; a step costs its length times the
   cut it needs, ``max(0, z - z_high)``, plus a small length term) from ``high`` to ``low`` through the
   point of the straight line between them nearest the crossing point (``via='line'``: a culvert runs
   from channel to channel, and the line corrects a detection a few metres off along the road) or through
   the crossing point itself (``via='point'``);
4. the path is lowered to descend monotonically from ``high`` to ``low``: each cell is kept or lowered to
   ``previous - grade × step``, with ``grade`` (1 mm per metre at most) small enough never to cut below
   ``low``. Cells already low enough are kept, so only embankment cells change, and only as deep as needed.
   A cut deeper than ``max_cut_m`` is refused (reported, not made).

Everything works on a window array (NaN invalid) in pixel units; :mod:`geodrain.condition` reads the windows
and maps the result to the DEM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .routing import fill_depressions

GRADE = 0.001        # the breach floor falls at most this much per metre (m/m)
LENGTH_COST = 0.01   # metres of cut a path pays per metre of length (prefers the shorter of equal cuts)
EDGE = 0.2           # the dammed low must lie this share of the radius inside the disk's edge

# reasons a crossing is not breached
NO_CHANNEL = "no_channel"
TOO_DEEP = "too_deep"


@dataclass
class Breach:
    """A cut along a path of window cells, from the dammed side (``high``) to the open side (``low``)."""

    rows: np.ndarray          # path cells, high to low (window pixel indices)
    cols: np.ndarray
    z_old: np.ndarray         # elevation before (float32)
    z_new: np.ndarray         # elevation after: non-increasing along the path, <= z_old
    length_m: float           # path length
    dam_m: float              # how high the embankment held water above ``high``

    @property
    def cut(self) -> np.ndarray:
        return self.z_old - self.z_new

    @property
    def changed(self) -> np.ndarray:
        return self.z_new < self.z_old

    @property
    def max_cut_m(self) -> float:
        return float(self.cut.max()) if self.cut.size else 0.0

    @property
    def n_changed(self) -> int:
        return int(self.changed.sum())


@dataclass
class NoBreach:
    """Why no breach was cut: ``no_channel`` (no dammed low ground within the radius) or ``too_deep``."""

    reason: str
    dam_m: float = 0.0
    max_cut_m: float = 0.0


def _without_loops(path: np.ndarray) -> np.ndarray:
    """A path with every revisit cut out (from a cell's first visit straight to its last)."""
    last = {int(v): i for i, v in enumerate(path)}
    out, i = [], 0
    while i < len(path):
        out.append(int(path[i]))
        i = last[int(path[i])] + 1
    return np.array(out, np.int64)


def _grid_graph(cost: np.ndarray, cell: float):
    """The 8-connected graph of a cost raster (inf: not passable) as a sparse matrix; a step costs its length
    times the mean cost of its two cells plus :data:`LENGTH_COST`."""
    from scipy.sparse import coo_matrix

    h, w = cost.shape
    idx = np.arange(h * w).reshape(h, w)
    pairs = ((idx[:, :-1], idx[:, 1:], 1.0), (idx[:-1, :], idx[1:, :], 1.0),          # E, S
             (idx[:-1, :-1], idx[1:, 1:], np.sqrt(2.0)), (idx[:-1, 1:], idx[1:, :-1], np.sqrt(2.0)))  # SE, SW
    src, dst, wt = [], [], []
    for a, b, step in pairs:
        a, b = a.ravel(), b.ravel()
        ca, cb = cost.flat[a], cost.flat[b]
        ok = np.isfinite(ca) & np.isfinite(cb)
        src.append(a[ok])
        dst.append(b[ok])
        wt.append(cell * step * (0.5 * (ca[ok] + cb[ok]) + LENGTH_COST))
    return coo_matrix((np.concatenate(wt), (np.concatenate(src), np.concatenate(dst))), shape=(h * w, h * w)).tocsr()


def _least_cost_paths(cost: np.ndarray, legs: list[tuple[int, int]], cell: float) -> np.ndarray:
    """The cheapest path through the flat-index waypoints ``legs`` [(start, end), ...] joined end to end
    (scipy's Dijkstra); empty if a leg cannot be made."""
    from scipy.sparse.csgraph import dijkstra

    starts = sorted({a for a, _ in legs})
    dist, pred = dijkstra(_grid_graph(cost, cell), directed=False, indices=starts, return_predecessors=True)
    path: list[int] = []
    for a, b in legs:
        k = starts.index(a)
        if not np.isfinite(dist[k, b]):
            return np.zeros(0, np.int64)
        leg = [b]
        while leg[-1] != a:
            leg.append(int(pred[k, leg[-1]]))
        path += leg[::-1][1 if path else 0:]
    return _without_loops(np.array(path, np.int64))


def lower_path(z: np.ndarray, steps_m: np.ndarray, grade: float = GRADE) -> np.ndarray:
    """Elevations along a path (first = start) lowered to fall monotonically: each cell is kept or lowered to
    ``previous - grade × step``; ``grade`` is reduced so the floor never falls below the last cell."""
    total = float(steps_m.sum())
    g = min(grade, max(0.0, float(z[0] - z[-1])) / total) if total > 0 else 0.0
    out = np.array(z, np.float64)
    for k in range(1, len(out)):
        out[k] = min(out[k], out[k - 1] - g * steps_m[k - 1])
    return out.astype(np.float32)


def breach_window(z: np.ndarray, row: int, col: int, radius_px: float, *, cell_m: float = 1.0,
                  max_cut_m: float = np.inf, min_dam_m: float = 0.25, grade: float = GRADE,
                  via: str = "line") -> Breach | NoBreach:
    """The least-cost breach at window cell (``row``, ``col``) within ``radius_px`` cells (see the module
    docstring). ``z`` is the window's elevation (NaN invalid); it is not modified."""
    h, w = z.shape
    r = int(np.ceil(radius_px))
    r0, r1, c0, c1 = max(0, row - r), min(h, row + r + 1), max(0, col - r), min(w, col + r + 1)
    sub = np.array(z[r0:r1, c0:c1], np.float32)
    yy, xx = np.mgrid[r0:r1, c0:c1]
    sub[(yy - row) ** 2 + (xx - col) ** 2 > radius_px ** 2] = np.nan
    if not np.isfinite(sub).any():
        return NoBreach(NO_CHANNEL)
    low = int(np.nanargmin(sub))
    filled, _ = fill_depressions(sub, outlet_cells=np.array([low]))
    depth = np.where(np.isfinite(sub), filled - sub, np.nan)
    high = int(np.nanargmax(depth))
    dam = float(depth.flat[high])
    hr, hc = np.unravel_index(high, sub.shape)
    if dam < min_dam_m or np.hypot(hr + r0 - row, hc + c0 - col) > (1.0 - EDGE) * radius_px:
        return NoBreach(NO_CHANNEL, dam)
    z_high = float(sub.flat[high])
    cost = np.where(np.isfinite(sub), np.maximum(sub - z_high, 0.0), np.inf)
    lr, lc = np.unravel_index(low, sub.shape)
    if via == "line":       # the point of the straight line between the two channel ends nearest the crossing
        d = np.array([lr - hr, lc - hc], float)
        t = float(np.clip(((row - r0 - hr) * d[0] + (col - c0 - hc) * d[1]) / max(d @ d, 1e-9), 0.0, 1.0))
        through = int(round(hr + t * d[0])) * sub.shape[1] + int(round(hc + t * d[1]))
    elif via == "point":    # the crossing point itself
        through = (row - r0) * sub.shape[1] + (col - c0)
    else:
        raise ValueError(f"via must be 'line' or 'point', not {via!r}")
    if np.isfinite(sub.flat[through]) and through not in (high, low):
        path = _least_cost_paths(cost, [(high, through), (through, low)], cell_m)
    else:
        path = _least_cost_paths(cost, [(high, low)], cell_m)
    if path.size == 0:
        return NoBreach(NO_CHANNEL, dam)
    pr, pc = np.unravel_index(path, sub.shape)
    steps = cell_m * np.hypot(np.diff(pr), np.diff(pc))
    z_old = sub.flat[path].astype(np.float32)
    z_new = lower_path(z_old, steps, grade)
    b = Breach(pr + r0, pc + c0, z_old, z_new, float(steps.sum()), dam)
    if b.max_cut_m > max_cut_m:
        return NoBreach(TOO_DEEP, dam, b.max_cut_m)
    return b
