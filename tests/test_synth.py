"""Tests of ``geodrain synth``: determinism, file formats, truth consistency, the DEM's digital dams and the
output-folder protocol. Scenes are small (512-1024 px) and built in temporary folders."""

from __future__ import annotations

import json

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from click.testing import CliRunner

from geodrain.errors import OutputError, OutputExistsError
from geodrain.synth import SceneResult, generate_scene
from geodrain.synth.distractors import AREA_KINDS
from geodrain.synth.distractors import KINDS as DISTRACTOR_KINDS
from geodrain.synth.layout import build_layout
from geodrain.synth.params import draw_params
from geodrain.synth.render import Renderer

SIZE = 1024


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Two runs of one seed and two other seeds, all 1024 x 1024."""
    root = tmp_path_factory.mktemp("synth")
    out = {}
    for name, seed in (("a", 7), ("a2", 7), ("b", 8), ("c", 21)):
        out[name] = generate_scene(root / name, seed=seed, size=SIZE)
    return out


def _read_raster(path):
    with rasterio.open(path) as src:
        return src.read()


def _layer(path, layer):
    return pyogrio.read_dataframe(path, layer=layer)


def _vectors(res: SceneResult):
    return {
        "crossings": _layer(res.truth, "crossings"),
        "hard_negatives": _layer(res.truth, "hard_negatives"),
        "distractors": _layer(res.truth, "distractors"),
        "distractor_areas": _layer(res.truth, "distractor_areas"),
        "roads": _layer(res.roads_gpkg, "roads"),
        "streams": _layer(res.streams_gpkg, "streams"),
    }


# -- determinism ------------------------------------------------------------------------------------------

def test_same_seed_gives_identical_scene(scenes):
    a, b = scenes["a"], scenes["a2"]
    assert np.array_equal(_read_raster(a.naip), _read_raster(b.naip))
    assert np.array_equal(_read_raster(a.dem), _read_raster(b.dem))
    va, vb = _vectors(a), _vectors(b)
    for name in va:
        assert len(va[name]) == len(vb[name]), name
        assert va[name].drop(columns="geometry").equals(vb[name].drop(columns="geometry")), name
        assert all(shapely.equals_exact(ga, gb, 0.0) for ga, gb in zip(va[name].geometry, vb[name].geometry)), name
    ja, jb = json.loads(a.scene_json.read_text()), json.loads(b.scene_json.read_text())
    ja.pop("seconds"), jb.pop("seconds")
    assert ja == jb


def test_different_seeds_differ(scenes):
    a, b = scenes["a"], scenes["b"]
    assert not np.array_equal(_read_raster(a.naip), _read_raster(b.naip))
    with rasterio.open(a.naip) as sa, rasterio.open(b.naip) as sb:
        assert sa.transform != sb.transform
    assert not _vectors(a)["roads"].geometry.equals(_vectors(b)["roads"].geometry)


# -- file formats -----------------------------------------------------------------------------------------

def test_naip_format(scenes):
    with rasterio.open(scenes["a"].naip) as src:
        assert src.count == 4 and src.dtypes == ("uint8",) * 4
        assert src.width == src.height == SIZE
        assert src.crs.to_epsg() == 26914
        t = src.transform
        assert (t.a, t.b, t.d, t.e) == (1.0, 0.0, 0.0, -1.0)
        assert t.c == round(t.c) and t.f == round(t.f)
        assert 400_000 <= t.c and t.c + SIZE <= 700_000 and 4_450_000 <= t.f - SIZE and t.f <= 4_700_000
        assert src.profile["tiled"] and src.block_shapes == [(512, 512)] * 4
        tags = src.tags(ns="IMAGE_STRUCTURE")
        assert tags["COMPRESSION"] == "DEFLATE" and tags["PREDICTOR"] == "2"
        assert src.descriptions == ("red", "green", "blue", "nir")
        ci = [c.name for c in src.colorinterp]
        assert ci[:3] == ["red", "green", "blue"] and ci[3] == "undefined"
        assert src.nodata is None
        a = src.read()
    # plausible NAIP-like statistics: NIR brighter than red on average, no flat bands, not saturated
    m = a.reshape(4, -1).mean(1)
    assert 60 < m[0] < 190 and m[3] > m[0] * 0.9
    assert all(a[b].std() > 8 for b in range(4))
    assert (a == 255).mean() < 0.02 and (a == 0).mean() < 0.02


def test_dem_format(scenes):
    res = scenes["a"]
    with rasterio.open(res.naip) as img, rasterio.open(res.dem) as dem:
        assert dem.count == 1 and dem.dtypes == ("float32",)
        assert (dem.width, dem.height, dem.transform, dem.crs) == (img.width, img.height, img.transform, img.crs)
        assert dem.nodata == -9999
        assert dem.profile["tiled"] and dem.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
        z = dem.read(1)
    assert np.isfinite(z).all() and (z != -9999).all()
    assert 200 < z.min() < z.max() < 1500


def test_vector_layers(scenes):
    res = scenes["a"]
    assert set(pyogrio.list_layers(res.truth)[:, 0]) == {"crossings", "hard_negatives", "distractors",
                                                        "distractor_areas"}
    v = _vectors(res)
    for name, geom in (("crossings", "Point"), ("hard_negatives", "Point"), ("roads", "LineString"),
                       ("streams", "LineString"), ("distractors", "Point"), ("distractor_areas", "MultiPolygon")):
        df = v[name]
        assert df.crs.to_epsg() == 26914, name
        assert set(df.geom_type) <= {geom}, name
    c = v["crossings"]
    for col in ("crossing_id", "kind", "road_id", "stream_id", "road_kind", "road_width_m", "stream_width_m",
                "angle_deg", "box_xmin", "box_ymin", "box_xmax", "box_ymax"):
        assert col in c.columns, col
    assert set(c["kind"]) <= {"culvert", "bridge"}
    assert c["angle_deg"].between(0, 90).all()
    for col in ("road_id", "kind", "width_m", "embankment_m"):
        assert col in v["roads"].columns
    for col in ("stream_id", "width_m", "riparian_m", "water"):
        assert col in v["streams"].columns
    for col in ("distractor_id", "kind", "road_id", "culvert", "sides", "contrast", "crossing_m"):
        assert col in v["distractors"].columns, col
    assert set(v["distractors"]["kind"]) <= set(DISTRACTOR_KINDS)
    assert set(v["distractor_areas"]["kind"]) <= set(AREA_KINDS)
    s = json.loads(res.scene_json.read_text())
    assert s["seed"] == 7 and s["size"] == SIZE and s["crs"] == "EPSG:26914"
    assert s["counts"]["crossings"] == len(c) == res.crossings


# -- truth consistency ------------------------------------------------------------------------------------

def _road_nodes(roads) -> np.ndarray:
    """Road-road intersections, without the points where one section-line road changes kind."""
    pts = []
    geoms = list(roads.geometry)
    for i in range(len(geoms)):
        for j in range(i + 1, len(geoms)):
            g = geoms[i].intersection(geoms[j])
            for p in shapely.get_parts(g):
                if p.is_empty or p.geom_type != "Point":
                    continue
                ti = _tangent(geoms[i], p)
                tj = _tangent(geoms[j], p)
                if abs(float(ti @ tj)) < 0.996:
                    pts.append((p.x, p.y))
    return np.array(pts).reshape(-1, 2)


def _tangent(line, p, eps=1.0):
    s = line.project(p)
    a = np.array(line.interpolate(max(0, s - eps)).coords[0])
    b = np.array(line.interpolate(min(line.length, s + eps)).coords[0])
    return (b - a) / np.hypot(*(b - a))


@pytest.mark.parametrize("name", ["a", "b", "c"])
def test_truth_consistency(scenes, name):
    v = _vectors(scenes[name])
    cross, roads, streams = v["crossings"], v["roads"], v["streams"]
    assert len(cross) >= 3
    for _, c in cross.iterrows():
        p = c.geometry
        road = roads[roads["road_id"] == c["road_id"]].geometry.union_all()
        stream = streams[streams["stream_id"] == c["stream_id"]].geometry.union_all()
        assert road.distance(p) < 1e-6 and stream.distance(p) < 1e-6
        assert c["box_xmin"] <= p.x <= c["box_xmax"] and c["box_ymin"] <= p.y <= c["box_ymax"]
        assert c["box_xmax"] - c["box_xmin"] > 1 and c["box_ymax"] - c["box_ymin"] > 1
    # every road-stream intersection is a crossing
    xy = np.column_stack([cross.geometry.x, cross.geometry.y])
    found = 0
    for r in roads.geometry:
        for s in streams.geometry:
            for p in shapely.get_parts(r.intersection(s)):
                if p.is_empty:
                    continue
                assert p.geom_type == "Point"
                assert np.min(np.hypot(*(xy - [p.x, p.y]).T)) < 1e-6
                found += 1
    assert found == len(cross)
    # crossings are distinct targets: >= 60 m from road intersections and from each other
    nodes = _road_nodes(roads)
    assert len(nodes) >= 1
    for i, q in enumerate(xy):
        assert np.min(np.hypot(*(nodes - q).T)) >= 60.0
        others = np.delete(xy, i, axis=0)
        if len(others):
            assert np.min(np.hypot(*(others - q).T)) >= 60.0


def test_hard_negatives(scenes):
    for name in ("a", "b", "c"):
        v = _vectors(scenes[name])
        kinds = set(v["hard_negatives"]["kind"])
        assert "road_intersection" in kinds
        assert kinds - {"road_intersection"}, "at least one hard negative of another kind"
        xy = np.column_stack([v["crossings"].geometry.x, v["crossings"].geometry.y])
        for p in v["hard_negatives"].geometry:
            assert np.min(np.hypot(*(xy - [p.x, p.y]).T)) >= 60.0


def test_distractor_points(scenes):
    """Every distractor is where its kind says: field boundaries, entrances and driveways on their road's
    centreline, and its recorded distance to the nearest crossing is right; the hard negatives are the
    distractors that keep away from crossings."""
    kinds = set()
    for name in ("a", "b", "c"):
        v = _vectors(scenes[name])
        d, roads = v["distractors"], v["roads"]
        kinds |= set(d["kind"])
        xy = np.column_stack([v["crossings"].geometry.x, v["crossings"].geometry.y])
        for _, row in d.iterrows():
            p = row.geometry
            assert row["crossing_m"] == pytest.approx(np.min(np.hypot(*(xy - [p.x, p.y]).T)), abs=0.06)
            if row["kind"] in ("field_boundary", "field_entrance", "driveway", "grass_border", "farm_lane"):
                road = roads[roads["road_id"] == row["road_id"]].geometry.union_all()
                assert road.distance(p) < 1e-6, (name, row["kind"])
            if row["kind"] != "field_boundary":
                assert row["sides"] in (0, 1)
        hn = np.column_stack([v["hard_negatives"].geometry.x, v["hard_negatives"].geometry.y])
        dxy = np.column_stack([d.geometry.x, d.geometry.y])
        for q in hn:
            assert np.min(np.hypot(*(dxy - q).T)) < 1e-6
    assert {"field_boundary", "field_entrance", "road_intersection"} <= kinds


def _layout(seed, size):
    rng = np.random.default_rng(seed)
    p = draw_params(rng, seed, size)
    return build_layout(rng, p), rng


def test_distractor_rates():
    """At 4096 px: field boundaries and field entrances at road-side rates of real farmland (>= 1 per km of
    road each in a scene with a section-line road network), every entrance and driveway a ditch fill."""
    lay, _ = _layout(9001, 4096)
    dis = lay.distractors
    road_km = sum(r.line.intersection(shapely.box(0, 0, 4096, 4096)).length for r in lay.roads) / 1000.0
    n = {k: sum(d.kind == k for d in dis.points) for k in DISTRACTOR_KINDS}
    assert n["field_boundary"] >= road_km
    assert n["field_entrance"] >= 0.5 * road_km
    assert len(dis.fills) == len(lay.features.approaches) + len(lay.features.farmsteads)
    assert any(f.culvert for f in dis.fills)
    assert "field_boundary" in {h.kind for h in lay.negatives}


def _dem_at(renderer, xy, half=48):
    """DEM of a window around a point, from the scene's own renderer."""
    c, r = int(xy[0]) - half, int(xy[1]) - half
    _, z = renderer.tile(r, c, 2 * half, 2 * half)
    return z, c, r


def _z(z, c, r, q):
    return float(z[int(q[1]) - r, int(q[0]) - c])


def test_dem_ditch_fills_strips_and_swales():
    """The DEM agrees with the imagery: a field entrance or driveway fills the road ditch (higher than the
    ditch beside it), a grass border is a berm (not a channel), a grassed waterway a swale."""
    lay, rng = _layout(9001, 4096)
    ren = Renderer(lay, rng)
    by_id = {r.id: r for r in lay.roads}
    from geodrain.synth.geometry import tangent
    checked = 0
    for f in lay.distractors.fills[:6]:
        road = by_id[f.road_id]
        q = np.array(f.access)
        if not (100 < q[0] < 3996 and 100 < q[1] < 3996):
            continue
        t = tangent(road.line, q)
        n = np.array([-t[1], t[0]])
        cen = np.array(f.poly.centroid.coords[0])
        n = n if (cen - q) @ n > 0 else -n
        z, c, r = _dem_at(ren, q)
        on = q + (road.toe + 0.5 * road.ditch) * n
        beside = [on + s * 14.0 * t for s in (-1, 1)]
        assert _z(z, c, r, on) > np.mean([_z(z, c, r, b) for b in beside]) + 0.2, f.kind
        checked += 1
    assert checked >= 3
    for st in [s for s in lay.distractors.strips][:3]:
        mid = np.array(st.poly.representative_point().coords[0])
        t = np.diff(np.asarray(st.line.coords), axis=0)[0]
        t /= np.hypot(*t)
        n = np.array([-t[1], t[0]])
        centre = np.array(st.line.interpolate(st.line.project(shapely.Point(mid))).coords[0])
        if not (100 < centre[0] < 3996 and 100 < centre[1] < 3996):
            continue
        z, c, r = _dem_at(ren, centre)
        out = [centre + s * (st.width / 2 + 6.0) * n for s in (-1, 1)]
        assert _z(z, c, r, centre) > min(_z(z, c, r, o) for o in out) - 0.02
    for w in lay.features.waterways[:2]:
        mid = np.array(w.poly.representative_point().coords[0])
        z, c, r = _dem_at(ren, mid, half=40)
        ring = [mid + (w.width / 2 + 8.0) * np.array([np.cos(a), np.sin(a)]) for a in np.linspace(0, 6.28, 12)]
        outside = [o for o in ring if not w.poly.buffer(2).contains(shapely.Point(o))]
        if outside:
            assert _z(z, c, r, mid) < np.median([_z(z, c, r, o) for o in outside]) + 0.3


def test_small_scene_has_a_crossing(tmp_path):
    res = generate_scene(tmp_path / "s", seed=3, size=512)
    assert res.crossings >= 1
    with rasterio.open(res.naip) as src:
        assert src.width == 512


# -- the DEM: road embankments are digital dams over every crossing ---------------------------------------

def test_embankment_is_a_digital_dam(scenes):
    checked = 0
    for name in ("a", "b", "c"):
        res = scenes[name]
        v = _vectors(res)
        with rasterio.open(res.dem) as dem:
            for _, c in v["crossings"].iterrows():
                stream = v["streams"][v["streams"]["stream_id"] == c["stream_id"]].geometry
                line = min(stream, key=lambda g: g.distance(c.geometry))
                s = line.project(c.geometry)
                half = 0.5 * np.hypot(c["box_xmax"] - c["box_xmin"], c["box_ymax"] - c["box_ymin"])
                d = half + 15.0
                if s - d < 0 or s + d > line.length:
                    continue
                pts = [line.interpolate(s - d), c.geometry, line.interpolate(s + d)]
                up, at, down = (float(z[0]) for z in dem.sample([(p.x, p.y) for p in pts]))
                assert at > max(up, down) + 0.5, (name, c["crossing_id"], up, at, down)
                checked += 1
    assert checked >= 5


def test_streams_flow_downhill(scenes):
    for name in ("a", "b", "c"):
        res = scenes[name]
        streams = _vectors(res)["streams"]
        with rasterio.open(res.dem) as dem:
            for line in streams.geometry:
                if line.length < 300:
                    continue
                a, b = line.interpolate(2.0), line.interpolate(line.length - 2.0)
                z0, z1 = (float(z[0]) for z in dem.sample([(a.x, a.y), (b.x, b.y)]))
                assert z0 > z1


# -- the output folder ------------------------------------------------------------------------------------

def test_output_folder_protocol(tmp_path):
    out = tmp_path / "scene"
    generate_scene(out, seed=1, size=512)
    with pytest.raises(OutputExistsError):
        generate_scene(out, seed=2, size=512)
    first = _read_raster(out / "naip.tif")
    res = generate_scene(out, seed=2, size=512, overwrite=True)
    assert not np.array_equal(first, _read_raster(res.naip))
    with pytest.raises(OutputError):
        generate_scene(tmp_path / "missing" / "scene", seed=1, size=512)
    # a run interrupted after its last raster tile leaves neither OUTDIR nor its temporary folder behind
    def interrupt(done, total):
        if done == total:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_scene(tmp_path / "never", seed=1, size=512, progress=interrupt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]


def test_cli(tmp_path):
    from geodrain.cli import cli

    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(cli, ["synth", str(out), "--seed", "5", "--size", "512", "-q"])
    assert r.exit_code == 0, r.output
    assert r.output == "" and (out / "naip.tif").exists()
    r = runner.invoke(cli, ["synth", str(out), "--seed", "5", "--size", "512"])
    assert r.exit_code != 0 and "already holds a scene" in r.output
    r = runner.invoke(cli, ["synth", str(out), "--seed", "6", "--size", "512", "--overwrite"])
    assert r.exit_code == 0 and "crossing" in r.output
