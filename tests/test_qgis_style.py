"""The GeoPackage's default style as QGIS applies it: the real QGIS (PyQGIS, headless) opens the file a user
would open and must render it with the stored style.

QGIS runs in the system Python (``/usr/bin/python3`` with Debian's ``python3-qgis``; another interpreter with
PyQGIS through ``$GEODRAIN_QGIS_PYTHON``) in a subprocess: it is not importable from the project's virtual
environment. Without QGIS the QGIS test skips and says why; the file-level checks always run.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import noise_image, write_raster
from geodrain.cli import cli
from geodrain.write import LABEL_EXPRESSION, write_points

QGIS_PYTHON = os.environ.get("GEODRAIN_QGIS_PYTHON", "/usr/bin/python3")

# Opens the layer as QGIS's "Add vector layer" does (the OGR provider, default style loaded from the file)
# and prints what it renders with.
QGIS_SCRIPT = r"""
import json, os, sys
from qgis.core import QgsApplication, QgsExpression, QgsExpressionContext, QgsExpressionContextUtils, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
layer = QgsVectorLayer(sys.argv[1] + "|layername=crossings", "crossings", "ogr")
out = {"valid": layer.isValid()}
r = layer.renderer()
out["renderer"] = r.type()
sym = r.symbol() if hasattr(r, "symbol") else None
out["color"] = sym.color().name() if sym else None
out["size"] = sym.size() if sym else None
out["labels_enabled"] = layer.labelsEnabled()
lab = layer.labeling()
settings = lab.settings() if lab is not None else None
out["label_expression"] = settings.fieldName if settings else None
out["label_is_expression"] = settings.isExpression if settings else None
texts = []
if settings is not None:
    expr = QgsExpression(settings.fieldName)
    ctx = QgsExpressionContext(QgsExpressionContextUtils.globalProjectLayerScopes(layer))
    for f in layer.getFeatures():
        ctx.setFeature(f)
        texts.append(str(expr.evaluate(ctx)))
out["labels"] = texts
out["features"] = layer.featureCount()
print(json.dumps(out), flush=True)
os._exit(0)        # QgsApplication.exitQgis() may crash while PyQGIS still holds the layer: skip the teardown
"""


def _qgis_missing() -> str | None:
    try:
        p = subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, timeout=120,
                           env=_qgis_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"no QGIS: {QGIS_PYTHON} cannot run ({e}); install python3-qgis (apt) or set GEODRAIN_QGIS_PYTHON"
    if p.returncode != 0:
        return (f"no QGIS: {QGIS_PYTHON} cannot import qgis.core; install Debian's python3-qgis "
                "(apt-get install python3-qgis) or set GEODRAIN_QGIS_PYTHON to a Python with PyQGIS")
    return None


def _qgis_env(home=None) -> dict[str, str]:
    """A clean environment: nothing of this process's GDAL/PROJ set-up (the wheels' data folders set in
    os.environ would not fit the system's libraries), headless Qt, and QGIS's profile in ``home``."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen"}
    if home is not None:
        run = home / "xdg-runtime"
        run.mkdir(mode=0o700, exist_ok=True)
        env.update(HOME=str(home), XDG_RUNTIME_DIR=str(run))
    else:
        env["HOME"] = os.environ.get("HOME", "/tmp")
    return env


@pytest.fixture(scope="module")
def detected(tmp_path_factory, random_bundle):
    """A GeoPackage written by `geodrain detect` (several points with different scores)."""
    d = tmp_path_factory.mktemp("style")
    raster = write_raster(d / "r.tif", noise_image(300, 300))
    out = d / "crossings.gpkg"
    res = CliRunner().invoke(cli, ["detect", str(raster), "-o", str(out), "-m", str(random_bundle),
                                   "--threshold", "0.01", "--merge-radius", "10", "-q"])
    assert res.exit_code == 0, res.output
    return out


def test_style_names_the_layers_real_geometry_column(detected):
    with sqlite3.connect(detected) as db:
        geom_col = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name='crossings'").fetchone()
        styles = db.execute("SELECT f_table_name, f_geometry_column, useAsDefault FROM layer_styles").fetchall()
        desc = db.execute("SELECT description FROM gpkg_contents WHERE table_name='crossings'").fetchone()[0]
    assert geom_col == ("geom",)
    assert styles == [("crossings", "geom", 1)]
    assert "threshold 0.01," in desc             # the threshold as given


def test_reading_the_crossings_layer_by_name_does_not_warn(detected):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gdf = gpd.read_file(detected, layer="crossings")
    assert len(gdf) >= 2


def test_qgis_applies_the_stored_style(detected, tmp_path):
    missing = _qgis_missing()
    if missing:
        pytest.skip(missing)
    p = subprocess.run([QGIS_PYTHON, "-c", QGIS_SCRIPT, str(detected)], capture_output=True, text=True,
                       timeout=300, env=_qgis_env(tmp_path))
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    n = len(gpd.read_file(detected, layer="crossings"))
    assert got["valid"] and got["features"] == n >= 2
    # the stored style, not QGIS's random single-symbol colour: circles graduated by score (its classes are
    # checked in test_score_style.py), labelled with id and score
    assert got["renderer"] == "graduatedSymbol"
    assert got["labels_enabled"] and got["label_is_expression"]
    assert got["label_expression"] == LABEL_EXPRESSION
    assert len(set(got["labels"])) == n and all(t.startswith("#") for t in got["labels"])


def test_label_of_scores_near_one_is_not_all_the_same(tmp_path):
    """Scores of a calibrated bundle sit between 0.9976 and 1: the labels still tell them apart."""
    missing = _qgis_missing()
    if missing:
        pytest.skip(missing)
    xy = np.array([[600010.0, 4499990.0], [600100.0, 4499900.0], [600200.0, 4499800.0]])
    cols = {"crossing_id": np.array([1, 2, 3], np.int32), "score": np.array([0.99993, 0.99871, 0.9977]),
            "n_windows": np.array([9, 3, 1], np.int32)}
    out = write_points(xy, cols, "EPSG:26914", tmp_path / "c.gpkg")
    p = subprocess.run([QGIS_PYTHON, "-c", QGIS_SCRIPT, str(out)], capture_output=True, text=True, timeout=300,
                       env=_qgis_env(tmp_path))
    assert p.returncode == 0, p.stderr[-2000:]
    labels = json.loads(p.stdout.strip().splitlines()[-1])["labels"]
    assert labels == ["#1 0.9999", "#2 0.9987", "#3 0.9977"]
