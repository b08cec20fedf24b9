"""Scene calibration: the threshold is chosen, and recorded, together with the stride and merge radius that
detection then runs at by default."""

from __future__ import annotations

import shutil

import pytest

from geodrain.detect import DetectOptions, detect
from geodrain.model.bundle import load_bundle
from geodrain.synth import generate_scene
from geodrain.training.calibrate import calibrate_threshold
from geodrain.window import WindowGrid


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return generate_scene(tmp_path_factory.mktemp("cal") / "s", seed=5401, size=512).outdir


def test_calibration_records_stride_and_radius_and_detect_uses_them(random_bundle, scene, tmp_path):
    path = tmp_path / "b"
    shutil.copytree(random_bundle, path)
    before = load_bundle(path)
    assert before.stride_px == 24 and before.merge_radius_m == 20.0          # defaults of a bare bundle
    result = calibrate_threshold(before, [scene], device="cpu", stride=16, merge_radius_m=25.0)
    assert result["stride_px"] == 16 and result["merge_radius_m"] == 25.0
    b = load_bundle(path)
    assert (b.stride_px, b.merge_radius_m, b.threshold) == (16, 25.0, result["threshold"])
    assert b.manifest["calibration"]["scenes"] == [scene.name]

    opts = DetectOptions().resolved(b)
    assert (opts.stride, opts.merge_radius_m, opts.threshold) == (16, 25.0, b.threshold)
    explicit = DetectOptions(stride=8, threshold=0.7, merge_radius_m=12.0).resolved(b)
    assert (explicit.stride, explicit.merge_radius_m, explicit.threshold) == (8, 12.0, 0.7)

    r = detect(scene / "naip.tif", None, model=b, options=DetectOptions(device="cpu"), progress=False)
    grid = WindowGrid(r.source.grid.width, r.source.grid.height, b.window_px, 16, b.context_px)
    assert r.windows == grid.rows * grid.cols


def test_calibration_without_record_leaves_the_bundle(random_bundle, scene, tmp_path):
    path = tmp_path / "b"
    shutil.copytree(random_bundle, path)
    manifest = (path / "manifest.json").read_text()
    calibrate_threshold(load_bundle(path), [scene], device="cpu", stride=8, record=False)
    assert (path / "manifest.json").read_text() == manifest


def test_calibrate_command(random_bundle, scene):
    import json

    from click.testing import CliRunner

    from geodrain.cli import cli

    res = CliRunner().invoke(cli, ["calibrate", str(random_bundle), str(scene), "--stride", "16",
                                   "--merge-radius", "25", "--no-record", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["stride_px"] == 16 and out["merge_radius_m"] == 25.0 and 0 <= out["threshold"] <= 1
    assert load_bundle(random_bundle).stride_px == 24


def test_calibrations_by_stride(random_bundle, scene, tmp_path):
    """A second stride calibrated without making it the default: detection at that stride uses its threshold
    and merge radius; at the default stride, the default's."""
    import warnings

    from geodrain.errors import GeodrainWarning

    path = tmp_path / "b"
    shutil.copytree(random_bundle, path)
    first = calibrate_threshold(load_bundle(path), [scene], device="cpu", stride=16, merge_radius_m=25.0)
    second = calibrate_threshold(load_bundle(path), [scene], device="cpu", stride=24, merge_radius_m=30.0,
                                 default=False)
    b = load_bundle(path)
    assert (b.stride_px, b.threshold, b.merge_radius_m) == (16, first["threshold"], 25.0)
    assert sorted(b.calibrations) == [16, 24]
    assert b.calibration_for(24)["threshold"] == second["threshold"] and b.calibration_for(24)["merge_radius_m"] == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeodrainWarning)        # calibrated strides: no warning
        at24 = DetectOptions(stride=24).resolved(b)
        at16 = DetectOptions().resolved(b)
    assert (at24.threshold, at24.merge_radius_m) == (second["threshold"], 30.0)
    assert (at16.stride, at16.threshold, at16.merge_radius_m) == (16, first["threshold"], 25.0)
    with pytest.warns(GeodrainWarning, match="stride 8 px is not one the bundle was calibrated at"):
        at8 = DetectOptions(stride=8).resolved(b)
    assert (at8.threshold, at8.merge_radius_m) == (first["threshold"], 25.0)
