"""The crossing pass rate: does water routed on a DEM go under the road at each true crossing?

For every true crossing, start on its stream a fixed distance upstream (``distance_m`` along the stream
line), follow the D8 flow path and ask two things: does it pass within ``tolerance_m`` of the crossing, and
after that, does it reach the stream ``distance_m`` downstream of the crossing (continuing onto the parent
stream below a confluence)? If both, water goes under the road. (With the channel's width known, "within
``tolerance_m``" is measured from the channel's edge: under a wide bridge water may pass anywhere in it.)
Near the DEM's edge the test starts and ends inside it. Otherwise it ponds (the path ends in a pit
before the crossing, as on an unconditioned DEM behind a digital dam), is diverted (it never comes near the
crossing: along the ditch, over the road somewhere else, or out of the DEM), or is lost below the crossing.

Counting removed depressions proves nothing about where water goes; this does. Stream lines must be drawn
in the downstream direction, as ``geodrain synth`` writes them (``stream_id``, optional ``parent_id``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import VectorError
from .routing import D8_NODATA, D8_PIT, FlowGrid

STATUSES = ("pass", "ponds", "diverted", "lost")


@dataclass
class PassTarget:
    """Where one crossing's test starts, the crossing, and where its water must arrive."""

    crossing_id: int
    crossing: tuple[float, float]
    start: tuple[float, float]
    end: tuple[float, float]
    up_m: float       # stream length from the start to the crossing (shorter near a source or the DEM's edge)
    down_m: float     # stream length from the crossing to the end (shorter where the stream leaves the DEM)
    half_width_m: float = 0.0   # half the channel's width: water anywhere in the channel passes


@dataclass
class PassResult:
    """Per crossing: status ('pass', 'ponds', 'diverted', 'lost') and the path's closest approach (m)."""

    targets: list[PassTarget]
    status: np.ndarray          # (N,) object
    miss_m: np.ndarray          # (N,) distance of the path's closest cell to the crossing
    path_cells: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def passed(self) -> int:
        return int(np.sum(self.status == "pass"))

    @property
    def rate(self) -> float:
        return self.passed / len(self.status) if len(self.status) else float("nan")

    def counts(self) -> dict[str, int]:
        return {s: int(np.sum(self.status == s)) for s in STATUSES}


def _inside(bounds, x: float, y: float) -> bool:
    return bounds is None or (bounds[0] < x < bounds[2] and bounds[1] < y < bounds[3])


def _part(parts: list, point):
    """The part of a (possibly split) stream line nearest a point."""
    return parts[0] if len(parts) == 1 else min(parts, key=lambda g: g.distance(point))


def _walk(streams: dict, sid: int, origin, dist: float, step: float, bounds) -> tuple[tuple[float, float], float]:
    """Walk ``dist`` m along stream ``sid`` from the point ``origin`` on it: downstream (``step`` > 0, onto
    the parent below a confluence) or upstream (``step`` < 0, on the same line). Stops early at the line's
    end and before leaving ``bounds``. Returns the point reached and the distance walked."""
    from shapely.geometry import Point

    parts, parent = streams[sid]
    line = _part(parts, origin)
    s = line.project(origin)
    here, walked, seen = (origin.x, origin.y), 0.0, {sid}
    while walked < dist:
        s_next = s + step
        if s_next < 0:
            break
        if s_next > line.length:
            if parent not in streams or parent in seen:
                break
            end = line.interpolate(line.length)
            sid, (parts, parent) = parent, streams[parent]
            seen.add(sid)
            line = _part(parts, end)
            s = line.project(Point(end.x, end.y))
            continue
        q = line.interpolate(s_next)
        if not _inside(bounds, q.x, q.y):
            break
        s, here, walked = s_next, (q.x, q.y), walked + abs(step)
    return here, walked


def crossing_targets(crossings, streams, distance_m: float = 50.0, bounds=None) -> list[PassTarget]:
    """Start and end points of the test for every crossing.

    ``crossings``: a GeoDataFrame of points (``crossing_id``, and ``stream_id`` naming the stream each
    crosses; without it the nearest stream line is used; ``stream_width_m`` widens the test's tolerance by
    half the channel). ``streams``: a GeoDataFrame of stream lines drawn downstream (``stream_id``, optional
    ``parent_id``) in the same CRS. ``bounds`` (the DEM's, xmin, ymin, xmax, ymax): the test starts and ends
    inside them (shorter near the edge).
    """
    if bounds is not None:
        bounds = (bounds[0] + 1.0, bounds[1] + 1.0, bounds[2] - 1.0, bounds[3] - 1.0)
    lines = {}
    ids = streams["stream_id"].to_numpy() if "stream_id" in streams.columns else np.arange(1, len(streams) + 1)
    parents = streams["parent_id"].to_numpy() if "parent_id" in streams.columns else np.zeros(len(streams))
    for sid, parent, g in zip(ids, parents, streams.geometry):      # a stream may come in several rows
        if g is not None and not g.is_empty:
            parts = list(g.geoms) if g.geom_type == "MultiLineString" else [g]
            lines.setdefault(int(sid), ([], int(parent)))[0].extend(parts)
    out = []
    for i, (_, row) in enumerate(crossings.iterrows()):
        pt = row.geometry
        sid = int(row["stream_id"]) if "stream_id" in crossings.columns else None
        if sid not in lines:
            sid = min(lines, key=lambda k: _part(lines[k][0], pt).distance(pt))
        on = _part(lines[sid][0], pt).interpolate(_part(lines[sid][0], pt).project(pt))
        start, up = _walk(lines, sid, on, distance_m, -1.0, bounds)
        end, down = _walk(lines, sid, on, distance_m, 1.0, bounds)
        cid = int(row["crossing_id"]) if "crossing_id" in crossings.columns else i + 1
        half = float(row["stream_width_m"]) / 2 if "stream_width_m" in crossings.columns else 0.0
        out.append(PassTarget(cid, (pt.x, pt.y), start, end, float(up), float(down), half))
    return out


def _on_edge(d8: np.ndarray, idx: int) -> bool:
    """Whether a cell borders the array edge or no data (a pit there is where water leaves the DEM)."""
    r, c = np.unravel_index(idx, d8.shape)
    if r in (0, d8.shape[0] - 1) or c in (0, d8.shape[1] - 1):
        return True
    return bool(np.any(d8[r - 1:r + 2, c - 1:c + 2] == D8_NODATA))


def pass_test(grid: FlowGrid, targets: list[PassTarget], tolerance_m: float = 5.0,
              detour: float = 3.0) -> PassResult:
    """Trace the D8 path of every target on ``grid`` and classify it (see the module docstring). A path is
    followed for at most ``detour`` times the stream length from its start to its end."""
    inv = ~grid.transform
    h, w = grid.shape
    status = np.empty(len(targets), object)
    miss = np.full(len(targets), np.inf)
    cells = []
    for k, t in enumerate(targets):
        c, r = inv @ t.start
        r, c = int(np.floor(r)), int(np.floor(c))
        if not (0 <= r < h and 0 <= c < w):
            raise ValueError(f"crossing {t.crossing_id}: the test starts outside the DEM (give crossing_targets "
                             "the DEM's bounds)")
        path = np.asarray(grid.path(r, c, max_length_m=detour * (t.up_m + t.down_m) + 10 * grid.cell_m)[0])
        cells.append(path)
        pr, pc = np.unravel_index(path, grid.shape)
        x, y = grid.transform @ (pc + 0.5, pr + 0.5)
        d_cross = np.hypot(x - t.crossing[0], y - t.crossing[1])
        d_end = np.hypot(x - t.end[0], y - t.end[1])
        miss[k] = float(d_cross.min())
        tol = tolerance_m + t.half_width_m
        near = np.nonzero(d_cross <= tol)[0]
        if near.size == 0:
            end = path[-1]
            status[k] = "ponds" if grid.d8.flat[end] == D8_PIT and not _on_edge(grid.d8, end) else "diverted"
        elif np.any(d_end[near[0]:] <= tol):
            status[k] = "pass"
        else:
            status[k] = "lost"
    return PassResult(targets, status, miss, cells)


def load_targets(truth: str | Path, streams: str | Path, crs, distance_m: float = 50.0,
                 bounds=None) -> list[PassTarget]:
    """The test of every crossing in ``truth`` (layer ``crossings`` if there is one) on the stream lines of
    ``streams``, both reprojected to ``crs``; ``bounds``: the DEM's."""
    import geopandas as gpd
    import pyogrio

    frames = []
    for path, what in ((truth, "truth"), (streams, "streams")):
        path = Path(path)
        if not path.exists():
            raise VectorError(f"{what} file not found: {path}")
        try:
            layer = "crossings" if what == "truth" and "crossings" in [n for n, _ in pyogrio.list_layers(path)] \
                else None
            gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
        except Exception as e:  # noqa: BLE001 - pyogrio raises several types for unreadable files
            raise VectorError(f"cannot read {what} file {path}: {str(e).splitlines()[0][:200]}") from None
        if len(gdf) == 0:
            raise VectorError(f"no features in {what} file {path}")
        if gdf.crs is None:
            raise VectorError(f"{what} file {path} has no CRS")
        frames.append(gdf.to_crs(crs))
    truth_gdf, streams_gdf = frames
    if not set(truth_gdf.geometry.geom_type) <= {"Point"}:
        raise VectorError(f"truth file {truth} must hold points")
    if not set(streams_gdf.geometry.geom_type) <= {"LineString", "MultiLineString"}:
        raise VectorError(f"streams file {streams} must hold lines")
    return crossing_targets(truth_gdf, streams_gdf, distance_m, bounds)


def dem_pass_rate(dem: str | Path, targets: list[PassTarget], *, fill: bool = True,
                  tolerance_m: float = 5.0) -> PassResult:
    """The pass rate on a DEM file, routed with every depression filled (``fill``) or as it is. The whole DEM
    is routed at once: depressions are not local."""
    from .dem import DemReader, open_dem
    from .routing import route

    info = open_dem(dem)
    with DemReader(info) as reader:
        z = reader.read_all()
    grid = route(z, info.transform, fill=fill)
    del z
    return pass_test(grid, targets, tolerance_m)
