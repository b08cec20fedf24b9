"""Profiling: name classification, batch-size choice, and ``profile`` end to end on the CPU."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from geodrain.model import Arch, build_model, load_bundle, save_bundle
from geodrain.profiling import (BatchProfile, classify_api, classify_cpu_op, classify_kernel, pick_batch_size,
                                profile_bundle)

TINY = Arch(k1=3, spp=1, fc=128, width=0.25)


@pytest.mark.parametrize("name, cls", [
    ("sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nhwc_tilesize128x128x32", "conv"),
    ("void cudnn::winograd_nonfused::winogradForwardData4x4<float, float>", "conv"),
    ("implicit_convolve_sgemm", "conv"),
    ("cutlass__5x_cudnn::Kernel<cutlass_tensorop_h16816fprop_optimized_64x64_64x5_nhwc_align8>", "conv"),
    ("ampere_sgemm_128x64_tn", "matmul"),
    ("nvjet_tst_128x64_64x8_2x1_v_bz_TNT", "matmul"),
    ("void cublasLt::splitKreduce_kernel<32, 16, int, float, float>", "matmul"),
    ("void at::native::(anonymous namespace)::max_pool_forward_nchw<float>", "pool"),
    ("void at::native::(anonymous namespace)::adaptivemaxpool<float>", "pool"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::launch_clamp_scalar",
     "other"),
    ("void at::native::elementwise_kernel<128, 4, convert_float_to_half>", "other"),
    ("Memcpy DtoH (Device -> Pinned)", "copy"),
])
def test_classify_kernel(name: str, cls: str) -> None:
    assert classify_kernel(name) == cls


def test_classify_cpu_ops_and_api() -> None:
    assert classify_cpu_op("aten::mkldnn_convolution") == "conv"
    assert classify_cpu_op("aten::addmm") == "matmul"
    assert classify_cpu_op("aten::max_pool2d_with_indices") == "pool"
    assert classify_cpu_op("aten::clamp_min_") == "other"
    assert classify_api("cudaLaunchKernel") == "launch"
    assert classify_api("cuLaunchKernelEx") == "launch"
    assert classify_api("cudaDeviceSynchronize") == "sync"
    assert classify_api("cudaStreamSynchronize") == "sync"
    assert classify_api("cuLibraryLoadData") == "library"
    assert classify_api("cudaGraphLaunch") == "graph"
    assert classify_api("cudaMemcpyAsync") == "memcpy"
    assert classify_api("cudaStreamIsCapturing") == "other"


def _row(bs: int, cps: float, mb: float) -> BatchProfile:
    return BatchProfile(bs, batch_ms=1e3 * bs / cps, chips_per_s=cps, peak_mb=mb)


def test_pick_batch_size_tolerance_and_cap() -> None:
    rows = [_row(1, 100, 10), _row(2, 180, 20), _row(4, 305, 40), _row(8, 310, 80), _row(16, 330, 5000)]
    assert pick_batch_size(rows, memory_cap_gb=10)[0] == 16        # 305, 310 < 0.95 * 330
    assert pick_batch_size(rows, memory_cap_gb=1)[0] == 4          # 16 over the cap: 305 >= 0.95 * 310
    assert pick_batch_size(rows, memory_cap_gb=0.025)[0] == 2      # only 1 and 2 fit (<= 25.6 MB)
    assert pick_batch_size(rows, memory_cap_gb=1e-4)[0] is None
    assert pick_batch_size([BatchProfile(1, error="out of memory")], 10)[0] is None


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundles") / "tiny"
    save_bundle(build_model(TINY, context_px=0), path,
                inference={"cuda:Some GPU": {"batch_size": 512}, "cpu": {"engine": {"backend": "torch"}}})
    return path


def test_profile_bundle_cpu_end_to_end(tiny_bundle, tmp_path) -> None:
    out = tmp_path / "prof"
    rep = profile_bundle(tiny_bundle, [1, 2], device="cpu", out_dir=out, iters=3, profile_iters=2,
                         progress=False, record=True)
    assert rep.mode == "cpu" and [b.batch_size for b in rep.batches] == [1, 2]
    for b in rep.batches:
        assert b.ok and b.chips_per_s > 0 and b.peak_mb > 0
        assert abs(sum(b.compute_share.values()) - 100.0) < 1e-6
        assert b.compute_share["conv"] > 0
    assert rep.best_batch_size in (1, 2)
    for name in ("profile.json", "profile.csv", "profile.md", "throughput.png", "memory.png", "kernels.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "profile.json").read_text())["best_batch_size"] == rep.best_batch_size
    bundle = load_bundle(tiny_bundle)
    assert bundle.best_batch_size("cpu") == rep.best_batch_size
    entry = bundle.manifest["inference"]
    assert entry["cpu"]["profile"]["measured_with"] == "geodrain profile"
    assert entry["cpu"]["engine"] == {"backend": "torch"}              # others' keys survive
    assert entry["cuda:Some GPU"]["batch_size"] == 512
    with pytest.raises(FileExistsError):
        profile_bundle(tiny_bundle, [1], device="cpu", out_dir=out, progress=False)


def test_profile_cli_cpu(tiny_bundle, tmp_path) -> None:
    from geodrain.cli import cli

    out = tmp_path / "cli"
    args = ["profile", str(tiny_bundle), "--device", "cpu", "--batch-sizes", "1,2", "--iters", "2",
            "--profile-iters", "1", "--no-plots", "-o", str(out), "-q"]
    manifest = (tiny_bundle / "manifest.json").read_bytes()
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert (tiny_bundle / "manifest.json").read_bytes() == manifest     # recorded only with --record
    assert (out / "profile.md").is_file() and not (out / "throughput.png").exists()
    res = CliRunner().invoke(cli, ["profile", str(tiny_bundle), "--device", "cpu", "--precision", "fp16", "-q"])
    assert res.exit_code == 1 and "CUDA" in res.output


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_profile_cuda_kernels(tiny_bundle, tmp_path) -> None:
    rep = profile_bundle(tiny_bundle, [1, 8], device="cuda", iters=3, profile_iters=2, record=False,
                         progress=False)
    assert rep.mode == "cuda"
    for b in rep.batches:
        assert b.compute_us["conv"] > 0 and b.compute_us["pool"] > 0
        assert sum(b.api_us.values()) > 0
