"""The reader: any layout gives the same pixels; masks, resampling, scaling; bad inputs fail clearly."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from conftest import ORIGIN, noise_image, write_raster
from geodrain.errors import RasterError
from geodrain.read import open_source


def _read_all(src):
    return src.read(0, 0, src.grid.height, src.grid.width)


def test_tiled_striped_and_vrt_mosaic_read_the_same(tmp_path):
    img = noise_image(300, 420)
    tiled = write_raster(tmp_path / "tiled.tif", img, block=128)
    striped = write_raster(tmp_path / "striped.tif", img, tiled=False)
    # 2 x 2 split, mosaicked by the reader
    parts = []
    for i, (r0, r1) in enumerate([(0, 150), (150, 300)]):
        for j, (c0, c1) in enumerate([(0, 200), (200, 420)]):
            parts.append(write_raster(tmp_path / f"p{i}{j}.tif", img[:, r0:r1, c0:c1],
                                      origin=(ORIGIN[0] + c0, ORIGIN[1] - r0)))
    ref = None
    for inputs in ([tiled], [striped], parts):
        with open_source(inputs) as src:
            data, valid = _read_all(src)
            assert (src.grid.width, src.grid.height) == (420, 300)
            assert valid.all()
            if ref is None:
                ref = data
            assert np.array_equal(data, ref)
    assert np.array_equal(ref, img)


def test_read_past_the_edge_is_invalid(tmp_path):
    path = write_raster(tmp_path / "a.tif", noise_image(120, 130))
    with open_source(path) as src:
        data, valid = src.read(-10, 100, 50, 50)
    assert valid[10:, :30].all() and not valid[:10].any() and not valid[:, 30:].any()
    assert (data[:, :10] == 0).all()


def test_mosaic_gap_is_invalid(tmp_path):
    a = write_raster(tmp_path / "a.tif", noise_image(100, 100))
    b = write_raster(tmp_path / "b.tif", noise_image(100, 100, seed=1), origin=(ORIGIN[0] + 150, ORIGIN[1]))
    with open_source([a, b]) as src:
        _, valid = _read_all(src)
    assert src.grid.width == 250
    assert valid[:, :100].all() and not valid[:, 100:150].any() and valid[:, 150:].all()


def test_nodata_mask(tmp_path):
    img = noise_image(100, 100)
    img[:, :, :30] = 0
    path = write_raster(tmp_path / "nd.tif", img, nodata=0)
    with open_source(path) as src:
        _, valid = _read_all(src)
    assert not valid[:, :30].any() and valid[:, 30:].all()


def test_internal_mask_band(tmp_path):
    path = write_raster(tmp_path / "m.tif", noise_image(100, 100))
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "r+") as ds:
        mask = np.full((100, 100), 255, np.uint8)
        mask[60:] = 0
        ds.write_mask(mask)
    with open_source(path) as src:
        _, valid = _read_all(src)
    assert valid[:60].all() and not valid[60:].any()


def test_nir_tagged_alpha_is_read_as_data(tmp_path):
    """NAIP files often tag band 4 (NIR) as alpha: it must be data, not a transparency mask."""
    img = noise_image(100, 100)
    img[3, :50] = 0                            # dark NIR must not become "transparent"
    path = write_raster(tmp_path / "alpha.tif", img, photometric="RGB", alpha="YES")
    with rasterio.open(path) as ds:
        assert ds.colorinterp[3] == rasterio.enums.ColorInterp.alpha
    with open_source(path) as src:
        data, valid = _read_all(src)
    assert valid.all() and np.array_equal(data, img)


def test_real_alpha_band_outside_the_data_bands_masks(tmp_path):
    img = noise_image(100, 100, count=5)
    img[4] = 255
    img[4, :, :20] = 0
    path = write_raster(tmp_path / "a5.tif", img, photometric="RGB")
    ci = rasterio.enums.ColorInterp
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ci.red, ci.green, ci.blue, ci.undefined, ci.alpha]
    with rasterio.open(path) as ds:
        assert ds.colorinterp[4] == ci.alpha
    with open_source(path) as src:
        _, valid = _read_all(src)
    assert not valid[:, :20].any() and valid[:, 20:].all()


def test_resampled_to_model_gsd(tmp_path):
    img = np.zeros((4, 500, 500), np.uint8)
    img[:, :, 250:] = 200
    path = write_raster(tmp_path / "06.tif", img, res=0.6)
    with open_source(path, gsd_m=1.0) as src:
        data, valid = _read_all(src)
        assert src.resampled and (src.grid.width, src.grid.height) == (300, 300)
    assert valid.all()
    assert data[0, :, :140].max() == 0 and data[0, :, 160:].min() == 200


def test_uint16_is_scaled(tmp_path):
    img = noise_image(100, 100, dtype=np.uint16)   # 12-bit-like values up to 4000
    path = write_raster(tmp_path / "u16.tif", img)
    with open_source(path) as src:
        data, _ = _read_all(src)
    assert data.dtype == np.uint8 and 200 < data.max() <= 255
    assert np.corrcoef(data[0].ravel(), img[0].ravel())[0, 1] > 0.99


@pytest.mark.parametrize("case,match", [
    ("missing", "not found"), ("corrupt", "cannot read raster"), ("truncated", "cannot read raster"),
    ("bands", "has 3 band"), ("nocrs", "no CRS"), ("geographic", "geographic CRS"),
])
def test_bad_rasters(tmp_path, case, match):
    path = tmp_path / "bad.tif"
    if case == "corrupt":
        path.write_bytes(b"II*\x00" + b"garbage" * 100)
    elif case == "truncated":
        write_raster(path, noise_image(600, 600), block=128)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "bands":
        write_raster(path, noise_image(100, 100, count=3))
    elif case == "nocrs":
        write_raster(path, noise_image(100, 100), crs=None)
    elif case == "geographic":
        write_raster(path, noise_image(100, 100), crs="EPSG:4326", res=1e-5, origin=(-97.0, 41.0))
    with pytest.raises(RasterError, match=match):
        open_source(path)


def test_mixed_crs_mosaic_is_refused(tmp_path):
    a = write_raster(tmp_path / "a.tif", noise_image(100, 100))
    b = write_raster(tmp_path / "b.tif", noise_image(100, 100), crs="EPSG:26915")
    with pytest.raises(RasterError, match="share a CRS"):
        open_source([a, b])


def test_block_cache_is_sized_to_concurrent_reads_not_to_the_raster(tmp_path):
    from rasterio.env import get_gdal_config

    from geodrain.blocks import MAX_CACHE_BYTES, MIN_CACHE_BYTES, block_cache, cache_bytes

    src = open_source(write_raster(tmp_path / "a.tif", noise_image(1024, 1024), block=128), (1, 2, 3, 4), 1.0)
    # 64 threads x blocks of 520² px on 128² tiles: (5 + 1)² tiles x 128² px x 4 bands each, 25 % margin
    sized = int(1.25 * 64 * 36 * 128 * 128 * 4)
    assert cache_bytes(src, 520, 520, 64) == sized
    assert cache_bytes(src, 520, 520, 2) == MIN_CACHE_BYTES          # a CPU run keeps the floor
    # a block larger than the raster needs no more tiles than the raster has: 8 x 8
    assert cache_bytes(src, 4096, 4096, 64) == int(1.25 * 64 * 64 * 128 * 128 * 4)
    assert cache_bytes(src, 520, 520, 10_000) == MAX_CACHE_BYTES
    with block_cache(src, 520, 520, 64):
        assert int(get_gdal_config("GDAL_CACHEMAX")) == sized
        data, valid = src.read(0, 0, 300, 300)
    assert data.shape == (4, 300, 300) and valid.all()
    src.close()


def test_read_threads_follow_the_engine():
    import os

    import torch

    from geodrain.blocks import default_read_threads

    assert default_read_threads(torch.device("cpu"), "dense") == 2
    assert default_read_threads(torch.device("cuda"), "chip") == 2
    assert default_read_threads(torch.device("cuda"), "dense") == max(2, min(16, os.cpu_count() or 2))


# -- grids GDAL allows that are not north-up with square pixels: read exactly or refused, never misplaced --


def _write_oriented(path, img, *, sx=1.0, sy=1.0, flip_x=False, flip_y=False, nodata=None, dtype=None):
    """Write ``img`` (north-up rows, west-to-east columns) with pixel size sx x sy over the same ground as the
    north-up file at ORIGIN, storing rows south-first and/or columns east-first if asked."""
    import rasterio
    from rasterio.transform import Affine

    count, h, w = img.shape
    data = img[:, ::-1] if flip_y else img
    data = data[:, :, ::-1] if flip_x else data
    x0 = ORIGIN[0] + w * sx if flip_x else ORIGIN[0]
    y0 = ORIGIN[1] - h * sy if flip_y else ORIGIN[1]
    t = Affine(-sx if flip_x else sx, 0, x0, 0, sy if flip_y else -sy, y0)
    prof = dict(driver="GTiff", width=w, height=h, count=count, dtype=dtype or img.dtype.name, crs="EPSG:26914",
                transform=t, tiled=True, blockxsize=128, blockysize=128)
    if nodata is not None:
        prof["nodata"] = nodata
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.ascontiguousarray(data))
    return path


@pytest.mark.parametrize("flip_x, flip_y", [(False, True), (True, False), (True, True)],
                         ids=["south-up", "east-to-west", "both"])
def test_flipped_rasters_read_like_north_up(tmp_path, flip_x, flip_y):
    img = noise_image(240, 300)
    ref_path = write_raster(tmp_path / "ref.tif", img)
    path = _write_oriented(tmp_path / "flip.tif", img, flip_x=flip_x, flip_y=flip_y)
    with open_source(ref_path) as ref, open_source(path) as src:
        assert src.grid.transform == ref.grid.transform
        assert (src.grid.width, src.grid.height) == (300, 240)
        data, valid = _read_all(src)
        assert valid.all() and np.array_equal(data, img)
        # a window across the edge: same pixels and validity as the north-up file
        a, va = src.read(-20, 270, 64, 64)
        b, vb = ref.read(-20, 270, 64, 64)
        assert np.array_equal(a, b) and np.array_equal(va, vb)
        ov, ovalid = src.overview(100)      # 3 x decimation: the same pixels picked either way
        rov, _ = ref.overview(100)
        assert np.array_equal(ov, rov) and ovalid.all()


def test_mosaic_of_south_up_files(tmp_path):
    img = noise_image(200, 300)
    left = _write_oriented(tmp_path / "l.tif", img[:, :, :150], flip_y=True)
    right_img = img[:, :, 150:]
    import rasterio
    from rasterio.transform import Affine

    with rasterio.open(tmp_path / "r.tif", "w", driver="GTiff", width=150, height=200, count=4, dtype="uint8",
                       crs="EPSG:26914", transform=Affine(1, 0, ORIGIN[0] + 150, 0, 1, ORIGIN[1] - 200)) as dst:
        dst.write(np.ascontiguousarray(right_img[:, ::-1]))
    with open_source([left, tmp_path / "r.tif"]) as src:
        data, valid = _read_all(src)
    assert valid.all() and np.array_equal(data, img)


def test_mosaic_mixing_orientations_is_refused(tmp_path):
    img = noise_image(100, 100)
    a = write_raster(tmp_path / "a.tif", img)
    b = _write_oriented(tmp_path / "b.tif", img, flip_y=True)
    with pytest.raises(RasterError, match="south-up"):
        open_source([a, b])


@pytest.mark.parametrize("sy", [2.0, 0.5])
def test_non_square_pixels_grid_from_both_sizes(tmp_path, sy):
    """1 m x 2 m (or 1 m x 0.5 m) pixels: the 1 m grid spans the file's real height, not its row count."""
    h = 120
    ramp_x = noise_image(1, 200)[0, 0].astype(float) % 100
    img = np.broadcast_to(10 + np.arange(h)[:, None] + ramp_x[None, :], (4, h, 200)).astype(np.uint8)
    path = _write_oriented(tmp_path / "ns.tif", img, sy=sy)
    with open_source(path, gsd_m=1.0) as src:
        assert (src.grid.width, src.grid.height) == (200, int(h * sy))
        assert src.grid.transform.a == 1.0 and src.grid.transform.e == -1.0
        assert src.grid.bounds == pytest.approx((ORIGIN[0], ORIGIN[1] - h * sy, ORIGIN[0] + 200, ORIGIN[1]))
        assert src.resampled
        data, valid = _read_all(src)
    assert valid.all()
    if sy == 2.0:     # bilinear between 2 m rows: exact on a gradient along y, away from the edges
        r = (np.arange(h * 2) + 0.5) / 2 - 0.5
        expect = 10 + r[None, :, None] + ramp_x[None, None, :]
        assert np.abs(data[:, 2:-2].astype(float) - expect[:, 2:-2]).max() <= 1
    else:             # two file rows average into one grid row
        mean = (img[:, 0::2].astype(float) + img[:, 1::2]) / 2
        assert np.abs(data.astype(float) - mean).max() <= 1


def test_non_square_pixels_at_native_gsd(tmp_path):
    """gsd_m=None (quicklooks): the finer of the two sizes, square."""
    path = _write_oriented(tmp_path / "ns.tif", noise_image(100, 100), sx=1.0, sy=2.0)
    with open_source(path, gsd_m=None) as src:
        assert (src.grid.transform.a, src.grid.transform.e) == (1.0, -1.0)
        assert (src.grid.width, src.grid.height) == (100, 200)


# -- NaN is never data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["nodata=nan", "undeclared"])
def test_nan_pixels_are_invalid_without_warnings(tmp_path, declared):
    import warnings

    img = noise_image(150, 150).astype(np.float32)
    img[:, :, :60] = np.nan
    img[2, 100:110, 100:110] = np.nan        # one band NaN: the pixel is still unusable
    path = write_raster(tmp_path / "nan.tif", img, nodata=float("nan") if declared else None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_source(path) as src:
            data, valid = _read_all(src)
            ov, ovalid = src.overview(50)
    assert not valid[:, :60].any() and not valid[100:110, 100:110].any()
    assert valid[:100, 60:].all() and valid[110:, 60:].all()
    assert data.dtype == np.uint8 and 200 < data[:, valid].max() <= 255
    assert not ovalid[:, :18].any() and ovalid[:30, 22:].all()


# -- each mosaic file keeps its own nodata and mask ----------------------------------------------------------


def test_mosaic_later_file_nodata_holds(tmp_path):
    """Only the later file declares nodata: its nodata shows the earlier file where it overlaps one and is
    invalid where nothing lies beneath."""
    a_img = noise_image(100, 200, seed=1)      # x 0..200, no nodata
    b_img = noise_image(100, 200, seed=2)      # x 100..300, nodata 0 over its x 0..60 and 150..200
    b_img[:, :, :60] = 0
    b_img[:, :, 150:] = 0
    a = write_raster(tmp_path / "a.tif", a_img)
    b = write_raster(tmp_path / "b.tif", b_img, nodata=0, origin=(ORIGIN[0] + 100, ORIGIN[1]))
    with open_source([a, b]) as src:
        data, valid = _read_all(src)
    assert src.grid.width == 300
    assert valid[:, :250].all() and not valid[:, 250:].any()
    assert np.array_equal(data[:, :, :160], a_img[:, :, :160])          # a, and a beneath b's nodata
    assert np.array_equal(data[:, :, 160:250], b_img[:, :, 60:150])     # b on top where valid


def test_mosaic_first_file_nodata_does_not_mask_the_second(tmp_path):
    """nodata=0 of the first file is not applied to the second file's (valid) zeros."""
    a_img = noise_image(100, 100, seed=1)
    b_img = noise_image(100, 100, seed=2)
    b_img[:, 40:60, 40:60] = 0                 # real black pixels in b, which declares no nodata
    a = write_raster(tmp_path / "a.tif", a_img, nodata=0)
    b = write_raster(tmp_path / "b.tif", b_img, origin=(ORIGIN[0] + 100, ORIGIN[1]))
    with open_source([a, b]) as src:
        data, valid = _read_all(src)
    assert valid.all()


def test_footprint_area_of_disjoint_files(tmp_path):
    a = write_raster(tmp_path / "a.tif", noise_image(100, 100))
    b = write_raster(tmp_path / "b.tif", noise_image(100, 100), origin=(ORIGIN[0] + 20000, ORIGIN[1] - 20000))
    with open_source([a, b]) as src:
        assert src.grid.area_km2() > 400                  # the bounding box
        assert src.footprint_km2() == pytest.approx(0.02)  # what is searched: two 100 m squares
