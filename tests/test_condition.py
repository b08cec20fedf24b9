"""geodrain condition: the breach at a digital dam, the conditioned DEM and its breach lines, the pass rate,
the DEM quicklook, and every bad input. Small DEMs written with rasterio here: a valley with a stream channel
flowing east and a road embankment across it (north-south), flat-topped so that the pond behind it spills
nowhere near the crossing."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from shapely.geometry import LineString, Point

from conftest import ORIGIN, write_raster
from geodrain.cli import cli
from geodrain.condition import ConditionOptions, condition, crossing_radius
from geodrain.errors import OutputExistsError, RasterError, VectorError
from geodrain.hydrology.breach import Breach, NoBreach, breach_window, lower_path
from geodrain.hydrology.passrate import crossing_targets, load_targets, pass_test
from geodrain.hydrology.routing import as_elevation, route

N = 200                 # DEM side (1 m cells)
ROAD_COL = 100          # the road's centre column
STREAM_ROW = 100        # the channel's centre row
NODATA = -9999.0


def valley(n: int = N, road: bool = True) -> np.ndarray:
    """A valley falling east (2 mm/m) with a 0.6 m deep channel along STREAM_ROW and (with ``road``) a
    flat-topped embankment along ROAD_COL: 8 m crown, 2:1 side slopes, crest above the whole valley."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    z = 100.0 - 0.002 * xx + 0.02 * np.abs(yy - STREAM_ROW)
    z -= 0.6 * np.clip(1.0 - np.abs(yy - STREAM_ROW) / 2.0, 0.0, 1.0)
    if road:
        top = z.max() + 1.0
        z = np.maximum(z, top - np.maximum(np.abs(xx - ROAD_COL) - 4.0, 0.0) / 2.0)
    return z.astype(np.float32)


def xy(row: float, col: float) -> tuple[float, float]:
    return ORIGIN[0] + col + 0.5, ORIGIN[1] - row - 0.5


def write_dem(path, z: np.ndarray, **kw):
    return write_raster(path, z[None], nodata=NODATA, block=64, **kw)


def write_points(path, pts, crs="EPSG:26914", to_crs=None, **cols):
    gdf = gpd.GeoDataFrame({"crossing_id": np.arange(1, len(pts) + 1), **cols},
                           geometry=[Point(*p) for p in pts], crs=crs)
    if to_crs:
        gdf = gdf.to_crs(to_crs)
    gdf.to_file(path, layer="crossings", driver="GPKG")
    return path


def streams_frame():
    return gpd.GeoDataFrame({"stream_id": [1], "parent_id": [0]},
                            geometry=[LineString([xy(STREAM_ROW, 0), xy(STREAM_ROW, N - 1)])], crs="EPSG:26914")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("valley")
    z = valley()
    z[:20, :20] = NODATA
    dem = write_dem(d / "dem.tif", z)
    pts = write_points(d / "crossings.gpkg",
                       [xy(STREAM_ROW, ROAD_COL), xy(10, 10), xy(30, ROAD_COL), (ORIGIN[0] - 5000, ORIGIN[1])],
                       to_crs="EPSG:4326")   # another CRS: reprojected on read
    return d, dem, pts


# --- the breach at one crossing ---------------------------------------------------------------------------

def test_breach_cuts_the_embankment_only():
    z = valley()
    b = breach_window(z, STREAM_ROW, ROAD_COL, 40.0)
    assert isinstance(b, Breach)
    assert b.cols[0] < ROAD_COL - 4 and b.cols[-1] > ROAD_COL + 4      # from the dammed (west) side, east
    assert np.all(np.abs(b.rows - STREAM_ROW) <= 1)                     # along the channel, through the crossing
    assert np.all(np.diff(b.z_new) <= 0) and np.all(b.z_new <= b.z_old)
    changed = b.changed
    assert np.all(np.abs(b.cols[changed] - ROAD_COL) <= 13)             # embankment cells only (toe ~11.6 m)
    crest = float(z[STREAM_ROW, ROAD_COL])
    assert b.max_cut_m >= crest - b.z_old[0]                             # down to the dammed channel
    assert 3.0 < b.max_cut_m < 4.5 and b.z_new.min() >= z[STREAM_ROW, ROAD_COL + 40] - 1e-5
    assert not np.shares_memory(b.z_new, z) and z[STREAM_ROW, ROAD_COL] == crest   # input untouched


def test_no_breach_without_a_dam_or_a_channel():
    assert breach_window(valley(road=False), STREAM_ROW, ROAD_COL, 40.0).reason == "no_channel"
    # on the road away from the stream: water against the embankment runs along its toe down to the valley,
    # past the edge of the disk: no pond, no breach
    nb = breach_window(valley(), 30, ROAD_COL, 30.0)
    assert isinstance(nb, NoBreach) and nb.reason == "no_channel" and nb.dam_m > 1.0


def test_too_deep_is_refused():
    nb = breach_window(valley(), STREAM_ROW, ROAD_COL, 40.0, max_cut_m=2.0)
    assert isinstance(nb, NoBreach) and nb.reason == "too_deep" and nb.max_cut_m > 3.0


def test_lower_path_is_monotone_and_minimal():
    z = np.array([5.0, 5.2, 9.0, 9.0, 4.9, 4.0], np.float32)
    out = lower_path(z, np.ones(5))
    assert np.all(np.diff(out) < 0)
    assert out[0] == z[0] and out[-1] == z[-1] and out[4] == z[4]      # already low enough: kept
    assert np.all(out <= z) and out[2] == pytest.approx(5.0 - 0.002, abs=1e-6)


def test_radius_from_structure_size():
    r = crossing_radius(np.array([[10.0, 20.0], [2.0, 3.0], [np.nan, np.nan], [40.0, 5.0]]), None)
    assert r.tolist() == [40.0, 30.0, 40.0, 60.0]
    assert crossing_radius(np.zeros((2, 2)), 25.0).tolist() == [25.0, 25.0]


def test_routing_wrappers():
    from rasterio.transform import from_origin

    z = valley(road=False)[STREAM_ROW - 30:STREAM_ROW + 30, 40:100].copy()    # the channel along row 30
    z[0, 0] = np.nan
    grid = route(z, from_origin(0, 60, 2.0, 2.0), keep_filled=True)
    acc = grid.accumulation("cell")
    assert acc[0, 0] == -9999 and np.isfinite(grid.filled[1, 1])
    assert grid.accumulation("m2")[1, 1] == acc[1, 1] * 4.0
    # the channel collects the valley and leaves by the east edge
    out = np.unravel_index(np.argmax(acc), acc.shape)
    assert out[1] == 59 and abs(out[0] - 30) <= 1 and acc[out] > 0.5 * np.isfinite(z).sum()
    assert grid.streams(200.0)[30, 40] and not grid.streams(200.0)[5, 40]
    path = grid.path(5, 5, max_length_m=20.0)[0]
    assert path[0] == np.ravel_multi_index((5, 5), z.shape) and len(path) <= 11
    up = grid.through(np.array([np.ravel_multi_index((30, 58), z.shape)]))
    assert up[30, 58] and up[30, 10] and up.sum() < np.isfinite(z).sum()


# --- conditioning a DEM file --------------------------------------------------------------------------------

def test_condition_writes_dem_and_breach_lines(scene, tmp_path):
    _, dem, pts = scene
    out = tmp_path / "cond.tif"
    res = condition(dem, pts, out, progress=False)
    assert res.counts() == {"breached": 1, "no_channel": 1, "too_deep": 0, "off_dem": 1, "nodata": 1}
    assert "1 breached" in res.summary() and "1 off the DEM" in res.summary()
    with rasterio.open(dem) as a, rasterio.open(out) as b:
        assert (b.crs, b.transform, b.nodata, b.shape, b.dtypes) == (a.crs, a.transform, a.nodata, a.shape, a.dtypes)
        assert b.profile["tiled"] and b.compression is not None
        za, zb = a.read(1), b.read(1)
    diff = np.argwhere(zb != za)
    assert len(diff) == res.cells_changed > 0 and np.all(zb[zb != za] < za[zb != za])
    assert set(map(tuple, diff)) == set(res.edits)
    lines = gpd.read_file(res.breaches_path, layer="breaches")
    assert len(lines) == 1 and lines.crs == "EPSG:26914"
    row = lines.iloc[0]
    assert row.crossing_id == 1 and row.cells == res.cells_changed and 3.0 < row.max_cut_m < 4.5
    assert row.length_m == pytest.approx(row.geometry.length, rel=0.05)
    assert row.geometry.distance(Point(xy(STREAM_ROW, ROAD_COL))) < 1.0
    status = gpd.read_file(res.breaches_path, layer="crossings").set_index("crossing_id")["status"].to_dict()
    assert status == {1: "breached", 2: "nodata", 3: "no_channel", 4: "off_dem"}
    assert not list(tmp_path.glob(".*"))                               # no temporary left behind


def test_water_goes_under_the_road_only_after_conditioning(scene, tmp_path):
    _, dem, pts = scene
    out = tmp_path / "cond.tif"
    condition(dem, pts, out, progress=False)
    targets = crossing_targets(gpd.GeoDataFrame({"crossing_id": [1], "stream_id": [1]},
                                                geometry=[Point(xy(STREAM_ROW, ROAD_COL))], crs="EPSG:26914"),
                               streams_frame(), distance_m=40.0)
    rates = {}
    for name, path in (("raw", dem), ("conditioned", out)):
        with rasterio.open(path) as src:
            z = as_elevation(src.read(1), nodata=src.nodata)
            tf = src.transform
        for fill in (False, True):
            rates[name, fill] = pass_test(route(z, tf, fill=fill), targets, 5.0)
    assert rates["raw", False].status.tolist() == ["ponds"]       # ponds behind the embankment
    assert rates["raw", True].status.tolist() == ["diverted"]     # filled: the pond leaves by the upstream edge
    assert rates["conditioned", True].rate == 1.0
    assert rates["conditioned", True].miss_m[0] < 1.0


def test_pass_targets_split_streams_and_dem_edge():
    # one stream in two rows (as a clipped stream is written), the crossing on the second part, 20 m from the
    # DEM's east edge: the test runs from 50 m upstream to the edge, not past it
    a, b = LineString([xy(STREAM_ROW, 0), xy(STREAM_ROW, 100)]), LineString([xy(STREAM_ROW, 100), xy(STREAM_ROW, 300)])
    streams = gpd.GeoDataFrame({"stream_id": [7, 7], "parent_id": [0, 0]}, geometry=[a, b], crs="EPSG:26914")
    truth = gpd.GeoDataFrame({"crossing_id": [1], "stream_id": [7], "stream_width_m": [4.0]},
                             geometry=[Point(xy(STREAM_ROW, 180))], crs="EPSG:26914")
    bounds = (ORIGIN[0], ORIGIN[1] - N, ORIGIN[0] + N, ORIGIN[1])
    t = crossing_targets(truth, streams, 50.0, bounds)[0]
    assert t.up_m == pytest.approx(50.0) and 17.0 <= t.down_m <= 19.0 and t.half_width_m == 2.0
    assert t.start[0] == pytest.approx(xy(STREAM_ROW, 130)[0]) and bounds[0] < t.end[0] < bounds[2]


def test_passrate_command(scene, tmp_path):
    d, dem, pts = scene
    out = tmp_path / "cond.tif"
    condition(dem, pts, out, progress=False)
    truth = write_points(tmp_path / "truth.gpkg", [xy(STREAM_ROW, ROAD_COL)], stream_id=[1])
    streams = tmp_path / "streams.gpkg"
    streams_frame().to_crs("EPSG:3857").to_file(streams)
    r = CliRunner().invoke(cli, ["passrate", str(dem), str(out), "--truth", str(truth), "--streams", str(streams),
                                 "--distance", "40"])
    assert r.exit_code == 0, r.output
    assert "dem.tif: pass rate 0.000" in r.output and "cond.tif: pass rate 1.000" in r.output
    assert len(load_targets(truth, streams, "EPSG:26914", 40.0)) == 1


def test_crossings_given_twice_are_breached_once(tmp_path):
    dem = write_dem(tmp_path / "dem.tif", valley())
    pts = write_points(tmp_path / "c.gpkg", [xy(STREAM_ROW, ROAD_COL), xy(STREAM_ROW + 2, ROAD_COL + 1)])
    res = condition(dem, pts, progress=False)
    assert [o.status for o in res.outcomes] == ["breached", "no_channel"]   # the second sees the first's cut
    assert res.output is None and res.breaches_path is None


def test_integer_dem_and_sizes_from_truth_boxes(tmp_path):
    dem = write_raster(tmp_path / "dem.tif", np.round(valley()).astype(np.int16)[None], nodata=-32768)
    c = xy(STREAM_ROW, ROAD_COL)
    pts = write_points(tmp_path / "c.gpkg", [c], box_xmin=[c[0] - 9], box_xmax=[c[0] + 9], box_ymin=[c[1] - 3],
                       box_ymax=[c[1] + 3])
    res = condition(dem, pts, tmp_path / "o.tif", progress=False)
    assert res.outcomes[0].radius_m == 36.0
    with rasterio.open(tmp_path / "o.tif") as src:
        assert src.dtypes[0] == "float32" and src.nodata == -32768


def test_overwrite(scene, tmp_path):
    _, dem, pts = scene
    out = tmp_path / "o.tif"
    out.write_text("old")
    with pytest.raises(OutputExistsError):
        condition(dem, pts, out, progress=False)
    assert out.read_text() == "old"
    condition(dem, pts, out, options=ConditionOptions(overwrite=True, radius_m=30), progress=False)
    with rasterio.open(out) as src:
        assert src.tags()["GEODRAIN_RADIUS_M"] == "30"


def test_dem_quicklook(scene, tmp_path):
    _, dem, pts = scene
    out = tmp_path / "cond.tif"
    condition(dem, pts, out, progress=False)
    png = tmp_path / "look.png"
    r = CliRunner().invoke(cli, ["show", str(out), str(pts), "--before", str(dem), "--stream-area", "500",
                                 "-o", str(png)])
    assert r.exit_code == 0, r.output
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 200
    red = (img[..., 0] > 0.9) & (img[..., 1] < 0.2) & (img[..., 2] < 0.2)
    assert red.sum() > 20                                        # the breach line (found beside the DEM) is drawn
    r = CliRunner().invoke(cli, ["show", str(out), "-o", str(png), "--bounds", "1,2,3"])
    assert r.exit_code == 2 and "--bounds" in r.stderr


# --- bad inputs: one line, non-zero exit, nothing written ---------------------------------------------------

def _bad_dem(tmp_path, case):
    p = tmp_path / f"{case}.tif"
    if case == "corrupt":
        p.write_bytes(b"II*\x00" + b"not a tiff" * 50)
    elif case == "nocrs":
        write_dem(p, valley(64), crs=None)
    elif case == "geographic":
        write_dem(p, valley(64), crs="EPSG:4326", res=1e-5, origin=(-97.0, 41.0))
    elif case == "allnodata":
        write_dem(p, np.full((64, 64), NODATA, np.float32))
    return p


DEM_CASES = {"missing": "DEM not found", "corrupt": "cannot read DEM", "nocrs": "has no CRS",
             "geographic": "geographic CRS", "allnodata": "no valid cells"}
CROSSING_CASES = {"missing": "crossings file not found", "empty": "no crossings in",
                  "lines": "crossings must be points", "nocrs": "has no CRS", "far": "lies on the DEM",
                  "garbage": "cannot read crossings file"}


def run(args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stderr.strip()


def assert_clean_failure(code, err, match, folder):
    assert code != 0
    assert err.startswith("geodrain: error:") and "\n" not in err and "Traceback" not in err, err
    assert match in err, err
    assert not list(folder.glob("out*")) and not list(folder.glob(".out*"))


@pytest.mark.parametrize("case", sorted(DEM_CASES))
def test_bad_dem(tmp_path, scene, case):
    code, err = run(["condition", _bad_dem(tmp_path, case), scene[2], "-o", tmp_path / "out.tif", "-q"])
    assert_clean_failure(code, err, DEM_CASES[case], tmp_path)


@pytest.mark.parametrize("case", sorted(CROSSING_CASES))
def test_bad_crossings(tmp_path, scene, case):
    p = tmp_path / f"c_{case}.gpkg"
    c = xy(STREAM_ROW, ROAD_COL)
    if case == "empty":
        gpd.GeoDataFrame({"crossing_id": []}, geometry=[], crs="EPSG:26914").to_file(p, layer="crossings")
    elif case == "lines":
        gpd.GeoDataFrame(geometry=[LineString([c, (c[0] + 5, c[1])])], crs="EPSG:26914").to_file(p)
    elif case == "nocrs":
        gpd.GeoDataFrame(geometry=[Point(c)]).to_file(p)
    elif case == "far":
        write_points(p, [(c[0] + 10000, c[1])])
    elif case == "garbage":
        p.write_text("not a geopackage")
    code, err = run(["condition", scene[1], p, "-o", tmp_path / "out.tif", "-q"])
    assert_clean_failure(code, err, CROSSING_CASES[case], tmp_path)


@pytest.mark.parametrize("case,match", [("exists", "output exists"), ("breaches_exist", "output exists"),
                                        ("missing_dir", "output folder does not exist"),
                                        ("unwritable", "not writable"), ("format", "unsupported output format")])
def test_bad_output(tmp_path, scene, case, match):
    out = {"missing_dir": tmp_path / "nope" / "out.tif", "unwritable": "/proc/out.tif",
           "format": tmp_path / "out.png"}.get(case, tmp_path / "out.tif")
    if case == "exists":
        out.write_text("keep")
    if case == "breaches_exist":
        (tmp_path / "out_breaches.gpkg").write_text("keep")
    code, err = run(["condition", scene[1], scene[2], "-o", out, "-q"])
    assert code != 0 and err.startswith("geodrain: error:") and match in err and "\n" not in err, err
    if case == "exists":
        assert out.read_text() == "keep" and not (tmp_path / "out_breaches.gpkg").exists()
    elif case == "breaches_exist":
        assert not out.exists() and (tmp_path / "out_breaches.gpkg").read_text() == "keep"


def test_library_errors_are_typed(tmp_path, scene):
    with pytest.raises(RasterError):
        condition(tmp_path / "nope.tif", scene[2], progress=False)
    with pytest.raises(VectorError):
        condition(scene[1], tmp_path / "nope.gpkg", progress=False)
    assert [n for n, _ in pyogrio.list_layers(scene[2])] == ["crossings"]
