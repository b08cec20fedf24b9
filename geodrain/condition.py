"""DEM conditioning at crossings: breach the digital dams where streams pass under roads.

:func:`condition` is the library API behind ``geodrain condition``. For each crossing point it reads a window
of the DEM around it, cuts the least-cost breach through the road embankment there
(:func:`geodrain.hydrology.breach.breach_window`) and keeps only the changed cells; then it copies the DEM
block by block into the output with those cells lowered. Memory stays bounded whatever the DEM size: one
window or one block at a time, plus the changed cells. Windows that overlap see the breaches cut before
them. The outputs are a GeoTIFF on the input's grid (same CRS, transform, nodata; tiled, compressed) and a
GeoPackage with the breaches as lines and every crossing with what was done there, both written atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from .errors import VectorError
from .hydrology.breach import Breach, NoBreach, breach_window
from .hydrology.dem import DemInfo, DemReader, check_has_data, open_dem
from .output import atomic_file, check_output

RASTER_FORMATS = {".tif": "GTiff", ".tiff": "GTiff"}
MIN_RADIUS_M, MAX_RADIUS_M = 30.0, 60.0
DEFAULT_RADIUS_M = 40.0        # for crossings that carry no structure size
RADIUS_PER_SIZE = 2.0          # radius = this × the structure's larger side, within the bounds above
BLOCK = 512                    # output tile side
COPY_ROWS = 2048               # rows of the DEM copied at once (and at most this many columns)

BREACHED, NO_CHANNEL, TOO_DEEP, OFF_DEM, NODATA = "breached", "no_channel", "too_deep", "off_dem", "nodata"
STATUS_TEXT = {BREACHED: "breached", NO_CHANNEL: "no dammed channel within the radius",
               TOO_DEEP: "cut deeper than --max-breach-m", OFF_DEM: "off the DEM", NODATA: "on nodata"}


@dataclass
class ConditionOptions:
    """Everything ``geodrain condition`` can set."""

    radius_m: float | None = None    # None: from each crossing's structure size (width_m, height_m)
    max_breach_m: float = 15.0       # deepest cut allowed (DEM z units, metres)
    min_dam_m: float = 0.25          # an embankment must hold water at least this deep to be breached
    breaches: str | Path | None = None   # the breach lines (.gpkg); None: beside the output
    overwrite: bool = False


@dataclass
class CrossingPoints:
    """Crossing points in the DEM's CRS with their ids and structure sizes (NaN where unknown)."""

    ids: np.ndarray
    xy: np.ndarray
    size_m: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Outcome:
    """What was done at one crossing."""

    crossing_id: int
    x: float
    y: float
    status: str
    radius_m: float
    dam_m: float = 0.0
    max_cut_m: float = 0.0
    length_m: float = 0.0
    cells: int = 0
    line: np.ndarray | None = None    # (K, 2) map coordinates of the breach path, dammed side first


@dataclass
class ConditionResult:
    output: Path | None
    breaches_path: Path | None
    dem: DemInfo
    outcomes: list[Outcome]
    edits: dict[tuple[int, int], float] = field(repr=False, default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def cells_changed(self) -> int:
        return len(self.edits)

    def counts(self) -> dict[str, int]:
        out = {k: 0 for k in STATUS_TEXT}
        for o in self.outcomes:
            out[o.status] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        cuts = [o.max_cut_m for o in self.outcomes if o.status == BREACHED]
        parts = [f"{len(self.outcomes)} crossings: {c[BREACHED]} breached ({self.cells_changed} cells changed"
                 + (f", deepest cut {max(cuts):.2f} m" if cuts else "") + ")"]
        parts += [f"{c[k]} {STATUS_TEXT[k]}" for k in (NO_CHANNEL, TOO_DEEP, OFF_DEM, NODATA) if c[k]]
        return ", ".join(parts) + f"; {self.dem.area_km2:.2f} km², {self.seconds:.1f} s"


def default_breaches_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.stem + "_breaches.gpkg")


def crossing_radius(size_m: np.ndarray, radius_m: float | None) -> np.ndarray:
    """Search radius per crossing: the given one, or twice the structure's larger side (30-60 m; 40 m where
    the crossing carries no size)."""
    if radius_m is not None:
        return np.full(len(size_m), float(radius_m))
    size_m = np.asarray(size_m, np.float64).reshape(-1, 2)
    big = np.fmax(size_m[:, 0], size_m[:, 1])       # NaN only where both are unknown
    r = np.clip(RADIUS_PER_SIZE * big, MIN_RADIUS_M, MAX_RADIUS_M)
    return np.where(np.isfinite(r), r, DEFAULT_RADIUS_M)


def load_crossings(path: str | Path, dem: DemInfo) -> CrossingPoints:
    """Crossing points from any vector file (layer ``crossings`` if there is one), reprojected to the DEM's
    CRS. Refuses a missing or unreadable file, no features, features that are not points, no CRS, and points
    of which none lies on the DEM."""
    import geopandas as gpd
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise VectorError(f"crossings file not found: {path}")
    try:
        names = [n for n, _ in pyogrio.list_layers(path)]
        layer = "crossings" if "crossings" in names else None
        gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
    except Exception as e:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"cannot read crossings file {path}: {str(e).splitlines()[0][:200]}") from None
    gdf = gdf[gdf.geometry.notna() & ~gdf.geometry.is_empty] if len(gdf) else gdf
    if len(gdf) == 0:
        raise VectorError(f"no crossings in {path}")
    kinds = sorted(set(gdf.geometry.geom_type) - {"Point"})
    if kinds:
        raise VectorError(f"{path} holds {', '.join(kinds)} geometries; crossings must be points")
    if gdf.crs is None:
        raise VectorError(f"{path} has no CRS")
    sizes = _structure_sizes(gdf)
    if gdf.crs != dem.crs:
        gdf = gdf.to_crs(dem.crs)
    xy = np.column_stack([gdf.geometry.x.to_numpy(), gdf.geometry.y.to_numpy()]).astype(np.float64)
    x0, y0, x1, y1 = dem.bounds
    if not np.any((xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] > y0) & (xy[:, 1] <= y1)):
        raise VectorError(f"none of the {len(xy)} crossings in {path} lies on the DEM {dem.path}")
    ids = gdf["crossing_id"].to_numpy(np.int64) if "crossing_id" in gdf.columns else np.arange(1, len(gdf) + 1)
    return CrossingPoints(ids, xy, sizes, str(path))


def _structure_sizes(gdf) -> np.ndarray:
    """(width, height) in metres from ``width_m``/``height_m`` (geodrain detect) or the ``box_*`` columns
    (geodrain synth truth, in the file's CRS); NaN where absent."""
    n = len(gdf)
    if {"width_m", "height_m"} <= set(gdf.columns):
        return np.column_stack([gdf["width_m"].to_numpy(np.float64), gdf["height_m"].to_numpy(np.float64)])
    box = ["box_xmin", "box_ymin", "box_xmax", "box_ymax"]
    if set(box) <= set(gdf.columns) and gdf.crs is not None and gdf.crs.is_projected:
        units = float(gdf.crs.axis_info[0].unit_conversion_factor)
        return units * np.column_stack([(gdf["box_xmax"] - gdf["box_xmin"]).to_numpy(np.float64),
                                        (gdf["box_ymax"] - gdf["box_ymin"]).to_numpy(np.float64)])
    return np.full((n, 2), np.nan)


def condition(dem: str | Path, crossings: str | Path, output: str | Path | None = None, *,
              options: ConditionOptions | None = None, progress: bool = True) -> ConditionResult:
    """Breach the DEM at every crossing and (with ``output``) write the conditioned DEM and the breaches."""
    t0 = time.perf_counter()
    options = options or ConditionOptions()
    breaches_path = None
    if output is not None:
        output = check_output(output, options.overwrite, formats=RASTER_FORMATS)
        breaches_path = check_output(options.breaches or default_breaches_path(output), options.overwrite,
                                     formats={".gpkg": "GPKG"})
    info = open_dem(dem, check_data=False)
    points = load_crossings(crossings, info)
    t1 = time.perf_counter()
    with DemReader(info) as reader:
        outcomes, edits = breach_all(reader, points, options, progress)
    if all(o.status in (OFF_DEM, NODATA) for o in outcomes):
        check_has_data(info)          # a DEM of nothing but nodata is an error, not a summary
    t2 = time.perf_counter()
    result = ConditionResult(None, None, info, outcomes, edits, timings={"load_s": t1 - t0, "breach_s": t2 - t1})
    if output is not None:
        write_outputs(result, points, options, output, breaches_path, progress)
        result.output, result.breaches_path = output, breaches_path
        result.timings["write_s"] = time.perf_counter() - t2
    result.seconds = time.perf_counter() - t0
    return result


def breach_all(reader: DemReader, points: CrossingPoints, options: ConditionOptions,
               progress: bool = False) -> tuple[list[Outcome], dict[tuple[int, int], float]]:
    """Breach at every crossing, in raster order; returns the outcomes and the changed cells
    ``{(row, col): new z}``."""
    from tqdm import tqdm

    info = reader.info
    rows, cols = info.rowcol(points.xy)
    radius_m = crossing_radius(points.size_m, options.radius_m)
    edits: dict[tuple[int, int], float] = {}
    near: dict[tuple[int, int], list[tuple[int, int]]] = {}     # edited cells by 64-cell bucket
    outcomes: list[Outcome | None] = [None] * len(points)
    order = np.lexsort((cols, rows))
    for i in tqdm(order, desc="condition", unit="crossing", disable=not progress, dynamic_ncols=True):
        x, y = points.xy[i]
        o = Outcome(int(points.ids[i]), float(x), float(y), OFF_DEM, float(radius_m[i]))
        outcomes[i] = o
        r, c = int(rows[i]), int(cols[i])
        if not (0 <= r < info.height and 0 <= c < info.width):
            continue
        rad = radius_m[i] / info.cell_m
        half = int(np.ceil(rad)) + 1
        r0, c0 = r - half, c - half
        win = reader.read(r0, c0, 2 * half + 1, 2 * half + 1)
        for br in range(r0 // 64, (r0 + win.shape[0]) // 64 + 1):     # breaches already cut nearby
            for bc in range(c0 // 64, (c0 + win.shape[1]) // 64 + 1):
                for er, ec in near.get((br, bc), ()):
                    if r0 <= er < r0 + win.shape[0] and c0 <= ec < c0 + win.shape[1]:
                        win[er - r0, ec - c0] = edits[(er, ec)]
        if not np.isfinite(win[half, half]):
            o.status = NODATA
            continue
        b = breach_window(win, half, half, rad, cell_m=info.cell_m, max_cut_m=options.max_breach_m,
                          min_dam_m=options.min_dam_m)
        o.dam_m = round(float(b.dam_m), 3)
        if isinstance(b, NoBreach):
            o.status = TOO_DEEP if b.reason == TOO_DEEP else NO_CHANNEL
            o.max_cut_m = round(float(b.max_cut_m), 3)
            continue
        _record(o, b, r0, c0, info, edits, near)
    return outcomes, edits


def _record(o: Outcome, b: Breach, r0: int, c0: int, info: DemInfo, edits: dict, near: dict) -> None:
    o.status = BREACHED
    o.max_cut_m = round(b.max_cut_m, 3)
    o.length_m = round(b.length_m, 2)
    o.cells = b.n_changed
    for rr, cc, z in zip(b.rows[b.changed], b.cols[b.changed], b.z_new[b.changed]):
        key = (int(rr) + r0, int(cc) + c0)
        if key not in edits:
            near.setdefault((key[0] // 64, key[1] // 64), []).append(key)
        edits[key] = float(z)
    xs, ys = info.transform @ (b.cols + c0 + 0.5, b.rows + r0 + 0.5)
    o.line = np.column_stack([xs, ys])


def write_outputs(result: ConditionResult, points: CrossingPoints, options: ConditionOptions, output: Path,
                  breaches_path: Path, progress: bool) -> None:
    """The conditioned DEM and the breaches GeoPackage, each to a temporary name renamed at the end."""
    exclusive = not options.overwrite
    with atomic_file(output, exclusive=exclusive) as tmp_dem, \
            atomic_file(breaches_path, exclusive=exclusive) as tmp_vec:
        _write_dem(result, options, points, tmp_dem, progress)
        _write_breaches(result, tmp_vec)


def _write_dem(result: ConditionResult, options: ConditionOptions, points: CrossingPoints, tmp: Path,
               progress: bool) -> None:
    import rasterio
    from rasterio.enums import MaskFlags
    from rasterio.windows import Window
    from tqdm import tqdm

    info = result.dem
    by_chunk: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
    for (r, c), z in result.edits.items():
        by_chunk.setdefault((r // COPY_ROWS, c // COPY_ROWS), []).append((r, c, z))
    dtype = info.dtype if info.dtype in ("float32", "float64") else "float32"
    with rasterio.open(info.path) as src:
        profile = dict(driver="GTiff", width=info.width, height=info.height, count=1, dtype=dtype,
                       crs=info.crs, transform=info.transform, nodata=info.nodata, tiled=True,
                       blockxsize=BLOCK, blockysize=BLOCK, compress="deflate", predictor=3, zlevel=6,
                       BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
        masked = src.nodata is None and MaskFlags.per_dataset in src.mask_flag_enums[0]
        chunks = [(r, c) for r in range(0, info.height, COPY_ROWS) for c in range(0, info.width, COPY_ROWS)]
        with rasterio.open(tmp, "w", **profile) as dst:
            for r, c in tqdm(chunks, desc="write", unit="block", disable=not progress, dynamic_ncols=True):
                win = Window(c, r, min(COPY_ROWS, info.width - c), min(COPY_ROWS, info.height - r))
                data = src.read(1, window=win).astype(dtype, copy=False)
                for er, ec, z in by_chunk.get((r // COPY_ROWS, c // COPY_ROWS), []):
                    data[er - r, ec - c] = z
                dst.write(data, 1, window=win)
                if masked:
                    dst.write_mask(src.read_masks(1, window=win), window=win)
            dst.update_tags(**_metadata(result, options, points))
            dst.set_band_description(1, "elevation, breached at crossings")


def _metadata(result: ConditionResult, options: ConditionOptions, points: CrossingPoints) -> dict[str, str]:
    c = result.counts()
    return {"GEODRAIN_VERSION": __version__,
            "GEODRAIN_CREATED_UTC": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "GEODRAIN_SOURCE_DEM": str(result.dem.path), "GEODRAIN_CROSSINGS": points.source,
            "GEODRAIN_RADIUS_M": "auto" if options.radius_m is None else f"{options.radius_m:g}",
            "GEODRAIN_MAX_BREACH_M": f"{options.max_breach_m:g}",
            "GEODRAIN_BREACHED": str(c[BREACHED]), "GEODRAIN_CELLS_CHANGED": str(result.cells_changed)}


def _write_breaches(result: ConditionResult, tmp: Path) -> None:
    """Layer ``breaches`` (lines, dammed side first) and layer ``crossings`` (every point and its status)."""
    import geopandas as gpd
    import pyogrio
    from shapely.geometry import LineString, Point

    crs = result.dem.crs
    done = [o for o in result.outcomes if o.status == BREACHED]
    lines = gpd.GeoDataFrame({
        "crossing_id": np.array([o.crossing_id for o in done], np.int64),
        "length_m": np.array([o.length_m for o in done], np.float64),
        "max_cut_m": np.array([o.max_cut_m for o in done], np.float64),
        "dam_m": np.array([o.dam_m for o in done], np.float64),
        "cells": np.array([o.cells for o in done], np.int32),
    }, geometry=[LineString(o.line) for o in done], crs=crs)
    pts = gpd.GeoDataFrame({
        "crossing_id": np.array([o.crossing_id for o in result.outcomes], np.int64),
        "status": [o.status for o in result.outcomes],
        "radius_m": np.array([o.radius_m for o in result.outcomes], np.float64),
        "dam_m": np.array([o.dam_m for o in result.outcomes], np.float64),
        "max_cut_m": np.array([o.max_cut_m for o in result.outcomes], np.float64),
    }, geometry=[Point(o.x, o.y) for o in result.outcomes], crs=crs)
    desc = f"Breaches cut by geodrain {__version__} condition"
    pyogrio.write_dataframe(lines, tmp, layer="breaches", driver="GPKG", geometry_type="LineString",
                            layer_options={"DESCRIPTION": desc})
    pyogrio.write_dataframe(pts, tmp, layer="crossings", driver="GPKG", geometry_type="Point", append=True,
                            layer_options={"DESCRIPTION": "every crossing and what was done there"})
