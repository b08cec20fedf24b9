"""Detection settings from the Python API: every value checked (never a 0 read as "the default"), the
calibrated settings of the stride used, no silent engine fallback, no setting quietly ignored; the bundle's
manifest checked against its schema on load."""

from __future__ import annotations

import json
import math
import shutil
import warnings

import pytest
import torch

from geodrain.errors import BundleError, GeodrainWarning, SettingsError
from geodrain.model.bundle import load_bundle
from geodrain.settings import DetectOptions

CPU = torch.device("cpu")


@pytest.mark.parametrize("field, value", [
    ("stride", 0), ("stride", 101), ("stride", 2.5), ("threshold", math.nan), ("threshold", 1.5),
    ("threshold", -0.1), ("merge_radius_m", -5.0), ("merge_radius_m", 0.0), ("merge_radius_m", math.nan),
    ("min_valid", 2.0), ("min_valid", math.nan), ("batch_size", 0), ("batch_size", -1), ("block_px", -5),
    ("block_px", 0), ("block_px", 10), ("read_threads", 0), ("read_threads", -1), ("scale", 0.0),
    ("scale", math.nan), ("scale", math.inf), ("scale", "abc"), ("engine", "fast"), ("backend", "tensorrt"),
    ("precision", "fp8"), ("bands", (0, 1, 2, 3)), ("bands", ()),
])
def test_out_of_range_settings_are_refused(random_bundle, field, value):
    with pytest.raises(SettingsError, match=field):
        DetectOptions(**{field: value}).resolve(load_bundle(random_bundle), CPU)


def test_no_zero_becomes_the_default(random_bundle):
    s = DetectOptions(batch_size=1, block_px=128, read_threads=1).resolve(load_bundle(random_bundle), CPU)
    assert (s.run.batch_size, s.block_px, s.read_threads) == (1, 128, 1)


def test_auto_engine_never_falls_back_to_chip_silently(random_bundle):
    b = load_bundle(random_bundle)
    with pytest.raises(SettingsError, match="not a multiple of 8.*chip engine explicitly") as e:
        DetectOptions(stride=12).resolve(b, CPU)
    assert e.value.cli_hint == {"engine": "--engine chip runs it"}
    assert DetectOptions(stride=12, engine="chip").resolve(b, CPU).engine == "chip"
    assert DetectOptions(stride=16).resolve(b, CPU).engine == "dense"


def test_fp16_on_the_cpu_is_said(random_bundle):
    with pytest.warns(GeodrainWarning, match="fp16 needs a CUDA device: running fp32"):
        s = DetectOptions(precision="fp16").resolve(load_bundle(random_bundle), CPU)
    assert s.run.precision == "fp32"


def test_deployed_bundle_carries_calibrations_by_stride():
    b = load_bundle()
    assert sorted(b.calibrations) == [8, 24] and b.stride_px == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeodrainWarning)
        at24 = DetectOptions(stride=24).resolved(b)
    assert at24.threshold == b.calibration_for(24)["threshold"] < b.threshold
    with pytest.warns(GeodrainWarning, match="stride 16 px is not one the bundle was calibrated at \\(8 px, 24 px\\)"):
        DetectOptions(stride=16).resolved(b)


@pytest.mark.parametrize("field, value, match", [
    ("threshold", "high", "'threshold' must be a number from 0 to 1, got 'high'"),
    ("threshold", 1.5, "'threshold' must be a number from 0 to 1"),
    ("stride_px", 0, "'stride_px' must be an integer from 1 to 100, got 0"),
    ("merge_radius_m", -5, "'merge_radius_m' must be a number > 0"),
    ("gsd_m", -1, "'gsd_m' must be a number > 0"),
    ("bands", "rgbn", "'bands' must be a list of band names"),
    ("context_px", 12, "'context_px' must be a non-negative multiple of 8"),
    ("window_px", 128, "'window_px' must be 100"),
    ("calibrations", {"24": {"threshold": "x"}}, "'calibrations' must be"),
    ("inference", [], "'inference' must be an object"),
    ("files", "weights.pt", "'files' must be an object of file entries"),
])
def test_manifest_fields_are_checked_on_load(random_bundle, tmp_path, field, value, match):
    b = tmp_path / "b"
    shutil.copytree(random_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m[field] = value
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match=match.replace("(", "\\(").replace(")", "\\)")):
        load_bundle(b)


def test_manifest_file_entry_a_string(random_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(random_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    m["files"]["model.onnx"] = "model.onnx"
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="'files' must be an object of file entries"):
        load_bundle(b)
