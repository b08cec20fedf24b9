"""Input catalogue: which rasters a run reads, how they group by CRS, and which group scores each location.

A statewide run reads hundreds of NAIP quarter-quads (DOQQs) that overlap their neighbours by a few hundred
metres and lie in two or three UTM zones. This module turns what the user gave into files and groups:

* :func:`resolve_inputs`: raster paths (local or GDAL virtual file system, ``/vsicurl/...``), folders
  (every raster inside, recursively, in sorted order), glob patterns (``tiles/*.tif``, ``**`` allowed), list
  files (``.txt``/``.lst``/``.list``: one path per line, relative to the list, ``#`` comments) and STAC JSON
  (an ItemCollection, an Item or a static Catalog/Collection, read with pystac; one raster asset per item,
  ``http(s)``/``s3``/``gs``/``az`` hrefs read through GDAL's ``/vsicurl/``, ``/vsis3/`` …).
* :func:`group_by_crs`: files in one CRS form a group, which the read stage mosaics on one grid (every window
  of the group's union is scored once). Groups are ordered by CRS (EPSG code, then WKT), files within a group
  keep the order given (later files on top where they overlap, as in the mosaic).
* :class:`Ownership`: across groups, every location is scored by exactly one group. A window of group ``g``
  is evaluated only if its *centre* is owned by ``g``; its pixels and validity still come from ``g``'s own
  files. The owner of a point is the first group in this order of preference:

  1. a group whose *core* contains it: its valid footprint eroded by the window (and the footprint's own
     uncertainty), so that the window centred there is valid in that group (see :func:`make_claim`);
  2. a group whose valid footprint contains it;
  3. a group whose footprint grown by half a window diagonal contains it (a window there may still hold
     enough valid pixels);

  ties broken by group order. Ownership is a function of the point alone, evaluated in each group's own CRS
  (points are transformed exactly, footprints never are), so it partitions the plane: no window is scored
  twice by two groups, and wherever one group has a fully valid window the point is scored. Only where no
  group has a fully valid window (within half a window of the outer edge of the union) can the owner's window
  be less valid than another group's.

Footprints are the files' rectangles when they have no nodata value, mask or alpha band, and otherwise the
valid area of a decimated read of their mask (at most 512 cells a side), polygonized.
"""

from __future__ import annotations

import glob
import json
import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import RasterError
from .read import InputFile, inspect_file

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
LIST_SUFFIXES = (".txt", ".lst", ".list")
STAC_SUFFIXES = (".json",)
GLOB_CHARS = set("*?[")
# STAC asset media types geodrain can read (GeoTIFF/COG, JPEG 2000)
_RASTER_MEDIA = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff")
_SCHEMES = {"http": "/vsicurl/", "https": "/vsicurl/", "s3": "/vsis3/", "gs": "/vsigs/", "az": "/vsiaz/"}
FOOTPRINT_CELLS = 512


# --------------------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------------------
def is_vsi(path: str) -> bool:
    return str(path).startswith("/vsi")


def to_gdal_path(href: str) -> str:
    """A URL or path as GDAL opens it: ``https://…`` -> ``/vsicurl/https://…``, ``s3://b/k`` -> ``/vsis3/b/k``."""
    if "://" in href and not is_vsi(href):
        scheme, rest = href.split("://", 1)
        scheme = scheme.lower()
        if scheme == "file":
            return rest
        if scheme in ("http", "https"):
            return _SCHEMES[scheme] + href
        if scheme in _SCHEMES:
            return _SCHEMES[scheme] + rest
        raise RasterError(f"unsupported URL scheme '{scheme}://' in {href}")
    return href


def resolve_inputs(specs: str | Path | Sequence[str | Path], *, stac_asset: str | None = None) -> list[str]:
    """The raster files named by ``specs`` (paths, folders, globs, list files, STAC JSON), without repeats;
    local paths are made absolute (Dask workers may run elsewhere in the file system)."""
    if isinstance(specs, (str, Path)):
        specs = [specs]
    out: list[str] = []
    for spec in specs:
        out.extend(_resolve_one(str(spec), stac_asset))
    if not out:
        raise RasterError("no input raster given")
    seen: set[str] = set()
    unique = []
    for p in out:
        key = p if is_vsi(p) else os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p if is_vsi(p) else os.path.abspath(p))
    return unique


def _resolve_one(spec: str, stac_asset: str | None) -> list[str]:
    if is_vsi(spec) or "://" in spec:
        return [to_gdal_path(spec)]
    path = Path(spec)
    if path.is_dir():
        found = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)
        if not found:
            raise RasterError(f"no rasters ({', '.join(RASTER_SUFFIXES)}) in folder {spec}")
        return found
    if GLOB_CHARS & set(spec) and not path.exists():
        found = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
        if not found:
            raise RasterError(f"no files match {spec}")
        return found
    suffix = path.suffix.lower()
    if suffix in LIST_SUFFIXES:
        return read_list(path, stac_asset)
    if suffix in STAC_SUFFIXES:
        return read_stac(path, stac_asset)
    return [spec]


def read_list(path: Path, stac_asset: str | None = None) -> list[str]:
    """A list file: one raster (or folder, glob, URL) per line; relative paths are relative to the list."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise RasterError(f"list file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RasterError(f"cannot read list file {path}: {e}") from None
    out = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not (is_vsi(line) or "://" in line or os.path.isabs(line)):
            line = str(path.parent / line)
        out.extend(_resolve_one(line, stac_asset))
    if not out:
        raise RasterError(f"list file {path} names no rasters")
    return out


def read_stac(path: Path, asset: str | None = None) -> list[str]:
    """The raster asset of every item of a STAC ItemCollection, Item, Catalog or Collection (pystac)."""
    import pystac

    if not path.exists():
        raise RasterError(f"STAC file not found: {path}")
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RasterError(f"cannot read STAC file {path}: {e}") from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    try:
        if kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(doc, preserve_dict=False))
        elif kind == "Feature":
            items = [pystac.Item.from_dict(doc)]
        elif kind in ("Catalog", "Collection"):
            cat = pystac.read_file(str(path.resolve()))
            items = list(cat.get_items(recursive=True))
        else:
            raise RasterError(f"{path} is not a STAC ItemCollection, Item, Catalog or Collection "
                              f"(type {kind!r})")
    except RasterError:
        raise
    except Exception as e:  # noqa: BLE001 - pystac raises several types for malformed documents
        raise RasterError(f"invalid STAC in {path}: {str(e).splitlines()[0][:200]}") from None
    if not items:
        raise RasterError(f"STAC file {path} has no items")
    base = path.resolve().parent
    return [_stac_href(item, asset, base) for item in items]


def _stac_href(item, asset: str | None, base: Path) -> str:
    assets = item.assets
    if asset is not None:
        if asset not in assets:
            raise RasterError(f"STAC item {item.id} has no asset '{asset}' (it has {', '.join(assets)})")
        chosen = assets[asset]
    elif "image" in assets:                     # NAIP in the Planetary Computer and elsewhere
        chosen = assets["image"]
    else:
        rasters = [a for a in assets.values()
                   if (a.media_type or "").split(";")[0].strip() in _RASTER_MEDIA
                   and (not a.roles or "data" in a.roles)]
        if len(rasters) != 1:
            raise RasterError(f"STAC item {item.id} has {len(rasters)} raster data assets; "
                              f"name one with --stac-asset (assets: {', '.join(assets)})")
        chosen = rasters[0]
    href = chosen.href
    if not ("://" in href or is_vsi(href) or os.path.isabs(href)):
        self_href = item.get_self_href()
        root = Path(self_href).parent if self_href and "://" not in self_href else base
        href = str(root / href)
    return to_gdal_path(href)


def inspect_files(paths: Sequence[str], bands: Sequence[int], threads: int = 8) -> list[InputFile]:
    """:func:`~geodrain.read.inspect_file` on every path (in parallel: GDAL releases the GIL), in order."""
    if len(paths) <= 2:
        return [inspect_file(p, bands) for p in paths]
    with ThreadPoolExecutor(max_workers=min(threads, len(paths))) as pool:
        return list(pool.map(lambda p: inspect_file(p, bands), paths))


def crs_key(crs) -> tuple[int, str]:
    """Sort key of a CRS: EPSG code (unknown last), then WKT."""
    epsg = crs.to_epsg()
    return (epsg if epsg is not None else 1 << 30, crs.to_wkt())


def group_by_crs(files: Sequence[InputFile]) -> list[list[InputFile]]:
    """Files split by CRS (groups ordered by :func:`crs_key`, files in the order given)."""
    groups: dict[str, list[InputFile]] = {}
    crs_of: dict[str, object] = {}
    for f in files:
        key = f.crs.to_wkt()
        groups.setdefault(key, []).append(f)
        crs_of[key] = f.crs
    return [groups[k] for k in sorted(groups, key=lambda k: crs_key(crs_of[k]))]


# --------------------------------------------------------------------------------------------------------
# output CRS
# --------------------------------------------------------------------------------------------------------
DEFAULT_EQUAL_AREA = "EPSG:5070"   # NAD83 / Conus Albers: equal-area, metres, all of the contiguous US


def output_crs(group_crs: Sequence[object], lonlat_bounds: tuple[float, float, float, float] | None,
               requested: str | None = None):
    """The CRS crossings are merged and written in (a rasterio CRS).

    ``requested`` (``--crs``) if given, which must be projected; else the inputs' CRS when they share one;
    else EPSG:5070 (NAD83 / Conus Albers, equal-area) when the inputs lie within its area of use (the
    contiguous US), otherwise a Lambert azimuthal equal-area projection centred on the inputs.
    """
    from pyproj import CRS as PCRS
    from rasterio.crs import CRS

    if requested:
        try:
            crs = CRS.from_user_input(requested)
        except Exception:  # noqa: BLE001 - rasterio raises CRSError subclasses and others
            raise RasterError(f"unknown CRS {requested!r} (use e.g. EPSG:5070 or a WKT/PROJ string)") from None
        if not crs.is_projected:
            raise RasterError(f"--crs {requested} is not a projected CRS; crossings are merged in metres "
                              "(GeoJSON output is written in WGS 84 anyway)")
        return crs
    if len(group_crs) == 1:
        return group_crs[0]
    if lonlat_bounds is not None:
        w, s, e, n = lonlat_bounds
        aou = PCRS(DEFAULT_EQUAL_AREA).area_of_use
        if aou is not None and w >= aou.west and e <= aou.east and s >= aou.south and n <= aou.north:
            return CRS.from_user_input(DEFAULT_EQUAL_AREA)
        lon0, lat0 = (w + e) / 2, (s + n) / 2
        return CRS.from_user_input(f"+proj=laea +lat_0={lat0:.4f} +lon_0={lon0:.4f} +x_0=0 +y_0=0 "
                                   "+ellps=GRS80 +units=m +no_defs")
    return CRS.from_user_input(DEFAULT_EQUAL_AREA)


# --------------------------------------------------------------------------------------------------------
# footprints and ownership
# --------------------------------------------------------------------------------------------------------
def has_invalid_pixels(f: InputFile) -> bool:
    """Whether a file can have invalid pixels inside its rectangle (nodata value, mask or alpha band)."""
    return f.nodata is not None or f.mask_band is not None


def file_footprint(f: InputFile, max_cells: int = FOOTPRINT_CELLS):
    """(polygon of the file's valid pixels in its CRS, uncertainty in CRS units).

    A file without nodata, mask or alpha is valid over its whole rectangle (exact). Otherwise its dataset mask
    is read decimated to at most ``max_cells`` a side (overviews are used where the file has them) and
    polygonized; the polygon is then uncertain by about one decimated cell.
    """
    import rasterio
    from rasterio.features import shapes
    from rasterio.transform import Affine
    from shapely.geometry import box, shape

    import shapely

    if not has_invalid_pixels(f):
        return box(*f.bounds), 0.0
    k = max(1, math.ceil(max(f.width, f.height) / max_cells))
    h, w = max(1, math.ceil(f.height / k)), max(1, math.ceil(f.width / k))
    try:
        with rasterio.open(f.path) as src, warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NodataShadowWarning)
            mask = src.dataset_mask(out_shape=(h, w)) > 0
    except rasterio.errors.RasterioError as e:
        raise RasterError(f"cannot read the mask of {f.path}: {str(e).splitlines()[0][:200]}") from None
    t = f.transform @ Affine.scale(f.width / w, f.height / h)
    with warnings.catch_warnings():   # the mask array has no georeferencing of its own: ``t`` is it
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        polys = [shape(geom) for geom, v in shapes(mask.astype(np.uint8), mask=mask, transform=t) if v]
    cell = math.hypot(t.a, t.e)
    if not polys:
        return shapely.Polygon(), cell
    return shapely.union_all(polys).simplify(cell / 2), cell


@dataclass
class Claim:
    """One group's footprint at the three ownership tiers, in the group's CRS (WKT)."""

    crs_wkt: str
    core: object
    valid: object
    halo: object

    def tiers(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """0 (core), 1 (valid), 2 (halo) or 3 (none) for points in this claim's CRS."""
        import shapely

        t = np.full(len(x), 3, np.int8)
        if len(x) == 0 or self.halo.is_empty:
            return t
        x0, y0, x1, y1 = self.halo.bounds
        near = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
        if not near.any():
            return t
        xs, ys = x[near], y[near]
        sub = np.full(len(xs), 3, np.int8)
        sub[shapely.contains_xy(self.halo, xs, ys)] = 2
        sub[shapely.contains_xy(self.valid, xs, ys)] = 1
        sub[shapely.contains_xy(self.core, xs, ys)] = 0
        t[near] = sub
        return t

    def clipped(self, region) -> "Claim":
        """The claim restricted to ``region`` (a polygon in this CRS), to keep task payloads small."""
        return Claim(self.crs_wkt, self.core.intersection(region), self.valid.intersection(region),
                     self.halo.intersection(region))


def make_claim(crs, footprints: Sequence[tuple[object, float]], window_m: float, units_m: float) -> Claim:
    """A group's claim from its files' footprints; ``window_m`` is the model window's side in metres.

    The core is the valid footprint eroded by the window (a square in the group's pixel axes): the points
    whose four window corners and whose inscribed circle lie in the footprint, so a window centred there is
    entirely valid wherever the footprint is locally convex, and at least 78 % valid otherwise (the part of a
    square outside its inscribed circle). The halo grows the footprint by half a window diagonal.
    """
    import shapely
    from shapely import affinity

    valid = shapely.union_all([p for p, _ in footprints])
    err = max((e for _, e in footprints), default=0.0)
    half = window_m / units_m / 2 + 2 * err
    core = valid.buffer(-half, join_style="mitre")
    for dx in (-half, half):
        for dy in (-half, half):
            core = core.intersection(affinity.translate(valid, dx, dy))
    margin = window_m / units_m * math.sqrt(2) / 2 + 2 * err
    return Claim(crs.to_wkt(), core, valid, valid.buffer(margin, join_style="mitre"))


@dataclass
class Ownership:
    """Which group owns each point (see the module docstring); picklable, transformers made on demand."""

    claims: list[Claim]
    _transformers: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self):
        return {"claims": self.claims}

    def __setstate__(self, state):
        self.claims = state["claims"]
        self._transformers = {}

    def _to(self, src_wkt: str, dst_wkt: str):
        from pyproj import Transformer

        key = (src_wkt, dst_wkt)
        if key not in self._transformers:
            self._transformers[key] = Transformer.from_crs(src_wkt, dst_wkt, always_xy=True)
        return self._transformers[key]

    def owner(self, crs_wkt: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index of the owning group for points in ``crs_wkt``; -1 where no group has data."""
        x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
        best = np.full(len(x), 3 * len(self.claims), np.int64)   # tier * n + group
        n = len(self.claims)
        for k, claim in enumerate(self.claims):
            if claim.crs_wkt == crs_wkt:
                xs, ys = x, y
            else:
                xs, ys = self._to(crs_wkt, claim.crs_wkt).transform(x, y)
                xs, ys = np.asarray(xs), np.asarray(ys)
            rank = claim.tiers(xs, ys).astype(np.int64) * n + k
            np.minimum(best, rank, out=best)
        return np.where(best < 3 * n, best % n, -1)

    def owned(self, group: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether ``group`` owns each point (given in that group's CRS)."""
        if len(self.claims) <= 1:
            return np.ones(np.size(x), bool)
        return self.owner(self.claims[group].crs_wkt, x, y) == group


def transform_geometry(geom, src_crs, dst_crs, segment: float | None = None):
    """A polygon in another CRS (edges densified to ``segment`` source units first); for areas and
    planning only: ownership itself never transforms polygons."""
    import shapely
    from pyproj import Transformer

    if geom.is_empty:
        return geom
    if segment:
        geom = shapely.segmentize(geom, segment)
    tr = Transformer.from_crs(src_crs, dst_crs, always_xy=True)
    return shapely.transform(geom, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def lonlat_bounds(polys_and_crs: Iterable[tuple[object, object]]) -> tuple[float, float, float, float]:
    """Longitude/latitude bounds of polygons given in their own CRS."""
    bounds = []
    for geom, crs in polys_and_crs:
        if geom.is_empty:
            continue
        g = transform_geometry(geom, crs, "EPSG:4326", segment=max(1.0, math.sqrt(geom.area) / 50))
        bounds.append(g.bounds)
    if not bounds:
        return (0.0, 0.0, 0.0, 0.0)
    b = np.array(bounds)
    return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())
