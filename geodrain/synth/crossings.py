"""Drainage crossings: where a stream centreline crosses a road centreline, and the structure built there.

A crossing is a culvert (the road and its embankment run on over a pipe) or a bridge (a deck over an open
channel). Its footprint is a rectangle in the road's frame: along the road the channel (culvert) or the
bridge span, across the road the embankment toe to toe (culvert) or the deck width (bridge).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import LineString, Polygon

from .geometry import oriented_rect, point_parts, tangent

MIN_ANGLE_DEG = 35.0   # shallower crossings are rerouted
MIN_SPACING_M = 70.0   # from other crossings and from road-road intersections (60 m required, 10 m spare)
EDGE_IN_M = 40.0       # crossings keep this far inside the scene edge ...
EDGE_OUT_M = 70.0      # ... or this far outside it


@dataclass
class Crossing:
    id: int
    x: float
    y: float
    road_id: int
    stream_id: int
    kind: str            # culvert or bridge
    road_kind: str
    road_width: float
    stream_width: float
    angle_deg: float
    t_road: np.ndarray   # unit tangent of the road at the crossing
    t_stream: np.ndarray  # unit tangent of the stream (downstream)
    half_along: float    # half the structure extent along the road
    half_across: float   # half the structure extent across the road
    style: dict = field(default_factory=dict)

    def footprint(self) -> Polygon:
        return oriented_rect((self.x, self.y), self.t_road, self.half_along, self.half_across)


def hits(line: LineString, roads, tree) -> list[dict] | None:
    """Points where ``line`` crosses roads, with tangents and angle; None if it runs along a road."""
    out = []
    for i in tree.query(line, predicate="intersects"):
        road = roads[int(i)]
        g = line.intersection(road.line)
        if g.geom_type not in ("Point", "MultiPoint"):
            return None
        for x, y in point_parts(g):
            tr = tangent(road.line, (x, y))
            ts = tangent(line, (x, y))
            ang = float(np.degrees(np.arccos(min(1.0, abs(float(tr @ ts))))))
            out.append(dict(x=x, y=y, road=road, t_road=tr, t_stream=ts, angle=ang))
    return out


def _bridge_probability(width: float, road_kind: str) -> float:
    p = float(np.interp(width, [1.5, 3.0, 6.0, 10.0, 15.0, 22.0], [0.03, 0.06, 0.2, 0.5, 0.85, 0.97]))
    if road_kind == "paved":
        p = min(0.99, p * 1.35 + 0.03)
    elif road_kind == "dirt":
        p *= 0.3
    return p


def make_structure(rng: np.random.Generator, hit: dict, stream) -> dict:
    """Kind, footprint half extents and the look of the structure at a crossing."""
    road = hit["road"]
    w = stream.width
    sin_a = max(np.sin(np.deg2rad(hit["angle"])), 0.3)
    if rng.random() < _bridge_probability(w, road.kind):
        setback = rng.uniform(2.5, 9.0)
        span = max(8.0, (w + 2 * setback) / sin_a)
        half_along = span / 2
        deck_half = road.width / 2 + rng.uniform(0.5, 1.6)
        style = dict(
            deck=str(rng.choice(["concrete", "asphalt", "timber"], p=[0.62, 0.28, 0.10]
                                if road.kind != "paved" else [0.7, 0.3, 0.0])),
            railing=str(rng.choice(["barrier", "steel", "none"], p=[0.55, 0.35, 0.10])),
            height=float(rng.uniform(2.5, 7.0) + 0.1 * w),
            deck_half=float(deck_half),
            tone=float(rng.normal()),
        )
        return dict(kind="bridge", half_along=float(half_along), half_across=float(deck_half), style=style)
    half_along = max(1.5, (w / 2 + rng.uniform(0.5, 2.0)) / sin_a)
    pipes = int(1 if w < 4 else rng.integers(1, 4))
    style = dict(
        pipes=pipes,
        pipe_d=float(np.clip(w * rng.uniform(0.3, 0.6) / pipes, 0.6, 3.0)),
        ends_visible=bool(rng.random() < 0.65),
        headwall=bool(rng.random() < 0.35),
        riprap=bool(rng.random() < 0.35),
        material=str(rng.choice(["concrete", "metal"], p=[0.5, 0.5])),
    )
    return dict(kind="culvert", half_along=float(half_along), half_across=float(road.toe), style=style)
