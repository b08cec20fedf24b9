"""Every user error: a one-line message naming the problem, a non-zero exit, no output file."""

from __future__ import annotations

import json
import shutil

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from conftest import ORIGIN, noise_image, write_raster
from geodrain.cli import cli


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    return write_raster(d / "good.tif", noise_image(300, 300))


def _bad_raster(tmp_path, case):
    p = tmp_path / f"{case}.tif"
    if case == "missing":
        return p
    if case == "corrupt":
        p.write_bytes(b"II*\x00" + b"not a tiff" * 50)
    elif case == "truncated":
        write_raster(p, noise_image(600, 600), block=128)
        p.write_bytes(p.read_bytes()[:30000])
    elif case == "bands":
        write_raster(p, noise_image(300, 300, count=3))
    elif case == "nocrs":
        write_raster(p, noise_image(300, 300), crs=None)
    elif case == "geographic":
        write_raster(p, noise_image(300, 300), crs="EPSG:4326", res=1e-5, origin=(-97.0, 41.0))
    elif case == "small":
        write_raster(p, noise_image(40, 300))
    elif case == "allnodata":
        write_raster(p, np.zeros((4, 300, 300), np.uint8), nodata=0)
    return p


def run(args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stderr.strip()


def assert_one_line_error(code, err, match):
    assert code != 0
    assert err.startswith("geodrain: error:") and "\n" not in err and "Traceback" not in err, err
    assert match in err, err


RASTER_CASES = {
    "missing": "raster not found", "corrupt": "cannot read raster", "truncated": "cannot read raster",
    "bands": "has 3 band(s)", "nocrs": "no CRS", "geographic": "geographic CRS",
    "small": "smaller than the 100 x 100 px chip", "allnodata": "no valid pixels",
}


@pytest.mark.parametrize("case", sorted(RASTER_CASES))
def test_bad_raster(tmp_path, random_bundle, case):
    raster = _bad_raster(tmp_path, case)
    out = tmp_path / "out.gpkg"
    code, err = run(["detect", raster, "-o", out, "-m", random_bundle, "-q"])
    assert_one_line_error(code, err, RASTER_CASES[case])
    assert not out.exists() and not (tmp_path / "out.gpkg.work").exists()


def test_aoi_outside_raster(tmp_path, random_bundle, good):
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs="EPSG:26914").to_file(aoi)
    out = tmp_path / "out.gpkg"
    code, err = run(["detect", good, "-o", out, "-m", random_bundle, "--aoi", aoi, "-q"])
    assert_one_line_error(code, err, "nothing valid inside the AOI")
    assert not out.exists()


def test_aoi_over_nodata_only(tmp_path, random_bundle):
    img = noise_image(300, 600)
    img[:, :, 300:] = 0
    raster = write_raster(tmp_path / "half.tif", img, nodata=0)
    aoi = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[box(ORIGIN[0] + 350, ORIGIN[1] - 250, ORIGIN[0] + 550, ORIGIN[1] - 50)],
                     crs="EPSG:26914").to_crs("EPSG:4326").to_file(aoi)
    out = tmp_path / "out.gpkg"
    code, err = run(["detect", raster, "-o", out, "-m", random_bundle, "--aoi", aoi, "-q"])
    assert_one_line_error(code, err, "no valid pixels inside the AOI")
    assert not out.exists()


@pytest.mark.parametrize("case,match", [
    ("missing_dir", "output folder does not exist"), ("unwritable", "not writable"),
    ("exists", "output exists"), ("format", "unsupported output format"),
])
def test_bad_output(tmp_path, random_bundle, good, case, match):
    out = {"missing_dir": tmp_path / "nope" / "o.gpkg", "unwritable": "/proc/o.gpkg",
           "exists": tmp_path / "o.gpkg", "format": tmp_path / "o.shp"}[case]
    if case == "exists":
        out.write_text("keep me")
    code, err = run(["detect", good, "-o", out, "-m", random_bundle, "-q"])
    assert_one_line_error(code, err, match)
    if case == "exists":
        assert out.read_text() == "keep me"


@pytest.mark.parametrize("case,match", [
    ("missing", "model bundle not found"), ("empty", "not a model bundle"),
    ("manifest", "unreadable bundle manifest"), ("weights", "does not match its sha256"),
    ("mismatch", "do not fit architecture"), ("bands", "the model expects 4"),
])
def test_bad_bundle(tmp_path, random_bundle, good, case, match):
    b = tmp_path / "bundle"
    args = []
    if case == "empty":
        b.mkdir()
    elif case != "missing":
        shutil.copytree(random_bundle, b)
    if case == "manifest":
        (b / "manifest.json").write_text("{")
    elif case == "weights":
        (b / "weights.pt").write_bytes(b"x" * 100)
    elif case == "mismatch":
        m = json.loads((b / "manifest.json").read_text())
        m["arch"]["spp"] = 3
        (b / "manifest.json").write_text(json.dumps(m))
    elif case == "bands":
        args = ["--bands", "1,2,3"]
    out = tmp_path / "o.gpkg"
    code, err = run(["detect", good, "-o", out, "-m", b, "-q", *args])
    assert_one_line_error(code, err, match)
    assert not out.exists()


def test_bad_aoi_file(tmp_path, random_bundle, good):
    aoi = tmp_path / "aoi.gpkg"
    aoi.write_text("nope")
    code, err = run(["detect", good, "-o", tmp_path / "o.gpkg", "-m", random_bundle, "--aoi", aoi, "-q"])
    assert_one_line_error(code, err, "cannot read AOI")


@pytest.mark.parametrize("args, words", [(["--bands", "a,b"], "--bands"), (["--stride", "0"], "--stride"),
                                         (["--engine", "fast"], "--engine")])
def test_usage_errors_are_one_line(tmp_path, good, args, words):
    out = tmp_path / "o.gpkg"
    code, err = run(["detect", good, "-o", out, *args])
    assert code == 2
    assert_one_line_error(code, err, words)
    assert not out.exists()


def test_unknown_command_is_one_line():
    code, err = run(["detcet"])
    assert code == 2 and "No such command 'detcet'" in err and err.count("\n") == 0


@pytest.mark.parametrize("extra, match", [
    (["--resume", "--restart"], "do not go together"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give one"),
    (["--crs", "EPSG:4326"], "not a projected CRS"),
    (["--crs", "EPSG:nope"], "unknown CRS"),
    (["--workers", "0"], "--workers"),
    (["--task-size", "0"], "--task-size"),
])
def test_bad_run_options(tmp_path, random_bundle, good, extra, match):
    out = tmp_path / "out.gpkg"
    code, err = run(["detect", good, "-o", out, "-m", random_bundle, "-q", *extra])
    assert_one_line_error(code, err, match)
    assert not out.exists() and not (tmp_path / "out.gpkg.work").exists()


@pytest.mark.parametrize("spec, match", [("empty", "no rasters"), ("nothing*.tif", "no files match"),
                                         ("list.txt", "names no rasters")])
def test_bad_input_specs(tmp_path, random_bundle, spec, match):
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("# nothing yet\n")
    code, err = run(["detect", tmp_path / spec, "-o", tmp_path / "out.gpkg", "-m", random_bundle, "-q"])
    assert_one_line_error(code, err, match)
