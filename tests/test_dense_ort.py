"""The dense engine's ONNX Runtime graphs: export, int8 quantization, the bundle's tuned choice, and detect."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch

from geodrain.blocks import BlockReader
from geodrain.detect import DetectOptions, detect
from geodrain.infer.config import make_engine, run_config
from geodrain.errors import BundleError, DeviceError
from geodrain.infer.dense import DenseEngine
from geodrain.infer import dense_ort
from geodrain.infer.dense_ort import (OrtDenseEngine, cpu_int8_exact, graph_name, graph_stride, onnx_precision,
                                      prepared_graph)
from geodrain.infer.prepare import (export_dense_graph, graph_scores, quantize_dense_graph,
                                    uint8_input, window_agreement)
from geodrain.infer.runtime import resolve_device
from geodrain.model.bundle import load_bundle
from geodrain.read import open_source
from geodrain.synth import generate_scene
from geodrain.window import WindowGrid, plan_blocks


def dense_args(opts: DetectOptions) -> dict:
    """run_config's overrides from DetectOptions (the dense engine's stride, backend and precision)."""
    return {"stride": opts.stride, "backend": opts.backend, "precision": opts.precision}

# the documented bound of the shipped int8 graph (scripts/prepare_dense.py): the same crossings as fp32, one
# to one within this distance
MATCH_M = 2.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A small scene from a seed used neither for training nor for the int8 calibration."""
    return generate_scene(tmp_path_factory.mktemp("ort") / "s5201", seed=5201, size=768).outdir


@pytest.fixture(scope="module")
def deployed():
    return load_bundle()


@pytest.fixture()
def bundle_copy(random_bundle, tmp_path):
    """A writable copy of the random-weight bundle with fp32 and int8 dense graphs at stride 8."""
    dest = tmp_path / "b"
    shutil.copytree(random_bundle, dest)
    b = load_bundle(dest)
    files = {p: tmp_path / graph_name(8, p) for p in ("fp32", "int8")}
    export_dense_graph(b.model, 8, files["fp32"])
    rng = np.random.default_rng(0)
    quantize_dense_graph(files["fp32"], files["int8"],
                         [rng.integers(0, 256, (4, 180, 180), dtype=np.uint8) for _ in range(3)])
    for f in files.values():
        uint8_input(f)
    return b, files


def set_dense(b, files, entry):
    b.add_files({f.name: f for f in files.values()}, inference={"cpu": {"dense": entry}})
    return load_bundle(b.path)


def test_exported_graph_matches_torch_on_other_block_sizes(random_bundle, tmp_path):
    b = load_bundle(random_bundle)
    path = tmp_path / "g.onnx"
    assert export_dense_graph(b.model, 8, path) < 1e-4
    uint8_input(path)
    g = torch.Generator().manual_seed(3)
    for h, w in ((132, 132), (171, 260), (301, 149)):
        x = (torch.rand(1, 4, h, w, generator=g) * 255).to(torch.uint8)
        with torch.inference_mode():
            ref = b.model.forward_dense(x.float(), 8)[0].numpy()
        got = graph_scores(path, [x[0].numpy()])[0].transpose(1, 2, 0)
        assert got.shape[0] >= ref.shape[0] and got.shape[1] >= ref.shape[1]
        assert np.abs(got[:ref.shape[0], :ref.shape[1]] - ref).max() < 1e-4


def test_int8_graph_is_quantized_and_close(bundle_copy):
    b, files = bundle_copy
    int8 = onnx.load(str(files["int8"]))
    ops = {n.op_type for n in int8.graph.node}
    assert "DequantizeLinear" in ops and "QuantizeLinear" in ops
    assert int8.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert "QuantizeLinear" not in {n.op_type for n in int8.graph.node if "block" in n.input}  # exact input
    rng = np.random.default_rng(1)
    blocks = [rng.integers(0, 256, (4, 196, 220), dtype=np.uint8)]
    ref, got = graph_scores(files["fp32"], blocks), graph_scores(files["int8"], blocks)
    agree = window_agreement(ref, got, 0.5)
    assert agree["logit_abs_diff_max"] > 0                    # it did run in integers
    if not cpu_int8_exact():                                  # this CPU's int8 kernels saturate: never selected
        return
    for k in range(5):                                        # and tracks fp32 window by window
        r = np.corrcoef(ref[0][k].ravel(), got[0][k].ravel())[0, 1]
        assert r > 0.95


def test_int8_only_where_the_cpu_runs_it_exactly(bundle_copy, tmp_path, monkeypatch):
    """Without VNNI a tuned int8 choice runs the fp32 graph and an explicit int8 is refused; the CPU's flags
    decide (read from /proc/cpuinfo on x86-64)."""
    b, files = bundle_copy
    b = set_dense(b, files, {"backend": "onnx", "precision": "int8",
                             "graphs": {"8": {p: f.name for p, f in files.items()}}})
    monkeypatch.setattr(dense_ort, "cpu_int8_exact", lambda: False)
    assert onnx_precision(b, 8, None, None, "cpu") == "fp32"
    assert onnx_precision(b, 8, "onnx", None, "cpu") == "fp32"
    with pytest.raises(DeviceError, match="no VNNI"):
        onnx_precision(b, 8, None, "int8", "cpu")
    monkeypatch.setattr(dense_ort, "cpu_int8_exact", lambda: True)
    assert onnx_precision(b, 8, None, None, "cpu") == "int8"
    monkeypatch.undo()
    for flags, exact in (("fpu sse2 avx2 fma", False), ("fpu avx2 avx512f avx512_vnni", True),
                         ("fpu avx2 avx_vnni", True)):
        info = tmp_path / "cpuinfo"
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert cpu_int8_exact(info) == (exact or dense_ort.platform_is_x86() is False)


def test_uint8_input_refuses_a_lossy_input_quantization(random_bundle, tmp_path):
    """A graph whose input is quantized with another scale than 1 cannot take the raw bytes as they are."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from geodrain.infer.prepare import _Reader

    class Reader(_Reader, CalibrationDataReader):
        pass

    export_dense_graph(load_bundle(random_bundle).model, 8, tmp_path / "f.onnx")
    crops = [np.random.default_rng(0).integers(0, 200, (4, 160, 160), dtype=np.uint8)]
    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(crops), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    with pytest.raises(ValueError, match="not the identity"):
        uint8_input(tmp_path / "q.onnx")


def test_tuned_settings_choose_the_graph(bundle_copy, monkeypatch):
    b, files = bundle_copy
    monkeypatch.setattr(dense_ort, "cpu_int8_exact", lambda: True)      # a CPU with VNNI
    assert onnx_precision(b, 8, None, None, "cpu") is None               # nothing tuned: torch
    graphs = {"8": {p: f.name for p, f in files.items()}}
    b = set_dense(b, files, {"backend": "onnx", "precision": "int8", "graphs": graphs})
    assert prepared_graph(b, 8, "int8") == b.path / graph_name(8, "int8")
    assert onnx_precision(b, 8, None, None, "cpu") == "int8"
    assert onnx_precision(b, 8, None, "fp32", "cpu") == "fp32"           # --precision fp32: exact graph
    assert onnx_precision(b, 8, "torch", None, "cpu") is None            # --backend torch
    assert onnx_precision(b, 8, None, "bf16", "cpu") is None             # a torch precision: torch
    assert onnx_precision(b, 24, None, None, "cpu") == "int8"            # the stride-8 graph holds stride 24's
    assert prepared_graph(b, 24, "int8") == b.path / graph_name(8, "int8") and graph_stride(b, 24, "int8") == 8
    assert onnx_precision(b, 12, None, None, "cpu") is None              # no graph for this stride: torch
    assert onnx_precision(b, 12, "onnx", None, "cpu") == "fp32"          # --backend onnx: fp32 (exported)
    assert onnx_precision(b, 8, "onnx", None, "cpu") == "int8"
    with pytest.raises(DeviceError, match="no int8 dense graph for stride 12"):
        onnx_precision(b, 12, "onnx", "int8", "cpu")
    assert onnx_precision(b, 8, None, None, "cuda:Some GPU") is None     # tuned for the CPU only
    with pytest.raises(DeviceError):
        onnx_precision(b, 8, None, "int8", "cuda:Some GPU")


@pytest.mark.parametrize("prepared", [False, True])
def test_onnx_engine_at_a_coarser_stride_equals_torch(bundle_copy, scene, prepared):
    """Stride 24 from the stride-8 graph (every third window), or from an fp32 graph exported at start."""
    b, files = bundle_copy
    if prepared:
        b = set_dense(b, files, {"backend": "onnx", "precision": "fp32",
                                 "graphs": {"8": {p: f.name for p, f in files.items()}}})
    with open_source(scene / "naip.tif") as src:
        grid = WindowGrid(src.grid.width, src.grid.height, 100, 24, b.context_px)
        opts = DetectOptions(device="cpu", backend="onnx", stride=24)
        cfg = run_config(b, resolve_device("cpu"), engine="dense", **dense_args(opts))
        assert (cfg.backend, cfg.precision) == ("onnx", "fp32")
        engine = make_engine("dense", b, cfg, grid, 256)
        assert isinstance(engine, OrtDenseEngine) and engine.every == (3 if prepared else 1)
        block = BlockReader(src, grid, None, 0.5, 1, 1).prepare(plan_blocks(grid, 256)[1])
        got = engine.run(block)
        ref = DenseEngine(b, run_config(b, resolve_device("cpu"), engine="dense", backend="torch", stride=24),
                          grid, 256).run(block)
    assert np.array_equal(got.rows, ref.rows) and np.array_equal(got.cols, ref.cols)
    assert np.abs(got.logits - ref.logits).max() < 1e-4 and np.abs(got.reg - ref.reg).max() < 1e-4


def test_listed_graph_must_be_checksummed(bundle_copy):
    b, files = bundle_copy
    b = set_dense(b, files, {"backend": "onnx", "precision": "int8", "graphs": {"8": {"int8": "missing.onnx"}}})
    with pytest.raises(BundleError, match="does not checksum"):
        prepared_graph(b, 8, "int8")
    (b.path / graph_name(8, "int8")).write_bytes(b"corrupt")
    with pytest.raises(BundleError, match="sha256"):
        load_bundle(b.path)


def test_deployed_bundle_runs_its_tuned_graph_and_agrees_with_fp32(deployed, scene, tmp_path):
    """What `detect` runs on a CPU is what the bundle's tuned settings select; it finds the same crossings as
    the exact fp32 path within the documented bound."""
    entry = deployed.tuned("cpu").get("dense")
    assert entry, "the deployed bundle has no tuned dense settings for the CPU (scripts/prepare_dense.py)"
    fast = detect(scene / "naip.tif", tmp_path / "fast.gpkg", model=deployed, progress=False,
                  options=DetectOptions(device="cpu", overwrite=True))
    run = fast.config["run"]
    want = entry["precision"] if entry["precision"] != "int8" or cpu_int8_exact() else "fp32"
    assert (run["backend"], run["precision"]) == (entry["backend"], want)
    exact = detect(scene / "naip.tif", tmp_path / "exact.gpkg", model=deployed, progress=False,
                   options=DetectOptions(device="cpu", backend="torch", overwrite=True))
    assert exact.config["run"]["backend"] == "torch"
    a, b = fast.crossings.xy, exact.crossings.xy
    assert len(a) == len(b) >= 1
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    assert (d.min(axis=1) <= MATCH_M).all() and (d.min(axis=0) <= MATCH_M).all()
    assert fast.config["engine"] == "dense"


def test_deployed_int8_windows_agree_with_torch(deployed, scene):
    """Window level on a block of an unseen small scene: the shipped int8 graph against torch fp32."""
    path = prepared_graph(deployed, 8, "int8")
    assert path is not None
    with open_source(scene / "naip.tif") as src:
        data, _ = src.read(0, 0, 516, 516)
    with torch.inference_mode():
        ref = deployed.model.forward_dense(torch.from_numpy(data)[None].float(), 8)[0].numpy()
    got = graph_scores(path, [data])[0].transpose(1, 2, 0)[:ref.shape[0], :ref.shape[1]]
    d = np.abs(got[..., 0] - ref[..., 0])
    assert d.max() < 2.0 and d.mean() < 0.3


@pytest.mark.parametrize("stride", [8, 24])
def test_int8_rescoring_gives_the_fp32_scores_near_and_above_the_threshold(bundle_copy, scene, stride,
                                                                           monkeypatch):
    b, files = bundle_copy
    monkeypatch.setattr(dense_ort, "cpu_int8_exact", lambda: True)      # the mechanism, whatever this CPU
    graphs = {"8": {p: f.name for p, f in files.items()}}
    with open_source(scene / "naip.tif") as src:
        grid = WindowGrid(src.grid.width, src.grid.height, 100, stride, b.context_px)
        block = BlockReader(src, grid, None, 0.5, 1, 1).prepare(plan_blocks(grid, 384)[0])
    k = stride // 8
    exact = graph_scores(files["fp32"], [block.data])[0][:, ::k, ::k]
    logits = exact[0, :block.plan.nrows, :block.plan.ncols][block.keep]
    thr_logit = float(np.percentile(logits, 97))
    threshold = 1 / (1 + np.exp(-thr_logit))
    b = set_dense(b, files, {"backend": "onnx", "precision": "int8", "graphs": graphs,
                             "int8": {"rescore": True, "rescore_margin_logit": 0.05}})
    cfg = run_config(b, "cpu", engine="dense", **dense_args(DetectOptions(device="cpu", stride=stride)))
    assert (cfg.backend, cfg.precision) == ("onnx", "int8")
    engine = make_engine("dense", b, cfg, grid, 384, threshold)
    got = engine.run(block)
    ref_l = exact[0][got.rows - block.plan.row0, got.cols - block.plan.col0]
    ref_r = exact[1:].transpose(1, 2, 0)[got.rows - block.plan.row0, got.cols - block.plan.col0]
    near = got.logits >= thr_logit - 0.05
    assert 0 < engine.stats()["rescored_windows"] < len(got.logits)
    assert np.abs(got.logits[near] - ref_l[near]).max() < 1e-4
    assert np.abs(got.reg[near] - ref_r[near]).max() < 1e-4
    # every window the fp32 graph puts above the threshold came out of the fp32 graph
    above = ref_l >= thr_logit
    assert above.any() and np.abs(got.logits[above] - ref_l[above]).max() < 1e-4
    # and without a threshold the engine is int8 alone
    plain = make_engine("dense", b, cfg, grid, 384).run(block)
    assert np.abs(plain.logits - ref_l).max() > 1e-3


def test_the_onnx_path_does_not_import_torch(bundle_copy, scene):
    """On a CPU, detect with a bundle tuned to its ONNX graph runs without importing torch (start-up)."""
    import subprocess
    import sys

    b, files = bundle_copy
    set_dense(b, files, {"backend": "onnx", "precision": "fp32", "graphs": {"8": {p: f.name for p, f in files.items()}}})
    code = ("import sys; from geodrain.detect import DetectOptions, detect; "
            f"r = detect({str(scene / 'naip.tif')!r}, None, model={str(b.path)!r}, "
            "options=DetectOptions(device='cpu', stride=8), progress=False); "
            "print(r.config['run']['backend'], 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["onnx", "False"]


def test_without_onnxruntime_the_tuned_graph_falls_back_to_torch(monkeypatch):
    """The deployed bundle's tuned CPU engine is its ONNX graph; where onnxruntime is not installed (a wheel
    without the [cpu] extra) the dense engine runs with torch and says so, and an explicit ONNX run is refused
    in one line naming the extra, when the settings are resolved (before any work)."""
    import sys

    from geodrain.errors import DependencyError, GeodrainWarning

    b = load_bundle(None)
    assert onnx_precision(b, b.stride_px, None, None, "cpu") is not None      # the deployed default is ONNX
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.warns(GeodrainWarning, match="ONNX Runtime is not installed: the dense engine runs with torch"):
        s = DetectOptions(device="cpu").resolve(b, "cpu")
    assert (s.engine, s.run.backend) == ("dense", "torch")
    with pytest.raises(DependencyError, match=r"geodrain\[cpu\]"):
        DetectOptions(device="cpu", backend="onnx").resolve(b, "cpu")


@pytest.mark.parametrize("recorded", [True, False])
def test_graph_that_does_not_fit_the_manifest_architecture_is_refused(tmp_path, recorded):
    """On the ONNX Runtime path the torch weights are not loaded: a manifest whose architecture was edited
    after the graphs were prepared is caught against the recorded architecture, or by the graph's shapes."""
    import json

    from geodrain.infer.dense_ort import check_graph_fits

    src = load_bundle(None)
    dst = tmp_path / "b"
    shutil.copytree(src.path, dst)
    m = json.loads((dst / "manifest.json").read_text())
    if not recorded:
        m["inference"]["cpu"]["dense"].pop("arch", None)
    (dst / "manifest.json").write_text(json.dumps(m))
    check_graph_fits(load_bundle(dst), dst / "dense_s8_int8.onnx")          # as prepared: fits
    m["arch"]["fc"] = 128
    (dst / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="do not fit architecture"):
        check_graph_fits(load_bundle(dst), dst / "dense_s8_int8.onnx")
    with pytest.raises(BundleError, match="do not fit architecture"):
        detect(_tiny_raster(tmp_path), None, model=dst, progress=False,
               options=DetectOptions(device="cpu"))


def _tiny_raster(tmp_path):
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path / "tiny.tif"
    data = (np.random.default_rng(0).random((4, 256, 256)) * 255).astype("uint8")
    with rasterio.open(path, "w", driver="GTiff", width=256, height=256, count=4, dtype="uint8",
                       crs="EPSG:32614", transform=from_origin(500000, 4500000, 1, 1)) as dst:
        dst.write(data)
    return path
