"""Inputs GDAL allows that once gave silent wrong answers: each run on a raster written here, compared with
the plain north-up, square-pixel, nodata=0 version of the same ground (a random-weight bundle: the same pixels
give the same scores, so the same points)."""

from __future__ import annotations

import warnings
import zipfile

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.transform import Affine
from shapely.geometry import Polygon, box

from conftest import ORIGIN, noise_image, write_raster
from geodrain.cli import cli
from geodrain.detect import DetectOptions, detect
from geodrain.errors import GeodrainWarning, RasterError, VectorError

H, W = 300, 360


def _run(inputs, bundle, out=None, **opts):
    opts = {"threshold": 0.115, "device": "cpu", "overwrite": True, **opts}   # about the median random score
    return detect(inputs, out, model=bundle, options=DetectOptions(**opts), progress=False)


def _oriented(path, img, *, flip_x=False, flip_y=False, sy=1.0, nodata=None):
    count, h, w = img.shape
    data = img[:, ::-1] if flip_y else img
    data = data[:, :, ::-1] if flip_x else data
    x0 = ORIGIN[0] + w if flip_x else ORIGIN[0]
    y0 = ORIGIN[1] - h * sy if flip_y else ORIGIN[1]
    prof = dict(driver="GTiff", width=w, height=h, count=count, dtype=img.dtype.name, crs="EPSG:26914",
                transform=Affine(-1 if flip_x else 1, 0, x0, 0, sy if flip_y else -sy, y0), tiled=True,
                blockxsize=128, blockysize=128)
    if nodata is not None:
        prof["nodata"] = nodata
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.ascontiguousarray(data))
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A smooth image (so the random model's scores vary in space) and its north-up reference run."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([120 + 60 * np.sin(xx / (17 + 5 * b)) * np.cos(yy / (23 - 3 * b)) + rng.normal(0, 8, (H, W))
                    for b in range(4)]).clip(1, 255).astype(np.uint8)
    return d, img


def _xy_sorted(r):
    xy = r.crossings.xy
    return xy[np.lexsort(xy.T[::-1])] if len(xy) else xy


@pytest.mark.parametrize("flip_x, flip_y", [(False, True), (True, False)], ids=["south-up", "east-to-west"])
def test_flipped_raster_finds_the_same_points(scene, random_bundle, flip_x, flip_y):
    d, img = scene
    ref = _run(write_raster(d / "ref.tif", img), random_bundle)
    r = _run(_oriented(d / f"flip{int(flip_x)}{int(flip_y)}.tif", img, flip_x=flip_x, flip_y=flip_y),
             random_bundle)
    assert len(ref.crossings) >= 2
    assert np.allclose(_xy_sorted(r), _xy_sorted(ref))
    x0, y0, x1, y1 = ORIGIN[0], ORIGIN[1] - H, ORIGIN[0] + W, ORIGIN[1]
    assert ((r.crossings.xy[:, 0] >= x0) & (r.crossings.xy[:, 0] <= x1)).all()
    assert ((r.crossings.xy[:, 1] >= y0) & (r.crossings.xy[:, 1] <= y1)).all()
    assert (r.windows, r.evaluated, r.area_km2) == (ref.windows, ref.evaluated, ref.area_km2)


def test_non_square_pixels_cover_the_real_extent(scene, random_bundle):
    """1 m x 2 m pixels: as many windows, as much area as the 1 m raster of the same ground."""
    d, img = scene
    ref = _run(write_raster(d / "ref.tif", img), random_bundle)
    r = _run(_oriented(d / "ns.tif", np.ascontiguousarray(img[:, ::2]), sy=2.0), random_bundle)
    assert r.source.grid.height == H and r.source.grid.width == W
    assert (r.windows, r.evaluated) == (ref.windows, ref.evaluated)
    assert r.area_km2 == pytest.approx(ref.area_km2)


def test_nan_nodata_is_never_evaluated(scene, random_bundle):
    d, img = scene
    zero = img.copy()
    zero[:, :, :150] = 0
    ref = _run(write_raster(d / "zero.tif", zero, nodata=0), random_bundle)
    nan = img.astype(np.float32)
    nan[:, :, :150] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)       # none from NaN casts
        r = _run(write_raster(d / "nan.tif", nan, nodata=float("nan")), random_bundle, scale=1.0)
    assert r.evaluated == ref.evaluated < r.windows
    assert np.allclose(_xy_sorted(r), _xy_sorted(ref))


def test_all_nan_raster_has_no_valid_pixels(tmp_path, random_bundle):
    path = write_raster(tmp_path / "allnan.tif", np.full((4, 200, 200), np.nan, np.float32), nodata=float("nan"))
    with pytest.raises(RasterError, match="no valid pixels"):
        _run(path, random_bundle)


def test_mosaic_later_file_nodata_is_not_evaluated(scene, random_bundle):
    """Only the second file declares nodata: its nodata half is skipped as in the file on its own."""
    d, img = scene
    a_img = img[:, :, :180]
    b_img = img[:, :, 180:].copy()
    b_img[:, :, 60:] = 0
    a = write_raster(d / "ma.tif", a_img)
    b = write_raster(d / "mb.tif", b_img, nodata=0, origin=(ORIGIN[0] + 180, ORIGIN[1]))
    whole = img.copy()
    whole[:, :, 240:] = 0
    ref = _run(write_raster(d / "mwhole.tif", whole, nodata=0), random_bundle)
    r = _run([a, b], random_bundle)
    assert r.evaluated == ref.evaluated < r.windows


def test_disjoint_files_report_their_own_area(tmp_path, random_bundle):
    a = write_raster(tmp_path / "a.tif", noise_image(200, 200))
    b = write_raster(tmp_path / "b.tif", noise_image(200, 200, seed=1),
                     origin=(ORIGIN[0] + 2000, ORIGIN[1] - 2000))
    r = _run([a, b], random_bundle)
    assert r.area_km2 == pytest.approx(0.08)            # two 200 m squares, not the 2.2 km box


def test_coarse_input_is_refused_unless_forced(tmp_path, random_bundle):
    path = write_raster(tmp_path / "4m.tif", noise_image(100, 100), res=4.0)
    with pytest.raises(RasterError, match="coarser than 2.5 x the model's 1 m.*force the run"):
        _run(path, random_bundle)
    with pytest.warns(GeodrainWarning, match="forced"):
        r = _run(path, random_bundle, force=True)
    assert r.evaluated > 0
    res = CliRunner().invoke(cli, ["detect", str(path), "-o", str(tmp_path / "o.gpkg"), "-m", str(random_bundle), "-q"])
    assert res.exit_code == 1 and res.stderr.strip().endswith("or force the run (--force runs it anyway)")


def test_gdal_virtual_paths(tmp_path, random_bundle):
    tif = write_raster(tmp_path / "good.tif", noise_image(200, 200))
    with zipfile.ZipFile(tmp_path / "tiles.zip", "w") as z:
        z.write(tif, "good.tif")
    r = _run(f"/vsizip/{tmp_path}/tiles.zip/good.tif", random_bundle, tmp_path / "z.gpkg")
    assert r.evaluated > 0
    with pytest.raises(RasterError, match="cannot open raster /vsizip/"):
        _run(f"/vsizip/{tmp_path}/tiles.zip/nope.tif", random_bundle)


def test_bow_tie_aoi_is_repaired_and_said(scene, random_bundle, tmp_path):
    d, img = scene
    raster = write_raster(d / "ref.tif", img)
    x0, y0 = ORIGIN[0] + 20, ORIGIN[1] - 280
    bow = Polygon([(x0, y0), (x0 + 300, y0 + 260), (x0 + 300, y0), (x0, y0 + 260)])
    assert not bow.is_valid
    aoi = tmp_path / "bow.gpkg"
    gpd.GeoDataFrame(geometry=[bow], crs="EPSG:26914").to_file(aoi)
    res = CliRunner().invoke(cli, ["detect", str(raster), "-o", str(tmp_path / "o.gpkg"), "-m", str(random_bundle),
                                   "--aoi", str(aoi), "--threshold", "0.115", "-q"])
    assert res.exit_code == 0, res.output
    assert res.stderr.strip() == (f"geodrain: warning: AOI {aoi}: 1 invalid polygon(s) (Self-intersection) "
                                  "repaired with make_valid")
    got = gpd.read_file(tmp_path / "o.gpkg", layer="crossings")
    from shapely import make_valid
    assert all(make_valid(bow).buffer(1e-6).contains(p) for p in got.geometry)


def test_multi_layer_aoi_needs_a_layer(scene, random_bundle, tmp_path):
    d, img = scene
    raster = write_raster(d / "ref.tif", img)
    aoi = tmp_path / "layers.gpkg"
    west = box(ORIGIN[0], ORIGIN[1] - H, ORIGIN[0] + 180, ORIGIN[1])
    east = box(ORIGIN[0] + 180, ORIGIN[1] - H, ORIGIN[0] + W, ORIGIN[1])
    gpd.GeoDataFrame(geometry=[west], crs="EPSG:26914").to_file(aoi, layer="west")
    gpd.GeoDataFrame(geometry=[east], crs="EPSG:26914").to_file(aoi, layer="east")
    with pytest.raises(VectorError, match=r"has 2 layers \(west, east\); choose one"):
        _run(raster, random_bundle, aoi=str(aoi))
    with pytest.raises(VectorError, match="no layer 'north'"):
        _run(raster, random_bundle, aoi=str(aoi), aoi_layer="north")
    r = _run(raster, random_bundle, aoi=str(aoi), aoi_layer="east")
    assert r.area_km2 == pytest.approx(east.area / 1e6)
    assert (r.crossings.xy[:, 0] >= ORIGIN[0] + 180).all()


def test_sparse_raster_skips_its_empty_blocks(scene, random_bundle, tmp_path):
    """A 40,000² sparse GeoTIFF (nodata declared) holding one small written area: the same points and windows
    as that area in a small file with a nodata collar, the unwritten blocks skipped unread and reported."""
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    d, img = scene
    n, r0, c0 = 40_000, 24 * 850, 24 * 425          # offsets on the window grid of stride 24
    path = tmp_path / "sparse.tif"
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=4, dtype="uint8", crs="EPSG:26914",
                       transform=from_origin(*ORIGIN, 1, 1), tiled=True, blockxsize=512, blockysize=512,
                       compress="deflate", nodata=0, sparse_ok=True) as dst:
        dst.write(img, window=Window(c0, r0, W, H))
    pad = 240                                       # the written area in a written nodata collar
    framed = np.zeros((4, H + 2 * pad, W + 2 * pad), np.uint8)
    framed[:, pad:-pad, pad:-pad] = img
    alone = write_raster(tmp_path / "alone.tif", framed, nodata=0,
                         origin=(ORIGIN[0] + c0 - pad, ORIGIN[1] - r0 + pad))
    ref = _run(alone, random_bundle, stride=24)
    r = _run(path, random_bundle, stride=24)
    assert r.evaluated == ref.evaluated > 0
    assert np.allclose(_xy_sorted(r), _xy_sorted(ref))
    assert r.area_km2 == pytest.approx(1600.0)
    assert 1595 < r.empty_km2 < 1600                 # all but the blocks around the written area
    assert "without data, skipped" in r.summary()


def test_dense_engine_on_a_partly_valid_block_scores_as_the_chip_engine(scene, random_bundle):
    """The dense engine convolves only the part of a block its kept windows cover: same scores."""
    from geodrain.blocks import BlockReader
    from geodrain.infer.config import make_engine, run_config
    from geodrain.infer.runtime import resolve_device
    from geodrain.model.bundle import load_bundle
    from geodrain.read import open_source
    from geodrain.window import WindowGrid, plan_blocks

    d, img = scene
    collar = img.copy()
    collar[:, :, :200] = 0
    collar[:, 220:] = 0
    bundle = load_bundle(random_bundle)
    with open_source(write_raster(d / "collar.tif", collar, nodata=0)) as src:
        grid = WindowGrid(src.grid.width, src.grid.height, 100, 24, bundle.context_px)
        plan = plan_blocks(grid, 512)[0]
        block = BlockReader(src, grid, None, 0.5, 1, 1).prepare(plan)
        assert 0 < block.n_windows < block.keep.size
        cfg = run_config(bundle, resolve_device("cpu"))
        dense = make_engine("dense", bundle, cfg, grid, 512).run(block)
        chip = make_engine("chip", bundle, cfg, grid, 512).run(block)
    assert np.array_equal(dense.rows, chip.rows) and np.array_equal(dense.cols, chip.cols)
    assert np.abs(dense.logits - chip.logits).max() < 1e-4 and np.abs(dense.reg - chip.reg).max() < 1e-4
