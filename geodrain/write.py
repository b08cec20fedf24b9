"""Write stage: crossings to a GeoPackage (or GeoJSON, GeoParquet, CSV by extension), atomically.

The GeoPackage layer ``crossings`` holds points in the raster's CRS with ``score``, ``n_windows`` (supporting
windows), ``source`` (input file) and ``model``; the run's metadata is stored in the GeoPackage metadata
tables, and a default QGIS style (``layer_styles``, the table QGIS itself uses) makes the points render
visibly when the file is opened. GeoJSON is written in WGS 84 as RFC 7946 requires; GeoParquet and CSV keep
the raster's CRS (CSV adds ``x``, ``y`` and ``crs`` columns).

Every format is written to a temporary file in the destination folder and renamed over the destination at
the end, so an interrupted run never leaves a file that looks complete. :func:`check_output` runs before any
work so that a bad output path fails in a second, not after an hour.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from .errors import OutputError, OutputExistsError

FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".parquet": "GeoParquet",
           ".geoparquet": "GeoParquet", ".csv": "CSV"}
LAYER = "crossings"

# The label: the crossing's id (to find its row) and its score to 4 decimals (scores of a well calibrated
# bundle sit between its threshold, e.g. 0.9976, and 1: two decimals read "1.00" on every point).
LABEL_EXPRESSION = """'#' || "crossing_id" || ' ' || format_number("score", 4)"""

QML_TEMPLATE = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="Symbology|Labeling">
  <renderer-v2 type="singleSymbol" symbollevels="0" enableorderby="0" forceraster="0">
    <symbols>
      <symbol type="marker" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleMarker" enabled="1" pass="0" locked="0">
          <Option type="Map">
            <Option type="QString" name="name" value="circle"/>
            <Option type="QString" name="color" value="255,40,0,255"/>
            <Option type="QString" name="outline_color" value="255,255,255,255"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_width" value="0.5"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="size" value="3.6"/>
            <Option type="QString" name="size_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="bevel"/>
          </Option>
        </layer>
      </symbol>
    </symbols>
    <rotation/>
    <sizescale/>
  </renderer-v2>
  <labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName="{label}" isExpression="1" fontSize="8"
                  textColor="255,40,0,255" fontWeight="75">
        <text-buffer bufferDraw="1" bufferSize="0.8" bufferColor="255,255,255,255"/>
      </text-style>
      <placement placement="1" dist="1.5" xOffset="0" yOffset="0"/>
      <rendering scaleVisibility="1" scaleMin="1" scaleMax="25000"/>
    </settings>
  </labeling>
  <layerGeometryType>0</layerGeometryType>
</qgis>
"""
QML = QML_TEMPLATE.replace("{label}", escape(LABEL_EXPRESSION, {'"': "&quot;", "'": "&apos;"}))

SLD = """<?xml version="1.0" encoding="UTF-8"?>
<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" xmlns:se="http://www.opengis.net/se">
  <NamedLayer><se:Name>crossings</se:Name><UserStyle><se:Name>crossings</se:Name><se:FeatureTypeStyle><se:Rule>
    <se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>
      <se:Fill><se:SvgParameter name="fill">#ff2800</se:SvgParameter></se:Fill>
      <se:Stroke><se:SvgParameter name="stroke">#ffffff</se:SvgParameter></se:Stroke>
    </se:Mark><se:Size>13</se:Size></se:Graphic></se:PointSymbolizer>
  </se:Rule></se:FeatureTypeStyle></UserStyle></NamedLayer>
</StyledLayerDescriptor>
"""


def check_output(path: str | Path, overwrite: bool = False, formats: dict[str, str] = FORMATS) -> Path:
    """Refuse an unsupported extension, a missing or unwritable folder, or an existing file."""
    path = Path(path)
    if path.suffix.lower() not in formats:
        raise OutputError(f"unsupported output format '{path.suffix}' for {path}: use "
                          + ", ".join(sorted(set(formats))))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not writable(parent):
        raise OutputError(f"output folder is not writable: {parent}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {path} (use --overwrite to replace it)")
    if path.is_dir():
        raise OutputError(f"output is a folder: {path}")
    return path


def check_output_folder(dest: str | Path, overwrite: bool = False) -> Path:
    """For outputs that are folders (bundles, chip sets, scenes): refuse an existing one unless
    ``overwrite``, and a missing or unwritable parent."""
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {dest} (use --overwrite to replace it)")
    if not dest.parent.is_dir():
        raise OutputError(f"output folder does not exist: {dest.parent}")
    if not writable(dest.parent):
        raise OutputError(f"output folder is not writable: {dest.parent}")
    return dest


def writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried for real: permission bits do not stop root,
    read-only file systems do)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".geodrain-probe-"):
            return True
    except OSError:
        return False


def temporary_sibling(path: Path) -> Path:
    """A hidden temporary name in the destination folder with the same extension (drivers need it)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def commit(tmp: Path, path: Path) -> None:
    os.replace(tmp, path)


def crossings_frame(xy: np.ndarray, columns: dict[str, Any], crs):
    import geopandas as gpd

    return gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=crs)


def write_points(xy: np.ndarray, columns: dict[str, Any], crs, path: str | Path, *,
                 metadata: dict[str, Any] | None = None, overwrite: bool = False, layer: str = LAYER,
                 description: str = "") -> Path:
    """Write points with attribute ``columns`` to ``path`` (format by extension), atomically."""
    path = check_output(path, overwrite)
    fmt = FORMATS[path.suffix.lower()]
    gdf = crossings_frame(np.asarray(xy, np.float64).reshape(-1, 2), columns, crs)
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()}
    tmp = temporary_sibling(path)
    try:
        if fmt == "GPKG":
            _write_gpkg(gdf, tmp, layer, meta, description)
        elif fmt == "GeoJSON":
            gdf.to_crs("EPSG:4326").to_file(tmp, driver="GeoJSON", engine="pyogrio", RFC7946="YES",
                                            layer_options={"DESCRIPTION": description} if description else {})
        elif fmt == "GeoParquet":
            _write_parquet(gdf, tmp, meta)
        else:
            _write_csv(gdf, tmp)
        commit(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_gpkg(gdf, tmp: Path, layer: str, meta: dict[str, str], description: str) -> None:
    import pandas as pd
    import pyogrio

    pyogrio.write_dataframe(gdf, tmp, layer=layer, driver="GPKG", layer_metadata=meta or None,
                            layer_options={"DESCRIPTION": description} if description else None)
    # QGIS applies a stored style only to the layer whose table AND geometry column it names (GDAL calls the
    # column "geom" in a GeoPackage; ask rather than assume).
    geometry_column = pyogrio.read_info(tmp, layer=layer)["geometry_name"] or "geom"
    style = pd.DataFrame({
        "f_table_catalog": [""], "f_table_schema": [""], "f_table_name": [layer],
        "f_geometry_column": [geometry_column], "styleName": [layer], "styleQML": [QML], "styleSLD": [SLD],
        "useAsDefault": [True], "description": ["geodrain default style"], "owner": [""], "ui": [""],
        "update_time": [pd.Timestamp.now(tz="UTC").tz_localize(None)],
    })
    pyogrio.write_dataframe(style, tmp, layer="layer_styles", driver="GPKG", append=False)


def _write_parquet(gdf, tmp: Path, meta: dict[str, str]) -> None:
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
    df.to_csv(tmp, index=False, float_format="%.3f")

