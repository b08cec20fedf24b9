"""The vector layout of a scene: roads, streams, crossings, fields, features and hard negatives.

Built in a fixed order from the scene's random generator (so that the same seed gives the same layout):
grid and roads -> coarse terrain -> streams (steered down the terrain, rerouted until their crossings are
clean) -> valleys carved -> crossing structures -> fields -> features -> distractors (field-edge strips,
ditch fills, terraces; every distractor as a point) -> hard negatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .crossings import Crossing, make_structure
from .features import Features, make_features
from .distractors import Distractors, collect_points, make_distractors
from .negatives import Negative, make_negatives, near_road_points
from .params import SceneParams
from .parcels import Field, make_fields
from .roads import Grid, Road, intersections, make_grid, make_roads
from .streams import Stream, make_streams
from .terrain import Terrain


@dataclass
class Layout:
    params: SceneParams
    grid: Grid
    terrain: Terrain
    roads: list[Road]
    nodes: list[tuple]
    streams: list[Stream]
    crossings: list[Crossing]
    fields: list[Field]
    features: Features
    distractors: Distractors
    negatives: list[Negative]

    def road(self, rid: int) -> Road:
        return self.roads[rid - 1]

    def stream(self, sid: int) -> Stream:
        return self.streams[sid - 1]


def _crossings(rng: np.random.Generator, hits, streams, size: int) -> list[Crossing]:
    by_id = {s.id: s for s in streams}
    out: list[Crossing] = []
    for h, sid in hits:
        if not (0 <= h["x"] <= size and 0 <= h["y"] <= size):
            continue
        st = by_id[sid]
        s = make_structure(rng, h, st)
        road = h["road"]
        out.append(Crossing(
            id=len(out) + 1, x=float(h["x"]), y=float(h["y"]), road_id=road.id, stream_id=sid, kind=s["kind"],
            road_kind=road.kind, road_width=road.width, stream_width=st.width, angle_deg=float(h["angle"]),
            t_road=h["t_road"], t_stream=h["t_stream"], half_along=s["half_along"],
            half_across=s["half_across"], style=s["style"]))
    return out


def build_layout(rng: np.random.Generator, p: SceneParams) -> Layout:
    grid = make_grid(p)
    roads = make_roads(rng, p, grid)
    nodes = intersections(roads)
    terrain = Terrain(p)
    streams, hits = make_streams(rng, p, terrain, roads, nodes)
    terrain.carve(streams)
    crossings = _crossings(rng, hits, streams, p.size)
    fields = make_fields(rng, p, grid)
    features = make_features(rng, p, grid, roads, nodes, streams, crossings, fields)
    for pond in features.ponds:
        c = pond.poly.representative_point()
        pond.level = float(terrain.sample(np.array([[c.x, c.y]]), terrain.surface)[0]) - 0.6
    dis = make_distractors(rng, p, grid, roads, streams, crossings, fields, features)
    dis.points, dis.areas = collect_points(p.size, roads, nodes, streams, crossings, fields, features, dis,
                                           near_road_points(streams, roads, crossings, p.size))
    negatives = make_negatives(p.size, crossings, dis.points)
    return Layout(p, grid, terrain, roads, nodes, streams, crossings, fields, features, dis, negatives)
