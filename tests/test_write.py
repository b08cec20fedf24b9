"""Writers: formats by extension, GeoPackage fields/CRS/metadata/style, atomic replacement."""

from __future__ import annotations

import json
import sqlite3

import geopandas as gpd
import numpy as np
import pyogrio
import pytest

from geodrain.errors import OutputError, OutputExistsError
from geodrain.write import write_points

XY = np.array([[600010.0, 4499990.0], [600500.5, 4499000.25]])
COLS = {"crossing_id": np.array([1, 2], np.int32), "score": np.array([0.9, 0.75]),
        "n_windows": np.array([4, 2], np.int32), "source": ["a.tif", "b.tif"], "model": ["m@1", "m@1"]}


def test_gpkg_fields_crs_metadata_and_style(tmp_path):
    out = write_points(XY, COLS, "EPSG:26914", tmp_path / "c.gpkg", metadata={"threshold": 0.5, "inputs": ["a"]})
    gdf = gpd.read_file(out, layer="crossings")
    assert gdf.crs.to_epsg() == 26914
    assert list(gdf.columns) == ["crossing_id", "score", "n_windows", "source", "model", "geometry"]
    assert np.allclose(np.c_[gdf.geometry.x, gdf.geometry.y], XY)
    meta = pyogrio.read_info(out, layer="crossings")["layer_metadata"]
    assert meta["threshold"] == "0.5" and json.loads(meta["inputs"]) == ["a"]
    with sqlite3.connect(out) as db:
        name, qml, default = db.execute(
            "SELECT f_table_name, styleQML, useAsDefault FROM layer_styles").fetchone()
    assert name == "crossings" and "SimpleMarker" in qml and default == 1
    assert not list(tmp_path.glob(".*"))       # no temporary files left behind


def test_other_formats(tmp_path):
    gj = gpd.read_file(write_points(XY, COLS, "EPSG:26914", tmp_path / "c.geojson"))
    assert gj.crs.to_epsg() == 4326 and len(gj) == 2       # RFC 7946
    pq = gpd.read_parquet(write_points(XY, COLS, "EPSG:26914", tmp_path / "c.parquet"))
    assert pq.crs.to_epsg() == 26914 and np.allclose(pq.geometry.x, XY[:, 0])
    csv = (tmp_path / "c.csv")
    write_points(XY, COLS, "EPSG:26914", csv)
    header = csv.read_text().splitlines()[0].split(",")
    assert header[:2] == ["x", "y"] and header[-1] == "crs"


def test_refusals(tmp_path):
    out = write_points(XY, COLS, "EPSG:26914", tmp_path / "c.gpkg")
    with pytest.raises(OutputExistsError):
        write_points(XY, COLS, "EPSG:26914", out)
    write_points(XY[:1], {k: v[:1] for k, v in COLS.items()}, "EPSG:26914", out, overwrite=True)
    assert len(gpd.read_file(out, layer="crossings")) == 1
    with pytest.raises(OutputError, match="does not exist"):
        write_points(XY, COLS, "EPSG:26914", tmp_path / "no" / "c.gpkg")
    with pytest.raises(OutputError, match="unsupported"):
        write_points(XY, COLS, "EPSG:26914", tmp_path / "c.shp")
    with pytest.raises(OutputError, match="not writable"):
        write_points(XY, COLS, "EPSG:26914", "/proc/c.gpkg")


def test_failed_write_leaves_nothing(tmp_path):
    bad = dict(COLS, score=np.array([0.9]))               # wrong length: fails inside the writer
    with pytest.raises(Exception):
        write_points(XY, bad, "EPSG:26914", tmp_path / "c.gpkg")
    assert list(tmp_path.iterdir()) == []
