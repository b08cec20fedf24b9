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


def test_formats_keep_names_precision_and_types(tmp_path):
    cols = dict(COLS, score=np.array([0.9976123, 0.99993]))
    meta = {"threshold": 0.9976, "windows": 12, "inputs": ["a.tif"], "model_id": "m@1"}
    gj = write_points(XY, cols, "EPSG:26914", tmp_path / "c.geojson", metadata=meta)
    assert json.loads(gj.read_text())["name"] == "c"                  # not the temporary's name
    csv = write_points(XY, cols, "EPSG:26914", tmp_path / "c.csv")
    rows = csv.read_text().splitlines()
    assert "0.9976123" in rows[1] and "0.99993" in rows[2]            # scores not rounded to 3 decimals
    assert rows[2].startswith("600500.5,4499000.25,")
    import pyarrow.parquet as pq

    pqt = write_points(XY, cols, "EPSG:26914", tmp_path / "c.parquet", metadata=meta)
    stored = json.loads(pq.read_schema(pqt).metadata[b"geodrain"])
    assert stored == meta and isinstance(stored["threshold"], float) and isinstance(stored["windows"], int)


def test_output_that_is_a_folder_is_said(tmp_path):
    (tmp_path / "c.gpkg").mkdir()
    with pytest.raises(OutputError, match="output is a folder"):
        write_points(XY, COLS, "EPSG:26914", tmp_path / "c.gpkg")


def test_exclusive_publish_never_replaces_another_runs_output(tmp_path):
    """Two runs writing the same output: the second to finish fails with "output exists" and leaves the first
    one's file as it was (without overwrite), whatever the timing."""
    from geodrain.errors import OutputExistsError
    from geodrain.output import atomic_file

    out = tmp_path / "c.txt"
    with pytest.raises(OutputExistsError, match="written by another run meanwhile"):
        with atomic_file(out, exclusive=True) as tmp:
            tmp.write_text("second")
            out.write_text("first")                 # the other run publishes while this one writes
    assert out.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["c.txt"]
    with atomic_file(out) as tmp:                    # replacing, when asked, still works
        tmp.write_text("replaced")
    assert out.read_text() == "replaced"


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    import os
    import subprocess
    import sys

    from geodrain.output import check_output, temporary_sibling

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "c.gpkg"
    stale = temporary_sibling(out, pid=dead.pid)
    stale.write_bytes(b"half a GeoPackage")
    (stale.parent / (stale.name + "-journal")).write_bytes(b"j")
    running = temporary_sibling(out, pid=os.getpid())       # a run still writing: kept
    running.write_bytes(b"in progress")
    other = temporary_sibling(tmp_path / "d.gpkg", pid=dead.pid)  # another output's: not this run's business
    other.write_bytes(b"x")
    check_output(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, other.name])
