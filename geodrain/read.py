"""Read stage: open one or several rasters as one mosaic on the model's grid and read blocks of it.

Whatever the inputs (tiled or striped GeoTIFF, COG, VRT, several files at once, 0.6 m or 1 m, uint8 or
uint16), :func:`open_source` builds one in-memory GDAL VRT that

* mosaics the files (same CRS required) on one grid, in the order given (later files on top),
* maps file bands to the model's R, G, B, NIR (``bands``),
* resamples to the model's GSD (``average`` when coarsening, bilinear when refining),
* adds a validity band: the files' footprints, their per-dataset masks or an alpha band that is not one of
  the data bands. NAIP files often tag the NIR band as "alpha"; a selected band is always read as data.

:meth:`RasterSource.read` returns a block of data (uint8, scaled if the input is not 8-bit) and its validity
mask (nodata, masks, outside the mosaic), padding outside the raster with invalid pixels. Every dataset handle
belongs to one thread of one process (a source pickles, and a forked data-loader worker opens its own). Training
reads its crops through the same source (:mod:`geodrain.datasets.scene`), so it sees the pixels detection
sees. Errors a user can cause become :class:`~geodrain.errors.RasterError`.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.transform import Affine
from rasterio.windows import Window

from .errors import RasterError

NAIP_BANDS = (1, 2, 3, 4)

# GDAL's block cache defaults to 5 % of RAM and would grow with the raster. Blocks re-read at most a halo of
# one tile row of their neighbours, so a small cache loses nothing and keeps memory bounded whatever the
# raster size; :func:`geodrain.blocks.block_cache` raises it to what concurrent block reads need. A
# GDAL_CACHEMAX set by the user wins. (Read by GDAL when its cache is first used.)
USER_CACHEMAX = "GDAL_CACHEMAX" in os.environ
os.environ.setdefault("GDAL_CACHEMAX", "128")
_DTYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
           "float32": "Float32", "float64": "Float64"}


@dataclass(frozen=True)
class InputFile:
    """What was learnt about one input file when it was opened."""

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: object
    transform: Affine
    nodata: float | None
    block_shape: tuple[int, int]
    mask_band: str | None          # 'mask,1', an alpha band index as text, or None (footprint only)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        x0, y0 = t.c, t.f
        x1, y1 = x0 + t.a * self.width, y0 + t.e * self.height
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)


def _first_line(e: BaseException) -> str:
    """The first informative line of an error (following rasterio's 'See previous exception' chain)."""
    while "previous exception" in str(e) and (e.__cause__ or e.__context__) is not None:
        e = e.__cause__ or e.__context__
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def inspect_file(path: str | Path, bands: Sequence[int]) -> InputFile:
    """Open and check one input raster: readable, enough bands, projected CRS in metres, north-up."""
    path = str(path)
    if not os.path.exists(path):
        raise RasterError(f"raster not found: {path}")
    try:
        with rasterio.open(path) as src:
            info = _inspect(src, path, bands)
            # Touch the last block: a truncated file usually fails here rather than mid-run.
            src.read(1, window=Window(src.width - 1, src.height - 1, 1, 1))
    except RasterError:
        raise
    except (RasterioIOError, RasterioError) as e:
        raise RasterError(f"cannot read raster {path} (corrupt or truncated?): {_first_line(e)}") from None
    return info


def _inspect(src, path: str, bands: Sequence[int]) -> InputFile:
    if src.count < max(bands):
        raise RasterError(f"{path} has {src.count} band(s) but band {max(bands)} is needed "
                          f"(bands {','.join(map(str, bands))} are read as R, G, B, NIR; see --bands)")
    if min(bands) < 1:
        raise RasterError("band numbers start at 1")
    if src.crs is None:
        raise RasterError(f"{path} has no CRS (georeference it first, e.g. with gdal_edit.py -a_srs)")
    if src.crs.is_geographic:
        raise RasterError(f"{path} is in a geographic CRS ({src.crs.to_string()}, degrees); reproject it to a "
                          "projected CRS in metres such as UTM")
    t = src.transform
    if t.b != 0 or t.d != 0:
        raise RasterError(f"{path} is rotated or sheared; warp it north-up first")
    dtype = src.dtypes[bands[0] - 1]
    if dtype not in _DTYPES:
        raise RasterError(f"{path} has unsupported data type {dtype}")
    mask_band = None
    flags = src.mask_flag_enums[bands[0] - 1]
    alpha = [i + 1 for i, ci in enumerate(src.colorinterp) if ci == ColorInterp.alpha]
    if alpha and alpha[0] not in bands:
        mask_band = str(alpha[0])            # a real alpha band we do not read as data
    elif MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
        mask_band = "mask,1"                 # an internal/external mask band
    nodata = src.nodatavals[bands[0] - 1]
    return InputFile(path, src.width, src.height, src.count, dtype, src.crs, t, nodata,
                     tuple(src.block_shapes[bands[0] - 1]), mask_band)


@dataclass(frozen=True)
class Grid:
    """The model-GSD grid of the mosaic: CRS, affine transform and size in pixels."""

    crs: object
    transform: Affine
    width: int
    height: int

    @property
    def gsd(self) -> float:
        return abs(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f

    def area_km2(self) -> float:
        return self.width * self.height * self.gsd ** 2 * self.units_m ** 2 / 1e6

    @property
    def units_m(self) -> float:
        return float(self.crs.linear_units_factor[1]) if self.crs is not None else 1.0


def _mosaic_grid(files: list[InputFile], gsd_m: float | None) -> Grid:
    crs = files[0].crs
    units = float(crs.linear_units_factor[1])
    res = abs(files[0].transform.a) if gsd_m is None else gsd_m / units
    xmin = min(f.bounds[0] for f in files)
    ymin = min(f.bounds[1] for f in files)
    xmax = max(f.bounds[2] for f in files)
    ymax = max(f.bounds[3] for f in files)
    native = abs(files[0].transform.a)
    if len(files) == 1 and math.isclose(native, res, rel_tol=1e-3):
        f = files[0]
        return Grid(crs, Affine(res, 0, f.transform.c, 0, -res, f.transform.f), f.width, f.height)
    width = int(round((xmax - xmin) / res))
    height = int(round((ymax - ymin) / res))
    return Grid(crs, Affine(res, 0, xmin, 0, -res, ymax), width, height)


def _source_xml(f: InputFile, band: str, grid: Grid, resampling: str, complex_extra: str = "") -> str:
    t = f.transform
    dx = (t.c - grid.transform.c) / grid.transform.a
    dy = (t.f - grid.transform.f) / grid.transform.e
    dw = f.width * t.a / grid.transform.a
    dh = f.height * abs(t.e) / abs(grid.transform.e)
    kind = "ComplexSource" if complex_extra else "SimpleSource"
    return (f'<{kind} resampling="{resampling}"><SourceFilename relativeToVRT="0">{escape(f.path)}'
            f'</SourceFilename><SourceBand>{band}</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{f.width}" ySize="{f.height}"/>'
            f'<DstRect xOff="{dx:.10g}" yOff="{dy:.10g}" xSize="{dw:.10g}" ySize="{dh:.10g}"/>'
            f'{complex_extra}</{kind}>')


def build_vrt(files: list[InputFile], bands: Sequence[int], grid: Grid) -> str:
    """VRT XML: the data bands in model order, then a Byte validity band (255 = valid)."""
    native = abs(files[0].transform.a)
    resampling = "average" if grid.transform.a > native * 1.001 else \
        ("bilinear" if grid.transform.a < native * 0.999 else "nearest")
    dtype = _DTYPES[files[0].dtype]
    nodata = files[0].nodata
    parts = [f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">',
             f"<SRS>{escape(grid.crs.to_wkt())}</SRS>",
             "<GeoTransform>" + ", ".join(f"{v:.12g}" for v in grid.transform.to_gdal()) + "</GeoTransform>"]
    block = files[0].block_shape
    bx = min(max(block[1], 128), 1024) if len(files) == 1 else 512
    for i, b in enumerate(bands, start=1):
        parts.append(f'<VRTRasterBand dataType="{dtype}" band="{i}" blockXSize="{bx}" blockYSize="{bx}">')
        if nodata is not None:
            parts.append(f"<NoDataValue>{nodata:.17g}</NoDataValue>")
        parts.append("<ColorInterp>Gray</ColorInterp>")
        for f in files:
            extra = f"<NODATA>{f.nodata:.17g}</NODATA>" if f.nodata is not None else ""
            parts.append(_source_xml(f, str(b), grid, resampling, extra))
        parts.append("</VRTRasterBand>")
    parts.append(f'<VRTRasterBand dataType="Byte" band="{len(bands) + 1}" blockXSize="{bx}" blockYSize="{bx}">'
                 "<ColorInterp>Gray</ColorInterp>")
    for f in files:
        if f.mask_band is not None:
            parts.append(_source_xml(f, f.mask_band, grid, "nearest",
                                     "<ScaleOffset>0</ScaleOffset><ScaleRatio>255</ScaleRatio>"
                                     if f.mask_band != "mask,1" else "<ScaleRatio>1</ScaleRatio>"))
        else:
            parts.append(_source_xml(f, str(bands[0]), grid, "nearest",
                                     "<ScaleOffset>255</ScaleOffset><ScaleRatio>0</ScaleRatio>"))
    parts.append("</VRTRasterBand></VRTDataset>")
    return "".join(parts)


@dataclass
class RasterSource:
    """A mosaic of input files on the model's grid, readable block by block from any thread."""

    files: list[InputFile]
    bands: tuple[int, ...]
    grid: Grid
    vrt: str
    scale: float
    native_gsd_m: float

    def __post_init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._handles: list = []
        self._pid = os.getpid()

    def __getstate__(self) -> dict:   # dataset handles do not pickle; a copy opens its own
        return {k: v for k, v in self.__dict__.items() if k not in ("_local", "_lock", "_handles", "_pid")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def resampled(self) -> bool:
        return not math.isclose(self.native_gsd_m, self.grid.gsd * self.grid.units_m, rel_tol=1e-3)

    @property
    def block_shape(self) -> tuple[int, int]:
        """The internal block shape of the (first) file: reads are aligned to multiples of it."""
        return self.files[0].block_shape

    @property
    def nodata(self) -> float | None:
        return self.files[0].nodata

    def _dataset(self):
        if os.getpid() != self._pid:   # a forked process (data-loader worker) opens its own handles
            self._reset()
        ds = getattr(self._local, "ds", None)
        if ds is None:
            ds = rasterio.open(self.vrt)
            self._local.ds = ds
            with self._lock:
                self._handles.append(ds)
        return ds

    def close(self) -> None:
        with self._lock:
            for ds in self._handles:
                ds.close()
            self._handles.clear()
        self._local = threading.local()

    def __enter__(self) -> "RasterSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, row: int, col: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Data (C, h, w) uint8 and validity (h, w) bool of a window that may extend past the raster."""
        n = len(self.bands)
        data = np.zeros((n, height, width), np.uint8)
        valid = np.zeros((height, width), bool)
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + height, self.grid.height), min(col + width, self.grid.width)
        if r1 <= r0 or c1 <= c0:
            return data, valid
        win = Window(c0, r0, c1 - c0, r1 - r0)
        try:
            ds = self._dataset()
            part = ds.read(list(range(1, n + 1)), window=win)
            ok = ds.read(n + 1, window=win) > 0
        except (RasterioIOError, RasterioError) as e:
            raise RasterError(f"read error in {self.describe()} (corrupt or truncated?): {_first_line(e)}") \
                from None
        if self.nodata is not None:
            ok &= ~np.all(part == self.nodata, axis=0)
        data[:, r0 - row:r1 - row, c0 - col:c1 - col] = self._to_uint8(part)
        valid[r0 - row:r1 - row, c0 - col:c1 - col] = ok
        return data, valid

    def _to_uint8(self, part: np.ndarray) -> np.ndarray:
        if part.dtype == np.uint8 and self.scale == 1.0:
            return part
        out = part.astype(np.float32) * self.scale
        return np.clip(out, 0, 255).astype(np.uint8)

    def describe(self) -> str:
        return self.files[0].path if len(self.files) == 1 else f"mosaic of {len(self.files)} files"

    def overview(self, max_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """A decimated read of the whole mosaic (data, validity) for quicklooks and scale estimation."""
        f = max(1, math.ceil(max(self.grid.width, self.grid.height) / max_side))
        shape = (max(1, self.grid.height // f), max(1, self.grid.width // f))
        n = len(self.bands)
        try:
            part, ok = _read_decimated(self._dataset(), n, shape)
        except (RasterioIOError, RasterioError) as e:
            raise RasterError(f"read error in {self.describe()} (corrupt or truncated?): {_first_line(e)}") \
                from None
        if self.nodata is not None:
            ok &= ~np.all(part == self.nodata, axis=0)
        return self._to_uint8(part), ok


def _read_decimated(ds, n: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The data bands and the validity band of a VRT, read at a reduced ``shape``."""
    part = ds.read(list(range(1, n + 1)), out_shape=(n, *shape))
    ok = ds.read(n + 1, out_shape=shape) > 0
    return part, ok


def _auto_scale(files: list[InputFile], vrt: str, n: int, nodata) -> float:
    """255 / the 99.9th percentile of valid values for non-8-bit input (1 for uint8)."""
    if files[0].dtype == "uint8":
        return 1.0
    with rasterio.open(vrt) as ds:
        f = max(1, math.ceil(max(ds.width, ds.height) / 1024))
        part, ok = _read_decimated(ds, n, (max(1, ds.height // f), max(1, ds.width // f)))
    vals = part[:, ok].astype(np.float64)
    if nodata is not None:
        vals = vals[vals != nodata]
    vals = vals[np.isfinite(vals)]
    top = float(np.percentile(vals, 99.9)) if vals.size else 0.0
    return 255.0 / top if top > 0 else 1.0


def open_source(paths: str | Path | Sequence[str | Path], bands: Sequence[int] = NAIP_BANDS,
                gsd_m: float | None = 1.0, scale: float | str = "auto") -> RasterSource:
    """Open input raster(s) as one :class:`RasterSource` on a ``gsd_m`` grid (None: the first file's
    resolution) with ``bands`` as data."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [str(p) for p in paths]
    if not paths:
        raise RasterError("no input raster given")
    bands = tuple(int(b) for b in bands)
    files = [inspect_file(p, bands) for p in paths]
    first = files[0]
    for f in files[1:]:
        if f.crs != first.crs:
            raise RasterError(f"{f.path} is in {f.crs.to_string()} but {first.path} is in "
                              f"{first.crs.to_string()}; mosaicked inputs must share a CRS")
        if f.dtype != first.dtype:
            raise RasterError(f"{f.path} is {f.dtype} but {first.path} is {first.dtype}")
    units = float(first.crs.linear_units_factor[1])
    grid = _mosaic_grid(files, gsd_m)
    if grid.width <= 0 or grid.height <= 0:
        raise RasterError(f"{first.path} is empty")
    vrt = build_vrt(files, bands, grid)
    if scale == "auto":
        factor = _auto_scale(files, vrt, len(bands), first.nodata)
    else:
        factor = float(scale)
    return RasterSource(files, bands, grid, vrt, factor, abs(first.transform.a) * units)


# -- elevation: DEM windows in the imagery's CRS ------------------------------------------------------------

@dataclass(frozen=True)
class DemFile:
    """What was learnt about one DEM file when it was opened."""

    path: str
    crs: object
    transform: Affine
    width: int
    height: int
    nodata: float | None
    res_m: float                   # horizontal cell size in metres (the larger of the two axes)
    z_to_m: float                  # metres per elevation unit


def _z_to_m(crs, path: str, z_to_m: float | None) -> float:
    """Metres per elevation unit: as given, else the vertical CRS's unit when the CRS is compound, else the
    horizontal unit (state plane DEMs in feet carry elevations in feet)."""
    if z_to_m is not None:
        if not (math.isfinite(z_to_m) and z_to_m > 0):
            raise RasterError(f"the DEM's elevation unit must be a positive number of metres, got {z_to_m}")
        return float(z_to_m)
    try:
        from pyproj import CRS as ProjCRS

        pc = ProjCRS.from_wkt(crs.to_wkt())
        vert = [s for s in pc.sub_crs_list if s.is_vertical]
        if vert and vert[0].axis_info:
            return float(vert[0].axis_info[0].unit_conversion_factor)
    except Exception:  # noqa: BLE001 - fall back to the horizontal unit
        pass
    return float(crs.linear_units_factor[1])


def inspect_dem(path: str | Path, z_to_m: float | None = None) -> DemFile:
    """Open and check one DEM file: readable, one band at least, a projected CRS (any: it is warped)."""
    path = str(path)
    if not os.path.exists(path):
        raise RasterError(f"DEM not found: {path}")
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise RasterError(f"DEM {path} has no CRS (georeference it first, e.g. with gdal_edit.py -a_srs)")
            if src.crs.is_geographic:
                raise RasterError(f"DEM {path} is in a geographic CRS ({src.crs.to_string()}); its elevation "
                                  "unit cannot be related to its cells: reproject it to a projected CRS")
            if not np.issubdtype(np.dtype(src.dtypes[0]), np.number) or np.dtype(src.dtypes[0]).kind == "c":
                raise RasterError(f"DEM {path} has unsupported data type {src.dtypes[0]}")
            src.read(1, window=Window(src.width - 1, src.height - 1, 1, 1))
            units = float(src.crs.linear_units_factor[1])
            t = src.transform
            res = max(math.hypot(t.a, t.d), math.hypot(t.b, t.e)) * units
            return DemFile(path, src.crs, t, src.width, src.height, src.nodatavals[0], res,
                           _z_to_m(src.crs, path, z_to_m))
    except RasterError:
        raise
    except (RasterioIOError, RasterioError) as e:
        raise RasterError(f"cannot read DEM {path} (corrupt or truncated?): {_first_line(e)}") from None


class DemSource:
    """Elevation (metres) of one or several DEM files, read as windows on a north-up grid in ``crs``.

    Each window is warped from every file that reaches it (any CRS, any resolution, any orientation) onto
    the requested cells: ``average`` where the DEM is finer than the cells, bilinear where it is coarser.
    A cell is invalid where no file covers it, where a file's nodata or NaN falls into its resampling
    kernel; later files win where several are valid. ``anchor`` (x, y) aligns windows to a grid (the
    imagery's origin), so a DEM on the imagery's grid is aggregated by exact block means.
    """

    def __init__(self, files: list[DemFile], crs, anchor: tuple[float, float] = (0.0, 0.0)):
        from rasterio.crs import CRS

        crs = crs if isinstance(crs, CRS) else CRS.from_user_input(crs)
        self.files, self.crs, self.anchor = files, crs, anchor
        self.units_m = float(crs.linear_units_factor[1])
        self._local = threading.local()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    @property
    def res_m(self) -> float:
        return min(f.res_m for f in self.files)

    def _handles(self) -> list:
        hs = getattr(self._local, "handles", None)
        if hs is None:
            hs = self._local.handles = [rasterio.open(f.path) for f in self.files]
        return hs

    def close(self) -> None:
        for h in getattr(self._local, "handles", None) or []:
            h.close()
        self._local = threading.local()

    def window_transform(self, x: float, y: float, half_m: float, res_m: float) -> tuple[Affine, int]:
        """The transform and side (cells) of the window of about ``half_m`` around map point (x, y), with
        cells of ``res_m`` metres aligned to the anchor."""
        res = res_m / self.units_m
        n = 2 * int(math.ceil(half_m / res_m))
        ax, ay = self.anchor
        x0 = ax + math.floor((x - ax) / res - n / 2 + 0.5) * res
        y0 = ay + math.ceil((y - ay) / res + n / 2 - 0.5) * res
        return Affine(res, 0.0, x0, 0.0, -res, y0), n

    def read(self, transform: Affine, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Elevation (float64, metres) and validity of the cells of a north-up ``transform``."""
        from rasterio.warp import Resampling, reproject

        out = np.full((height, width), np.nan, np.float64)
        cell_m = abs(transform.a) * self.units_m
        for f, ds in zip(self.files, self._handles()):
            part = np.full((height, width), np.nan, np.float32)
            kind = Resampling.average if f.res_m < cell_m * 0.999 else Resampling.bilinear
            try:
                reproject(rasterio.band(ds, 1), part, src_transform=f.transform, src_crs=f.crs,
                          src_nodata=f.nodata, dst_transform=transform, dst_crs=self.crs, dst_nodata=np.nan,
                          resampling=kind)
            except (RasterioIOError, RasterioError) as e:
                raise RasterError(f"read error in DEM {f.path} (corrupt or truncated?): {_first_line(e)}") \
                    from None
            ok = np.isfinite(part)
            out[ok] = part[ok].astype(np.float64) * f.z_to_m
        return out, np.isfinite(out)


def open_dem(paths: str | Path | Sequence[str | Path], crs, anchor: tuple[float, float] = (0.0, 0.0), *,
             z_to_m: float | None = None) -> DemSource:
    """Open DEM file(s) to be read as windows in ``crs`` (the imagery's); ``z_to_m``: metres per elevation
    unit (default: from the DEM's CRS)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    paths = [str(p) for p in paths]
    if not paths:
        raise RasterError("no DEM given")
    return DemSource([inspect_dem(p, z_to_m) for p in paths], crs, anchor)
