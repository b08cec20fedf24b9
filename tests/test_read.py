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
