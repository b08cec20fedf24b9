"""Hard negatives: places that look a bit like a drainage crossing but are not one.

Road intersections, grassed waterways that end at a road, creeks that run beside a road without crossing it,
ponds near roads, farmsteads and their driveways, field entrances across a road ditch. Every hard negative
keeps at least :data:`MIN_FROM_CROSSING_M` from every crossing, so a chip centred on it never shows a
crossing at its centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Point

from .geometry import along

MIN_FROM_CROSSING_M = 65.0
KINDS = ("road_intersection", "waterway_end", "stream_near_road", "pond_near_road", "farmstead", "driveway",
         "field_entrance")


@dataclass
class Negative:
    x: float
    y: float
    kind: str


def _near_road_points(streams, roads, crossings, size: float) -> list[tuple[float, float]]:
    """Midpoints between a stream and a road where they run 15-45 m apart (edge to edge), off crossings."""
    if not roads or not streams:
        return []
    cross = np.array([(c.x, c.y) for c in crossings]).reshape(-1, 2)
    lines = [r.line for r in roads]
    tree = shapely.STRtree(lines)
    picked: list[tuple[float, float]] = []
    for st in streams:
        s = np.arange(0.0, st.line.length, 15.0)
        xy = along(st.line, s)[0]
        ok = (xy[:, 0] > 40) & (xy[:, 0] < size - 40) & (xy[:, 1] > 40) & (xy[:, 1] < size - 40)
        if not ok.any():
            continue
        xy = xy[ok]
        pts = shapely.points(xy)
        idx = tree.nearest(pts)
        d = shapely.distance(pts, np.asarray(lines, dtype=object)[idx])
        half = np.array([roads[int(i)].width / 2 for i in idx])
        gap = d - half - st.width / 2
        for k in np.flatnonzero((gap >= 15.0) & (gap <= 45.0)):
            q = xy[k]
            if len(cross) and np.min(np.hypot(*(cross - q).T)) < 95.0:
                continue
            if any((q[0] - a) ** 2 + (q[1] - b) ** 2 < 200.0 ** 2 for a, b in picked):
                continue
            road = roads[int(idx[k])]
            r = road.line.interpolate(road.line.project(Point(q)))
            picked.append(((q[0] + r.x) / 2, (q[1] + r.y) / 2))
    return picked


def make_negatives(size: int, roads, nodes, streams, crossings, features) -> list[Negative]:
    cand: list[Negative] = []
    for x, y, *_ in nodes:
        cand.append(Negative(x, y, "road_intersection"))
    for w in features.waterways:
        if w.end_on_road is not None:
            cand.append(Negative(*w.end_on_road, "waterway_end"))
    for x, y in _near_road_points(streams, roads, crossings, size):
        cand.append(Negative(x, y, "stream_near_road"))
    for pd in features.ponds:
        if pd.near_road is not None:
            cand.append(Negative(*pd.near_road, "pond_near_road"))
    for fs in features.farmsteads:
        c = fs.yard.centroid
        cand.append(Negative(c.x, c.y, "farmstead"))
        cand.append(Negative(*fs.access, "driveway"))
    for _, _, access in features.approaches:
        cand.append(Negative(*access, "field_entrance"))
    cross = np.array([(c.x, c.y) for c in crossings]).reshape(-1, 2)
    out: list[Negative] = []
    for n in cand:
        if not (30 <= n.x <= size - 30 and 30 <= n.y <= size - 30):
            continue
        if len(cross) and np.min(np.hypot(cross[:, 0] - n.x, cross[:, 1] - n.y)) < MIN_FROM_CROSSING_M:
            continue
        if any((n.x - o.x) ** 2 + (n.y - o.y) ** 2 < 25.0 ** 2 for o in out):
            continue
        out.append(n)
    return out
