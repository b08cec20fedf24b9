"""The GeoPackage's default style graduates crossings by score, as QGIS applies it: the real QGIS (PyQGIS,
headless, in the system Python or $GEODRAIN_QGIS_PYTHON) opens the file a user would open; without QGIS the QGIS
test skips and says why, the file-level checks always run."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess

import numpy as np
import pytest

from geodrain.write import SCORE_CLASSES, write_points

QGIS_PYTHON = os.environ.get("GEODRAIN_QGIS_PYTHON", "/usr/bin/python3")

QGIS_SCRIPT = r"""
import json, os, sys
from qgis.core import QgsApplication, QgsRenderContext, QgsVectorLayer
app = QgsApplication([], False)
app.initQgis()
layer = QgsVectorLayer(sys.argv[1] + "|layername=crossings", "crossings", "ogr")
r = layer.renderer()
out = {"valid": layer.isValid(), "renderer": r.type()}
if r.type() == "graduatedSymbol":
    out["attribute"] = r.classAttribute()
    out["ranges"] = [[g.lowerValue(), g.upperValue()] for g in r.ranges()]
    ctx = QgsRenderContext()
    r.startRender(ctx, layer.fields())
    out["symbols"] = {}
    for f in layer.getFeatures():
        s = r.symbolForFeature(f, ctx)
        out["symbols"][str(f["crossing_id"])] = [s.color().name(), s.size()] if s is not None else None
    r.stopRender(ctx)
print(json.dumps(out), flush=True)
os._exit(0)
"""


def _qgis_env(home) -> dict[str, str]:
    run = home / "xdg-runtime"
    run.mkdir(mode=0o700, exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen",
            "HOME": str(home), "XDG_RUNTIME_DIR": str(run)}


@pytest.fixture
def scored(tmp_path):
    xy = np.array([[600010.0, 4499990.0], [600100.0, 4499900.0], [600200.0, 4499800.0], [600300.0, 4499700.0]])
    cols = {"crossing_id": np.array([1, 2, 3, 4], np.int32), "score": np.array([0.31, 0.62, 0.9, 0.9987]),
            "window_score": np.array([0.97, 0.99, 0.999, 1.0]), "n_windows": np.array([2, 4, 9, 20], np.int32)}
    return write_points(xy, cols, "EPSG:26914", tmp_path / "c.gpkg")


def test_style_is_stored_for_the_real_geometry_column(scored):
    with sqlite3.connect(scored) as db:
        geom = db.execute("SELECT column_name FROM gpkg_geometry_columns WHERE table_name='crossings'").fetchone()
        style = db.execute("SELECT f_geometry_column, useAsDefault, styleQML FROM layer_styles").fetchone()
    assert style[0] == geom[0] and style[1] == 1
    assert 'type="graduatedSymbol" attr="score"' in style[2]
    assert [c[:2] for c in SCORE_CLASSES] == [(0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.0)]


def test_qgis_graduates_the_points_by_score(scored, tmp_path):
    try:
        probe = subprocess.run([QGIS_PYTHON, "-c", "import qgis.core"], capture_output=True, timeout=120,
                               env=_qgis_env(tmp_path))
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"no QGIS: {QGIS_PYTHON} cannot run ({e})")
    if probe.returncode != 0:
        pytest.skip(f"no QGIS: {QGIS_PYTHON} cannot import qgis.core (apt-get install python3-qgis, or set "
                    "GEODRAIN_QGIS_PYTHON)")
    p = subprocess.run([QGIS_PYTHON, "-c", QGIS_SCRIPT, str(scored)], capture_output=True, text=True, timeout=300,
                       env=_qgis_env(tmp_path))
    assert p.returncode == 0, p.stderr[-2000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["valid"] and got["renderer"] == "graduatedSymbol" and got["attribute"] == "score"
    assert got["ranges"] == [[lo, hi] for lo, hi, _ in SCORE_CLASSES]
    sym = got["symbols"]
    assert all(sym[k] is not None for k in "1234")
    assert len({tuple(v) for v in sym.values()}) == 4                    # one class each
    assert [sym[k][1] for k in "1234"] == sorted(sym[k][1] for k in "1234")   # larger with the score
    assert sym["4"][0] == "#dc0000"
