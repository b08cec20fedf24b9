"""End to end: detection quality on unseen scenes, and the same crossings whatever the file layout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject
from rasterio.windows import Window
from shapely.geometry import box

from geodrain.detect import DetectOptions, detect
from geodrain.evaluate import match_points, score_matching
from geodrain.model.bundle import load_bundle
from geodrain.read import open_source
from geodrain.synth import generate_scene
from geodrain.window import WindowGrid, plan_blocks

pytestmark = pytest.mark.slow
# real NAIP crops (*.tif): the folder named by $GEODRAIN_REAL_NAIP, else shared/data/real/naip beside the
# repository where that exists; skipped when neither holds any
REAL_NAIP_DIR = Path(os.environ.get("GEODRAIN_REAL_NAIP")
                     or Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "naip")
REAL_NAIP = sorted(REAL_NAIP_DIR.glob("*.tif")) or [pytest.param(
    None, id="no-real-naip", marks=pytest.mark.skip(
        reason=f"no real NAIP crops: set GEODRAIN_REAL_NAIP to a folder of NAIP GeoTIFFs (*.tif); "
               f"{REAL_NAIP_DIR} has none"))]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three small scenes from seeds never used for training (training used 1001-1012)."""
    root = tmp_path_factory.mktemp("scenes")
    return [generate_scene(root / f"s{seed}", seed=seed, size=1024).outdir for seed in (5101, 5102, 5103)]


@pytest.fixture(scope="module")
def bundle():
    return load_bundle()


def run(raster, bundle, out=None, **opts):
    return detect(raster, out, model=bundle, options=DetectOptions(overwrite=True, **opts), progress=False)


def xy(result):
    return result.crossings.xy


def truth_xy(scene):
    t = gpd.read_file(scene / "truth.gpkg", layer="crossings")
    return np.c_[t.geometry.x, t.geometry.y]


def same_points(a, b, tol=1.0):
    m = match_points(a, b, tol)
    return len(a) == len(b) == len(m.pred_index)


# Detection F1 of the deployed bundle on unseen scenes at 10 m, at its calibrated stride (8 px) and its
# calibrated scores (crossings of probability >= 0.5), without and with the scene's DEM: the issue asks for
# >= 0.9. The floor tolerates two crossings flipped by platform rounding. On ten unseen 4096² scenes
# (168 km²) the bundle measures 0.933 (scripts/eval_watershed.py, docs/watershed.md).
F1_FLOOR = 0.9


@pytest.fixture(scope="module")
def large_scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("large")
    return [generate_scene(root / f"s{seed}", seed=seed, size=2048).outdir for seed in (5201, 5202)]


def test_f1_on_unseen_scenes(large_scenes, bundle, tmp_path):
    """Both paths: `detect --dem` end to end, and the imagery-only crossings from the same run's window
    candidates through the post-processing detect runs without a DEM."""
    from geodrain.postprocess import report

    counts = {"imagery": [0, 0, 0], "dem": [0, 0, 0]}
    for s in large_scenes:
        r = run(s / "naip.tif", bundle, tmp_path / f"{s.name}.gpkg", dem=(s / "dem.tif",))
        assert {"emb_flow", "channel_pair"} <= set(r.crossings.evidence)
        st = r.settings
        imagery = report(r.candidates, st.threshold, st.merge_radius_m, scoring=st.scoring)
        for name, crossings in (("dem", r.crossings), ("imagery", imagery)):
            ev = score_matching(match_points(crossings.xy, truth_xy(s), 10.0), 10.0)
            c = counts[name]
            c[0], c[1], c[2] = c[0] + ev.true_positives, c[1] + ev.false_positives, c[2] + ev.false_negatives
    for name, (tp, fp, fn) in counts.items():
        assert 2 * tp / (2 * tp + fp + fn) >= F1_FLOOR, (name, tp, fp, fn)


def test_geopackage_reads_back(scenes, bundle, tmp_path):
    out = tmp_path / "c.gpkg"
    r = run(scenes[0] / "naip.tif", bundle, out)
    gdf = gpd.read_file(out, layer="crossings")
    assert gdf.crs.to_epsg() == 26914 and len(gdf) == len(r.crossings)
    assert {"crossing_id", "score", "n_windows", "source", "model"} <= set(gdf.columns)
    assert (gdf["source"] == "naip.tif").all() and (gdf["model"] == bundle.model_id).all()


def _copy(src_path, dst_path, **profile):
    with rasterio.open(src_path) as src:
        prof = {**src.profile, **profile}
        with rasterio.open(dst_path, "w", **prof) as dst:
            dst.write(src.read())
    return dst_path


def test_same_crossings_tiled_striped_split_and_vrt(scenes, bundle, tmp_path):
    scene = scenes[1]
    raster = scene / "naip.tif"
    ref = run(raster, bundle, block_px=256)
    assert len(ref.crossings) >= 2
    striped = _copy(raster, tmp_path / "striped.tif", tiled=False, blockysize=16)
    # split lines through two crossings, so that crossings sit on the seams
    with rasterio.open(raster) as src:
        inv = ~src.transform
        cols, rows = inv @ tuple(truth_xy(scene).T)
        cut_c, cut_r = int(cols[0]), int(rows[-1])
        parts = []
        for r0, r1 in ((0, cut_r), (cut_r, src.height)):
            for c0, c1 in ((0, cut_c), (cut_c, src.width)):
                win = Window(c0, r0, c1 - c0, r1 - r0)
                path = tmp_path / f"part_{r0}_{c0}.tif"
                with rasterio.open(path, "w", **{**src.profile, "width": win.width, "height": win.height,
                                                  "transform": src.window_transform(win),
                                                  "blockxsize": 128, "blockysize": 128}) as dst:
                    dst.write(src.read(window=win))
                parts.append(path)
    with open_source(parts) as mosaic:
        vrt = tmp_path / "mosaic.vrt"
        vrt.write_text(mosaic.vrt)
    for variant in (run(striped, bundle), run(parts, bundle), run(vrt, bundle), run(raster, bundle, block_px=1024)):
        assert same_points(xy(variant), xy(ref)), (len(variant.crossings), len(ref.crossings))


def test_resampled_06m_finds_the_same_crossings(large_scenes, bundle, tmp_path):
    scene = large_scenes[0]
    with rasterio.open(scene / "naip.tif") as src:
        w, h = int(src.width / 0.6), int(src.height / 0.6)
        dst_tf = from_origin(src.transform.c, src.transform.f, 0.6, 0.6)
        data = np.zeros((4, h, w), np.uint8)
        reproject(src.read(), data, src_transform=src.transform, src_crs=src.crs, dst_transform=dst_tf,
                  dst_crs=src.crs, resampling=Resampling.bilinear)
        out = tmp_path / "06.tif"
        with rasterio.open(out, "w", **{**src.profile, "width": w, "height": h, "transform": dst_tf}) as dst:
            dst.write(data)
    r = run(out, bundle)
    assert r.source.resampled and abs(r.source.native_gsd_m - 0.6) < 1e-6
    full = run(scene / "naip.tif", bundle)
    # resampled to 1 m on read, the 0.6 m version finds the crossings the 1 m original finds
    agree = score_matching(match_points(xy(r), xy(full), 10.0), 10.0)
    assert agree.f1 >= 0.75, agree


def test_nodata_collar_has_no_detections(scenes, bundle, tmp_path):
    scene = scenes[2]
    with rasterio.open(scene / "naip.tif") as src:
        data, prof, tf = src.read(), src.profile, src.transform
    data[:, :, :300] = 0                     # a 300 m collar on the west
    out = tmp_path / "collar.tif"
    with rasterio.open(out, "w", **{**prof, "nodata": 0}) as dst:
        dst.write(data)
    r = run(out, bundle)
    x_limit = tf.c + 300 * tf.a
    assert (xy(r)[:, 0] >= x_limit).all()
    full = run(scene / "naip.tif", bundle)
    inside = xy(full)[:, 0] > x_limit + 120  # away from the collar edge, nothing changes
    assert same_points(xy(r)[xy(r)[:, 0] > x_limit + 120], xy(full)[inside])


def test_aoi_clip_in_another_crs(scenes, bundle, tmp_path):
    scene = scenes[1]
    full = run(scene / "naip.tif", bundle)
    with rasterio.open(scene / "naip.tif") as src:
        x0, y0, x1, y1 = src.bounds
    poly = box(x0, y0, (x0 + x1) / 2, y1)
    aoi = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[poly], crs="EPSG:26914").to_crs("EPSG:4326").to_file(aoi)
    r = run(scene / "naip.tif", bundle, aoi=str(aoi))
    assert r.area_km2 == pytest.approx(poly.area / 1e6, rel=0.01)
    assert (xy(r)[:, 0] <= (x0 + x1) / 2 + 1e-6).all()
    keep = xy(full)[:, 0] < (x0 + x1) / 2 - 120
    assert same_points(xy(r)[xy(r)[:, 0] < (x0 + x1) / 2 - 120], xy(full)[keep])


@pytest.mark.parametrize("stride, block_px", [(24, 256), (8, 128)])
def test_dense_and_chip_engines_score_the_same_windows(scenes, bundle, stride, block_px):
    """Same windows, same scores up to float rounding, at the default stride and at a fine one."""
    scene = scenes[0]
    with open_source(scene / "naip.tif") as src:
        from geodrain.blocks import BlockReader
        from geodrain.infer.config import make_engine, run_config
        from geodrain.infer.runtime import resolve_device

        grid = WindowGrid(src.grid.width, src.grid.height, 100, stride, bundle.context_px)
        plan = plan_blocks(grid, block_px)[5]
        block = BlockReader(src, grid, None, 0.5, 1, 1).prepare(plan)
        cfg = run_config(bundle, resolve_device("cpu"))
        dense = make_engine("dense", bundle, cfg, grid, block_px).run(block)
        chip = make_engine("chip", bundle, cfg, grid, block_px).run(block)
    assert len(dense.rows) > 0
    assert np.array_equal(dense.rows, chip.rows) and np.array_equal(dense.cols, chip.cols)
    assert np.abs(dense.logits - chip.logits).max() < 1e-3
    assert np.abs(dense.reg - chip.reg).max() < 1e-3


def test_dense_and_chip_engines_agree_after_merging(scenes, bundle, tmp_path):
    """Same crossings, on the part of the scene around its strongest detection (the chip engine is slow on a
    CPU, hence also the coarse stride)."""
    scene = scenes[0]
    full = run(scene / "naip.tif", bundle, engine="dense", stride=24)
    assert len(full.crossings) >= 1
    cx, cy = xy(full)[np.argmax(full.crossings.score)]
    aoi = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[box(cx - 250, cy - 250, cx + 250, cy + 250)], crs="EPSG:26914").to_file(aoi)
    d = run(scene / "naip.tif", bundle, engine="dense", aoi=str(aoi), stride=24)
    c = run(scene / "naip.tif", bundle, engine="chip", aoi=str(aoi), stride=24)
    assert len(d.crossings) >= 1
    assert same_points(xy(d), xy(c), tol=0.5)


def start_detect(args: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """Start ``geodrain detect`` and return once its progress bar is up (it is in the detection loop), however
    slow the machine: no sleep decides when the run is interrupted. Its stderr keeps being collected."""
    import threading

    # SIGINT as a terminal delivers it, even where this test runs in the background (which ignores it)
    proc = subprocess.Popen([sys.executable, "-m", "geodrain.cli", "detect", *args], stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    started = threading.Event()

    def drain():
        while chunk := os.read(proc.stderr.fileno(), 4096):     # whatever is there, never waits for more
            lines.append(chunk.decode(errors="replace"))
            if "detect:" in "".join(lines[-2:]):
                started.set()
        started.set()                     # ended before (an error): the caller sees the exit status

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    assert started.wait(timeout=600), "detect never started"
    proc.reader = reader                  # joined once the process has ended: then it has read everything
    return proc, lines


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_no_output(scenes, tmp_path, sig, code):
    out = tmp_path / "killed.gpkg"
    proc, err = start_detect([str(scenes[0] / "naip.tif"), "-o", str(out), "--engine", "chip"])
    assert proc.poll() is None, "".join(err)
    proc.send_signal(sig)
    assert proc.wait(timeout=300) == code
    proc.reader.join(timeout=60)
    lines = [ln for ln in "".join(err).replace("\r", "\n").splitlines() if ln.startswith("geodrain:")]
    assert len(lines) == 1 and lines[0].startswith("geodrain: interrupted") and "Traceback" not in "".join(err)
    assert not out.exists() and not list(tmp_path.glob(".*killed*"))


@pytest.mark.parametrize("path", REAL_NAIP, ids=lambda p: p.name[:24] if isinstance(p, Path) else str(p))
def test_real_naip_crops_run(path, bundle, tmp_path):
    opts = {}
    with rasterio.open(path) as src:
        if abs(src.res[0]) > 10:          # the 32 m quarter-quad: look at one square kilometre of it
            x0, y0 = src.bounds.left + 2000, src.bounds.bottom + 2000
            aoi = tmp_path / "aoi.gpkg"
            gpd.GeoDataFrame(geometry=[box(x0, y0, x0 + 1000, y0 + 1000)], crs=src.crs).to_file(aoi)
            opts["aoi"] = str(aoi)
            opts["force"] = True           # refused without it: coarser than 2.5 x the model's GSD
    r = run(path, bundle, tmp_path / "real.gpkg", **opts)
    assert r.evaluated > 0
    assert gpd.read_file(tmp_path / "real.gpkg", layer="crossings").crs == r.source.grid.crs
