"""Statewide runs with real parts: a real Dask scheduler and workers (one killed mid-run), and a driver killed
with SIGKILL and resumed. A six-file mosaic in two UTM zones (tiles of a generated scene overlapping by 100 m,
the west ones reprojected to zone 13) with the random-weight test bundle.

No assertion depends on timing: kills are triggered by what the run has written (a task's result file
appearing in the work folder), and waits poll for states (a file, a worker count), with generous limits that
only bound a hung run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest

from geodrain.synth import generate_scene
from geodrain.synth.tiles import cut_tiles

pytestmark = pytest.mark.slow
EPOCH = "1700000000"     # SOURCE_DATE_EPOCH: two runs write the same creation time
OPTS = ["--threshold", "0.125", "--stride", "24", "--block-size", "256", "--task-size", "256", "--device", "cpu",
        "-q"]


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    root = tmp_path_factory.mktemp("statewide")
    scene = generate_scene(root / "scene", seed=5301, size=1024).outdir
    tiles = cut_tiles(scene, root / "tiles", rows=3, cols=2, overlap_px=100)
    assert sorted(tiles.crs) == ["EPSG:26913"] * 3 + ["EPSG:26914"] * 3
    return tiles


def detect_cmd(inputs, out, bundle, *extra):
    return [sys.executable, "-m", "geodrain.cli", "detect", *map(str, inputs), "-o", str(out), "-m", str(bundle),
            *OPTS, *map(str, extra)]


def env(**extra):
    return {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "PYTHONUNBUFFERED": "1", **extra}


def wait_until(predicate, what: str, limit: float = 300.0, poll: float = 0.01):
    end = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(poll)


def task_files(work: Path) -> list[Path]:
    return sorted((work / "tasks").glob("*.parquet")) if (work / "tasks").is_dir() else []


def task_meta(path: Path) -> dict:
    import pyarrow.parquet as pq

    return json.loads(pq.read_schema(path).metadata[b"geodrain_task"])


@pytest.fixture(scope="module")
def reference(mosaic, random_bundle, tmp_path_factory):
    """The single-process output (also what the resumed run must reproduce byte for byte)."""
    out = tmp_path_factory.mktemp("ref") / "ref.gpkg"
    subprocess.run(detect_cmd([mosaic.folder], out, random_bundle), env=env(), check=True)
    return out


def crossings(path):
    g = gpd.read_file(path, layer="crossings")
    return g.sort_values(["score", "crossing_id"]).reset_index(drop=True)


def test_reference_run_is_a_two_zone_mosaic(reference, mosaic):
    g = gpd.read_file(reference, layer="crossings")
    assert g.crs.to_epsg() == 5070 and len(g) >= 10
    assert {n.split("_")[-1] for n in g["source"]} == {"26913.tif", "26914.tif"}   # both zones found some


def test_killed_driver_resumes_byte_identical(mosaic, random_bundle, reference, tmp_path):
    out, work = tmp_path / "out.gpkg", tmp_path / "work"
    proc = subprocess.Popen(detect_cmd([mosaic.folder], out, random_bundle, "--work-dir", work), env=env())
    try:
        wait_until(lambda: task_files(work) or proc.poll() is not None, "the first task result")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in task_files(work)}
    total = json.loads((work / "manifest.json").read_text())["tasks"]
    assert 1 <= len(before) <= total
    print(f"killed after {len(before)} of {total} tasks")
    subprocess.run(detect_cmd([mosaic.folder], out, random_bundle, "--work-dir", work, "--resume", "--keep-work"),
                   env=env(), check=True)
    assert out.read_bytes() == reference.read_bytes()
    # the finished tasks were not touched; the resumed run computed exactly the others
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in task_files(work)}
    assert len(after) == total and all(after[k] == v for k, v in before.items())
    ends = [e for e in map(json.loads, (work / "log.jsonl").read_text().splitlines()) if e["event"] == "end"]
    assert ends[-1]["computed"] == total - len(before)
    assert {task_meta(p)["run"] for p in task_files(work) if p.name not in before} <= {ends[-1]["run"]}
    # a kept work folder rewrites the output without computing anything
    subprocess.run(detect_cmd([mosaic.folder], out, random_bundle, "--work-dir", work, "--resume", "--keep-work",
                              "--overwrite"), env=env(), check=True)
    ends = [e for e in map(json.loads, (work / "log.jsonl").read_text().splitlines()) if e["event"] == "end"]
    assert ends[-1]["computed"] == 0 and out.read_bytes() == reference.read_bytes()
    # other settings are refused in one line (the output untouched), and a plain run does not reuse the folder
    for extra, message in ((["--resume", "--threshold", "0.13"], "setting threshold changed"),
                           ([], "--resume")):
        r = subprocess.run(detect_cmd([mosaic.folder], out, random_bundle, "--work-dir", work, "--overwrite", *extra),
                           env=env(), capture_output=True, text=True)
        assert r.returncode == 1 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert out.read_bytes() == reference.read_bytes()


def _dask(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def test_worker_killed_mid_run_same_output(mosaic, random_bundle, reference, tmp_path):
    from distributed import Client

    sched_file = tmp_path / "scheduler.json"
    procs = [_dask("scheduler", "--scheduler-file", str(sched_file), "--port", "0", "--dashboard-address", ":0")]
    try:
        def scheduler_up():
            try:
                return "address" in json.loads(sched_file.read_text())
            except (OSError, ValueError):
                return False

        wait_until(scheduler_up, "the scheduler")
        workers = {name: _dask("worker", "--scheduler-file", str(sched_file), "--name", name, "--nthreads", "1",
                               "--no-nanny", "--memory-limit", "0", "--no-dashboard")
                   for name in ("w0", "w1")}
        procs += workers.values()
        with Client(scheduler_file=str(sched_file), timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler.address
            import urllib.request

            with urllib.request.urlopen(client.dashboard_link, timeout=120) as page:  # the dashboard serves
                assert page.status == 200
        out, work = tmp_path / "dist.gpkg", tmp_path / "work"
        driver = subprocess.Popen(detect_cmd([mosaic.folder], out, random_bundle, "--scheduler", address,
                                             "--work-dir", work, "--keep-work"), env=env())
        procs.append(driver)

        def by_w0():
            return [p for p in task_files(work) if task_meta(p)["info"].get("worker") == "w0"]

        wait_until(lambda: by_w0() or driver.poll() is not None, "a task finished by w0")
        workers["w0"].send_signal(signal.SIGKILL)
        killed_at = {p.name for p in task_files(work)}
        print(f"w0 killed after {len(killed_at)} tasks")
        assert driver.wait(timeout=600) == 0
        total = json.loads((work / "manifest.json").read_text())["tasks"]
        metas = [task_meta(p) for p in task_files(work)]
        assert len(metas) == total
        assert any(m["info"]["worker"] == "w0" for m in metas)
        print({w: sum(m["info"]["worker"] == w for m in metas) for w in ("w0", "w1")}, total)
        # each worker loaded the model once, whatever it ran
        assert {m["info"]["bundle_loads"] for m in metas} == {1}
        a, b = crossings(out), crossings(reference)
        assert len(a) == len(b)
        assert np.allclose(np.c_[a.geometry.x, a.geometry.y], np.c_[b.geometry.x, b.geometry.y], atol=1e-6)
        assert np.array_equal(a["score"], b["score"]) and list(a["source"]) == list(b["source"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=30)
        shutil.rmtree(tmp_path / "work", ignore_errors=True)


def test_local_cluster_workers(mosaic, random_bundle, reference, tmp_path):
    """--workers 2: a LocalCluster of two processes, each with half the cores for torch, the same crossings."""
    out, work = tmp_path / "local.gpkg", tmp_path / "work"
    r = subprocess.run(detect_cmd([mosaic.folder], out, random_bundle, "--workers", "2", "--work-dir", work,
                                  "--keep-work"), env=env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    metas = [task_meta(p) for p in task_files(work)]
    assert {m["info"]["torch_threads"] for m in metas} == {max(1, (os.cpu_count() or 1) // 2)}
    assert {m["info"]["bundle_loads"] for m in metas} == {1} and len({m["info"]["pid"] for m in metas}) <= 2
    a, b = crossings(out), crossings(reference)
    assert len(a) == len(b) and np.array_equal(a["score"], b["score"])
    assert np.allclose(np.c_[a.geometry.x, a.geometry.y], np.c_[b.geometry.x, b.geometry.y], atol=1e-6)
