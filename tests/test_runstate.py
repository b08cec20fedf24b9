"""The work folder: manifest checks, task results in GeoParquet, locking and clean-up."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geodrain.merge import Candidates
from geodrain.runstate import (MANIFEST, RunStateError, WorkDir, default_work_dir, describe_change, input_record,
                               read_task)
from geodrain.tasks import TaskOutput


def manifest(tmp_path, **settings):
    f = tmp_path / "in.tif"
    if not f.exists():
        f.write_bytes(b"raster")
    return {"model_id": "m@1", "inputs": [input_record(str(f), {"width": 10})],
            "settings": {"threshold": 0.9, **settings}, "plan": "abc", "tasks": 3}


def output(key="g00-t000000", n=3, seed=0):
    rng = np.random.default_rng(seed)
    c = Candidates(rng.uniform(0, 1e6, (n, 2)), rng.random(n).astype(np.float32),
                   rng.uniform(5, 30, (n, 2)).astype(np.float32), rng.uniform(0, 1e6, (n, 2)))
    return TaskOutput(key, c, windows=100, evaluated=90, crossings=2, seconds=1.5, info={"worker": "w0"})


def test_default_beside_the_output(tmp_path):
    assert default_work_dir(tmp_path / "c.gpkg") == tmp_path / "c.gpkg.work"


def test_results_round_trip_exactly(tmp_path):
    with WorkDir.open(tmp_path / "w", manifest(tmp_path)) as work:
        out = output()
        path = work.save(out, "EPSG:26914")
        back = work.load(out.key)
        assert work.finished(["g00-t000000", "g00-t000001"]) == {"g00-t000000"}
    for a, b in ((out.candidates.xy, back.candidates.xy), (out.candidates.score, back.candidates.score),
                 (out.candidates.size, back.candidates.size), (out.candidates.centre, back.candidates.centre)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert (back.windows, back.evaluated, back.crossings, back.info["worker"]) == (100, 90, 2, "w0")
    import geopandas as gpd

    gdf = gpd.read_parquet(path)                # a GeoParquet file: opens in QGIS and geopandas
    assert gdf.crs.to_epsg() == 26914 and len(gdf) == 3
    empty = TaskOutput("g00-t000001", Candidates(), 5, 0)
    with WorkDir.open(tmp_path / "w", manifest(tmp_path), resume=True) as work:
        work.save(empty, "EPSG:26914")
        assert len(work.load(empty.key).candidates) == 0


def test_existing_folder_needs_resume_or_restart(tmp_path):
    m = manifest(tmp_path)
    with WorkDir.open(tmp_path / "w", m) as work:
        work.save(output(), "EPSG:26914")
        created = work.created_utc
    with pytest.raises(RunStateError, match=r"unfinished run \(1 of 3 tasks done\).*--resume.*--restart"):
        WorkDir.open(tmp_path / "w", m)
    with WorkDir.open(tmp_path / "w", m, resume=True) as work:
        assert work.finished(["g00-t000000"]) and work.created_utc == created
    with WorkDir.open(tmp_path / "w", m, restart=True) as work:
        assert not work.finished(["g00-t000000"])


@pytest.mark.parametrize("change, message", [
    (lambda m: m["settings"].update(threshold=0.5), "setting threshold changed (0.9 -> 0.5)"),
    (lambda m: m.update(model_id="m@2"), "the model changed"),
    (lambda m: m["inputs"].append({"path": "b.tif"}), "input b.tif was added"),
    (lambda m: m["inputs"].clear(), "was removed"),
    (lambda m: m["inputs"][0].update(width=11), "changed (georeferencing or bands)"),
    (lambda m: m.update(plan="xyz"), "task plan differs"),
])
def test_resume_refuses_another_run(tmp_path, change, message):
    m = manifest(tmp_path)
    WorkDir.open(tmp_path / "w", m).close()
    m2 = json.loads(json.dumps(m))
    change(m2)
    with pytest.raises(RunStateError) as e:
        WorkDir.open(tmp_path / "w", m2, resume=True)
    assert message in str(e.value) and "--restart" in str(e.value) and "\n" not in str(e.value)


def test_changed_input_file_is_detected(tmp_path):
    m = manifest(tmp_path)
    WorkDir.open(tmp_path / "w", m).close()
    f = tmp_path / "in.tif"
    f.write_bytes(b"raster, rewritten")
    with pytest.raises(RunStateError, match=r"input .*in.tif changed \(size or modification time\)"):
        WorkDir.open(tmp_path / "w", manifest(tmp_path), resume=True)


def test_one_run_at_a_time(tmp_path):
    m = manifest(tmp_path)
    with WorkDir.open(tmp_path / "w", m):
        with pytest.raises(RunStateError, match="in use by another geodrain run"):
            WorkDir.open(tmp_path / "w", m, resume=True)
    WorkDir.open(tmp_path / "w", m, resume=True).close()     # the lock goes with the run


def test_foreign_folders_are_left_alone(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(RunStateError, match="not a geodrain work folder"):
        WorkDir.open(tmp_path / "mine", manifest(tmp_path))
    (tmp_path / "file").write_text("")
    with pytest.raises(RunStateError, match="not a folder"):
        WorkDir.open(tmp_path / "file", manifest(tmp_path))
    # remove() deletes the run's files, and the folder only when nothing else is in it
    (tmp_path / "shared").mkdir()
    work = WorkDir.open(tmp_path / "shared", manifest(tmp_path))
    work.save(output(), "EPSG:26914")
    (tmp_path / "shared" / "later.txt").write_text("a user's file")
    work.remove()
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["later.txt"]
    work = WorkDir.open(tmp_path / "fresh", manifest(tmp_path))
    work.remove()
    assert not (tmp_path / "fresh").exists()


def test_creation_time_from_source_date_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    with WorkDir.open(tmp_path / "w", manifest(tmp_path)) as work:
        assert work.created_utc == "2023-11-14T22:13:20Z"
    assert json.loads((tmp_path / "w" / MANIFEST).read_text())["created_utc"] == "2023-11-14T22:13:20Z"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(RunStateError, match="SOURCE_DATE_EPOCH"):
        WorkDir.open(tmp_path / "w2", manifest(tmp_path))


def test_leftover_temporary_files_are_cleared(tmp_path):
    m = manifest(tmp_path)
    WorkDir.open(tmp_path / "w", m).close()
    junk = tmp_path / "w" / "tasks" / ".g00-t000000.parquet.1234abcd.tmp"
    junk.write_bytes(b"half a file")               # a run killed while writing
    with WorkDir.open(tmp_path / "w", m, resume=True) as work:
        assert not junk.exists() and not work.finished(["g00-t000000"])


def test_damaged_result_is_a_clear_error(tmp_path):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(RunStateError, match="unreadable.*--restart"):
        read_task(path)


def test_describe_change_same_run(tmp_path):
    m = {"format": "f", "geodrain_version": "v", **manifest(tmp_path)}
    assert describe_change(m, json.loads(json.dumps(m))) is None


@pytest.mark.parametrize("ext", [".gpkg", ".geojson", ".parquet", ".csv"])
def test_outputs_written_twice_are_the_same_bytes(tmp_path, ext):
    """What makes a resumed run's output byte-identical: no clock in what is written (GeoPackage timestamps
    included, which GDAL otherwise takes from the clock to the millisecond)."""
    from geodrain.write import write_points

    xy = np.array([[600000.5, 4500000.25], [600100.0, 4500100.0]])
    cols = {"score": np.array([0.5, 0.75]), "source": ["a.tif", "b.tif"]}
    a = tmp_path / f"a{ext}"
    written = []
    for _ in range(2):
        write_points(xy, cols, "EPSG:26914", a, metadata={"created_utc": "2023-11-14T22:13:20Z"},
                     created="2023-11-14T22:13:20Z", overwrite=True)
        written.append(a.read_bytes())
    assert written[0] == written[1]
    if ext == ".gpkg":
        import sqlite3

        with sqlite3.connect(a) as db:
            stamps = {r[0] for r in db.execute("select last_change from gpkg_contents")}
            styles = {r[0] for r in db.execute("select update_time from layer_styles")}
        assert stamps == {"2023-11-14T22:13:20.000Z"} and {s[:19] for s in styles} == {"2023-11-14T22:13:20"}
