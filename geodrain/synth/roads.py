"""The road network: section-line roads of the PLSS grid plus a few roads at arbitrary angles, some curved.

Roads are LineStrings in scene coordinates that extend a little past the scene (so that rendering near the
edges sees them); the written layer is clipped to the scene.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, box

from .geometry import chaikin, line_parts, point_parts, rotate, tangent
from .params import SECTION_M, SceneParams

EXTEND_M = 160.0  # how far geometry reaches past the scene edge


@dataclass
class Road:
    id: int
    line: LineString
    kind: str          # paved, gravel, dirt
    surface: str       # asphalt, concrete, gravel, dirt
    width: float
    embankment: float
    shoulder: float
    ditch: float       # ditch width beyond the shoulder and side slope, each side
    row_half: float    # right-of-way half width from the centreline (field edge)
    side_slope: float  # horizontal run per metre of embankment height
    ditch_water: bool
    grid: bool
    style: dict = field(default_factory=dict)

    @property
    def toe(self) -> float:
        """Distance from the centreline to the embankment toe."""
        return self.width / 2 + self.shoulder + self.embankment * self.side_slope


@dataclass
class Grid:
    """The rotated section grid: frame origin, rotation and the line positions in frame coordinates."""

    centre: np.ndarray
    angle: float
    us: np.ndarray
    vs: np.ndarray
    half: float

    def to_scene(self, uv: np.ndarray) -> np.ndarray:
        return rotate(np.asarray(uv, float) + self.centre, self.angle, self.centre)


def make_grid(p: SceneParams) -> Grid:
    size = p.size
    centre = np.array([size / 2.0, size / 2.0])
    half = size * 0.75 + EXTEND_M
    lines = []
    for off in p.grid_offset_m:
        if size < 2 * SECTION_M:
            # small scenes: make sure one section line runs through the middle part of the scene
            off = (off / SECTION_M - 0.5) * 0.55 * size
        k = np.arange(np.floor((-half - off) / SECTION_M), np.ceil((half - off) / SECTION_M) + 1)
        lines.append(off + k * SECTION_M)
    return Grid(centre, np.deg2rad(p.grid_rotation_deg), lines[0], lines[1], half)


def _attrs(rng: np.random.Generator, kind: str) -> dict:
    if kind == "paved":
        surface = "concrete" if rng.random() < 0.3 else "asphalt"
        width = rng.uniform(6.0, 13.0)
        emb = rng.uniform(1.5, 2.5)
        shoulder = rng.uniform(0.6, 3.0)
        ditch = rng.uniform(2.5, 7.0)
    elif kind == "gravel":
        surface = "gravel"
        width = rng.uniform(5.0, 9.0)
        emb = rng.uniform(1.5, 2.5)
        shoulder = rng.uniform(0.3, 1.8)
        ditch = rng.uniform(2.0, 6.0)
    else:
        surface = "dirt"
        width = rng.uniform(3.0, 5.0)
        emb = rng.uniform(1.0, 1.6)
        shoulder = rng.uniform(0.0, 0.6)
        ditch = rng.uniform(0.0, 2.5)
    side = rng.uniform(2.0, 3.5)
    toe = width / 2 + shoulder + emb * side
    row_half = toe + ditch + rng.uniform(1.0, 7.0)
    style = {
        # surface look, used by the renderer
        "tone": float(rng.normal(0.0, 1.0)),
        "tracks": float(rng.uniform(0.0, 1.0)),
        "markings": bool(kind == "paved" and surface == "asphalt" and rng.random() < 0.75),
        "edge_lines": bool(kind == "paved" and rng.random() < 0.5),
        "dust": float(rng.uniform(0.0, 1.0)) if kind == "gravel" else 0.0,
        "mowed": float(rng.uniform(0.0, 1.0)),
        "ditch_green": float(rng.uniform(0.0, 1.0)),
    }
    return dict(kind=kind, surface=surface, width=float(width), embankment=float(emb), shoulder=float(shoulder),
                ditch=float(ditch), row_half=float(row_half), side_slope=float(side),
                ditch_water=bool(rng.random() < 0.18), style=style)


def _grid_roads(rng: np.random.Generator, p: SceneParams, grid: Grid) -> list[dict]:
    """Roads along the section lines, broken into segments between crossing section lines."""
    out = []
    ext = box(-EXTEND_M, -EXTEND_M, p.size + EXTEND_M, p.size + EXTEND_M)
    small = p.size < 2 * SECTION_M
    for axis, (own, other) in enumerate(((grid.us, grid.vs), (grid.vs, grid.us))):
        for pos in own:
            forced = small and abs(pos) < 0.3 * p.size
            if not forced and rng.random() > p.road_line_prob:
                continue
            kind = "paved" if rng.random() < p.paved_line_prob else "gravel"
            nodes = np.concatenate([[-grid.half], other[(other > -grid.half) & (other < grid.half)], [grid.half]])
            seg_kinds = []
            for _ in range(len(nodes) - 1):
                if not forced and rng.random() < p.segment_drop_prob:
                    seg_kinds.append(None)
                elif kind == "gravel" and rng.random() < p.dirt_segment_prob:
                    seg_kinds.append("dirt")
                else:
                    seg_kinds.append(kind)
            # merge consecutive segments of the same kind into one road
            i = 0
            while i < len(seg_kinds):
                k = seg_kinds[i]
                j = i
                while j + 1 < len(seg_kinds) and seg_kinds[j + 1] == k:
                    j += 1
                if k is not None:
                    a, b = nodes[i], nodes[j + 1]
                    uv = np.array([[pos, a], [pos, b]]) if axis == 0 else np.array([[a, pos], [b, pos]])
                    line = LineString(grid.to_scene(uv)).intersection(ext)
                    for part in line_parts(line):
                        if part.length > 30:
                            out.append(dict(line=part, grid=True, **_attrs(rng, k)))
                i = j + 1
    return out


def _extra_road(rng: np.random.Generator, p: SceneParams, grid: Grid) -> LineString | None:
    size = p.size
    ext = box(-EXTEND_M, -EXTEND_M, size + EXTEND_M, size + EXTEND_M)
    # direction well away from the grid directions, so it never runs along a section road
    base = grid.angle + rng.choice([1, -1]) * rng.uniform(np.deg2rad(20), np.deg2rad(70))
    q = rng.uniform(0.15 * size, 0.85 * size, 2)
    d = np.array([np.cos(base), np.sin(base)])
    n = np.array([-d[1], d[0]])
    length = size * 3.0 + 4 * EXTEND_M
    ts = np.linspace(-length / 2, length / 2, int(rng.integers(3, 7)))
    amp = rng.choice([0.0, rng.uniform(40, 0.12 * size + 60)], p=[0.35, 0.65])
    offs = rng.normal(0, 1, len(ts)) * amp
    offs[[0, -1]] *= 0.3
    pts = q + ts[:, None] * d + offs[:, None] * n
    pts = chaikin(pts, 5)
    line = LineString(pts).intersection(ext)
    parts = line_parts(line)
    if not parts:
        return None
    return max(parts, key=lambda g: g.length)


def intersections(roads: list[Road]) -> list[tuple[float, float, int, int]]:
    """Road-road intersection points (x, y, road_a, road_b), excluding straight continuations."""
    if not roads:
        return []
    lines = [r.line for r in roads]
    tree = shapely.STRtree(lines)
    a_idx, b_idx = tree.query(lines, predicate="intersects")
    out = []
    for a, b in zip(a_idx, b_idx):
        if a >= b:
            continue
        for x, y in point_parts(lines[a].intersection(lines[b])):
            ta, tb = tangent(lines[a], (x, y)), tangent(lines[b], (x, y))
            if abs(float(ta @ tb)) > 0.996:  # same line, kind changes here: not an intersection
                continue
            out.append((x, y, roads[a].id, roads[b].id))
    # merge duplicates (three roads meeting at one node)
    merged: list[tuple[float, float, int, int]] = []
    for x, y, a, b in out:
        if all((x - m[0]) ** 2 + (y - m[1]) ** 2 > 4.0 for m in merged):
            merged.append((x, y, a, b))
    return merged


def make_roads(rng: np.random.Generator, p: SceneParams, grid: Grid) -> list[Road]:
    specs = _grid_roads(rng, p, grid)
    n_extra = p.extra_roads
    if p.size >= 2048 and rng.random() < 0.35:
        n_extra = max(n_extra, 1)
    for _ in range(n_extra):
        for _try in range(6):
            line = _extra_road(rng, p, grid)
            if line is None or line.length < 200:
                continue
            # reject shallow intersections with existing roads (long sliver junctions)
            ok = True
            for s in specs:
                for x, y in point_parts(line.intersection(s["line"])):
                    c = abs(float(tangent(line, (x, y)) @ tangent(s["line"], (x, y))))
                    if c > np.cos(np.deg2rad(30)):
                        ok = False
                if not ok:
                    break
            if not ok:
                continue
            # and near-parallel runs next to existing roads
            near = line.intersection(shapely.union_all([s["line"] for s in specs]).buffer(40.0)) if specs else None
            if near is not None and any(part.length > 190 for part in line_parts(near)):
                continue
            kind = "paved" if rng.random() < 0.6 else "gravel"
            specs.append(dict(line=line, grid=False, **_attrs(rng, kind)))
            break
    roads = [Road(id=i + 1, **s) for i, s in enumerate(specs)]
    return roads
