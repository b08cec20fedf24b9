"""Raster composition of one tile (with a margin) from the scene layout: the 4-band image and the DEM.

Order of composition: distance fields to stream and road centrelines -> DEM -> land-cover fractions
(fields with in-field variability and row/pivot/contour texture, then grass in rights of way, along streams,
in waterways and yards) mixed from the palette's endmembers -> streams (banks, water or a dry channel) ->
ponds -> roads (shoulders, surface, markings, ditch water; the embankment hides the channel at culverts) ->
culvert ends, yards and buildings -> bridge decks -> tree crowns -> hillshade and cast shadows -> atmosphere
and sensor. Every random texture is position-keyed noise, so tiles join without seams.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage as ndi
from shapely.geometry import Point, box

from . import canopy, noise, sensor, spectra
from .geometry import oriented_rect
from .layout import Layout
from .terrain import dem_tile

MARGIN = 64
FAR = np.float32(1.0e4)

_GRASS = {"summer": (0.62, 0.24), "late_summer": (0.45, 0.4), "autumn": (0.24, 0.6), "spring": (0.38, 0.45)}
_LAWN = {"summer": (0.8, 0.08), "late_summer": (0.7, 0.15), "autumn": (0.45, 0.35), "spring": (0.6, 0.2)}


class _Layer:
    """Geometries with burn values and a spatial index, rasterized per window."""

    def __init__(self, items: list[tuple]):
        self.items = [(g, v) for g, v in items if g is not None and not g.is_empty]
        self.tree = shapely.STRtree([g for g, _ in self.items]) if self.items else None

    def raster(self, r0: int, c0: int, H: int, W: int, dtype="int32", fill=0, all_touched=False):
        out = None
        if self.tree is not None:
            idx = self.tree.query(box(c0, r0, c0 + W, r0 + H))
            if len(idx):
                shapes = [self.items[i] for i in sorted(idx)]
                out = rasterize(shapes, out_shape=(H, W), transform=Affine(1, 0, c0, 0, 1, r0), fill=fill,
                                dtype=dtype, all_touched=all_touched)
        if out is None:
            out = np.full((H, W), fill, dtype)
        return out


def _nearest(ids: np.ndarray):
    """Distance to the nearest labelled pixel and that pixel's label (0, FAR when there is none)."""
    seeds = ids > 0
    if not seeds.any():
        return np.full(ids.shape, FAR, np.float32), np.zeros(ids.shape, ids.dtype)
    d, (ni, nj) = ndi.distance_transform_edt(~seeds, return_indices=True)
    return d.astype(np.float32), ids[ni, nj]


def _soft(x: np.ndarray) -> np.ndarray:
    """Coverage of a pixel by the region ``signed distance x > 0`` (1 px ramp)."""
    return np.clip(x + 0.5, 0.0, 1.0).astype(np.float32)


class Renderer:
    """Holds the per-object tables and geometry layers of a layout and renders tiles from them."""

    def __init__(self, layout: Layout, rng: np.random.Generator):
        self.L = layout
        p = self.p = layout.params
        self.pal = spectra.make_palette(rng, p.season)
        self.sun = canopy.Sun(p.sun_azimuth_deg, p.sun_elevation_deg)
        self.grass = _GRASS[p.season]
        self.lawn = _LAWN[p.season]
        self._fields(rng)
        self._roads()
        self._streams()
        self._structures(rng)
        self._features(rng)
        self._trees()

    # -- tables -------------------------------------------------------------------------------------------
    def _fields(self, rng):
        fields = self.L.fields
        looks = [spectra.field_look(rng, "grass", self.p.season)] + [f.look for f in fields]
        self.f = {
            k: np.array([lk[k] for lk in looks], np.float32)
            for k in ("fv", "fd", "moist", "var_amp", "patchy", "yellow", "row_period", "row_amp", "row_phase",
                      "soil_tone", "dry_tone")}
        self.f["tint"] = np.array([lk["tint"] for lk in looks], np.float32)
        self.f["mixw"] = np.array([np.clip((lk["var_scale"] - 40) / 210, 0, 1) for lk in looks], np.float32)
        codes = {"none": 0, "rows": 1, "contour": 2, "pivot": 3}
        self.f["tex"] = np.array([codes[lk["tex"]] for lk in looks], np.int8)
        self.f["cos"] = np.cos([lk["row_angle"] for lk in looks]).astype(np.float32)
        self.f["sin"] = np.sin([lk["row_angle"] for lk in looks]).astype(np.float32)
        cover_tex = {"pasture": 0.15, "grass": 0.14, "alfalfa": 0.1, "corn": 0.09, "soy": 0.1, "wheat": 0.1,
                     "fallow": 0.11, "stubble": 0.12}
        self.f["texamp"] = np.array([cover_tex[lk["cover"]] for lk in looks], np.float32)
        self.f["cx"] = np.array([0.0] + [f.centre[0] if f.centre else 0.0 for f in fields], np.float32)
        self.f["cy"] = np.array([0.0] + [f.centre[1] if f.centre else 0.0 for f in fields], np.float32)
        self.f["rad"] = np.array([0.0] + [f.radius for f in fields], np.float32)
        self.f["towers"] = np.array([1.0] + [f.extra.get("towers", 1) for f in fields], np.float32)
        self.f["track"] = np.array([0.0] + [f.extra.get("track", 0.0) for f in fields], np.float32)
        self.f["arm"] = np.array([0.0] + [f.extra.get("arm_angle", 0.0) for f in fields], np.float32)
        self.field_layer = _Layer([(f.poly, i + 1) for i, f in enumerate(fields)])

    def _trees(self):
        """Per-tree colour: evergreen or deciduous, autumn colours or leaf-off by season, per-tree tone."""
        tr = self.trees = self.L.features.trees
        pal, p = self.pal, self.p
        u = noise.hash_ids(np.arange(len(tr)), p.keys["tree"])
        turned = (u > pal.leaf_on) & (tr.kind < 0.5)   # deciduous trees past their leaf-on season
        col = np.where(tr.kind[:, None] > 0.5, pal.conifer[None, :], pal.tree[None, :])
        if p.season == "autumn":
            col = np.where(turned[:, None], pal.autumn_leaf[None, :] * 0.8 + pal.tree[None, :] * 0.2, col)
        if p.season == "spring":
            col = np.where(turned[:, None], pal.leafoff[None, :], col)
        self.t_leafoff = (turned & (p.season == "spring")).astype(np.float32)
        self.t_col = (col * (1.0 + 0.07 * tr.tone[:, None])).astype(np.float32)

    def _roads(self):
        roads = self.L.roads
        n = len(roads) + 1

        def arr(fn, dt=np.float32):
            a = np.zeros(n, dt)
            for r in roads:
                a[r.id] = fn(r)
            return a

        self.r = {
            "hw": arr(lambda r: r.width / 2), "shoulder": arr(lambda r: r.shoulder),
            "emb": arr(lambda r: r.embankment), "side": arr(lambda r: r.side_slope),
            "toe": arr(lambda r: r.toe), "ditch": arr(lambda r: r.ditch), "row": arr(lambda r: r.row_half),
            "tone": arr(lambda r: r.style["tone"]), "tracks": arr(lambda r: r.style["tracks"]),
            "wet": arr(lambda r: float(r.ditch_water)), "green": arr(lambda r: r.style["ditch_green"]),
            "mark": arr(lambda r: float(r.style["markings"])), "edge": arr(lambda r: float(r.style["edge_lines"])),
            "dust": arr(lambda r: r.style["dust"]),
            "surf": arr(lambda r: {"gravel": 0, "asphalt": 1, "concrete": 2, "dirt": 3}[r.surface], np.int8),
        }
        self.r["side"][0] = 3.0
        self.r_reach = float(max([r.row_half for r in roads], default=0.0)) + 2.0
        self.road_layer = _Layer([(r.line, r.id) for r in roads])

    def _streams(self):
        streams = self.L.streams
        pal = self.pal
        n = len(streams) + 1
        s = {k: np.zeros(n, np.float32) for k in ("hw", "bank", "buffer", "water", "var", "bars", "rip")}
        s["wcol"] = np.zeros((n, 4), np.float32)
        s["bcol"] = np.zeros((n, 4), np.float32)
        s["dcol"] = np.zeros((n, 4), np.float32)
        bank = {"mud": pal.mud, "sand": pal.sand, "grass": pal.reeds}
        dry = {"grass": pal.reeds * 0.9 + pal.veg * 0.1, "mud": pal.mud, "sand": pal.sand * 0.85 + pal.mud * 0.15,
               "reeds": pal.reeds}
        for st in streams:
            i = st.id
            sty = st.style
            s["hw"][i] = st.width / 2
            s["bank"][i] = sty["bank"]
            s["buffer"][i] = sty["buffer"]
            s["water"][i] = float(st.water)
            s["var"][i] = sty["width_var"]
            s["bars"][i] = float(sty["bars"])
            s["rip"][i] = st.riparian
            s["wcol"][i] = pal.water(sty["water_type"], sty["water_tone"])
            s["bcol"][i] = bank[sty["bank_type"]]
            s["dcol"][i] = dry[sty["dry_cover"]]
        self.s = s
        reach = s["hw"] * (1.0 + s["var"]) * 1.1 + s["bank"] + 1.1 * s["buffer"] + 0.35 * s["rip"] + 4.0
        self.s_reach = float(min(reach.max(), MARGIN))
        self.stream_layer = _Layer([(st.line, st.id) for st in streams])

    def _structures(self, rng):
        zones, decks, details = [], [], []
        self.b = []
        for c in self.L.crossings:
            road = self.L.road(c.road_id)
            if c.kind == "bridge":
                zone = oriented_rect((c.x, c.y), c.t_road, c.half_along, road.row_half + 4.0)
                deck = oriented_rect((c.x, c.y), c.t_road, c.half_along + 1.5, c.style["deck_half"])
                k = len(self.b) + 1
                self.b.append(c)
                zones.append((zone, k))
                decks.append((deck, k))
                if rng.random() < 0.5:  # riprap on the abutment slopes
                    for sgn in (-1, 1):
                        q = np.array([c.x, c.y]) + sgn * c.half_along * c.t_road
                        details.append((oriented_rect(q, c.t_road, 2.5, road.row_half * 0.7), 1))
                continue
            sty = c.style
            if not sty["ends_visible"]:
                continue
            sin_a = max(np.sin(np.deg2rad(c.angle_deg)), 0.3)
            along = road.toe / sin_a + 0.3
            n_r = np.array([-c.t_road[1], c.t_road[0]])
            for sgn in (-1, 1):
                e = np.array([c.x, c.y]) + sgn * along * c.t_stream
                outward = n_r * np.sign(float(n_r @ (e - np.array([c.x, c.y]))))
                width = sty["pipes"] * (sty["pipe_d"] + 0.6) + 0.8
                if sty["riprap"]:
                    rr = float(rng.uniform(1.5, 3.0) + 0.15 * c.stream_width)
                    details.append((Point(e + outward * rr * 0.6).buffer(rr, 12), 1))
                if sty["headwall"]:
                    details.append((oriented_rect(e, c.t_road, width / 2, 0.45), 2))
                for k in range(sty["pipes"]):
                    off = (k - (sty["pipes"] - 1) / 2) * (sty["pipe_d"] + 0.6)
                    q = e + off * c.t_road + outward * 0.3
                    details.append((Point(q).buffer(max(sty["pipe_d"] / 2, 0.45), 8), 3 if sty["material"] ==
                                    "concrete" else 4))
        self.bridge_zone = _Layer(zones)
        self.bridge_deck = _Layer(decks)
        self.details = _Layer(details)
        self.deck_col = np.zeros((len(self.b) + 1, 4), np.float32)
        self.deck_h = np.zeros(len(self.b) + 1, np.float32)
        self.deck_rail = np.zeros(len(self.b) + 1, np.int8)
        geo = [(0.0, 0.0, 1.0, 0.0, 1.0)]
        pal = self.pal
        for k, c in enumerate(self.b, start=1):
            base = {"concrete": pal.concrete, "asphalt": pal.asphalt_old * 0.8 + pal.asphalt_new * 0.2,
                    "timber": np.array([105, 92, 78, 98], np.float32)}[c.style["deck"]]
            self.deck_col[k] = base * (1 + 0.05 * c.style["tone"])
            self.deck_h[k] = c.style["height"]
            self.deck_rail[k] = {"barrier": 1, "steel": 2, "none": 0}[c.style["railing"]]
            geo.append((c.x, c.y, c.t_road[0], c.t_road[1], c.style["deck_half"]))
        self.deck_geo = np.array(geo, np.float32)   # centre, road direction, deck half width

    def _features(self, rng):
        fe = self.L.features
        self.yard_layer = _Layer([(fs.yard, 1) for fs in fe.farmsteads])
        gravel = [(fs.gravel, 1) for fs in fe.farmsteads] + [(fs.driveway, 1) for fs in fe.farmsteads]
        gravel += [(poly, {"gravel": 1, "dirt": 2, "grass": 3}[surf]) for poly, surf, _ in fe.approaches]
        self.gravel_layer = _Layer(gravel)
        blds = [b for fs in fe.farmsteads for b in fs.buildings]
        self.bld_layer = _Layer([(b.poly, i + 1) for i, b in enumerate(blds)])
        n = len(blds) + 1
        self.bl_col = np.zeros((n, 4), np.float32)
        self.bl_h = np.zeros(n, np.float32)
        self.bl_kind = np.zeros(n, np.int8)   # 1 gable, 2 flat, 3 bin
        self.bl_geo = np.zeros((n, 4), np.float32)  # cx, cy, ridge x, ridge y (bins: cx, cy, r, 0)
        for i, b in enumerate(blds, start=1):
            base = np.array(spectra.ROOFS[b.roof], np.float32)
            self.bl_col[i] = base * np.clip(rng.normal(1.0, 0.05), 0.85, 1.12)
            self.bl_h[i] = b.height
            if b.kind == "bin":
                self.bl_kind[i] = 3
                self.bl_geo[i] = (b.centre[0], b.centre[1], b.radius, 0)
            else:
                self.bl_kind[i] = 1 if b.gable else 2
                self.bl_geo[i] = (b.centre[0], b.centre[1], b.ridge[0], b.ridge[1])
        self.pond_layer = _Layer([(pd.poly, pd.id) for pd in fe.ponds])
        self.pond_inner = _Layer([(pd.poly.buffer(-pd.ring), pd.id) for pd in fe.ponds if pd.ring > 0.5])
        self.pond_ring = np.array([False] + [pd.ring > 0.5 for pd in fe.ponds], bool)
        self.pond_level = _Layer([(pd.poly, pd.level) for pd in fe.ponds])
        n = len(fe.ponds) + 1
        self.p_col = np.zeros((n, 4), np.float32)
        for pd in fe.ponds:
            self.p_col[pd.id] = self.pal.water(pd.water_type, pd.tone)
        self.way_layer = _Layer([(w.poly, 1) for w in fe.waterways])
        self.way_depth = np.array([0.0] + [float(rng.uniform(0.15, 0.5)) for _ in fe.waterways], np.float32)
        self.way_hw = np.array([1.0] + [w.width / 2 for w in fe.waterways], np.float32)
        self.way_id = _Layer([(w.poly, k + 1) for k, w in enumerate(fe.waterways)])
        self._distractors(rng)

    def _distractors(self, rng):
        dis = self.L.distractors
        # field-edge strips: 1 grass border, 2 farm lane; berm heights per strip
        self.strip_layer = _Layer([(st.poly, k + 1) for k, st in enumerate(dis.strips)])
        self.strip_kind = np.array([0] + [1 if st.kind == "grass_border" else 2 for st in dis.strips], np.int8)
        self.strip_berm = np.array([0.0] + [st.berm for st in dis.strips], np.float32)
        self.strip_hw = np.array([1.0] + [st.width / 2 for st in dis.strips], np.float32)
        # ditch fills at field entrances and driveways (the DEM ramp) and their pipe ends
        self.fill_layer = _Layer([(f.poly, 1) for f in dis.fills])
        pipes = []
        for f in dis.fills:
            if f.culvert and f.ends_visible:
                code = 4 if f.material == "concrete" else 3
                pipes += [(Point(e).buffer(max(f.pipe_d / 2, 0.45), 8), code) for e in f.pipe_ends]
        self.pipe_layer = _Layer(pipes)
        # terraces per field id (0: none)
        nf = len(self.L.fields) + 1
        self.t_int = np.zeros(nf, np.float32)
        self.t_h = np.zeros(nf, np.float32)
        self.t_grass = np.zeros(nf, np.float32)
        for t in dis.terraced:
            self.t_int[t.field_id] = t.interval_m
            self.t_h[t.field_id] = t.height_m
            self.t_grass[t.field_id] = float(t.grassed)

    # -- the tile ---------------------------------------------------------------------------------------
    def tile(self, row0: int, col0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (4, h, w) image and float32 (h, w) DEM of the window (row0, col0, h, w)."""
        M = MARGIN
        r0, c0, H, W = row0 - M, col0 - M, h + 2 * M, w + 2 * M
        img, dem = self._render(r0, c0, H, W)
        return (sensor.to_uint8(img[:, M:M + h, M:M + w]), np.ascontiguousarray(dem[M:M + h, M:M + w]))

    def _render(self, r0: int, c0: int, H: int, W: int):
        p, pal, keys = self.p, self.pal, self.p.keys

        # -- distance fields, kept only where they matter (sparse subsets of flat pixel indices)
        d_s, sid = _nearest(self.stream_layer.raster(r0, c0, H, W))
        S = None
        si = np.flatnonzero(d_s.reshape(-1) < self.s_reach)
        if si.size:
            sr, sc = np.divmod(si, W)
            k = sid.reshape(-1)[si]
            d = d_s.reshape(-1)[si]
            hw = self.s["hw"][k] * (1.0 + self.s["var"][k] * noise.lattice_at(keys["water"], sr + r0, sc + c0, 45.0))
            S = dict(i=si, r=sr + r0, c=sc + c0, k=k, d=d, hw=hw, hw0=self.s["hw"][k], bank=self.s["bank"][k])
        del d_s, sid
        d_r, rid = _nearest(self.road_layer.raster(r0, c0, H, W))
        bz = (self.bridge_zone.raster(r0, c0, H, W) > 0).reshape(-1)
        Rd = None
        ri = np.flatnonzero(d_r.reshape(-1) < self.r_reach)
        if ri.size:
            k = rid.reshape(-1)[ri]
            Rd = {name: table[k] for name, table in self.r.items()}
            rr, rc = np.divmod(ri, W)
            Rd.update(i=ri, r=rr + r0, c=rc + c0, d=d_r.reshape(-1)[ri], bz=bz[ri])
        del d_r, rid

        # -- DEM (with the field-scale relief: berms of field-edge strips, waterway swales, terraces)
        f = self.f
        fid = self.field_layer.raster(r0, c0, H, W)
        strip_id = self.strip_layer.raster(r0, c0, H, W)
        zc = None
        if self.t_h[fid].any() or (f["tex"][fid] == 2).any():
            zc = self.L.terrain.window(self.L.terrain.surface, r0, c0, H, W)
        relief, terr = self._relief(r0, c0, H, W, fid, strip_id, zc, S, Rd)
        if Rd is not None:
            Rd["fill"] = (self.fill_layer.raster(r0, c0, H, W) > 0).reshape(-1)[Rd["i"]]
        lvl = self.pond_level.raster(r0, c0, H, W, dtype="float32", fill=np.nan) if self.pond_layer.tree else None
        dem = dem_tile(self.L.terrain, r0, c0, H, W, key=keys["terrain"] + 1, streams=S, roads=Rd,
                       pond_level=lvl, relief=relief)
        del relief

        # -- land cover fractions: fields with in-field variability and texture
        X = (np.arange(c0, c0 + W, dtype=np.float32) + 0.5)[None, :]
        Y = (np.arange(r0, r0 + H, dtype=np.float32) + 0.5)[:, None]
        nA = noise.fbm(keys["veg"], r0, c0, H, W, 40.0, octaves=2)
        nB = noise.lattice(keys["veg"] + 1, r0, c0, H, W, 170.0)
        soil_n = noise.fbm(keys["soil"], r0, c0, H, W, 90.0, octaves=2)
        mixw = f["mixw"][fid]
        var = f["var_amp"][fid]
        nvar = nB * mixw + nA * (1.0 - mixw)
        fv = f["fv"][fid] + var * nvar
        fv *= 1.0 - f["patchy"][fid] * np.clip(nB - 1.1, 0.0, 0.8)
        fd = f["fd"][fid] - 0.5 * var * nvar
        moist = f["moist"][fid] + 0.16 * soil_n + 0.4 * var * nA
        tex = f["tex"][fid]
        stripe = None
        if (tex == 1).any():
            proj = X * f["cos"][fid] + Y * f["sin"][fid]
            stripe = np.where(tex == 1, np.sin(2 * np.pi * proj / f["row_period"][fid] + f["row_phase"][fid]), 0)
            del proj
        if (tex == 2).any():
            cst = np.sin(2 * np.pi * zc / (0.06 * f["row_period"][fid] + 0.2))
            stripe = np.where(tex == 2, cst, 0 if stripe is None else stripe)
        track = None
        if (tex == 3).any():
            piv = tex == 3
            rad = np.hypot(X - f["cx"][fid], Y - f["cy"][fid])
            cst = np.sin(2 * np.pi * rad / f["row_period"][fid] + f["row_phase"][fid])
            stripe = np.where(piv, cst, 0 if stripe is None else stripe)
            spacing = np.maximum(f["rad"][fid] / f["towers"][fid], 1.0)
            q = rad / spacing
            dist = np.abs(q - np.round(q)) * spacing
            track = np.where(piv & (rad < f["rad"][fid] - 2), np.clip(1.0 - dist / 1.3, 0, 1) * f["track"][fid], 0)
            hub = piv & (rad < 5.0)
            track = np.maximum(track, hub * 0.9).astype(np.float32)
            del rad, q, dist
        if stripe is not None:
            amp = f["row_amp"][fid]
            fv *= 1.0 + amp * stripe
            moist += 0.9 * amp * stripe
            fd *= 1.0 - 0.4 * amp * stripe
        if track is not None:
            fv *= 1.0 - 0.75 * track
            fd *= 1.0 - 0.6 * track
            moist -= 0.2 * track
        gn = noise.lattice(keys["veg"] + 4, r0, c0, H, W, 6.0)
        fvf, fdf, mf, gnf = fv.reshape(-1), fd.reshape(-1), moist.reshape(-1), gn.reshape(-1)

        def grassy(i, a, fv_t, fd_t, m_t=None, k=0.14):
            fvf[i] += a * (fv_t + k * gnf[i] - fvf[i])
            fdf[i] += a * (fd_t - 0.5 * k * gnf[i] - fdf[i])
            if m_t is not None:
                mf[i] += a * (m_t - mf[i])

        gfv, gfd = self.grass
        if Rd is not None:
            # right of way (mown grass, dust near gravel roads) and greener, wetter ditches
            a = _soft(Rd["row"] - Rd["d"]) * ~Rd["bz"]
            grassy(Rd["i"], a, gfv + 0.08 * (Rd["green"] - 0.5) - 0.12 * Rd["dust"] * np.exp(-Rd["d"] / 12.0),
                   gfd * (1.0 + 0.4 * Rd["dust"]))
            dd = Rd["d"] - Rd["toe"]
            a = (_soft(dd) * _soft(Rd["ditch"] - dd) * ~Rd["bz"]).astype(np.float32)
            grassy(Rd["i"], a, gfv + 0.1 + 0.18 * Rd["green"], gfd * 0.6, 0.75)
        if S is not None:
            # unfarmed grass along the streams, ragged edge
            wn = noise.lattice_at(keys["water"] + 7, S["r"], S["c"], 90.0)
            wb = self.s["buffer"][S["k"]] * np.clip(0.75 + 0.25 * wn, 0.3, 1.1) + 0.35 * self.s["rip"][S["k"]]
            a = np.clip((S["hw"] + S["bank"] + wb - S["d"]) / 3.0 + 0.5, 0.0, 1.0)
            grassy(S["i"], a, gfv + 0.1, gfd, 0.6, 0.18)
        zi = np.flatnonzero(bz)
        if zi.size:
            grassy(zi, 1.0, gfv + 0.1, gfd, 0.6, 0.18)
        wi = np.flatnonzero(self.way_layer.raster(r0, c0, H, W))
        if wi.size:
            grassy(wi, 1.0, min(0.92, gfv + 0.22), gfd * 0.7, 0.6, 0.06)
        sti = np.flatnonzero(strip_id.reshape(-1))
        if sti.size:   # grass borders and the grass of farm lanes (their wheel tracks come with the roads)
            grassy(sti, 1.0, gfv + 0.04 * (self.strip_kind[strip_id.reshape(-1)[sti]] == 1), gfd * 0.9, 0.55, 0.16)
        if terr is not None:   # terraces: grassed back slopes, or a tone change along the ridge
            ti, band, grassed = terr
            grassy(ti, band * grassed, gfv + 0.05, gfd, 0.55, 0.14)
            fvf[ti] *= 1.0 + 0.12 * band * (1.0 - grassed)
        yi = np.flatnonzero(self.yard_layer.raster(r0, c0, H, W))
        if yi.size:
            grassy(yi, 1.0, self.lawn[0], self.lawn[1], 0.5, 0.1)

        # -- colour: mixture of green vegetation, dry vegetation and soil (dry..moist)
        np.clip(fv, 0.0, 0.99, out=fv)
        np.clip(fd, 0.0, None, out=fd)
        np.minimum(fd, 1.0 - fv, out=fd)
        np.clip(moist, 0.0, 1.0, out=moist)
        yellow = f["yellow"][fid]
        soil_t = 1.0 + f["soil_tone"][fid]
        dry_t = 1.0 + f["dry_tone"][fid]
        fine = noise.white(keys["tex"], r0, c0, H, W)
        clump = noise.lattice(keys["tex"] + 1, r0, c0, H, W, 2.5)
        # plant/clod texture: per-pixel, ~2 m clumps (more where vegetated)
        grain = 1.0 + f["texamp"][fid] * (0.45 * fine + (0.5 * clump + 0.45 * gn) * (0.35 + fv))
        img = np.empty((4, H, W), np.float32)
        for b in range(4):
            veg = pal.veg[b] * (1.0 + 0.04 * f["tint"][:, b][fid])
            veg += yellow * (pal.autumn_leaf[b] - veg)
            soil = (pal.soil_dry[b] + (pal.soil_wet[b] - pal.soil_dry[b]) * moist) * soil_t
            img[b] = (fv * veg + fd * (pal.dry[b] * dry_t) + (1.0 - fv - fd) * soil) * grain
        del veg, soil, yellow, soil_t, dry_t, grain, nA, nB, soil_n, nvar, mixw, var, fd, moist
        flat = img.reshape(4, -1)
        finef = fine.reshape(-1)

        # -- streams: banks, then water or a dry channel (hidden under road embankments except at bridges)
        if S is not None:
            self._paint_stream(flat, S, Rd, bz, W, gnf, keys)
        # -- ponds: reed ring, then open water
        pid = self.pond_layer.raster(r0, c0, H, W)
        pi = np.flatnonzero(pid)
        if pi.size:
            k = pid.reshape(-1)[pi]
            sub = flat[:, pi]
            _mix(sub, np.float32(0.9), pal.reeds[:, None] * (1.0 + 0.1 * gnf[pi])[None])
            inner = self.pond_inner.raster(r0, c0, H, W).reshape(-1)[pi]
            open_w = np.where(self.pond_ring[k], inner > 0, True)
            pr, pc = np.divmod(pi, W)
            ripple = 1.0 + 0.04 * noise.lattice_at(keys["water"] + 3, pr + r0, pc + c0, 10.0)
            _mix(sub, open_w.astype(np.float32), self.p_col[k].T * ripple[None])
            flat[:, pi] = sub
        # -- roads
        if Rd is not None:
            self._paint_roads(flat, Rd, finef, keys)
        # -- culvert ends and riprap, farmstead gravel, driveways, field entrances
        det = self.details.raster(r0, c0, H, W).reshape(-1)
        di = np.flatnonzero(det)
        if di.size:
            code = det[di]
            sub = flat[:, di]
            rocks = 1.0 + 0.3 * clump.reshape(-1)[di] + 0.15 * finef[di]
            _mix(sub, (code == 1) * np.float32(0.9), pal.riprap[:, None] * rocks[None])
            _mix(sub, (code == 2) * np.float32(0.95), pal.concrete[:, None] * (1.0 + 0.03 * finef[di])[None])
            _mix(sub, (code == 3) * np.float32(0.8), np.array([38, 40, 44, 30], np.float32)[:, None])
            _mix(sub, (code == 4) * np.float32(0.8), np.array([70, 72, 76, 60], np.float32)[:, None])
            flat[:, di] = sub
        pc = self.pipe_layer.raster(r0, c0, H, W).reshape(-1)
        pi_ = np.flatnonzero(pc)
        if pi_.size:
            sub = flat[:, pi_]
            _mix(sub, (pc[pi_] == 3) * np.float32(0.7), np.array([38, 40, 44, 30], np.float32)[:, None])
            _mix(sub, (pc[pi_] == 4) * np.float32(0.7), pal.concrete[:, None] * np.ones((1, len(pi_)), np.float32))
            flat[:, pi_] = sub
        sl = self.strip_layer.raster(r0, c0, H, W).reshape(-1)
        li = np.flatnonzero(sl)
        if li.size:   # farm lanes: two dirt wheel tracks with grass between and beside them
            lane = self.strip_kind[sl[li]] == 2
            if lane.any():
                li = li[lane]
                sub = flat[:, li]
                _mix(sub, np.float32(0.55) * (1.0 + 0.3 * finef[li]), pal.dirt[:, None] * np.ones((1, len(li)), np.float32))
                flat[:, li] = sub
        gr = self.gravel_layer.raster(r0, c0, H, W).reshape(-1)
        gi = np.flatnonzero(gr)
        if gi.size:
            code = gr[gi]
            sub = flat[:, gi]
            t = (1.0 + 0.06 * finef[gi])[None]
            _mix(sub, (code == 1) * np.float32(0.92), pal.gravel[:, None] * 0.97 * t)
            _mix(sub, (code == 2) * np.float32(0.88), pal.dirt[:, None] * t)
            _mix(sub, (code == 3) * np.float32(0.45), pal.dry[:, None] * t)
            flat[:, gi] = sub

        height = np.zeros((H, W), np.float32)
        hflat = height.reshape(-1)
        # -- buildings and bridge decks
        bid = self.bld_layer.raster(r0, c0, H, W).reshape(-1)
        bi = np.flatnonzero(bid)
        if bi.size:
            self._paint_buildings(flat, bi, bid[bi], W, r0, c0, hflat)
        deck = self.bridge_deck.raster(r0, c0, H, W).reshape(-1)
        ki = np.flatnonzero(deck)
        deck_h = None
        if ki.size:
            deck_h = np.zeros((H, W), np.float32)
            self._paint_decks(flat, ki, deck[ki], W, r0, c0, deck_h.reshape(-1))

        # -- trees
        height_lo = None
        cr = canopy.crowns(self.trees, r0, c0, H, W, clump)
        if cr is not None:
            px, k, t, ux, uy = cr
            nz = np.sqrt(np.maximum(1.0 - t * t, 0.0))
            L = self.sun.vector
            light = ux * L[0] + uy * L[1] + nz * L[2]
            shade = np.clip(0.3 + 0.8 * light, 0.22, 1.2)
            clumpf = clump.reshape(-1)[px]
            leafy = 1.0 + 0.16 * clumpf + 0.07 * finef[px]
            leafoff = self.t_leafoff[k]
            alpha = 1.0 - 0.45 * leafoff
            sub = flat[:, px]
            _mix(sub, alpha, self.t_col[k].T * (shade * leafy)[None])
            flat[:, px] = sub
            ch = self.trees.h[k] * (0.6 + 0.4 * nz) * (1.0 + 0.08 * clumpf)
            solid = leafoff < 0.5
            hflat[px[solid]] = np.maximum(hflat[px[solid]], ch[solid])
            if (~solid).any():
                height_lo = np.zeros((H, W), np.float32)
                height_lo.reshape(-1)[px[~solid]] = ch[~solid]

        # -- hillshade (embankments, banks, valley sides) and cast shadows
        hs = canopy.hillshade(dem, self.sun)
        img *= np.clip(1.0 + 0.55 * (hs - 1.0), 0.6, 1.25)[None]
        del hs
        sh = canopy.cast_shadow(height, self.sun, float(height.max()))
        if height_lo is not None:  # leaf-off crowns: a thin, partial shadow of the branches
            sh = np.maximum(sh, 0.45 * canopy.cast_shadow(height_lo, self.sun, float(height_lo.max())))
        if deck_h is not None:
            dsh = canopy.cast_shadow(deck_h, self.sun, float(deck_h.max()))
            recv = np.ones(H * W, bool)
            if Rd is not None:  # the road beyond the deck is as high as the deck: no shadow there
                recv[Rd["i"]] = (Rd["d"] > Rd["hw"] + Rd["shoulder"] + 0.5) | Rd["bz"]
            recv &= deck == 0
            sh = np.maximum(sh, dsh * recv.reshape(H, W))
        if sh.max() > 0:
            for b in range(4):
                img[b] *= 1.0 - sh * (1.0 - spectra.SHADOW[b])
        return sensor.apply(img, p, r0, c0), dem

    def _relief(self, r0, c0, H, W, fid, strip_id, zc, S, Rd):
        """Field-scale relief added to the DEM: strip berms, waterway swales and terraces (zero in the road's
        right of way and near streams); and the terrace pixels with their ridge band for the imagery."""
        relief = np.zeros((H, W), np.float32)
        any_ = False
        if strip_id.any():
            m = strip_id > 0
            d_in = ndi.distance_transform_edt(m).astype(np.float32)
            u = np.clip(d_in / np.maximum(0.6 * self.strip_hw[strip_id], 1.0), 0.0, 1.0)
            relief += self.strip_berm[strip_id] * u * u * (3 - 2 * u)
            any_ = True
        wid = self.way_id.raster(r0, c0, H, W)
        if wid.any():
            d_in = ndi.distance_transform_edt(wid > 0).astype(np.float32)
            u = np.clip(d_in / self.way_hw[wid], 0.0, 1.0)
            relief -= self.way_depth[wid] * (2 * u - u * u)
            any_ = True
        terr = None
        th = self.t_h[fid]
        if th.any() and zc is not None:
            gy, gx = np.gradient(zc)
            g = np.hypot(gx, gy)
            ti = np.flatnonzero((th > 0).reshape(-1) & (g.reshape(-1) > 0.002))
            if ti.size:
                k = fid.reshape(-1)[ti]
                ph = zc.reshape(-1)[ti] / self.t_int[k]
                fr = ph - np.floor(ph)
                # signed distance (m) from the nearest ridge contour, positive on its upslope side
                dm = np.where(fr < 0.5, fr, fr - 1.0) * self.t_int[k] / g.reshape(-1)[ti]
                h = self.t_h[k]
                rel = h * np.exp(-(dm / 4.0) ** 2) - 0.45 * h * np.exp(-((dm - 7.0) / 3.0) ** 2)
                relief.reshape(-1)[ti] += rel.astype(np.float32)
                band = np.exp(-((dm + 2.0) / 3.5) ** 2).astype(np.float32)
                terr = (ti, band, self.t_grass[k])
                any_ = True
        if not any_:
            return None, None
        flat = relief.reshape(-1)
        if Rd is not None:
            flat[Rd["i"][Rd["d"] < Rd["row"] + 0.5]] = 0.0
        if S is not None:
            near = S["d"] < S["hw"] + S["bank"] + self.s["buffer"][S["k"]] + 6.0
            flat[S["i"][near]] = 0.0
        if terr is not None:
            keep = flat[terr[0]] != 0.0
            terr = (terr[0][keep], terr[1][keep], terr[2][keep])
        return relief, terr

    # -- painters (on flat pixel subsets) -----------------------------------------------------------------
    def _paint_stream(self, flat, S, Rd, bz, W, gnf, keys):
        pal, s = self.pal, self.s
        i, k, d, hw, bank = S["i"], S["k"], S["d"], S["hw"], S["bank"]
        m = d < hw + bank + 1.0
        if not m.any():
            return
        i, k, d, hw, bank = i[m], k[m], d[m], hw[m], bank[m]
        r, c = S["r"][m], S["c"][m]
        hidden = np.zeros(len(i), bool)
        if Rd is not None:
            # pixels under a culvert's embankment: the road (and its fill) covers the channel
            pos = np.searchsorted(Rd["i"], i)
            pos = np.clip(pos, 0, len(Rd["i"]) - 1)
            hit = Rd["i"][pos] == i
            hidden[hit] = (Rd["d"][pos[hit]] < Rd["toe"][pos[hit]]) & ~Rd["bz"][pos[hit]]
        vis = (~hidden).astype(np.float32)
        sub = flat[:, i]
        bc = s["bcol"][k].T
        _mix(sub, _soft(hw + bank - d) * vis * 0.85, bc * (1.0 + 0.06 * gnf[i])[None])
        a_ch = _soft(hw - d) * vis
        wet = s["water"][k] > 0
        a_w = a_ch * wet
        if a_w.any():
            shallow = np.clip(1.0 - (hw - d) / np.maximum(1.2, 0.35 * hw), 0.0, 1.0) * 0.45
            ripple = 1.0 + 0.05 * noise.lattice_at(keys["water"] + 1, r, c, 14.0)
            wc = s["wcol"][k].T
            wc = (wc + shallow[None] * (bc - wc)) * ripple[None]
            _mix(sub, a_w, wc)
            bars = (s["bars"][k] > 0) & (d < 0.85 * hw)
            if bars.any():
                bars &= noise.lattice_at(keys["water"] + 2, r, c, 40.0) > 0.8
                _mix(sub, bars * a_w * 0.9, pal.sand[:, None] * np.ones((1, len(i)), np.float32))
        a_dry = a_ch * ~wet
        if a_dry.any():
            _mix(sub, a_dry, s["dcol"][k].T * (1.0 + 0.1 * gnf[i])[None])
        flat[:, i] = sub

    def _paint_roads(self, flat, R, finef, keys):
        pal = self.pal
        i, d, hw, surf = R["i"], R["d"], R["hw"], R["surf"]
        m = d < R["toe"] + R["ditch"] + 1.0
        if not m.any():
            return
        R = {k: v[m] for k, v in R.items()}
        i, d, hw, surf = R["i"], R["d"], R["hw"], R["surf"]
        open_ = ~R["bz"]
        fine = finef[i]
        sub = flat[:, i]
        # ditch water
        wet = (R["wet"] > 0) & open_
        if wet.any():
            mid = R["toe"] + 0.5 * R["ditch"]
            a = _soft(0.16 * R["ditch"] - np.abs(d - mid)) * wet
            a *= noise.lattice_at(keys["water"] + 5, R["r"], R["c"], 30.0) > -0.3
            _mix(sub, a * 0.85, (pal.water("dark", 0.5) * 0.6 + pal.reeds * 0.4)[:, None])
        # shoulders: gravel spill fading into the grass
        a = _soft(hw + R["shoulder"] - d) * open_ * (surf != 3) * 0.55
        _mix(sub, a, pal.gravel[:, None] * (0.95 + 0.05 * fine)[None])
        a_rd = _soft(hw - d) * open_
        tone = 1.0 + 0.05 * R["tone"]
        lat = noise.lattice_at(keys["road"], R["r"], R["c"], 6.0)
        col = np.empty((4, len(i)), np.float32)
        g = surf == 0
        if g.any():   # gravel: compacted wheel tracks, loose centre windrow
            tr = np.exp(-((d - 0.54 * hw) / 0.8) ** 2) * R["tracks"]
            wind = np.exp(-(d / 0.9) ** 2)
            col[:, g] = pal.gravel[:, None] * (tone * (1.0 + 0.04 * lat + 0.05 * fine - 0.08 * tr + 0.04 * wind))[g]
        a = surf == 1
        if a.any():   # asphalt: new (dark) to old (grey), faint lines
            age = np.clip(0.5 + 0.35 * R["tone"], 0.0, 1.0)[a]
            base = pal.asphalt_new[:, None] + (pal.asphalt_old - pal.asphalt_new)[:, None] * age[None]
            col[:, a] = base * (1.0 + 0.04 * lat[a] + 0.03 * fine[a])[None]
        c = surf == 2
        if c.any():   # concrete with darker lane stains
            stain = np.exp(-((d - 0.5 * hw) / 1.0) ** 2)
            col[:, c] = pal.concrete[:, None] * (tone * (1.0 + 0.025 * lat + 0.02 * fine - 0.06 * stain))[c]
        t = surf == 3
        if t.any():   # dirt track: two ruts, grassy middle
            ruts = _soft(0.9 - np.abs(d - 0.6 * hw))
            col[:, t] = pal.dirt[:, None] * (1.0 + 0.05 * fine[t])
            a_rd = np.where(t, a_rd * np.maximum(ruts, 0.3), a_rd)
        _mix(sub, a_rd, col)
        if a.any():
            cl = _soft(0.35 - d) * 0.3 * (R["mark"] > 0) * a * open_
            _mix(sub, cl, np.array([205, 182, 80, 160], np.float32)[:, None])
        if ((surf == 1) | (surf == 2)).any():
            el = _soft(0.3 - np.abs(d - (hw - 0.45))) * 0.3 * (R["edge"] > 0) * (surf != 0) * open_
            _mix(sub, el, np.array([225, 225, 220, 200], np.float32)[:, None])
        flat[:, i] = sub

    def _paint_buildings(self, flat, px, k, W, r0, c0, hflat):
        kind = self.bl_kind[k]
        geo = self.bl_geo[k]
        r, c = np.divmod(px, W)
        x, y = c + c0 + 0.5, r + r0 + 0.5
        L = self.sun.vector
        shade = np.ones(len(k), np.float32)
        g = kind == 1   # gable roofs: two facets tilted ~25 deg about the ridge
        if g.any():
            nx, ny = -geo[:, 3], geo[:, 2]
            side = np.sign((x - geo[:, 0]) * nx + (y - geo[:, 1]) * ny)
            light = side * np.sin(np.deg2rad(25.0)) * (nx * L[0] + ny * L[1]) + np.cos(np.deg2rad(25.0)) * L[2]
            shade = np.where(g, np.clip(light / L[2], 0.55, 1.25), shade)
        b = kind == 3   # grain bins: conical roofs
        if b.any():
            dx, dy = x - geo[:, 0], y - geo[:, 1]
            rr = np.maximum(np.hypot(dx, dy), 1e-3)
            tilt = np.sin(np.deg2rad(28.0)) * np.clip(rr / np.maximum(geo[:, 2], 1.0), 0, 1)
            light = tilt * (dx / rr * L[0] + dy / rr * L[1]) + np.sqrt(1 - tilt ** 2) * L[2]
            shade = np.where(b, np.clip(light / L[2], 0.6, 1.2), shade)
        flat[:, px] = self.bl_col[k].T * shade[None]
        hflat[px] = np.maximum(hflat[px], self.bl_h[k])

    def _paint_decks(self, flat, px, k, W, r0, c0, hflat):
        gk = self.deck_geo[k]
        r, c = np.divmod(px, W)
        x, y = c + c0 + 0.5, r + r0 + 0.5
        v = np.abs((x - gk[:, 0]) * -gk[:, 3] + (y - gk[:, 1]) * gk[:, 2])
        rail = (v > gk[:, 4] - 0.75) & (self.deck_rail[k] > 0)
        railcol = np.where((self.deck_rail[k] == 1)[:, None], np.array([228, 226, 220, 200], np.float32),
                           np.array([150, 152, 155, 130], np.float32)).T
        col = self.deck_col[k].T
        flat[:, px] = np.where(rail[None], 0.6 * railcol + 0.4 * col, col)
        hflat[px] = self.deck_h[k] + rail * 1.0


def _mix(sub: np.ndarray, a, col) -> None:
    """sub += a * (col - sub) for a (4, n) pixel subset; ``a`` scalar or (n,), ``col`` (4, 1) or (4, n)."""
    sub += np.asarray(a, np.float32)[None] * (col - sub) if np.ndim(a) else a * (col - sub)
