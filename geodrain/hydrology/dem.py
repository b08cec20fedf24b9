"""DEM input: open and check an elevation raster, read windows of it with invalid cells as NaN.

A DEM must be readable, single-band use (band 1), in a projected CRS with a north-up affine transform and
square cells. Nodata values, NaN and internal masks all make cells invalid; windows reaching past the
raster are padded with NaN. Errors a user can cause are :class:`~geodrain.errors.RasterError`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from ..errors import RasterError
from ..read import _first_line, check_projected


@dataclass(frozen=True)
class DemInfo:
    path: str
    width: int
    height: int
    crs: object
    transform: Affine
    nodata: float | None
    dtype: str
    block_shape: tuple[int, int]

    @property
    def units_m(self) -> float:
        """Metres per map unit of the CRS (1 for metres, 0.3048 for feet)."""
        return float(self.crs.linear_units_factor[1])

    @property
    def cell_m(self) -> float:
        return abs(self.transform.a) * self.units_m

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        x0, y1 = self.transform @ (0, 0)
        x1, y0 = self.transform @ (self.width, self.height)
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    @property
    def area_km2(self) -> float:
        return self.width * self.height * self.cell_m ** 2 / 1e6

    def rowcol(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (row, col) of map points (N, 2), -1 style values outside (not clipped)."""
        cols, rows = ~self.transform @ (xy[:, 0], xy[:, 1])
        return np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)


def open_dem(path: str | Path, check_data: bool = True) -> DemInfo:
    """Check a DEM and describe it; refuses what would give a silently wrong answer. ``check_data`` also
    refuses a DEM without a single valid cell (:func:`check_has_data`; it may read the whole file)."""
    path = str(path)
    if not os.path.exists(path):
        raise RasterError(f"DEM not found: {path}")
    try:
        with rasterio.open(path) as src:
            info = _inspect(src, path)
            src.read(1, window=Window(src.width - 1, src.height - 1, 1, 1))  # a truncated file fails here
            if check_data:
                _check_has_data(src, path)
    except RasterError:
        raise
    except (RasterioIOError, RasterioError) as e:
        raise RasterError(f"cannot read DEM {path} (corrupt or truncated?): {_first_line(e)}") from None
    return info


def _inspect(src, path: str) -> DemInfo:
    check_projected(src.crs, f"DEM {path}")
    t = src.transform
    if t.b != 0 or t.d != 0 or t.e >= 0:
        raise RasterError(f"DEM {path} is rotated, sheared or south-up; warp it north-up first "
                          "(gdalwarp)")
    if not math.isclose(abs(t.a), abs(t.e), rel_tol=1e-6):
        raise RasterError(f"DEM {path} has non-square cells ({abs(t.a):g} x {abs(t.e):g}); resample it to square "
                          "cells first (gdalwarp -tr)")
    dtype = src.dtypes[0]
    if dtype not in ("int16", "uint16", "int32", "uint32", "float32", "float64"):
        raise RasterError(f"DEM {path} has data type {dtype}, not elevations")
    return DemInfo(path, src.width, src.height, src.crs, t, src.nodata, dtype, tuple(src.block_shapes[0]))


def check_has_data(info: DemInfo) -> None:
    """Refuse a DEM without a single valid cell."""
    try:
        with rasterio.open(info.path) as src:
            _check_has_data(src, info.path)
    except (RasterioIOError, RasterioError) as e:
        raise RasterError(f"cannot read DEM {info.path} (corrupt or truncated?): {_first_line(e)}") from None


def _check_has_data(src, path: str) -> None:
    """Refuse a DEM without a single valid cell: a decimated look first, then block by block."""
    f = max(1, math.ceil(max(src.width, src.height) / 512))
    shape = (max(1, src.height // f), max(1, src.width // f))
    if _valid(src.read(1, out_shape=shape, masked=True)).any():
        return
    for _, win in src.block_windows(1):
        if _valid(src.read(1, window=win, masked=True)).any():
            return
    raise RasterError(f"DEM {path} has no valid cells (everything is nodata)")


def _valid(a: np.ma.MaskedArray) -> np.ndarray:
    valid = ~np.ma.getmaskarray(a)
    if np.issubdtype(a.dtype, np.floating):
        valid &= np.isfinite(a.data)
    return valid


class DemReader:
    """Windows of a DEM as float32 with NaN where invalid (nodata, masked, NaN, outside the raster)."""

    def __init__(self, info: DemInfo):
        self.info = info
        self.ds = rasterio.open(info.path)

    def close(self) -> None:
        self.ds.close()

    def __enter__(self) -> "DemReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        out = np.full((height, width), np.nan, np.float32)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + height, self.info.height), min(col + width, self.info.width)
        if r1 <= r0 or c1 <= c0:
            return out
        try:
            a = self.ds.read(1, window=Window(c0, r0, c1 - c0, r1 - r0), masked=True)
        except (RasterioIOError, RasterioError) as e:
            raise RasterError(f"read error in {self.info.path} (corrupt or truncated?): {_first_line(e)}") \
                from None
        part = a.data.astype(np.float32)
        part[~_valid(a)] = np.nan
        out[r0 - row:r1 - row, c0 - col:c1 - col] = part
        return out

    def read_all(self) -> np.ndarray:
        """The whole DEM (for whole-DEM routing, e.g. the evaluation)."""
        return self.read(0, 0, self.info.height, self.info.width)
