"""Everything between the roads and streams: farmsteads, ponds, grassed waterways, field approaches,
shelterbelts and trees (riparian, windbreak, yard and scattered).

Features keep clear of crossings (so that every crossing chip shows one structure) and of the streams; the
ones that resemble crossings on purpose (waterways that end at a road, ponds and creeks near roads,
driveways) become hard negatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import nearest_points, substring

from . import noise, spectra
from .geometry import along, blob, chaikin, normals_along, oriented_rect, tangent
from .params import SceneParams

CLEAR_OF_CROSSINGS_M = 95.0


@dataclass
class Building:
    poly: Polygon
    roof: str
    height: float
    kind: str               # house, shed, bin
    ridge: tuple[float, float] = (1.0, 0.0)   # unit vector along the ridge (gable roofs)
    gable: bool = False
    centre: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0


@dataclass
class Farmstead:
    id: int
    yard: Polygon
    gravel: Polygon
    driveway: Polygon
    access: tuple[float, float]       # where the driveway meets the road centreline
    buildings: list[Building] = field(default_factory=list)


@dataclass
class Pond:
    id: int
    poly: Polygon
    water_type: str
    tone: float
    ring: float
    near_road: tuple[float, float] | None = None
    level: float = 0.0


@dataclass
class Waterway:
    id: int
    poly: Polygon
    width: float
    end_on_road: tuple[float, float] | None


@dataclass
class Trees:
    """Tree crowns as arrays: centre, crown radius, height, kind (0 deciduous, 1 conifer), tone."""

    x: np.ndarray
    y: np.ndarray
    r: np.ndarray
    h: np.ndarray
    kind: np.ndarray
    tone: np.ndarray

    @classmethod
    def concat(cls, parts: list[dict]) -> "Trees":
        keys = ("x", "y", "r", "h", "kind", "tone")
        if not parts:
            return cls(*(np.zeros(0, np.float32) for _ in keys))
        return cls(*(np.concatenate([np.asarray(p[k], np.float32) for p in parts]) for k in keys))

    def keep(self, m: np.ndarray) -> "Trees":
        return Trees(self.x[m], self.y[m], self.r[m], self.h[m], self.kind[m], self.tone[m])

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Features:
    farmsteads: list[Farmstead]
    ponds: list[Pond]
    waterways: list[Waterway]
    approaches: list[tuple[Polygon, str, tuple[float, float]]]   # field entrances: polygon, surface, access
    belts: list[Polygon]
    trees: Trees


class _Buckets:
    """Polygons in a coarse grid of buckets, for quick overlap tests as features are placed."""

    def __init__(self, cell: float = 400.0):
        self.cell = cell
        self.items: dict[tuple[int, int], list] = {}

    def _keys(self, geom):
        x0, y0, x1, y1 = geom.bounds
        c = self.cell
        for i in range(int(np.floor(x0 / c)), int(np.floor(x1 / c)) + 1):
            for j in range(int(np.floor(y0 / c)), int(np.floor(y1 / c)) + 1):
                yield i, j

    def append(self, geom) -> None:
        for k in self._keys(geom):
            self.items.setdefault(k, []).append(geom)

    def hit(self, geom) -> bool:
        seen = set()
        for k in self._keys(geom):
            for g in self.items.get(k, ()):
                if id(g) not in seen:
                    seen.add(id(g))
                    if geom.intersects(g):
                        return True
        return False


class _Space:
    """Occupied areas that new features must avoid."""

    def __init__(self, p, roads, nodes, streams, crossings):
        self.size = p.size
        self.roads = roads
        self.road_lines = [r.line for r in roads]
        self.road_tree = shapely.STRtree(self.road_lines) if roads else None
        self.stream_zone = _Buckets()
        for st in streams:
            self.stream_zone.append(st.line.buffer(st.width / 2 + st.riparian + 12.0, 8))
        self.cross = np.array([(c.x, c.y) for c in crossings]).reshape(-1, 2)
        self.nodes = np.array([(x, y) for x, y, *_ in nodes]).reshape(-1, 2)
        self.taken = _Buckets()
        self.access: list[tuple[float, float]] = []   # where features meet roads (kept apart)

    def far_from(self, arr: np.ndarray, q, d: float) -> bool:
        return len(arr) == 0 or float(np.min(np.hypot(*(arr - np.asarray(q)).T))) >= d

    def clear_of_roads(self, geom, extra: float, skip: int | None = None) -> bool:
        if self.road_tree is None:
            return True
        for i in self.road_tree.query(geom, predicate="dwithin", distance=60.0 + extra):
            r = self.roads[int(i)]
            if r.id == skip:
                continue
            if geom.distance(r.line) < r.row_half + extra:
                return False
        return True

    def free(self, geom, gap: float = 10.0) -> bool:
        g = geom.buffer(gap) if gap else geom
        return not (self.stream_zone.hit(g) or self.taken.hit(g))

    def inside(self, q, margin: float) -> bool:
        return margin <= q[0] <= self.size - margin and margin <= q[1] <= self.size - margin


def _road_point(rng, road, margin: float = 0.1):
    L = road.line.length
    s = rng.uniform(margin * L, (1 - margin) * L)
    q = np.array(road.line.interpolate(s).coords[0])
    t = tangent(road.line, q)
    return q, t, np.array([-t[1], t[0]])


def _farmstead(rng, p, sp: _Space, roads, fid: int) -> Farmstead | None:
    road = roads[int(rng.integers(0, len(roads)))]
    if road.kind == "dirt":
        return None
    q, t, n = _road_point(rng, road)
    n = n * rng.choice([-1, 1])
    la, lb = rng.uniform(70, 190), rng.uniform(70, 170)
    set0 = road.row_half + rng.uniform(0.0, 8.0)
    c = q + (set0 + lb / 2) * n
    yard = oriented_rect(c, t, la / 2, lb / 2)
    if not sp.inside(c, 40) or not sp.far_from(sp.cross, q, 160) or not sp.far_from(sp.nodes, q, 110):
        return None
    if not sp.free(yard, 25.0) or not sp.clear_of_roads(yard, 6.0, skip=road.id):
        return None

    def P(a, b):  # yard-local (a along the road from the yard centre, b from the road side) to scene
        return q + a * t + (set0 + b) * n

    bld: list[Building] = []
    occupied: list[Polygon] = []

    def place(w, d, a, b, roof, height, kind, gable):
        poly = oriented_rect(P(a, b), t, w / 2, d / 2)
        if any(poly.buffer(3).intersects(o) for o in occupied) or not yard.buffer(-2).contains(poly):
            return None
        occupied.append(poly)
        ridge = t if w >= d else n
        b_ = Building(poly, roof, height, kind, (float(ridge[0]), float(ridge[1])), gable,
                      tuple(P(a, b)), 0.0)
        bld.append(b_)
        return b_

    place(rng.uniform(9, 17), rng.uniform(8, 13), rng.uniform(-la / 3, la / 3), rng.uniform(0.15, 0.35) * lb,
          str(rng.choice(["dark", "brown", "grey", "red", "white"], p=[0.35, 0.2, 0.25, 0.1, 0.1])),
          rng.uniform(5, 8), "house", rng.random() < 0.85)
    for _ in range(int(rng.integers(1, 6))):
        w, d = rng.uniform(12, 26), rng.uniform(16, 52)
        if rng.random() < 0.5:
            w, d = d, w
        for _try in range(6):
            if place(w, d, rng.uniform(-la / 2 + 12, la / 2 - 12), rng.uniform(0.4, 0.85) * lb,
                     spectra.draw_roof(rng), rng.uniform(4, 9), "shed", rng.random() < 0.6):
                break
    nb = int(rng.choice([0, rng.integers(1, 4), rng.integers(3, 9)], p=[0.3, 0.4, 0.3]))
    if nb:
        r0 = rng.uniform(3.5, 8.5)
        a0, b0 = rng.uniform(-la / 3, la / 3), rng.uniform(0.55, 0.85) * lb
        for k in range(nb):
            r = r0 * rng.uniform(0.8, 1.15)
            cpt = P(a0 + (k - nb / 2) * (2 * r0 + 2.5), b0)
            poly = Point(cpt).buffer(r, 24)
            if any(poly.buffer(1.5).intersects(o) for o in occupied) or not yard.buffer(-2).contains(poly):
                continue
            occupied.append(poly)
            bld.append(Building(poly, "galvanized", r * rng.uniform(1.4, 2.6), "bin",
                                centre=(float(cpt[0]), float(cpt[1])), radius=float(r)))
    if not bld:
        return None
    gravel = shapely.union_all([o.buffer(rng.uniform(4, 12)) for o in occupied]).convex_hull
    gravel = gravel.intersection(yard.buffer(-3)).buffer(2).buffer(-2)
    da = rng.uniform(-la / 3, la / 3)
    dw = rng.uniform(3.5, 6.5)
    start = q + da * t + (road.width / 2 - 0.5) * n
    target = np.array(gravel.centroid.coords[0])
    drive = LineString([start, start + (set0 + 6 - road.width / 2) * n, target]).buffer(dw / 2, 4)
    drive = drive.difference(Point(q + da * t).buffer(road.width / 2 - 0.5))
    sp.taken.append(yard.buffer(15))
    sp.access.append(tuple(q + da * t))
    return Farmstead(fid, yard, gravel, drive, tuple(q + da * t), bld)


def _pond(rng, p, sp: _Space, roads, pid: int, near_road: bool) -> Pond | None:
    r = float(rng.uniform(9.0, 42.0))
    if near_road and roads:
        road = roads[int(rng.integers(0, len(roads)))]
        q, t, n = _road_point(rng, road)
        n = n * rng.choice([-1, 1])
        gap = rng.uniform(8.0, 40.0)
        c = q + (road.row_half + gap + r) * n
        if not sp.far_from(sp.nodes, q, 70):
            return None
    else:
        c = rng.uniform(0, p.size, 2)
        q = None
    poly = blob(rng, c, r, roughness=rng.uniform(0.1, 0.4))
    if not sp.inside(c, r + 20) or not sp.far_from(sp.cross, c, CLEAR_OF_CROSSINGS_M + r):
        return None
    if not sp.free(poly, 15.0) or not sp.clear_of_roads(poly, 8.0):
        return None
    sp.taken.append(poly.buffer(10))
    near = None
    if q is not None:
        b = np.array(nearest_points(poly, Point(q))[0].coords[0])
        near = tuple((b + q) / 2)
    return Pond(pid, poly, str(rng.choice(list(spectra.WATER), p=[0.35, 0.3, 0.25, 0.1])),
                float(rng.normal()), float(rng.uniform(0.0, 6.0)), near)


def _waterway(rng, p, sp: _Space, roads, fields, wid: int) -> Waterway | None:
    """A grassed waterway: a sinuous grass strip down a crop field that ends at a road's right of way."""
    if not roads:
        return None
    road = roads[int(rng.integers(0, len(roads)))]
    q, t, n = _road_point(rng, road, 0.05)
    n = n * rng.choice([-1, 1])
    if not sp.inside(q, 50) or not sp.far_from(sp.cross, q, CLEAR_OF_CROSSINGS_M + 20) \
            or not sp.far_from(sp.nodes, q, 70):
        return None
    if not sp.far_from(np.array(sp.access).reshape(-1, 2), q, 60.0):
        return None
    width = float(rng.uniform(6.0, 22.0))
    end = q + (road.row_half + 1.0) * n
    length = rng.uniform(150, 600)
    ang = np.arctan2(n[1], n[0]) + rng.normal(0, 0.4)
    start = end + length * np.array([np.cos(ang), np.sin(ang)])
    k = int(length / 10) + 2
    s = np.linspace(0, 1, k)
    mid = start[None, :] * (1 - s[:, None]) + end[None, :] * s[:, None]
    perp = np.array([-np.sin(ang), np.cos(ang)])
    wig = noise.series(int(rng.integers(1, 2**31 - 1)), s * length, rng.uniform(60, 180)) * rng.uniform(5, 30)
    wig *= np.sin(np.pi * np.clip(s * 1.2, 0, 1)) ** 0.5
    xy = mid + wig[:, None] * perp
    # the last stretch heads straight at the road
    xy[-3:] = end[None, :] + (xy[-3:] - end[None, :]) * np.array([[1.0], [0.5], [0.0]])
    line = LineString(chaikin(xy, 2))
    poly = line.buffer(width / 2, 8, cap_style="flat")
    if not sp.free(poly, 25.0):
        return None
    if not sp.clear_of_roads(poly, 0.5, skip=road.id):
        return None
    body = substring(line, 0, max(0.0, line.length - 30.0))
    if body.distance(road.line) < road.row_half + 10.0:
        return None
    sp.taken.append(poly.buffer(20))
    sp.access.append(tuple(q))
    return Waterway(wid, poly, width, tuple(q))


def _approach(rng, sp: _Space, roads):
    road = roads[int(rng.integers(0, len(roads)))]
    q, t, n = _road_point(rng, road, 0.05)
    n = n * rng.choice([-1, 1])
    if not sp.inside(q, 40) or not sp.far_from(sp.cross, q, CLEAR_OF_CROSSINGS_M) or not sp.far_from(sp.nodes, q, 50):
        return None
    if not sp.far_from(np.array(sp.access).reshape(-1, 2), q, 60.0):
        return None
    w = rng.uniform(4.0, 9.0)
    a = q + (road.width / 2 - 0.3) * n
    b = q + (road.row_half + 1.5) * n
    poly = LineString([a, b]).buffer(w / 2, cap_style="flat")
    if not sp.free(poly, 5.0) or not sp.clear_of_roads(poly, 2.0, skip=road.id):
        return None
    sp.taken.append(poly.buffer(4))
    sp.access.append(tuple(q))
    surf = str(rng.choice(["gravel", "dirt", "grass"], p=[0.45, 0.35, 0.2]))
    return poly, surf, tuple(q)


def _belt(rng, p, sp: _Space, grid) -> tuple[Polygon, dict] | None:
    """A shelterbelt along a quarter or section line, set back from any road on it."""
    from .params import SECTION_M
    axis = int(rng.integers(0, 2))
    lines = grid.us if axis == 0 else grid.vs
    pos = rng.choice(lines) + rng.choice([0.0, SECTION_M / 2]) + rng.choice([-1, 1]) * rng.uniform(8, 30)
    a = rng.uniform(-grid.half, grid.half)
    L = rng.uniform(150, 800)
    uv = np.array([[pos, a], [pos, a + L]]) if axis == 0 else np.array([[a, pos], [a + L, pos]])
    xy = grid.to_scene(uv)
    line = LineString(xy)
    width = float(rng.uniform(5.0, 24.0))
    poly = line.buffer(width / 2, cap_style="flat")
    c = np.array(line.interpolate(0.5, normalized=True).coords[0])
    if not sp.inside(c, -100) or not sp.free(poly, 8.0) or not sp.clear_of_roads(poly, 4.0):
        return None
    if len(sp.cross) and float(np.min(shapely.distance(shapely.points(sp.cross), poly))) < CLEAR_OF_CROSSINGS_M:
        return None
    sp.taken.append(poly.buffer(6))
    return poly, dict(line=line, width=width, conifer=float(rng.uniform(0, 1) ** 1.5))


def _rows_of_trees(rng, line: LineString, width: float, conifer: float, hscale=(5.0, 14.0)) -> dict:
    n_rows = max(1, int(width // 5.0))
    spacing = rng.uniform(3.5, 6.5)
    s = np.arange(0, line.length, spacing)
    nr = normals_along(line, s)
    base, _ = along(line, s)
    xs, ys, rs, hs, ks = [], [], [], [], []
    for k in range(n_rows):
        off = (k - (n_rows - 1) / 2) * (width / max(n_rows, 1))
        con = rng.random() < conifer
        m = rng.random(len(s)) > rng.uniform(0.0, 0.25)  # gaps
        pts = base + off * nr + rng.normal(0, 0.6, (len(s), 2))
        r = rng.uniform(1.8, 3.2, len(s)) if con else rng.uniform(2.2, 4.8, len(s))
        xs.append(pts[m, 0]); ys.append(pts[m, 1]); rs.append(r[m])
        hs.append(np.clip(r[m] * rng.uniform(2.0, 3.2, m.sum()), *hscale)); ks.append(np.full(m.sum(), float(con)))
    x = np.concatenate(xs)
    return dict(x=x, y=np.concatenate(ys), r=np.concatenate(rs), h=np.concatenate(hs), kind=np.concatenate(ks),
                tone=rng.normal(0, 1, len(x)))


def _riparian(rng, st) -> dict | None:
    if st.riparian <= 0:
        return None
    sty = st.style
    line = st.line
    hw = st.width / 2
    big = rng.uniform(2.8, 6.5)
    spacing = big * rng.uniform(1.2, 1.7)
    n = int(line.length * 2 * st.riparian / (spacing * spacing)) + 1
    s = rng.uniform(0, line.length, n)
    side = rng.choice([-1.0, 1.0], n)
    zone = st.riparian * np.clip(0.65 + 0.35 * noise.series(sty["key"] + 5, s, 120.0), 0.25, 1.3)
    d = hw + 0.3 + zone * rng.random(n) ** 1.4
    cell = rng.uniform(35.0, 160.0)
    patch = np.where(side > 0, noise.series(sty["key"] + 9, s, cell), noise.series(sty["key"] + 10, s, cell))
    patch = patch + 0.35 * rng.normal(0, 1, n)
    thr = np.quantile(patch, 1.0 - sty["coverage"]) if sty["coverage"] < 1 else -np.inf
    keep = patch > thr
    s, side, d = s[keep], side[keep], d[keep]
    base, _ = along(line, s)
    pts = base + (side * d)[:, None] * normals_along(line, s, 2.0)
    r = big * rng.uniform(0.55, 1.15, len(s))
    h = np.clip(r * rng.uniform(2.2, 3.6, len(s)), 5.0, 25.0)
    kind = (rng.random(len(s)) < 0.08).astype(np.float32)
    return dict(x=pts[:, 0], y=pts[:, 1], r=r, h=h, kind=kind, tone=rng.normal(0, 1, len(s)))


def _scattered(rng, p, fields) -> dict | None:
    parts = []
    dens = 40e-6 * p.tree_abundance   # trees per m2 in pastures
    for f in fields:
        if f.look["cover"] not in ("pasture", "grass") or f.centre is not None:
            continue
        n = int(rng.poisson(f.poly.area * dens * rng.uniform(0.0, 2.0)))
        if n == 0:
            continue
        x0, y0, x1, y1 = f.poly.bounds
        cx, cy = rng.uniform(x0, x1, 3 * n), rng.uniform(y0, y1, 3 * n)
        # clumped: pull points toward a few cluster centres
        k = rng.integers(0, 3, 3 * n)
        cc = rng.uniform([x0, y0], [x1, y1], (3, 2))
        pull = rng.uniform(0.0, 0.85)
        cx = cx * (1 - pull) + cc[k, 0] * pull
        cy = cy * (1 - pull) + cc[k, 1] * pull
        m = shapely.contains_xy(f.poly, cx, cy)
        cx, cy = cx[m][:n], cy[m][:n]
        parts.append((cx, cy))
    # fence-row trees along field edges
    for f in fields:
        if rng.random() > 0.12 * p.tree_abundance:
            continue
        ring = f.poly.exterior
        s0 = rng.uniform(0, ring.length)
        s = (s0 + np.cumsum(rng.uniform(3, 14, int(rng.integers(3, 30))))) % ring.length
        xy, _ = along(LineString(ring.coords), s)
        parts.append((xy[:, 0], xy[:, 1]))
    if not parts:
        return None
    x = np.concatenate([a for a, _ in parts])
    y = np.concatenate([b for _, b in parts])
    r = rng.uniform(2.0, 6.0, len(x))
    return dict(x=x, y=y, r=r, h=np.clip(r * rng.uniform(2.0, 3.4, len(x)), 4, 20),
                kind=(rng.random(len(x)) < 0.25).astype(np.float32), tone=rng.normal(0, 1, len(x)))


def _yard_trees(rng, fs: Farmstead) -> list[dict]:
    out = []
    ext = np.array(fs.yard.exterior.coords)[:4]
    c = np.array(fs.yard.centroid.coords[0])
    for i in range(4):
        a, b = ext[i], ext[(i + 1) % 4]
        mid = (a + b) / 2
        out_n = (mid - c) / max(np.hypot(*(mid - c)), 1e-9)
        north, west = out_n[1] < -0.7, out_n[0] < -0.7
        if (north or west) and rng.random() < 0.85:
            width = rng.uniform(8.0, 25.0)
            line = LineString([a - out_n * width / 2, b - out_n * width / 2])
            out.append(_rows_of_trees(rng, line, width, rng.uniform(0.2, 0.8), (6.0, 15.0)))
    n = int(rng.integers(3, 18))
    x0, y0, x1, y1 = fs.yard.bounds
    x, y = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    m = shapely.contains_xy(fs.yard.buffer(-4), x, y)
    r = rng.uniform(2.5, 6.5, n)
    out.append(dict(x=x[m], y=y[m], r=r[m], h=np.clip(2.6 * r[m], 6, 18),
                    kind=(rng.random(n) < 0.2)[m].astype(np.float32), tone=rng.normal(0, 1, n)[m]))
    return out


def _clear_trees(trees: Trees, roads, streams, crossings, features_polys, rng) -> Trees:
    if len(trees) == 0:
        return trees
    pts = shapely.points(np.column_stack([trees.x, trees.y]))
    tree = shapely.STRtree(pts)
    drop = np.zeros(len(trees), bool)
    for r in roads:
        idx = tree.query(r.line, predicate="dwithin", distance=r.toe + 1.0)
        drop[idx] = True
    for s in streams:
        idx = tree.query(s.line, predicate="dwithin", distance=s.width / 2 + 0.5)
        drop[idx] = True
    for c in crossings:
        if c.kind == "bridge":
            rad = c.half_along + rng.uniform(0.0, 25.0)
        else:
            rad = c.half_across + (rng.uniform(8.0, 45.0) if rng.random() < 0.7 else 0.0)
        idx = tree.query(Point(c.x, c.y), predicate="dwithin", distance=rad)
        drop[idx] = True
    for poly in features_polys:
        drop[tree.query(poly, predicate="intersects")] = True
    return trees.keep(~drop)


def make_features(rng: np.random.Generator, p: SceneParams, grid, roads, nodes, streams, crossings,
                  fields) -> Features:
    sp = _Space(p, roads, nodes, streams, crossings)
    area_km2 = (p.size / 1000.0) ** 2
    public = [r for r in roads]
    farms: list[Farmstead] = []
    for _ in range(int(rng.poisson(p.farmstead_density_km2 * area_km2)) + (1 if p.size >= 1024 else 0)):
        for _try in range(8):
            f = _farmstead(rng, p, sp, public, len(farms) + 1) if public else None
            if f is not None:
                farms.append(f)
                break
    ponds: list[Pond] = []
    n_ponds = int(rng.poisson(p.pond_density_km2 * area_km2))
    n_near = max(int(rng.binomial(n_ponds, 0.45)), 1 if p.size >= 2048 else 0)
    for k in range(n_ponds + (n_near if n_ponds == 0 else 0)):
        for _try in range(10):
            pond = _pond(rng, p, sp, public, len(ponds) + 1, near_road=k < n_near)
            if pond is not None:
                ponds.append(pond)
                break
    ways: list[Waterway] = []
    for _ in range(int(rng.poisson(p.waterway_density_km2 * area_km2)) + (1 if p.size >= 1024 else 0)):
        for _try in range(12):
            w = _waterway(rng, p, sp, public, fields, len(ways) + 1)
            if w is not None:
                ways.append(w)
                break
    approaches = []
    for k in range(int(rng.poisson(p.entrance_density_km2 * area_km2)) + (1 if p.size >= 1024 else 0)):
        for _try in range(40 if k == 0 else 5):
            a = _approach(rng, sp, public) if public else None
            if a is not None:
                approaches.append(a)
                break
    belts, tree_parts = [], []
    for _ in range(int(rng.poisson(p.shelterbelt_density_km2 * area_km2))):
        for _try in range(5):
            b = _belt(rng, p, sp, grid)
            if b is not None:
                poly, info = b
                belts.append(poly)
                tree_parts.append(_rows_of_trees(rng, info["line"], info["width"], info["conifer"]))
                break
    for st in streams:
        t = _riparian(rng, st)
        if t is not None:
            tree_parts.append(t)
    t = _scattered(rng, p, fields)
    if t is not None:
        tree_parts.append(t)
    for fs in farms:
        tree_parts.extend(_yard_trees(rng, fs))
    trees = Trees.concat(tree_parts)
    polys = [b.poly.buffer(1.0) for fs in farms for b in fs.buildings] + [fs.driveway for fs in farms]
    polys += [pd.poly for pd in ponds] + [w.poly.buffer(-w.width * 0.25) for w in ways] + [a[0] for a in approaches]
    trees = _clear_trees(trees, roads, streams, crossings, polys, rng)
    inside = (trees.x > -80) & (trees.x < p.size + 80) & (trees.y > -80) & (trees.y < p.size + 80)
    trees = trees.keep(inside)
    return Features(farms, ponds, ways, approaches, belts, trees)
