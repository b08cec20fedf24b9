"""Model bundles: round trip, ONNX parity, and every way a bundle can be broken."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch

from geodrain.errors import ArchitectureError, BundleError, OutputExistsError
from geodrain.model import build_model, load_bundle, resolve_arch, save_bundle
from geodrain.model.bundle import ONNX_TOLERANCE, onnx_parity


def test_round_trip_and_manifest(random_bundle):
    b = load_bundle(random_bundle)
    m = b.manifest
    for key in ("arch", "bands", "normalization", "gsd_m", "window_px", "context_px", "threshold", "files"):
        assert key in m
    assert m["bands"] == ["red", "green", "blue", "nir"]
    assert b.arch == resolve_arch("k1-s1-f128")
    x = torch.rand(2, 4, 132, 132) * 255
    with torch.inference_mode():
        assert b.model(x).shape == (2, 5)


def test_onnx_matches_torch_within_1e4(random_bundle):
    b = load_bundle(random_bundle)
    sess = ort.InferenceSession(str(b.onnx_path), providers=["CPUExecutionProvider"])
    x = (torch.rand(7, 4, 132, 132) * 255).numpy()
    with torch.inference_mode():
        ref = b.model(torch.from_numpy(x)).numpy()
    got = sess.run(None, {"chips": x})[0]
    assert np.abs(got - ref).max() <= ONNX_TOLERANCE
    assert onnx_parity(b.model, b.onnx_path) <= ONNX_TOLERANCE


def test_refuses_existing_without_overwrite(random_bundle):
    with pytest.raises(OutputExistsError):
        save_bundle(build_model(resolve_arch("k1-s1-f128"), 16), random_bundle)


@pytest.fixture
def broken(tmp_path, random_bundle):
    path = tmp_path / "b"
    shutil.copytree(random_bundle, path)
    return path


def test_missing_folder(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nope")


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no manifest"):
        load_bundle(tmp_path)


def test_corrupt_manifest(broken):
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable"):
        load_bundle(broken)


def test_corrupt_weights(broken):
    with open(broken / "weights.pt", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\x00\x01\x02")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(broken)


def test_weights_do_not_fit_declared_arch(broken):
    m = json.loads((broken / "manifest.json").read_text())
    m["arch"]["fc"] = 256
    (broken / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="do not fit"):
        load_bundle(broken).model


def test_unknown_arch_in_manifest(broken):
    m = json.loads((broken / "manifest.json").read_text())
    m["arch"]["k1"] = 4
    (broken / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArchitectureError):
        load_bundle(broken)


def test_update_manifest_merges(broken):
    b = load_bundle(broken)
    b.update_manifest(inference={"cpu": {"batch_size": 8}})
    b.update_manifest(inference={"cpu": {"engine": {"backend": "torch"}}})
    again = load_bundle(broken)
    assert again.manifest["inference"]["cpu"] == {"batch_size": 8, "engine": {"backend": "torch"}}
    assert again.best_batch_size("cpu") == 8


def test_dense_onnx_export_matches_torch(tmp_path, random_bundle):
    from geodrain.infer.dense import export_dense_onnx

    assert export_dense_onnx(load_bundle(random_bundle), tmp_path / "dense.onnx", step_px=24,
                             block_windows=4) <= ONNX_TOLERANCE
