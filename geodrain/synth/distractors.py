"""Distractors: everything along the roads that can look like a drainage crossing but is not one, recorded so
that an evaluation can say what lies under each false detection.

Made here (after the fields and the other features, from the scene's random generator):

* **field-edge strips** along quarter lines and field splits, running at right angles into the roads: grass
  borders (mown or idle grass between two fields) and farm lanes (a dirt two-track), raised a little in the
  DEM (the berm that tillage builds at a field edge), never a channel;
* **ditch fills** where a field entrance or a farm driveway crosses the road ditch: an earth ramp from the
  road down to the field across the ditch, most with a small pipe culvert (0.3-0.6 m) that carries the
  *ditch* along the road under the fill. These are not drainage crossings: no stream passes under the road
  there (see ``docs/synthetic.md``);
* **terraced fields**: broad-based terraces along the contours (ridges 0.25-0.5 m high with a shallow
  channel on their upslope side), some with a grassed back slope;

and, as points, every place along a road where one of these (or a field boundary, a farmstead, a grassed
waterway, a pond or a creek) meets or runs close to the road: :func:`collect_points`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon

from .geometry import along, oriented_rect, tangent
from .params import SECTION_M

KINDS = ("field_boundary", "grass_border", "farm_lane", "field_entrance", "driveway", "road_intersection",
         "farmstead", "waterway_end", "pond_near_road", "stream_near_road", "terraced_field")
AREA_KINDS = ("farmstead", "waterway", "pond", "grass_border", "farm_lane", "terraced_field")
CLEAR_OF_CROSSINGS_M = 60.0   # strips and fills stop this far from a crossing (the crossing stays one structure)


@dataclass
class Strip:
    """A linear feature along a field boundary that meets a road at right angles."""

    line: LineString
    poly: Polygon
    kind: str          # grass_border | farm_lane
    width: float
    berm: float        # height of the berm in the DEM (m)
    road_ends: list[tuple[float, float, int]] = field(default_factory=list)   # (x, y, road id) on the road


@dataclass
class DitchFill:
    """An earth fill across a road ditch (field entrance or driveway), with or without a pipe culvert."""

    poly: Polygon
    road_id: int
    access: tuple[float, float]   # on the road centreline
    kind: str                     # field_entrance | driveway
    culvert: bool
    pipe_ends: list[tuple[float, float]]
    pipe_d: float
    ends_visible: bool
    material: str


@dataclass
class Terraced:
    field_id: int
    poly: Polygon
    interval_m: float   # vertical interval between terraces
    height_m: float     # ridge height
    grassed: bool       # grassed back slopes (visible as strips)


@dataclass
class Distractor:
    x: float
    y: float
    kind: str
    road_id: int = 0
    culvert: bool = False
    sides: int = 0           # field boundaries: 1 = on one side of the road, 2 = aligned on both sides
    contrast: float = 0.0    # field boundaries: difference of the two fields' looks (0..~2)


@dataclass
class Distractors:
    strips: list[Strip]
    fills: list[DitchFill]
    terraced: list[Terraced]
    points: list[Distractor] = field(default_factory=list)
    areas: list[tuple[Polygon, str]] = field(default_factory=list)


# -- field-edge strips ------------------------------------------------------------------------------------

def _strips(rng, p, grid, roads, streams, crossings) -> list[Strip]:
    """Grass borders and farm lanes along quarter lines (and some sixteenth lines), road to road."""
    if not roads:
        return []
    road_union = shapely.union_all([r.line.buffer(r.row_half, 8, cap_style="flat") for r in roads])
    road_tree = shapely.STRtree([r.line for r in roads])
    stream_zone = shapely.union_all([s.line.buffer(s.width / 2 + 8.0, 8) for s in streams]) if streams else None
    cross = shapely.union_all([Point(c.x, c.y).buffer(CLEAR_OF_CROSSINGS_M) for c in crossings]) \
        if crossings else None
    out: list[Strip] = []
    half = SECTION_M / 2
    rate = p.strip_fraction
    for axis, (own, other) in enumerate(((grid.us, grid.vs), (grid.vs, grid.us))):
        for u0 in np.concatenate([[own[0] - SECTION_M], own]):
            for v0 in np.concatenate([[other[0] - SECTION_M], other]):
                for frac in (0.5, 0.25, 0.75):
                    pr = rate if frac == 0.5 else 0.25 * rate
                    if rng.random() >= pr:
                        continue
                    u = u0 + frac * SECTION_M
                    # whole section (road to road) or from one road part way
                    if rng.random() < 0.6:
                        a, b = v0, v0 + SECTION_M
                    elif rng.random() < 0.5:
                        a, b = v0, v0 + rng.uniform(0.25, 0.7) * SECTION_M
                    else:
                        a, b = v0 + SECTION_M - rng.uniform(0.25, 0.7) * SECTION_M, v0 + SECTION_M
                    uv = np.array([[u, a], [u, b]]) if axis == 0 else np.array([[a, u], [b, u]])
                    xy = grid.to_scene(uv)
                    c = xy.mean(0)
                    if not (-half < c[0] < p.size + half and -half < c[1] < p.size + half):
                        continue
                    line = LineString(xy)
                    kind = "farm_lane" if rng.random() < 0.35 else "grass_border"
                    width = float(rng.uniform(3.0, 5.0) if kind == "farm_lane" else rng.uniform(2.5, 10.0))
                    berm = float(rng.uniform(0.05, 0.2) if kind == "farm_lane" else rng.uniform(0.1, 0.45))
                    poly = line.buffer(width / 2, 4, cap_style="flat").difference(road_union)
                    if stream_zone is not None:
                        poly = poly.difference(stream_zone)
                    if cross is not None:
                        poly = poly.difference(cross)
                    if poly.is_empty or poly.area < 50 * width:
                        continue
                    ends = []
                    for q in (xy[0], xy[1]):
                        for i in road_tree.query(Point(q).buffer(30.0)):
                            r = roads[int(i)]
                            pt = r.line.interpolate(r.line.project(Point(q)))
                            if pt.distance(Point(q)) < 30.0 and poly.distance(pt) < r.row_half + 2.0:
                                ends.append((pt.x, pt.y, r.id))
                    out.append(Strip(line, poly, kind, width, berm, ends))
    return out


# -- ditch fills ------------------------------------------------------------------------------------------

def ditch_fills(rng, roads, features) -> list[DitchFill]:
    """Fills across the road ditch at every field entrance and farm driveway."""
    tree = shapely.STRtree([r.line for r in roads]) if roads else None
    items = [(poly, "field_entrance", acc) for poly, _, acc in features.approaches]
    items += [(fs.driveway, "driveway", fs.access) for fs in features.farmsteads]
    out: list[DitchFill] = []
    for poly, kind, acc in items:
        if tree is None:
            break
        road = roads[int(tree.nearest(Point(acc)))]
        q = np.asarray(acc, float)
        t = tangent(road.line, q)
        n = np.array([-t[1], t[0]])
        c = np.array(poly.centroid.coords[0])
        side = 1.0 if float((c - q) @ n) >= 0 else -1.0
        n = n * side
        # the fill: across the ditch, as wide as the entrance plus its side slopes
        w = float(rng.uniform(4.0, 8.0)) if kind == "driveway" else float(np.clip(_across_width(poly, t), 4.0, 9.0))
        reach = road.row_half + 1.0
        mid = q + (road.width / 2 + reach) / 2 * n
        fill = oriented_rect(mid, t, w / 2 + 1.5, (reach - road.width / 2) / 2)
        culvert = bool(rng.random() < (0.8 if road.ditch > 1.5 else 0.3))
        pipe_d = float(rng.uniform(0.3, 0.6))
        ditch_mid = road.toe + 0.5 * road.ditch
        ends = [tuple(q + ditch_mid * n + s * (w / 2 + 1.2) * t) for s in (-1.0, 1.0)] if culvert else []
        out.append(DitchFill(fill, road.id, (float(q[0]), float(q[1])), kind, culvert, ends, pipe_d,
                             bool(rng.random() < 0.5), str(rng.choice(["metal", "concrete", "plastic"],
                                                                      p=[0.6, 0.25, 0.15]))))
    return out


def _across_width(poly: Polygon, t: np.ndarray) -> float:
    """Extent of a polygon along the road direction ``t``."""
    xy = np.asarray(poly.exterior.coords)
    proj = xy @ t
    return float(proj.max() - proj.min())


# -- terraces ---------------------------------------------------------------------------------------------

def _terraced(rng, p, fields) -> list[Terraced]:
    out = []
    if p.terrace_fraction <= 0:
        return out
    for f in fields:
        if f.centre is not None or f.look["cover"] in ("pasture", "grass", "alfalfa"):
            continue
        if rng.random() < p.terrace_fraction:
            out.append(Terraced(f.id, f.poly, float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.25, 0.5)),
                                bool(rng.random() < 0.4)))
    return out


def make_distractors(rng: np.random.Generator, p, grid, roads, streams, crossings, fields,
                     features) -> Distractors:
    strips = _strips(rng, p, grid, roads, streams, crossings)
    fills = ditch_fills(rng, roads, features)
    terraced = _terraced(rng, p, fields)
    return Distractors(strips, fills, terraced)


# -- the points and areas of the distractor layer ---------------------------------------------------------

def _field_boundaries(fields, roads, nodes, size: float, step: float = 2.0) -> list[Distractor]:
    """Where the field under the land next to a road changes: a field boundary meeting the road."""
    if not fields or not roads:
        return []
    polys = [f.poly for f in fields]
    ftree = shapely.STRtree(polys)
    looks = [f.look for f in fields]
    node_xy = np.array([(x, y) for x, y, *_ in nodes]).reshape(-1, 2)
    out: list[Distractor] = []
    for r in roads:
        L = r.line.length
        s = np.arange(step / 2, L, step)
        if len(s) < 3:
            continue
        base, _ = along(r.line, s)
        inside = (base[:, 0] > -20) & (base[:, 0] < size + 20) & (base[:, 1] > -20) & (base[:, 1] < size + 20)
        if not inside.any():
            continue
        nrm = _normals(base)
        found = []
        for side in (-1.0, 1.0):
            pts = base + side * (r.row_half + 4.0) * nrm
            idx_p, idx_f = ftree.query(shapely.points(pts), predicate="within")
            top = np.full(len(pts), -1)
            np.maximum.at(top, idx_p, idx_f)   # later fields are drawn on top
            ch = np.flatnonzero((top[1:] != top[:-1]) & (top[1:] >= 0) & (top[:-1] >= 0) & inside[1:])
            for k in ch:
                a, b = looks[top[k]], looks[top[k + 1]]
                con = abs(a["fv"] - b["fv"]) + abs(a["fd"] - b["fd"]) + 0.5 * abs(a["moist"] - b["moist"])
                found.append((s[k] + step / 2, side, float(con)))
        found.sort()
        used = [False] * len(found)
        for i, (si, side, con) in enumerate(found):
            if used[i]:
                continue
            sides, c = 1, con
            for j in range(i + 1, len(found)):
                if found[j][0] - si > 12.0:
                    break
                if not used[j] and found[j][1] != side:
                    used[j] = True
                    sides, c = 2, max(con, found[j][2])
            q = r.line.interpolate(si)
            if len(node_xy) and np.min(np.hypot(*(node_xy - (q.x, q.y)).T)) < r.row_half + 25.0:
                continue   # the field corner at a road intersection: that is the intersection
            out.append(Distractor(q.x, q.y, "field_boundary", r.id, sides=sides, contrast=round(c, 3)))
    return out


def _normals(base: np.ndarray) -> np.ndarray:
    d = np.gradient(base, axis=0)
    n = np.column_stack([-d[:, 1], d[:, 0]])
    return n / np.maximum(np.hypot(*n.T), 1e-9)[:, None]


def collect_points(size: float, roads, nodes, streams, crossings, fields, features, dis: Distractors,
                   near_road: list[tuple[float, float]]) -> tuple[list[Distractor], list[tuple[Polygon, str]]]:
    """Every distractor as a point on (or next to) a road, and the distractor areas."""
    pts: list[Distractor] = []
    for x, y, a, _b in nodes:
        pts.append(Distractor(x, y, "road_intersection", int(a)))
    pts += _field_boundaries(fields, roads, nodes, size)
    # a strip's end at a road replaces the plain boundary point there
    for st in dis.strips:
        for x, y, rid in st.road_ends:
            pts = [d for d in pts if not (d.kind == "field_boundary" and d.road_id == rid
                                          and (d.x - x) ** 2 + (d.y - y) ** 2 < 15.0 ** 2)]
            pts.append(Distractor(x, y, st.kind, rid, sides=1))
    for f in dis.fills:
        pts.append(Distractor(f.access[0], f.access[1], f.kind, f.road_id, culvert=f.culvert))
    for fs in features.farmsteads:
        c = fs.yard.centroid
        pts.append(Distractor(c.x, c.y, "farmstead"))
    for w in features.waterways:
        if w.end_on_road is not None:
            pts.append(Distractor(*w.end_on_road, "waterway_end"))
    for pd in features.ponds:
        if pd.near_road is not None:
            pts.append(Distractor(*pd.near_road, "pond_near_road"))
    for x, y in near_road:
        pts.append(Distractor(x, y, "stream_near_road"))
    pts = [d for d in pts if 0 <= d.x <= size and 0 <= d.y <= size]
    areas: list[tuple[Polygon, str]] = [(fs.yard, "farmstead") for fs in features.farmsteads]
    areas += [(w.poly, "waterway") for w in features.waterways]
    areas += [(pd.poly, "pond") for pd in features.ponds]
    areas += [(st.poly, st.kind) for st in dis.strips]
    areas += [(t.poly, "terraced_field") for t in dis.terraced]
    return pts, areas
