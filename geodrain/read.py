"""Read stage: open one or several rasters as one mosaic on the model's grid and read blocks of it.

Whatever the inputs (tiled or striped GeoTIFF, COG, VRT, several files at once, 0.6 m or 1 m, uint8, uint16
or float), :func:`open_source` builds one in-memory GDAL VRT that

* mosaics the files (same CRS required) on one grid, in the order given (later files on top, except where
  they are nodata or masked: there the files beneath show through),
* maps file bands to the model's R, G, B, NIR (``bands``),
* resamples to the model's GSD (``average`` when coarsening, bilinear when refining), each axis on its own,
  so non-square pixels (1 m x 2 m) land on a square grid that spans the files' real extent,
* adds a validity band built from every file's own footprint, nodata value, per-dataset mask or alpha band
  (an alpha band that is not one of the data bands). NAIP files often tag the NIR band as "alpha"; a
  selected band is always read as data.

GDAL allows grids stored south-up (positive y pixel size) or east-to-west (negative x size). A VRT source
cannot flip, so the VRT keeps the files' own orientation and :meth:`RasterSource.read` flips the pixels it
returns: the rest of the pipeline always sees a north-up, west-to-east grid (``RasterSource.grid``) and every
point lands where it is. A mosaic mixing orientations is refused, and so are rotated or sheared grids.

:meth:`RasterSource.read` returns a block of data (uint8, scaled if the input is not 8-bit) and its validity
mask (nodata, masks, outside the mosaic, NaN or infinity in any band: NaN is never data), padding outside the
raster with invalid pixels. Inputs may be GDAL virtual paths (``/vsizip/...``, ``/vsicurl/...``), checked by
opening them. Every dataset handle belongs to one thread of one process (a source pickles, and a forked
data-loader worker opens its own). Training reads its crops through the same source
(:mod:`geodrain.datasets.scene`), so it sees the pixels detection sees. Errors a user can cause become
:class:`~geodrain.errors.RasterError`.
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
from rasterio.errors import RasterBlockError, RasterioError, RasterioIOError
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

    @property
    def res(self) -> tuple[float, float]:
        """Pixel width and height in CRS units (positive, whatever the orientation)."""
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def flip(self) -> tuple[bool, bool]:
        """(columns run east to west, rows run south to north)."""
        return self.transform.a < 0, self.transform.e > 0


VIRTUAL_PREFIXES = ("/vsi", "http://", "https://", "ftp://", "s3://", "gs://", "az://", "zip://", "tar://")


def is_virtual(path: str) -> bool:
    """A GDAL virtual file system path or URL (``/vsizip/``, ``/vsicurl/``, ``s3://`` ...): only GDAL can say
    whether it exists."""
    return path.startswith(VIRTUAL_PREFIXES)


def _first_line(e: BaseException) -> str:
    """The first informative line of an error (following rasterio's 'See previous exception' chain)."""
    while "previous exception" in str(e) and (e.__cause__ or e.__context__) is not None:
        e = e.__cause__ or e.__context__
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__


def inspect_file(path: str | Path, bands: Sequence[int]) -> InputFile:
    """Open and check one input raster: readable, enough bands, projected CRS in metres, not rotated."""
    path = str(path)
    virtual = is_virtual(path)
    if not virtual and not os.path.exists(path):
        raise RasterError(f"raster not found: {path}")
    if not virtual and os.path.isdir(path):
        raise RasterError(f"{path} is a folder, not a raster (give the GeoTIFF or VRT inside it)")
    try:
        src = rasterio.open(path)
    except (RasterioIOError, RasterioError) as e:
        if virtual:
            raise RasterError(f"cannot open raster {path}: {_first_line(e)}") from None
        raise RasterError(f"cannot read raster {path} (corrupt or truncated?): {_first_line(e)}") from None
    try:
        with src:
            info = _inspect(src, path, bands)
            # Touch the last block: a truncated file usually fails here rather than mid-run.
            src.read(1, window=Window(src.width - 1, src.height - 1, 1, 1))
    except RasterError:
        raise
    except (RasterioIOError, RasterioError) as e:
        raise RasterError(f"cannot read raster {path} (corrupt or truncated?): {_first_line(e)}") from None
    return info


def check_projected(crs, name: str) -> None:
    """Refuse a raster (``name``, as messages call it) without a CRS, or in a geographic CRS (degrees)."""
    if crs is None:
        raise RasterError(f"{name} has no CRS (georeference it first, e.g. with gdal_edit.py -a_srs)")
    if crs.is_geographic:
        raise RasterError(f"{name} is in a geographic CRS ({crs.to_string()}, degrees); reproject it to a "
                          "projected CRS in metres such as UTM")


def _inspect(src, path: str, bands: Sequence[int]) -> InputFile:
    if src.count < max(bands):
        raise RasterError(f"{path} has {src.count} band(s) but band {max(bands)} is needed "
                          f"(bands {','.join(map(str, bands))} are read as R, G, B, NIR)",
                          cli_hint={"bands": "see --bands"})
    if min(bands) < 1:
        raise RasterError("band numbers start at 1")
    check_projected(src.crs, str(path))
    t = src.transform
    if t.b != 0 or t.d != 0:
        raise RasterError(f"{path} is rotated or sheared; warp it north-up first (e.g. gdalwarp)")
    if t.a == 0 or t.e == 0:
        raise RasterError(f"{path} has a zero pixel size in its geotransform")
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


def _orientation(files: list[InputFile]) -> tuple[bool, bool]:
    """The files' common orientation (flip x, flip y); a mosaic mixing orientations is refused."""
    first = files[0]
    for f in files[1:]:
        if f.flip != first.flip:
            what = "south-up" if f.flip[1] != first.flip[1] else "east-to-west"
            raise RasterError(f"{f.path} and {first.path} differ in orientation ({what} rows or columns); "
                              "warp them onto one north-up grid first (e.g. gdalwarp)")
    return first.flip


def _mosaic_grid(files: list[InputFile], gsd_m: float | None) -> Grid:
    """The north-up grid of square ``gsd_m`` pixels (None: the finest input pixel side) over all files."""
    crs = files[0].crs
    units = float(crs.linear_units_factor[1])
    res = min(files[0].res) if gsd_m is None else gsd_m / units
    xmin = min(f.bounds[0] for f in files)
    ymin = min(f.bounds[1] for f in files)
    xmax = max(f.bounds[2] for f in files)
    ymax = max(f.bounds[3] for f in files)
    if len(files) == 1 and all(math.isclose(r, res, rel_tol=1e-3) for r in files[0].res):
        f = files[0]          # the file's own pixels: keep its exact size and origin
        return Grid(crs, Affine(res, 0, xmin, 0, -res, ymax), f.width, f.height)
    width = int(round((xmax - xmin) / res))
    height = int(round((ymax - ymin) / res))
    return Grid(crs, Affine(res, 0, xmin, 0, -res, ymax), width, height)


def vrt_transform(grid: Grid, flip: tuple[bool, bool]) -> Affine:
    """The grid in the files' own orientation: the VRT's geotransform."""
    t = grid.transform
    res = t.a
    x0 = t.c + res * grid.width if flip[0] else t.c
    y0 = t.f - res * grid.height if flip[1] else t.f
    return Affine(-res if flip[0] else res, 0, x0, 0, res if flip[1] else -res, y0)


def _resampling(f: InputFile, res: float) -> str:
    """Per file: ``average`` where an axis is coarsened, bilinear where it is only refined, else nearest."""
    if any(r < res * 0.999 for r in f.res):
        return "average"
    if any(r > res * 1.001 for r in f.res):
        return "bilinear"
    return "nearest"


def _source_xml(f: InputFile, band: str, vt: Affine, resampling: str, extra: str = "",
                complex_source: bool = False) -> str:
    t = f.transform
    dx = (t.c - vt.c) / vt.a
    dy = (t.f - vt.f) / vt.e
    dw = f.width * t.a / vt.a
    dh = f.height * t.e / vt.e
    kind = "ComplexSource" if (extra or complex_source) else "SimpleSource"
    return (f'<{kind} resampling="{resampling}"><SourceFilename relativeToVRT="0">{escape(f.path)}'
            f'</SourceFilename><SourceBand>{band}</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{f.width}" ySize="{f.height}"/>'
            f'<DstRect xOff="{dx:.10g}" yOff="{dy:.10g}" xSize="{dw:.10g}" ySize="{dh:.10g}"/>'
            f'{extra}</{kind}>')


def _nodata_xml(value: float) -> str:
    return f"<NODATA>{format(value, '.17g')}</NODATA>"


def _compositing_nodata(f: InputFile) -> float | None:
    """The nodata value GDAL composites with (files beneath show through it). Not NaN: GDAL would fill a
    NaN in one band from the files beneath (or 0) and the pixel would look valid; NaN stays in the data
    instead, where any NaN band makes the pixel invalid (a NaN area of a file on top hides what is beneath)."""
    return None if f.nodata is None or math.isnan(f.nodata) else f.nodata


_VALID = "<ScaleOffset>255</ScaleOffset><ScaleRatio>0</ScaleRatio>"


def shared_nodata(files: list[InputFile]) -> float | None:
    """The nodata value every file declares alike (not NaN), else None. Then the validity band holds only
    footprints and masks, and a pixel whose every band equals it is invalid (checked on the composited
    pixels; the files beneath show through it): one validity source per file instead of one per band, so
    GDAL compares fewer pixels (the single-file case, the common one, stays as fast as it was)."""
    values = {_compositing_nodata(f) for f in files}
    return values.pop() if len(values) == 1 else None


def _validity_sources(f: InputFile, bands: Sequence[int], vt: Affine, shared: float | None) -> list[str]:
    """Sources writing 255 where ``f`` has data; where it is nodata or masked they write nothing, so the
    validity of the files beneath stays (as their pixels do in the data bands). GDAL does not use a real alpha
    band that is not the last of 2 or 4 as a mask, so a transparent area of a file on top is invalid."""
    if f.mask_band == "mask,1":        # a per-dataset (internal or .msk) mask
        return [_source_xml(f, str(bands[0]), vt, "nearest", _VALID + "<UseMaskBand>true</UseMaskBand>")]
    if f.mask_band is not None:        # a real alpha band: transparent is invalid (the file is on top there)
        return [_source_xml(f, f.mask_band, vt, "nearest", "<ScaleOffset>0</ScaleOffset><ScaleRatio>255</ScaleRatio>")]
    if shared is None and _compositing_nodata(f) is not None:  # valid where any band differs from its nodata
        return [_source_xml(f, str(b), vt, "nearest", _nodata_xml(f.nodata) + _VALID) for b in bands]
    return [_source_xml(f, str(bands[0]), vt, "nearest", _VALID)]   # the footprint (NaN: see RasterSource)


def build_vrt(files: list[InputFile], bands: Sequence[int], grid: Grid) -> str:
    """VRT XML: the data bands in model order, then a Byte validity band (255 = valid), in the files' own
    orientation (:func:`vrt_transform`)."""
    vt = vrt_transform(grid, _orientation(files))
    shared = shared_nodata(files)
    dtype = _DTYPES[files[0].dtype]
    parts = [f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">',
             f"<SRS>{escape(grid.crs.to_wkt())}</SRS>",
             "<GeoTransform>" + ", ".join(f"{v:.12g}" for v in vt.to_gdal()) + "</GeoTransform>"]
    block = files[0].block_shape
    bx = min(max(block[1], 128), 1024) if len(files) == 1 else 512
    for i, b in enumerate(bands, start=1):
        parts.append(f'<VRTRasterBand dataType="{dtype}" band="{i}" blockXSize="{bx}" blockYSize="{bx}">')
        parts.append("<ColorInterp>Gray</ColorInterp>")
        for f in files:
            nd = _compositing_nodata(f)
            extra = _nodata_xml(nd) if nd is not None else ""
            if f.mask_band == "mask,1" and len(files) > 1:
                extra += "<UseMaskBand>true</UseMaskBand>"     # masked pixels let the files beneath show
            parts.append(_source_xml(f, str(b), vt, _resampling(f, grid.transform.a), extra))
        parts.append("</VRTRasterBand>")
    parts.append(f'<VRTRasterBand dataType="Byte" band="{len(bands) + 1}" blockXSize="{bx}" blockYSize="{bx}">'
                 "<ColorInterp>Gray</ColorInterp>")
    for f in files:
        parts.extend(_validity_sources(f, bands, vt, shared))
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
    native_gsd_m: float            # the coarsest input pixel side, metres

    def __post_init__(self) -> None:
        self.flip = _orientation(self.files)
        self._float = np.dtype(self.files[0].dtype).kind == "f"
        self._nodata = shared_nodata(self.files)
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
        """Whether any input pixel side differs from the grid's."""
        res = self.grid.transform.a
        return any(not math.isclose(r, res, rel_tol=1e-3) for f in self.files for r in f.res)

    @property
    def block_shape(self) -> tuple[int, int]:
        """The internal block shape of the (first) file: reads are aligned to multiples of it."""
        return self.files[0].block_shape

    def footprint(self):
        """The union of the input files' extents (shapely), in the grid's CRS."""
        from shapely import union_all
        from shapely.geometry import box

        return union_all([box(*f.bounds) for f in self.files])

    def footprint_km2(self, within=None) -> float:
        """Area of the files' union (inside the shapely geometry ``within``): what a run searches, not the
        bounding box of files far apart."""
        fp = self.footprint()
        if within is not None:
            fp = fp.intersection(within)
        return fp.area * self.grid.units_m ** 2 / 1e6

    def coverage(self, max_cells: int = 4096) -> Coverage:
        """Where the mosaic may hold data, at most ``max_cells`` cells a side (see :class:`Coverage`): lets a
        run skip the empty parts of huge sparse rasters, and the gaps between files far apart, unread."""
        cell = max(32, -(-max(self.grid.width, self.grid.height) // max_cells))
        shape = (-(-self.grid.height // cell), -(-self.grid.width // cell))
        cells = np.zeros(shape, bool)
        for f in self.files:
            cells |= _cover(f, self.grid, cell, empty_blocks(f, self.bands), shape)
        return Coverage(cells, cell)

    def empty_km2(self, coverage: Coverage, within=None) -> float:
        """Area of the coverage cells without data inside the files' footprint (and ``within``)."""
        from rasterio.features import geometry_mask

        fp = self.footprint()
        if within is not None:
            fp = fp.intersection(within)
        if fp.is_empty or coverage.cells.all():
            return 0.0
        c = coverage.cell
        t = self.grid.transform @ Affine.scale(c)
        inside = geometry_mask([fp], out_shape=coverage.cells.shape, transform=t, invert=True)
        nr, nc = coverage.cells.shape        # the last row and column of cells may reach past the grid
        h = np.minimum(c, self.grid.height - c * np.arange(nr))
        w = np.minimum(c, self.grid.width - c * np.arange(nc))
        px = (h[:, None] * w[None, :])[inside & ~coverage.cells].sum()
        return float(px) * (self.grid.gsd * self.grid.units_m) ** 2 / 1e6

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
        # the same window in the VRT's (the files') orientation
        vr0 = self.grid.height - r1 if self.flip[1] else r0
        vc0 = self.grid.width - c1 if self.flip[0] else c0
        win = Window(vc0, vr0, c1 - c0, r1 - r0)
        try:
            ds = self._dataset()
            part = ds.read(list(range(1, n + 1)), window=win)
            ok = ds.read(n + 1, window=win) > 0
        except (RasterioIOError, RasterioError) as e:
            raise RasterError(f"read error in {self.describe()} (corrupt or truncated?): {_first_line(e)}") \
                from None
        part, ok = self._oriented(part, ok)
        data[:, r0 - row:r1 - row, c0 - col:c1 - col] = self._to_uint8(part, ok)
        valid[r0 - row:r1 - row, c0 - col:c1 - col] = ok
        return data, valid

    def _oriented(self, part: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """North-up, west-to-east pixels; NaN or infinity in any band makes a pixel invalid."""
        if self.flip[1]:
            part, ok = part[:, ::-1], ok[::-1]
        if self.flip[0]:
            part, ok = part[:, :, ::-1], ok[:, ::-1]
        if self._nodata is not None:
            ok = ok & ~np.all(part == self._nodata, axis=0)
        if self._float:
            ok = ok & np.isfinite(part).all(axis=0)
        return part, ok

    def _to_uint8(self, part: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
        if part.dtype == np.uint8 and self.scale == 1.0:
            return part
        out = part.astype(np.float32) * np.float32(self.scale)
        if self._float:
            out[:, ~ok if ok is not None else ~np.isfinite(out).all(axis=0)] = 0   # never cast NaN
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
        part, ok = self._oriented(part, ok)
        return self._to_uint8(part, ok), ok


def empty_blocks(f: InputFile, bands: Sequence[int]) -> np.ndarray | None:
    """(block rows, block cols) True where a sparse GeoTIFF never wrote the block in any data band (GDAL reads
    it back as the file's nodata, so it holds no valid pixel); None where the file cannot tell (not a GeoTIFF,
    no nodata, a mask band) or every block is written. Costs one metadata lookup per block (no decoding)."""
    if f.nodata is None or f.mask_band is not None:
        return None
    try:
        with rasterio.open(f.path) as src:
            if src.driver != "GTiff":
                return None
            bh, bw = src.block_shapes[bands[0] - 1]
            nr, nc = -(-src.height // bh), -(-src.width // bw)
            check = [bands[0]] if src.interleaving == rasterio.enums.Interleaving.pixel else list(bands)
            empty = np.ones((nr, nc), bool)
            for b in check:
                for i in range(nr):
                    for j in range(nc):
                        if empty[i, j]:
                            try:
                                src.block_size(b, i, j)
                                empty[i, j] = False
                            except RasterBlockError:      # offset 0: the block was never written
                                pass
    except (RasterioIOError, RasterioError):
        return None
    return empty if empty.any() else None


def _cover(f: InputFile, grid: Grid, cell: int, blocks: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Coverage cells (``cell`` grid px square) that overlap a written block of ``f`` (its whole extent when
    ``blocks`` is None)."""
    if blocks is None:
        data, bh, bw = np.ones((1, 1), bool), f.height, f.width
    else:
        data = ~blocks
        bh, bw = -(-f.height // data.shape[0]), -(-f.width // data.shape[1])
    m = ~f.transform @ grid.transform            # grid px -> file px (axis-aligned, maybe flipped)
    ii = np.zeros((data.shape[0] + 1, data.shape[1] + 1), np.int64)
    ii[1:, 1:] = data.cumsum(0).cumsum(1)

    def ranges(scale: float, offset: float, n_cells: int, block: int, n_blocks: int):
        e = np.arange(n_cells + 1) * cell * scale + offset    # file px of the cell edges
        lo, hi = np.minimum(e[:-1], e[1:]), np.maximum(e[:-1], e[1:])
        return (np.clip(np.floor(lo / block), 0, n_blocks).astype(np.int64),
                np.clip(np.ceil(hi / block), 0, n_blocks).astype(np.int64))

    r0, r1 = ranges(m.e, m.f, shape[0], bh, data.shape[0])
    c0, c1 = ranges(m.a, m.c, shape[1], bw, data.shape[1])
    total = ii[r1[:, None], c1[None, :]] - ii[r0[:, None], c1[None, :]] - ii[r1[:, None], c0[None, :]] \
        + ii[r0[:, None], c0[None, :]]
    return total > 0


@dataclass(frozen=True)
class Coverage:
    """Where the mosaic may hold valid pixels, in cells of ``cell`` x ``cell`` grid pixels: False only where
    it surely holds none (outside every file, or on blocks a sparse GeoTIFF never wrote)."""

    cells: np.ndarray          # (ceil(height / cell), ceil(width / cell)) bool
    cell: int

    def any(self, row0: int, col0: int, row1: int, col1: int) -> bool:
        """Whether the grid pixel region [row0, row1) x [col0, col1) may hold valid pixels."""
        c = self.cell
        return bool(self.cells[max(row0, 0) // c:-(-max(row1, 0) // c), max(col0, 0) // c:-(-max(col1, 0) // c)].any())


def _read_decimated(ds, n: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The data bands and the validity band of a VRT, read at a reduced ``shape``."""
    part = ds.read(list(range(1, n + 1)), out_shape=(n, *shape))
    ok = ds.read(n + 1, out_shape=shape) > 0
    return part, ok


def _auto_scale(files: list[InputFile], vrt: str, n: int) -> float:
    """255 / the 99.9th percentile of valid values for non-8-bit input (1 for uint8)."""
    if files[0].dtype == "uint8":
        return 1.0
    with rasterio.open(vrt) as ds:
        f = max(1, math.ceil(max(ds.width, ds.height) / 1024))
        part, ok = _read_decimated(ds, n, (max(1, ds.height // f), max(1, ds.width // f)))
    vals = part[:, ok].astype(np.float64)
    vals = vals[np.isfinite(vals)]
    top = float(np.percentile(vals, 99.9)) if vals.size else 0.0
    return 255.0 / top if top > 0 else 1.0


def open_source(paths: str | Path | Sequence[str | Path], bands: Sequence[int] = NAIP_BANDS,
                gsd_m: float | None = 1.0, scale: float | str = "auto") -> RasterSource:
    """Open input raster(s) as one :class:`RasterSource` on a north-up grid of square ``gsd_m`` pixels (None:
    the finest input pixel side) with ``bands`` as data."""
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
    _orientation(files)
    units = float(first.crs.linear_units_factor[1])
    grid = _mosaic_grid(files, gsd_m)
    if grid.width <= 0 or grid.height <= 0:
        raise RasterError(f"{first.path} is empty")
    vrt = build_vrt(files, bands, grid)
    if scale == "auto":
        factor = _auto_scale(files, vrt, len(bands))
    else:
        factor = float(scale)
        if not math.isfinite(factor) or factor <= 0:
            raise RasterError(f"scale must be a positive number, got {scale}")
    coarsest = max(r for f in files for r in f.res) * units
    return RasterSource(files, bands, grid, vrt, factor, coarsest)


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
