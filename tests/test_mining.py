"""Hard-example mining (``geodrain mine``) and how training crops use what it finds."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner

from geodrain.cli import cli
from geodrain.datasets.sampler import CropSpec, SceneCropDataset
from geodrain.datasets.scene import open_scene
from geodrain.detect import DetectOptions, detect
from geodrain.evaluate import match_points
from geodrain.model.bundle import load_bundle
from geodrain.synth import generate_scene
from geodrain.training.data import load_training_data
from geodrain.training.mining import MINED_FILE, MINED_LAYER, mine_scene
from geodrain.write import write_points


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return generate_scene(tmp_path_factory.mktemp("mine") / "s", seed=5301, size=1024).outdir


def test_mined_points_are_what_detection_gets_wrong(scene):
    bundle = load_bundle()
    m = mine_scene(bundle, scene, floor=0.05, device="cpu")
    truth = open_scene(scene).crossings.xy
    # false positives: scored at least the floor, farther than 40 m from every true crossing
    assert len(m.false_positives) > 0 and (m.fp_scores >= 0.05).all()
    d = np.hypot(*(m.false_positives[:, None, :] - truth[None]).transpose(2, 0, 1)).min(1)
    assert (d > 40).all()
    # missed: exactly the crossings that detection at the bundle's threshold does not find within 10 m
    r = detect(scene / "naip.tif", None, model=bundle, options=DetectOptions(device="cpu", precision="fp32"),
               progress=False)
    found = match_points(r.crossings.xy, truth, 10.0).true_index
    assert len(m.missed) == len(truth) - len(found) and (m.missed_scores < bundle.threshold).all()
    gdf = gpd.read_file(scene / MINED_FILE, layer=MINED_LAYER)
    assert gdf.crs == open_scene(scene).crs and len(gdf) == len(m.false_positives) + len(m.missed)
    assert sorted(set(gdf["kind"])) <= ["false_positive", "missed"]
    assert (gdf["kind"] == "false_positive").sum() == len(m.false_positives)
    (scene / MINED_FILE).unlink()


def test_crops_favour_mined_points(tmp_path):
    s = generate_scene(tmp_path / "s", seed=5302, size=1024).outdir
    sc = open_scene(s)
    truth = sc.crossings.xy
    fp = np.array([[sc.transform.c + 500.0, sc.transform.f - 500.0]])
    write_points(np.vstack([fp, truth[:1]]), {"kind": ["false_positive", "missed"], "score": [0.9, 0.2]},
                 sc.crs, s / MINED_FILE, layer=MINED_LAYER)
    sc = open_scene(s)
    assert len(sc.mined) == 2
    spec = CropSpec(context_px=16, windows=5)
    ds = SceneCropDataset([sc], spec, length=400, seed=0, mix=(0.5, 0.5, 0, 0), augment=False)
    p = ds._centre_p[0]
    assert p[0] == pytest.approx(SceneCropDataset.MISSED_WEIGHT * p[1])      # the missed crossing drawn 4x
    # half the crops are hard-negative ones, and half of those hold the mined false positive (pixel 500, 500)
    size, holds = ds.spec.size, 0
    for i in range(len(ds)):
        _, col, row = ds.crop_origin(i, np.random.default_rng((0, 0, i)))
        holds += col <= 500 < col + size and row <= 500 < row + size
    assert 0.15 * len(ds) < holds < 0.35 * len(ds)
    assert load_training_data([s], 16, samples_per_epoch=8, crop_windows=3).provenance["mined"] == \
        {"false_positive": 1, "missed": 1}


def test_mine_command_refuses_to_replace_without_overwrite(scene, tmp_path):
    (scene / MINED_FILE).write_text("old")
    r = CliRunner().invoke(cli, ["mine", "models/" + load_bundle().path.name, str(scene), "-q"])
    assert r.exit_code != 0 and "output exists" in r.output and (scene / MINED_FILE).read_text() == "old"
    (scene / MINED_FILE).unlink()
