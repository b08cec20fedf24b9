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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import __version__
from .merge import Crossings
from .output import atomic_file, check_output
from .read import InputFile

FORMATS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON", ".parquet": "GeoParquet",
           ".geoparquet": "GeoParquet", ".csv": "CSV"}
LAYER = "crossings"

# The default style graduates the points by ``score`` (a calibrated probability where the bundle has
# calibrated scoring): four classes, pale and small below 0.5 to dark red and large from 0.95.
SCORE_CLASSES = [(0.0, 0.5, 'below 0.5'), (0.5, 0.8, '0.5 - 0.8'), (0.8, 0.95, '0.8 - 0.95'), (0.95, 1.0, '0.95 - 1')]

QML = """<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.28.0" styleCategories="Symbology|Labeling">
  <renderer-v2 type="graduatedSymbol" attr="score" graduatedMethod="GraduatedColor" symbollevels="0"
               enableorderby="0" forceraster="0">
    <ranges>
      <range lower="0.0" upper="0.5" symbol="0" label="below 0.5" render="true"/>
      <range lower="0.5" upper="0.8" symbol="1" label="0.5 - 0.8" render="true"/>
      <range lower="0.8" upper="0.95" symbol="2" label="0.8 - 0.95" render="true"/>
      <range lower="0.95" upper="1.0" symbol="3" label="0.95 - 1" render="true"/>
    </ranges>
    <symbols>
      <symbol type="marker" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleMarker" enabled="1" pass="0" locked="0">
          <Option type="Map">
            <Option type="QString" name="name" value="circle"/>
            <Option type="QString" name="color" value="190,190,190,255"/>
            <Option type="QString" name="outline_color" value="255,255,255,255"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_width" value="0.5"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="size" value="2.4"/>
            <Option type="QString" name="size_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="bevel"/>
          </Option>
        </layer>
      </symbol>
      <symbol type="marker" name="1" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleMarker" enabled="1" pass="0" locked="0">
          <Option type="Map">
            <Option type="QString" name="name" value="circle"/>
            <Option type="QString" name="color" value="255,200,0,255"/>
            <Option type="QString" name="outline_color" value="255,255,255,255"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_width" value="0.5"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="size" value="3.0"/>
            <Option type="QString" name="size_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="bevel"/>
          </Option>
        </layer>
      </symbol>
      <symbol type="marker" name="2" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleMarker" enabled="1" pass="0" locked="0">
          <Option type="Map">
            <Option type="QString" name="name" value="circle"/>
            <Option type="QString" name="color" value="255,110,0,255"/>
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
      <symbol type="marker" name="3" alpha="1" clip_to_extent="1" force_rhr="0">
        <layer class="SimpleMarker" enabled="1" pass="0" locked="0">
          <Option type="Map">
            <Option type="QString" name="name" value="circle"/>
            <Option type="QString" name="color" value="220,0,0,255"/>
            <Option type="QString" name="outline_color" value="255,255,255,255"/>
            <Option type="QString" name="outline_style" value="solid"/>
            <Option type="QString" name="outline_width" value="0.5"/>
            <Option type="QString" name="outline_width_unit" value="MM"/>
            <Option type="QString" name="size" value="4.2"/>
            <Option type="QString" name="size_unit" value="MM"/>
            <Option type="QString" name="joinstyle" value="bevel"/>
          </Option>
        </layer>
      </symbol>
    </symbols>
      <source-symbol><symbol type="marker" name="0" alpha="1" clip_to_extent="1" force_rhr="0">
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
      </symbol></source-symbol>
    <classificationMethod id="Fixed"/>
    <rotation/>
    <sizescale/>
  </renderer-v2>
  <labeling type="simple">
    <settings calloutType="simple">
      <text-style fieldName="format_number(&quot;score&quot;, 2)" isExpression="1" fontSize="8"
                  textColor="160,0,0,255" fontWeight="75">
        <text-buffer bufferDraw="1" bufferSize="0.8" bufferColor="255,255,255,255"/>
      </text-style>
      <placement placement="1" dist="1.5" xOffset="0" yOffset="0"/>
      <rendering scaleVisibility="1" scaleMin="1" scaleMax="25000"/>
    </settings>
  </labeling>
  <layerGeometryType>0</layerGeometryType>
</qgis>
"""

SLD = """<?xml version="1.0" encoding="UTF-8"?>
<StyledLayerDescriptor version="1.1.0" xmlns="http://www.opengis.net/sld" xmlns:se="http://www.opengis.net/se"
    xmlns:ogc="http://www.opengis.net/ogc">
  <NamedLayer><se:Name>crossings</se:Name><UserStyle><se:Name>crossings</se:Name><se:FeatureTypeStyle>
  <se:Rule><se:Name>below 0.5</se:Name>
    <ogc:Filter><ogc:And>
      <ogc:PropertyIsGreaterThanOrEqualTo><ogc:PropertyName>score</ogc:PropertyName><ogc:Literal>0.0</ogc:Literal></ogc:PropertyIsGreaterThanOrEqualTo>
      <ogc:PropertyIsLessThan><ogc:PropertyName>score</ogc:PropertyName><ogc:Literal>0.5</ogc:Literal></ogc:PropertyIsLessThan>
    </ogc:And></ogc:Filter>
    <se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>
      <se:Fill><se:SvgParameter name="fill">#bebebe</se:SvgParameter></se:Fill>
      <se:Stroke><se:SvgParameter name="stroke">#ffffff</se:SvgParameter></se:Stroke>
    </se:Mark><se:Size>9</se:Size></se:Graphic></se:PointSymbolizer>
  </se:Rule>
  <se:Rule><se:Name>0.5 - 0.8</se:Name>
    <ogc:Filter><ogc:And>
      <ogc:PropertyIsGreaterThanOrEqualTo><ogc:PropertyName>score</ogc:PropertyName><ogc:Literal>0.5</ogc:Literal></ogc:PropertyIsGreaterThanOrEqualTo>
      <ogc:PropertyIsLessThan><ogc:PropertyName>score</ogc:PropertyName><ogc:Literal>0.8</ogc:Literal></ogc:PropertyIsLessThan>
    </ogc:And></ogc:Filter>
    <se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>
      <se:Fill><se:SvgParameter name="fill">#ffc800</se:SvgParameter></se:Fill>
      <se:Stroke><se:SvgParameter name="stroke">#ffffff</se:SvgParameter></se:Stroke>
    </se:Mark><se:Size>11</se:Size></se:Graphic></se:PointSymbolizer>
  </se:Rule>
  <se:Rule><se:Name>0.8 - 0.95</se:Name>
    <ogc:Filter><ogc:And>
      <ogc:PropertyIsGreaterThanOrEqualTo><ogc:PropertyName>score</ogc:PropertyName><ogc:Literal>0.8</ogc:Literal></ogc:PropertyIsGreaterThanOrEqualTo>
      <ogc:PropertyIsLessThan><ogc:PropertyName>score</ogc:PropertyName><ogc:Literal>0.95</ogc:Literal></ogc:PropertyIsLessThan>
    </ogc:And></ogc:Filter>
    <se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>
      <se:Fill><se:SvgParameter name="fill">#ff6e00</se:SvgParameter></se:Fill>
      <se:Stroke><se:SvgParameter name="stroke">#ffffff</se:SvgParameter></se:Stroke>
    </se:Mark><se:Size>13</se:Size></se:Graphic></se:PointSymbolizer>
  </se:Rule>
  <se:Rule><se:Name>0.95 - 1</se:Name>
    <ogc:Filter><ogc:And>
      <ogc:PropertyIsGreaterThanOrEqualTo><ogc:PropertyName>score</ogc:PropertyName><ogc:Literal>0.95</ogc:Literal></ogc:PropertyIsGreaterThanOrEqualTo>
      <ogc:PropertyIsLessThanOrEqualTo><ogc:PropertyName>score</ogc:PropertyName><ogc:Literal>1.0</ogc:Literal></ogc:PropertyIsLessThanOrEqualTo>
    </ogc:And></ogc:Filter>
    <se:PointSymbolizer><se:Graphic><se:Mark><se:WellKnownName>circle</se:WellKnownName>
      <se:Fill><se:SvgParameter name="fill">#dc0000</se:SvgParameter></se:Fill>
      <se:Stroke><se:SvgParameter name="stroke">#ffffff</se:SvgParameter></se:Stroke>
    </se:Mark><se:Size>15</se:Size></se:Graphic></se:PointSymbolizer>
  </se:Rule>
  </se:FeatureTypeStyle></UserStyle></NamedLayer>
</StyledLayerDescriptor>
"""


def check_points_output(path: str | Path, overwrite: bool = False) -> Path:
    """Refuse a point-layer output path before any work: unsupported format, missing or unwritable folder,
    an existing file without ``overwrite``."""
    return check_output(path, overwrite, FORMATS)


def crossings_frame(xy: np.ndarray, columns: dict[str, Any], crs):
    import geopandas as gpd

    return gpd.GeoDataFrame(columns, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=crs)


def write_points(xy: np.ndarray, columns: dict[str, Any], crs, path: str | Path, *,
                 metadata: dict[str, Any] | None = None, overwrite: bool = False, layer: str = LAYER,
                 description: str = "") -> Path:
    """Write points with attribute ``columns`` to ``path`` (format by extension), atomically."""
    path = check_points_output(path, overwrite)
    fmt = FORMATS[path.suffix.lower()]
    gdf = crossings_frame(np.asarray(xy, np.float64).reshape(-1, 2), columns, crs)
    meta = {k: (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()}
    with atomic_file(path) as tmp:
        if fmt == "GPKG":
            _write_gpkg(gdf, tmp, layer, meta, description)
        elif fmt == "GeoJSON":
            gdf.to_crs("EPSG:4326").to_file(tmp, driver="GeoJSON", engine="pyogrio", RFC7946="YES",
                                            layer_options={"DESCRIPTION": description} if description else {})
        elif fmt == "GeoParquet":
            _write_parquet(gdf, tmp, meta)
        else:
            _write_csv(gdf, tmp)
    return path


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
    runtime_s: float
    score: str = "window probability (the strongest window's)"
    dem: list[str] = field(default_factory=list)
    dem_evidence: bool = False

    def metadata(self, crossings: int) -> dict[str, Any]:
        return {
            "geodrain_version": __version__,
            "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
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
            "runtime_s": round(self.runtime_s, 2),
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
    "emb_flow": 2, "flow_near": 2, "channel_pair": 2, "embank": 2, "dam_depth": 2,
}


def crossing_columns(c: Crossings, files: Sequence[InputFile], model_id: str) -> dict[str, Any]:
    """The attribute table of the ``crossings`` layer: ``score`` (the calibrated probability where the bundle
    has calibrated scoring, else the strongest window's probability), ``window_score`` (the strongest
    window's probability), and with a DEM its evidence columns (:data:`DEM_COLUMNS`) and ``snapped``."""
    cols = {
        "crossing_id": np.arange(1, len(c) + 1, dtype=np.int32),
        "score": np.round(c.reported_score.astype(np.float64), 4),
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
                    overwrite: bool = False) -> Path:
    """Write detected crossings with their run's metadata to ``path`` (format by extension), atomically."""
    desc = (f"Drainage crossings detected by geodrain {__version__} with {info.model_id} "
            f"(threshold {info.threshold:.3f}; score: {info.score})")
    return write_points(c.xy, crossing_columns(c, files, info.model_id), crs, path,
                        metadata=info.metadata(len(c)), overwrite=overwrite, description=desc)


def _write_gpkg(gdf, tmp: Path, layer: str, meta: dict[str, str], description: str) -> None:
    import pandas as pd
    import pyogrio

    pyogrio.write_dataframe(gdf, tmp, layer=layer, driver="GPKG", layer_metadata=meta or None,
                            layer_options={"DESCRIPTION": description} if description else None)
    geometry_column = pyogrio.read_info(tmp, layer=layer).get("geometry_name") or "geom"
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

