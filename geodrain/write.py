"""Write stage: crossings to a GeoPackage (or GeoJSON, GeoParquet, CSV by extension), atomically.

The GeoPackage layer ``crossings`` holds points in the raster's CRS with ``score`` (a calibrated probability
where the bundle has calibrated scoring), ``window_score`` (the strongest window's probability), ``n_windows``
(supporting windows), ``width_m``/``height_m`` (the structure's size), with a DEM its evidence columns,
``source`` (input file) and ``model``; the run's
metadata (:class:`RunInfo`) is stored in the GeoPackage metadata tables, and a default QGIS style
(``layer_styles``, the table QGIS itself uses) graduates the points by ``score`` when the file is opened.
GeoJSON is written in WGS 84 as RFC 7946 requires; GeoParquet and CSV keep the raster's CRS (CSV adds ``x``,
``y`` and ``crs`` columns). :func:`write_points` writes any point layer the same way (``geodrain mine`` uses
it for its hard examples).

Every format is written to a temporary file beside the destination and renamed over it at the end
(:func:`geodrain.output.atomic_file`), so an interrupted run never leaves a file that looks complete.

Outputs are reproducible: the metadata holds no timings, and its creation time (also the GeoPackage's own
timestamps: ``gpkg_contents.last_change`` through GDAL's ``OGR_CURRENT_DATE``, and the style's
``update_time``) is the run's (``created``), so the same run written twice gives the same bytes.
"""

from __future__ import annotations

import json
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .merge import Crossings
from .errors import OutputError
from .output import atomic_file, check_output, space_problem
from .read import InputFile

FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".parquet": "GeoParquet",
           ".geoparquet": "GeoParquet", ".csv": "CSV"}
LAYER = "crossings"

from .style import LABEL_EXPRESSION, QML, SCORE_CLASSES, SLD  # noqa: F401 - the layer's default style


def check_points_output(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse a point-layer output path before any work: unsupported format, missing or unwritable folder,
    an existing file without ``overwrite``."""
    return check_output(path, overwrite, FORMATS)


def crossings_frame(xy: np.ndarray, columns: dict[str, Any], crs):
    import geopandas as gpd

    return gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=crs)


def utc_now() -> str:
    """Now in UTC, ISO 8601 to the second (``2024-05-01T12:00:00Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_points(xy: np.ndarray, columns: dict[str, Any], crs, path: str | Path, *,
                 metadata: dict[str, Any] | None = None, overwrite: bool = False, layer: str = LAYER,
                 description: str = "", created: str | None = None) -> Path:
    """Write points with attribute ``columns`` to ``path`` (format by extension), atomically. ``created``
    (ISO 8601 UTC, default now) is the time a GeoPackage records as its tables' last change."""
    path = check_points_output(path, overwrite)
    fmt = FORMATS[path.suffix.lower()]
    gdf = crossings_frame(np.asarray(xy, np.float64).reshape(-1, 2), columns, crs)
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()}
    with atomic_file(path, exclusive=not overwrite) as tmp:
        try:
            if fmt == "GPKG":
                _write_gpkg(gdf, tmp, layer, meta, description, created or utc_now())
            elif fmt == "GeoJSON":     # the layer's name is the output's, not the temporary's
                gdf.to_crs("EPSG:4326").to_file(tmp, driver="GeoJSON", engine="pyogrio", layer=path.stem,
                                                RFC7946="YES",
                                                layer_options={"DESCRIPTION": description} if description else {})
            elif fmt == "GeoParquet":
                _write_parquet(gdf, tmp, metadata or {})
            else:
                _write_csv(gdf, tmp)
            _check_complete(tmp, path, fmt, layer, len(gdf))
        except OutputError:
            raise
        except Exception as e:  # noqa: BLE001 - GDAL (pyogrio), pyarrow and pandas raise their own types
            why = space_problem(tmp, e) or f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            raise OutputError(f"cannot write {path}: {why}") from None
    return path


def _check_complete(tmp: Path, path: Path, fmt: str, layer: str, n: int) -> None:
    """A written file holds every feature (and a GeoPackage its spatial index and style): GDAL can report a
    failed write (a full disk) as a warning and leave a file without its R-tree. An incomplete one raises."""
    problem = None
    if fmt == "GPKG":
        import sqlite3

        with closing(sqlite3.connect(f"file:{tmp}?mode=ro", uri=True)) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                problem = "the file is damaged"
            elif layer not in tables or db.execute(f'SELECT count(*) FROM "{layer}"').fetchone()[0] != n:
                problem = "features are missing"
            elif not any(t.startswith(f"rtree_{layer}_") for t in tables):
                problem = "its spatial index (R-tree) is missing"
            elif f"rtree_{layer}_geom" in tables and \
                    db.execute(f'SELECT count(*) FROM "rtree_{layer}_geom"').fetchone()[0] != n:
                problem = "its spatial index (R-tree) is incomplete"
            elif "layer_styles" not in tables or not db.execute("SELECT count(*) FROM layer_styles").fetchone()[0]:
                problem = "its QGIS style is missing"
    elif fmt == "GeoJSON":
        import pyogrio

        if pyogrio.read_info(tmp)["features"] != n:
            problem = "features are missing"
    elif fmt == "GeoParquet":
        import pyarrow.parquet as pq

        if pq.read_metadata(tmp).num_rows != n:
            problem = "rows are missing"
    else:
        with open(tmp, "rb") as fh:
            if sum(1 for _ in fh) != n + 1:
                problem = "rows are missing"
    if problem:
        space = space_problem(tmp)
        raise OutputError(f"cannot write {path}: {space + ', ' if space else ''}{problem}")


@dataclass(frozen=True)
class RunInfo:
    """What a detection run records beside its crossings (the output's metadata)."""

    model_id: str
    model_path: str
    architecture: str
    threshold: float
    merge_radius_m: float
    stride_px: int
    min_valid_fraction: float
    gsd_m: float
    input_gsd_m: float
    bands: tuple[int, ...]
    inputs: list[str]
    aoi: str
    engine: dict
    windows: int
    windows_evaluated: int
    area_km2: float
    empty_km2: float = 0.0           # of area_km2: blocks without data, skipped unread
    created_utc: str = ""            # the run's creation time (default: when the output is written)
    crs: str = ""                    # the CRS crossings were merged and are written in
    input_crs: tuple[str, ...] = ()  # the inputs' CRSs, one per group
    score: str = "window probability (the strongest window's)"
    dem: list[str] = field(default_factory=list)
    dem_evidence: bool = False

    def metadata(self, crossings: int) -> dict[str, Any]:
        """The output's metadata: no timings, so that a run written twice (or resumed) gives the same bytes."""
        return {
            "geodrain_version": __version__,
            "created_utc": self.created_utc or utc_now(),
            "model_id": self.model_id,
            "model_path": self.model_path,
            "architecture": self.architecture,
            "threshold": self.threshold,
            "score": self.score,
            "merge_radius_m": self.merge_radius_m,
            "stride_px": self.stride_px,
            "min_valid_fraction": self.min_valid_fraction,
            "gsd_m": self.gsd_m,
            "input_gsd_m": self.input_gsd_m,
            "bands": ",".join(map(str, self.bands)),
            "inputs": list(self.inputs),
            "aoi": self.aoi,
            "dem": list(self.dem),
            "engine": self.engine,
            "windows": self.windows,
            "windows_evaluated": self.windows_evaluated,
            "area_km2": round(self.area_km2, 4),
            "empty_km2_skipped": round(self.empty_km2, 4),
            "crs": self.crs,
            "input_crs": list(self.input_crs),
            "crossings": crossings,
        }


def source_names(files: Sequence[InputFile], xy: np.ndarray) -> list[str]:
    """The input file under each point (the last one given wins where files overlap, as in the mosaic)."""
    names = [""] * len(xy)
    for f in files:
        x0, y0, x1, y1 = f.bounds
        inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        for i in np.nonzero(inside)[0]:
            names[i] = Path(f.path).name
    return names


DEM_COLUMNS = {   # evidence column -> decimals
    "emb_flow": 2, "flow_near": 2, "channel_pair": 2, "embank": 2, "dam_depth": 2, "along_road": 2,
    "valley_along": 2,
}


def crossing_columns(c: Crossings, files: Sequence[InputFile], model_id: str) -> dict[str, Any]:
    """The attribute table of the ``crossings`` layer: ``score`` (the calibrated probability where the bundle
    has calibrated scoring, else the strongest window's probability), ``window_score`` (the strongest
    window's probability), and with a DEM its evidence columns (:data:`DEM_COLUMNS`) and ``snapped``."""
    cols = {
        "crossing_id": np.arange(1, len(c) + 1, dtype=np.int32),
        "score": np.round(c.reported_score.astype(np.float64), 6),
        "window_score": np.round(c.score.astype(np.float64), 6),
        "n_windows": c.n_windows.astype(np.int32),
        "width_m": np.round(c.size_m[:, 0].astype(np.float64), 1) if len(c) else np.zeros(0),
        "height_m": np.round(c.size_m[:, 1].astype(np.float64), 1) if len(c) else np.zeros(0),
    }
    for name, decimals in DEM_COLUMNS.items():
        if name in c.evidence:
            cols[name] = np.round(np.asarray(c.evidence[name], np.float64), decimals)
    if "snapped" in c.evidence:
        cols["snapped"] = np.asarray(c.evidence["snapped"], bool)
    cols["source"] = source_names(files, c.xy)
    cols["model"] = [model_id] * len(c)
    return cols


def write_crossings(c: Crossings, path: str | Path, crs, files: Sequence[InputFile], info: RunInfo, *,
                    overwrite: bool = False, sources: Sequence[str] | None = None) -> Path:
    """Write detected crossings with their run's metadata to ``path`` (format by extension), atomically.
    ``sources``: the input file under each crossing (default: from ``files``, which share ``crs``)."""
    desc = (f"Drainage crossings detected by geodrain {__version__} with {info.model_id} "
            f"(threshold {info.threshold:.6g}, merge radius {info.merge_radius_m:g} m, stride {info.stride_px} px; "
            f"score: {info.score})")
    columns = crossing_columns(c, files, info.model_id)
    if sources is not None:
        columns["source"] = list(sources)
    return write_points(c.xy, columns, crs, path, metadata=info.metadata(len(c)), overwrite=overwrite,
                        description=desc, created=info.created_utc or None)


def _write_gpkg(gdf, tmp: Path, layer: str, meta: dict[str, str], description: str, created: str) -> None:
    import pandas as pd
    import pyogrio

    stamp = pd.Timestamp(created).tz_convert("UTC").tz_localize(None)
    # GDAL stamps gpkg_contents.last_change with OGR_CURRENT_DATE when set (else the clock)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": stamp.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
    try:
        _write_gpkg_layers(gdf, tmp, layer, meta, description, stamp)
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})


def _write_gpkg_layers(gdf, tmp: Path, layer: str, meta: dict[str, str], description: str, stamp) -> None:
    import pandas as pd
    import pyogrio

    pyogrio.write_dataframe(gdf, tmp, layer=layer, driver="GPKG", layer_metadata=meta or None,
                            layer_options={"DESCRIPTION": description} if description else None)
    # QGIS applies a stored style only to the layer whose table AND geometry column it names (GDAL calls the
    # column "geom" in a GeoPackage; ask rather than assume).
    geometry_column = pyogrio.read_info(tmp, layer=layer).get("geometry_name") or "geom"
    style = pd.DataFrame({
        "f_table_catalog": [""], "f_table_schema": [""], "f_table_name": [layer],
        "f_geometry_column": [geometry_column], "styleName": [layer], "styleQML": [QML], "styleSLD": [SLD],
        "useAsDefault": [True], "description": ["geodrain default style"], "owner": [""], "ui": [""],
        "update_time": [stamp],
    })
    pyogrio.write_dataframe(style, tmp, layer="layer_styles", driver="GPKG", append=False)


def _write_parquet(gdf, tmp: Path, meta: dict[str, Any]) -> None:
    """GeoParquet with the run's metadata as JSON of its own types (numbers stay numbers) under 'geodrain'."""
    import pyarrow.parquet as pq

    gdf.to_parquet(tmp, index=False)
    table = pq.read_table(tmp)
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[b"geodrain"] = json.dumps(meta).encode()
    pq.write_table(table.replace_schema_metadata(schema_meta), tmp)


def _write_csv(gdf, tmp: Path) -> None:
    df = gdf.drop(columns="geometry")
    df.insert(0, "y", gdf.geometry.y)
    df.insert(0, "x", gdf.geometry.x)
    df["crs"] = gdf.crs.to_string() if gdf.crs is not None else ""
    # coordinates to the millimetre; every other number as it is (a score keeps its 6 decimals)
    df["x"], df["y"] = df["x"].round(3), df["y"].round(3)
    df.to_csv(tmp, index=False)

