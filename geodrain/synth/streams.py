"""The stream network: meandering main streams and rivers, tributaries that join them, and creeks that run
beside a road for a stretch.

Each stream is a steered walk whose heading is a sine-generated meander (Langbein's model of river bends)
plus correlated noise, pulled toward its waypoints and down the regional slope. A candidate stream is kept
only if every road crossing it makes is clean (angle >= 35 deg, >= 70 m from road intersections, other
crossings and the scene edge) and it keeps clear of roads and other streams everywhere else; otherwise it is
rerouted (drawn again), and after a few failures dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from shapely.geometry import LineString, Point, box
from shapely.ops import substring

from .crossings import EDGE_IN_M, EDGE_OUT_M, MIN_ANGLE_DEG, MIN_SPACING_M, hits
from .geometry import chaikin, line_parts, point_parts, smooth, wrap
from .params import SceneParams
from .roads import EXTEND_M, Road

ROAD_GAP_M = 15.0     # stream edge to road edge (and never inside the right of way) away from crossings
STREAM_GAP_M = 30.0   # between parallel streams


@dataclass
class Stream:
    id: int
    line: LineString      # upstream -> downstream
    width: float
    riparian: float       # width of the riparian tree zone on each side, 0 for none
    water: bool
    parent: int | None
    role: str
    style: dict = field(default_factory=dict)


def _style(rng: np.random.Generator, p: SceneParams, width: float, role: str) -> dict:
    if width >= 6:
        water = rng.random() < 0.97
    elif width >= 3:
        water = rng.random() < 0.8
    else:
        water = rng.random() < 0.5
    ab = p.riparian_abundance
    if rng.random() < 0.28 * (1.3 - ab):
        riparian, trees = 0.0, "none"
    else:
        riparian = float(np.clip(rng.uniform(3.0, 10.0 + 32.0 * ab) + 0.4 * width, 3.0, 45.0))
        trees = str(rng.choice(["continuous", "patchy", "sparse"], p=[0.35, 0.45, 0.2]))
    wt = rng.choice(["dark", "turbid", "green", "silty"], p=[0.32, 0.36, 0.16, 0.16])
    if role == "river" and rng.random() < 0.5:
        wt = "turbid"
    return dict(
        water=bool(water),
        riparian=float(riparian),
        water_type=str(wt),
        water_tone=float(rng.normal()),
        trees=trees,
        coverage=float({"continuous": rng.uniform(0.75, 0.97), "patchy": rng.uniform(0.3, 0.75),
                        "sparse": rng.uniform(0.08, 0.3), "none": 0.0}[trees]),
        bank=float(rng.uniform(0.4, 2.5) + 0.08 * width),
        bank_type=str(rng.choice(["mud", "sand", "grass"], p=[0.4, 0.25, 0.35]) if water else
                      rng.choice(["mud", "grass"], p=[0.3, 0.7])),
        dry_cover=str(rng.choice(["grass", "mud", "sand", "reeds"], p=[0.5, 0.25, 0.05, 0.2])),
        buffer=float(rng.choice([0.0, rng.uniform(2.0, 15.0)], p=[0.35, 0.65])),
        bars=bool(width > 12 and rng.random() < 0.6),
        width_var=float(rng.uniform(0.05, 0.3)),
        valley_depth=float((0.8 + 0.17 * width) * rng.uniform(0.7, 1.4)),
        valley_half_m=float((22.0 + 6.5 * width) * rng.uniform(0.7, 1.5)),
        key=int(rng.integers(1, 2**31 - 1)),
    )


def _width(rng: np.random.Generator, role: str, parent_width: float | None = None) -> float:
    if role == "river":
        return float(rng.uniform(12.0, 30.0))
    if role == "main":
        return float(rng.uniform(1.5, 4.0) if rng.random() < 0.35 else rng.uniform(4.0, 12.0))
    top = min(parent_width or 6.0, 12.0)
    w = (parent_width or 4.0) * rng.uniform(0.2, 0.8)
    return float(np.clip(w, 1.5, max(1.5, top)))


class _Walker:
    """A steered sine-generated meander walk."""

    def __init__(self, rng, terrain, width, amp=None, downhill=0.3):
        self.rng = rng
        self.terrain = terrain
        self.lam = float(width * rng.uniform(8.0, 14.0) + rng.uniform(20.0, 70.0))
        if amp is None:
            amp = rng.choice([rng.uniform(0.02, 0.15), rng.uniform(0.2, 1.15)], p=[0.2, 0.8])
        self.amp = float(amp)
        self.ds = float(np.clip(self.lam / 9.0, 2.0, 9.0))
        self.ou_sigma = float(rng.uniform(0.05, 0.35))
        self.ou_tau = float(rng.uniform(30.0, 200.0))
        self.steer = float(rng.uniform(120.0, 400.0))
        self.downhill = downhill

    def walk(self, start, waypoints, bounds, max_len, reach=None) -> np.ndarray:
        rng = self.rng
        ds = self.ds
        n_max = int(max_len / ds) + 2
        noise = rng.standard_normal(n_max)
        lam_var = rng.uniform(0.7, 1.3, n_max // 20 + 2)
        p = np.array(start, float)
        wp = [np.asarray(w, float) for w in waypoints]
        k = 0
        theta_b = float(np.arctan2(*(wp[0] - p)[::-1]))
        phase = rng.uniform(0, 2 * np.pi)
        ou = 0.0
        a = np.exp(-ds / self.ou_tau)
        b = self.ou_sigma * np.sqrt(1 - a * a)
        reach = reach if reach is not None else max(3 * ds, 30.0)
        pts = [p.copy()]
        x0, y0, x1, y1 = bounds
        inside_seen = False
        for i in range(n_max):
            tgt = wp[k]
            dvec = tgt - p
            dist = float(np.hypot(*dvec))
            if dist < reach:
                if k + 1 < len(wp):
                    k += 1
                    continue
                pts.append(tgt.copy())
                break
            goal = float(np.arctan2(dvec[1], dvec[0]))
            if self.downhill > 0:
                dn = self.terrain.downslope_angle(p[0], p[1])
                if dn is not None and abs(wrap(dn - goal)) < 1.4:
                    goal += self.downhill * float(wrap(dn - goal))
            # near the final waypoint the pull gets stronger so that the walk converges
            gain = min(1.0, ds / self.steer * (1.0 + 300.0 / max(dist, 30.0)))
            theta_b += gain * float(wrap(goal - theta_b))
            ou = a * ou + b * noise[i]
            phase += 2 * np.pi * ds / (self.lam * lam_var[i // 20])
            damp = min(1.0, dist / 120.0)
            theta = theta_b + self.amp * damp * np.sin(phase) + ou
            p = p + ds * np.array([np.cos(theta), np.sin(theta)])
            pts.append(p.copy())
            inside = x0 <= p[0] <= x1 and y0 <= p[1] <= y1
            inside_seen |= inside
            if inside_seen and not inside:
                break
        return np.array(pts)


def _finish(xy: np.ndarray, ds: float) -> LineString | None:
    if len(xy) < 4:
        return None
    xy = smooth(xy, 1.2)
    xy = chaikin(xy, 2)
    line = LineString(xy).simplify(0.05)
    return line if line.is_valid and line.length > 0 else None


def _walked_line(net: "Network", xy: np.ndarray, ds: float, longest: bool = True):
    """A walked path smoothed, clipped to the scene (its longest part, or its first) and cut where it meets
    the stream network: ``(line, parent id or None)``, or None when nothing usable is left."""
    line = _finish(xy, ds)
    if line is None:
        return None
    parts = line_parts(line.intersection(net.ext))
    if not parts:
        return None
    return net.cut_at_network(max(parts, key=lambda g: g.length) if longest else parts[0])


class Network:
    """Accepted streams and crossings, and the rules a new stream must satisfy."""

    def __init__(self, p: SceneParams, roads: list[Road], nodes: list[tuple]):
        self.p = p
        self.size = p.size
        self.roads = roads
        self.road_tree = shapely.STRtree([r.line for r in roads]) if roads else None
        self.nodes = np.array([(x, y) for x, y, *_ in nodes]).reshape(-1, 2)
        self.streams: list[Stream] = []
        self._tree, self._tree_n = None, -1
        self.hits: list[tuple[dict, int]] = []   # (hit, stream id)
        self.ext = box(-EXTEND_M, -EXTEND_M, self.size + EXTEND_M, self.size + EXTEND_M)
        self.scene = box(0, 0, self.size, self.size)

    @property
    def tree(self) -> shapely.STRtree:
        """Spatial index of the accepted streams (rebuilt after additions)."""
        if self._tree is None or self._tree_n != len(self.streams):
            self._tree = shapely.STRtree([s.line for s in self.streams])
            self._tree_n = len(self.streams)
        return self._tree

    def inside_crossings(self) -> int:
        return sum(1 for h, _ in self.hits if 0 <= h["x"] <= self.size and 0 <= h["y"] <= self.size)

    def _edge_ok(self, x: float, y: float) -> bool:
        s = self.size
        inside = min(x, y, s - x, s - y)
        return inside >= EDGE_IN_M or inside <= -EDGE_OUT_M

    def cut_at_network(self, line: LineString) -> tuple[LineString, int | None]:
        """Cut a new stream where it first meets an existing one; return the line and the parent id."""
        if not self.streams:
            return line, None
        best, parent = None, None
        for j in self.tree.query(line, predicate="intersects"):
            st = self.streams[int(j)]
            for x, y in point_parts(line.intersection(st.line)):
                s = line.project(Point(x, y))
                if s > 5.0 and (best is None or s < best):
                    best, parent = s, st.id
            for part in line_parts(line.intersection(st.line)):  # collinear overlap: cut at its start
                s = line.project(Point(part.coords[0]))
                if s > 5.0 and (best is None or s < best):
                    best, parent = s, st.id
        if best is None:
            return line, None
        return substring(line, 0.0, best), parent

    def check(self, line: LineString, width: float, parent: int | None) -> list[dict] | None:
        """The road crossings of a candidate if it satisfies every rule, else None."""
        if line is None or line.length < 120 or not line.intersects(self.scene):
            return None
        hw = width / 2
        found = hits(line, self.roads, self.road_tree) if self.roads else []
        if found is None:
            return None
        prev = np.array([(h["x"], h["y"]) for h, _ in self.hits]).reshape(-1, 2)
        mine = np.array([(h["x"], h["y"]) for h in found]).reshape(-1, 2)
        disks = []
        for i, h in enumerate(found):
            if h["angle"] < MIN_ANGLE_DEG or not self._edge_ok(h["x"], h["y"]):
                return None
            q = np.array([h["x"], h["y"]])
            # no zig-zagging along one road: a stream crosses the same road at most twice, far apart
            same = [o for j, o in enumerate(found) if j != i and _same_line(o, h)]
            if len(same) > 1 or any(np.hypot(o["x"] - h["x"], o["y"] - h["y"]) < 800.0 for o in same):
                return None
            for arr in (self.nodes, prev, np.delete(mine, i, axis=0)):
                if len(arr) and np.min(np.hypot(*(arr - q).T)) < MIN_SPACING_M:
                    return None
            road = h["road"]
            need = max(road.width / 2 + ROAD_GAP_M, road.row_half + 2.0) + hw
            r = min(need / np.sin(np.deg2rad(h["angle"])) + 8.0, 130.0)
            disks.append(Point(q).buffer(r, 16))
        # away from its crossings, the stream keeps clear of every road (and of its right of way)
        rest = line.difference(shapely.union_all(disks)) if disks else line
        if self.roads and not rest.is_empty:
            for i in self.road_tree.query(rest, predicate="dwithin", distance=60.0 + hw):
                road = self.roads[int(i)]
                need = max(road.width / 2 + ROAD_GAP_M, road.row_half + 2.0) + hw
                if rest.distance(road.line) < need:
                    return None
        # and of other streams, except where it joins its parent
        if self.streams:
            body = substring(line, 0.0, max(0.0, line.length - (90.0 + 2 * width))) if parent else line
            if body.length > 0:
                for j in self.tree.query(body, predicate="dwithin", distance=STREAM_GAP_M + hw + 20.0):
                    st = self.streams[int(j)]
                    if body.distance(st.line) < STREAM_GAP_M + hw + st.width / 2:
                        return None
        return found

    def add(self, stream: Stream, found: list[dict]) -> None:
        self.streams.append(stream)
        for h in found:
            self.hits.append((h, stream.id))


def _same_line(a: dict, b: dict) -> bool:
    """Whether two crossings lie on the same straight road line (possibly different road segments)."""
    if a["road"].id == b["road"].id:
        return True
    t = a["t_road"]
    if abs(float(t @ b["t_road"])) < 0.995:
        return False
    d = np.array([b["x"] - a["x"], b["y"] - a["y"]])
    return abs(float(d[0] * t[1] - d[1] * t[0])) < 5.0


def _main_candidate(rng, p: SceneParams, terrain, net: Network, role: str):
    size = p.size
    c = np.array([size / 2, size / 2])
    heading = float(np.arctan2(terrain.downslope[1], terrain.downslope[0]) + rng.normal(0, 0.45))
    d = np.array([np.cos(heading), np.sin(heading)])
    n = np.array([-d[1], d[0]])
    mid = c + rng.uniform(-0.42, 0.42) * size * n
    reach = 0.75 * size + EXTEND_M
    start = mid - reach * d
    end = mid + reach * d + rng.uniform(-0.3, 0.3) * size * n
    width = _width(rng, role)
    walker = _Walker(rng, terrain, width, downhill=0.35)
    xy = walker.walk(start, [mid + rng.normal(0, 0.1 * size, 2), end], net.ext.bounds, 5 * reach)
    cut = _walked_line(net, xy, walker.ds)
    if cut is None:
        return None
    line, parent = cut
    return line, width, parent, role


def _trib_candidate(rng, p: SceneParams, terrain, net: Network):
    if not net.streams:
        return None
    size = p.size
    cand = rng.uniform(-0.05 * size, 1.05 * size, (24, 2))
    _, dist = net.tree.query_nearest(shapely.points(cand), return_distance=True, all_matches=False)
    order = np.argsort(-dist)
    pick = cand[order[int(rng.integers(0, 6))]]
    if dist[order[0]] < 120:
        return None
    # target: a little downstream of the nearest point of the nearest stream
    parent = net.streams[int(net.tree.query_nearest(Point(pick), all_matches=False)[0])]
    s0 = parent.line.project(Point(pick))
    s1 = float(np.clip(s0 + rng.uniform(30.0, 260.0), 5.0, parent.line.length - 5.0))
    target = np.array(parent.line.interpolate(s1).coords[0])
    # a tributary flows down to its confluence
    z0, z1 = terrain.sample(np.array([pick, target]))
    if z0 < z1 + 0.001 * float(np.hypot(*(target - pick))):
        return None
    width = _width(rng, "trib", parent.width)
    walker = _Walker(rng, terrain, width, downhill=0.15)
    span = float(np.hypot(*(target - pick)))
    xy = walker.walk(pick, [target], net.ext.bounds, 3.0 * span + 400.0, reach=walker.ds * 1.5)
    cut = _walked_line(net, xy, walker.ds, longest=False)
    if cut is None:
        return None
    line, par = cut
    if par is None:
        # the walk ended at the target without a detected touch: end exactly on the parent
        end = Point(line.coords[-1])
        if end.distance(parent.line) < 3 * walker.ds:
            q = parent.line.interpolate(parent.line.project(end))
            line = LineString(list(line.coords) + [q.coords[0]])
            par = parent.id
    return line, width, par, "trib"


def _roadside_candidate(rng, p: SceneParams, terrain, net: Network):
    """A creek that runs beside a road (outside its right of way) for a stretch, then turns away."""
    roads = [r for r in net.roads if r.line.length > 600]
    if not roads:
        return None
    road = roads[int(rng.integers(0, len(roads)))]
    L = road.line.length
    s = rng.uniform(0.2 * L, 0.8 * L)
    q = np.array(road.line.interpolate(s).coords[0])
    t = np.array(road.line.interpolate(min(L, s + 1)).coords[0]) - np.array(road.line.interpolate(max(0, s - 1)).coords[0])
    t /= np.hypot(*t)
    nrm = np.array([-t[1], t[0]]) * rng.choice([-1, 1])
    width = float(rng.uniform(1.5, 5.0))
    # most creeks that follow a road hug its right of way; some keep 30-90 m away (valley bottom beside it)
    gap = rng.uniform(6.0, 22.0) if rng.random() < 0.6 else rng.uniform(22.0, 80.0)
    off = max(road.width / 2 + ROAD_GAP_M, road.row_half + 2.0) + width / 2 + gap
    run = rng.uniform(140.0, 380.0)
    sgn = rng.choice([-1, 1])
    w1 = q - sgn * run / 2 * t + off * nrm
    w2 = q + sgn * run / 2 * t + off * nrm
    away = rng.uniform(200.0, 500.0)
    start = w1 - sgn * away * 0.6 * t + away * 0.8 * nrm
    end = w2 + sgn * away * 0.6 * t + away * 0.8 * nrm
    za, zb = terrain.sample(np.array([start, end]))
    if za < zb:  # flow downhill
        start, end, w1, w2 = end, start, w2, w1
    walker = _Walker(rng, terrain, width, amp=rng.uniform(0.0, 0.12), downhill=0.0)
    walker.steer = 40.0
    xy = walker.walk(start, [w1, w2, end], net.ext.bounds, 6 * away + 2 * run, reach=12.0)
    cut = _walked_line(net, xy, walker.ds, longest=False)
    if cut is None:
        return None
    line, parent = cut
    return line, width, parent, "roadside"


def _designed_candidate(rng, p: SceneParams, terrain, net: Network, through: bool = True):
    """A stream through a chosen point of a road: across the whole scene (``through``, used to guarantee
    crossings in small scenes) or from a source a few hundred metres before the road to the network."""
    roads = [r for r in net.roads if r.line.intersects(net.scene)]
    if not roads:
        return None
    lengths = np.array([r.line.intersection(net.scene).length for r in roads])
    road = roads[int(rng.choice(len(roads), p=lengths / lengths.sum()))]
    part = road.line.intersection(net.scene)
    parts = line_parts(part)
    if not parts:
        return None
    seg = max(parts, key=lambda g: g.length)
    q = np.array(seg.interpolate(rng.uniform(0.05, 0.95) * seg.length).coords[0])
    t = np.array(road.line.interpolate(road.line.project(Point(q)) + 1).coords[0]) - q
    t /= max(np.hypot(*t), 1e-9)
    a = np.arctan2(t[1], t[0]) + rng.choice([-1, 1]) * np.deg2rad(rng.uniform(50, 90))
    d = np.array([np.cos(a), np.sin(a)])
    za, zb = terrain.sample(np.array([q - 300.0 * d, q + 300.0 * d]))
    if za < zb:  # flow downhill
        d = -d
    size = p.size
    reach = 0.8 * size + EXTEND_M
    width = float(rng.uniform(1.5, 8.0))
    walker = _Walker(rng, terrain, width, amp=rng.uniform(0.0, 0.5), downhill=0.0)
    start = q - (reach if through else rng.uniform(150.0, 700.0)) * d
    xy = walker.walk(start, [q - 60 * d, q + 60 * d, q + reach * d], net.ext.bounds, 4 * reach, reach=20.0)
    cut = _walked_line(net, xy, walker.ds)
    if cut is None:
        return None
    line, parent = cut
    return line, width, parent, "main"


def make_streams(rng: np.random.Generator, p: SceneParams, terrain, roads: list[Road],
                 nodes: list[tuple]) -> tuple[list[Stream], list[tuple[dict, int]]]:
    """Streams (upstream -> downstream) and their road crossings as (hit, stream_id)."""
    net = Network(p, roads, nodes)
    area = (p.size / 4096.0) ** 2

    def accept(cand, role_override=None) -> bool:
        if cand is None:
            return False
        line, width, parent, role = cand
        if line is None or line.length < 120:
            return False
        # every stream flows downhill overall (its bed then falls at >= 1.5 m/km, see terrain.carve)
        z0, z1 = terrain.sample(np.array([line.coords[0], line.coords[-1]]))
        if z0 < z1 + 0.0015 * line.length:
            return False
        if parent is not None:
            pw = next(s.width for s in net.streams if s.id == parent)
            width = min(width, pw)
        found = net.check(line, width, parent)
        if found is None:
            return False
        sid = len(net.streams) + 1
        role = role_override or role
        style = _style(rng, p, width, role)
        st = Stream(id=sid, line=line, width=float(width), riparian=style.pop("riparian"),
                    water=style.pop("water"), parent=parent, role=role, style=style)
        net.add(st, found)
        return True

    n_main = max(1, int(round(rng.uniform(0.8, 2.6) * np.sqrt(area))))
    river = p.size >= 2048 and rng.random() < 0.45
    for k in range(n_main):
        role = "river" if river and k == 0 else "main"
        for _ in range(14):
            if accept(_main_candidate(rng, p, terrain, net, role)):
                break
    for _ in range(int(rng.poisson(36.0 * area))):
        for _ in range(16):
            if accept(_trib_candidate(rng, p, terrain, net)):
                break
    n_side = int(rng.poisson(1.6 * area)) + (1 if p.size >= 2048 else 0)
    for _ in range(n_side):
        for _ in range(8):
            if accept(_roadside_candidate(rng, p, terrain, net)):
                break
    if p.size >= 2048:
        # top up to a drawn crossing density (tributaries that cross a road on their way to the network)
        target = int(rng.uniform(18.0, 42.0) * area)
        tries = 0
        while net.inside_crossings() < target and tries < 90 * area:
            accept(_designed_candidate(rng, p, terrain, net, through=False))
            tries += 1
    need = 3 if p.size >= 1024 else 1
    tries = 0
    while net.inside_crossings() < need and tries < 400:
        accept(_designed_candidate(rng, p, terrain, net))
        tries += 1
    return net.streams, net.hits
