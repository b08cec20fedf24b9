"""Hard negatives: places that look a bit like a drainage crossing but are not one.

Every distractor point (:mod:`geodrain.synth.distractors`: road intersections, field boundaries, grass
borders and farm lanes meeting a road, field entrances and driveways with their ditch fills, farmsteads,
grassed waterways that end at a road, ponds near roads, creeks beside a road) that keeps at least
:data:`MIN_FROM_CROSSING_M` from every crossing, so a chip centred on it never shows a crossing at its centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import Point

from .geometry import along

MIN_FROM_CROSSING_M = 65.0
KINDS = ("road_intersection", "field_boundary", "grass_border", "farm_lane", "field_entrance", "driveway",
         "farmstead", "waterway_end", "pond_near_road", "stream_near_road")


@dataclass
class Negative:
    x: float
    y: float
    kind: str


def near_road_points(streams, roads, crossings, size: float) -> list[tuple[float, float]]:
    """Midpoints between a stream and a road where they run 10-90 m apart (edge to edge), off crossings."""
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
        for k in np.flatnonzero((gap >= 10.0) & (gap <= 90.0)):
            q = xy[k]
            if len(cross) and np.min(np.hypot(*(cross - q).T)) < 95.0:
                continue
            if any((q[0] - a) ** 2 + (q[1] - b) ** 2 < 200.0 ** 2 for a, b in picked):
                continue
            road = roads[int(idx[k])]
            r = road.line.interpolate(road.line.project(Point(q)))
            picked.append(((q[0] + r.x) / 2, (q[1] + r.y) / 2))
    return picked


def make_negatives(size: int, crossings, points) -> list[Negative]:
    """The distractor points that make hard negatives: inside the scene, away from crossings, 25 m apart."""
    cross = np.array([(c.x, c.y) for c in crossings]).reshape(-1, 2)
    out: list[Negative] = []
    taken = np.zeros((0, 2))
    for d in points:
        if d.kind not in KINDS:
            continue
        if not (30 <= d.x <= size - 30 and 30 <= d.y <= size - 30):
            continue
        if len(cross) and np.min(np.hypot(cross[:, 0] - d.x, cross[:, 1] - d.y)) < MIN_FROM_CROSSING_M:
            continue
        if len(taken) and np.min(np.hypot(taken[:, 0] - d.x, taken[:, 1] - d.y)) < 25.0:
            continue
        out.append(Negative(d.x, d.y, d.kind))
        taken = np.vstack([taken, [d.x, d.y]])
    return out
