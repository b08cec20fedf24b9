"""Shared fixtures: small rasters written with rasterio, and a random-weight model bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ORIGIN = (600000.0, 4500000.0)


def write_raster(path, data: np.ndarray, *, crs="EPSG:26914", res=1.0, origin=ORIGIN, tiled=True,
                 block=256, nodata=None, compress="deflate", **extra) -> Path:
    """Write (C, H, W) ``data`` as a GeoTIFF (tiled or striped) and return its path."""
    import rasterio
    from rasterio.transform import from_origin

    count, h, w = data.shape
    profile = dict(driver="GTiff", width=w, height=h, count=count, dtype=data.dtype.name,
                   transform=from_origin(origin[0], origin[1], res, res), compress=compress)
    if crs is not None:
        profile["crs"] = crs
    if tiled:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    else:
        profile.update(tiled=False, blockysize=min(8, h))
    if nodata is not None:
        profile["nodata"] = nodata
    profile.update(extra)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return Path(path)


def noise_image(h: int, w: int, count: int = 4, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hi = 255 if dtype == np.uint8 else 4000
    return rng.integers(1, hi, (count, h, w)).astype(dtype)


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory) -> Path:
    """A bundle of the smallest architecture with random weights (context 16)."""
    import torch

    from geodrain.model import build_model, resolve_arch, save_bundle

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bundles") / "tiny"
    save_bundle(build_model(resolve_arch("k1-s1-f128"), 16), path)
    return path
