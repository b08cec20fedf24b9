"""The SPP-Net family: every architecture builds, presets match the paper, dense equals chip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from geodrain.errors import ArchitectureError
from geodrain.model.arch import PRESETS, Arch, resolve_arch, search_space
from geodrain.model.sppnet import DenseGraph, SPPNet, adaptive_bins, pool_windows

PAPER_TABLE_1 = {
    "original": "C64,3,1-P2,2-C128,3,1-P2,2-C256,3,1-P2,2-SPP4,2,1-F1024",
    "spp1": "C64,5,1-P2,2-C128,3,1-P2,2-C256,3,1-P2,2-SPP4,2,1-F1024",
    "spp2": "C64,3,1-P2,2-C128,3,1-P2,2-C256,3,1-P2,2-SPP5,2,1-F4096",
    "spp3": "C64,3,1-P2,2-C128,3,1-P2,2-C256,3,1-P2,2-SPP5,2,1-F2048",
}


def test_presets_are_the_papers_table_1():
    assert {k: v.notation for k, v in PRESETS.items()} == PAPER_TABLE_1
    # the seed's first Linear layer for the original model: 256 * (16 + 4 + 1) inputs
    assert PRESETS["original"].spp_features == 256 * 21


def test_search_space_sizes():
    assert len(search_space()) == 175
    assert len(set(search_space())) == 175
    assert len(search_space(extended=True)) == 525


@pytest.mark.parametrize("text", ["spp2", "k3-s5-f4096", PAPER_TABLE_1["spp2"]])
def test_resolve_arch(text):
    assert resolve_arch(text) == PRESETS["spp2"]


def test_resolve_arch_rejects_unknown():
    with pytest.raises(ArchitectureError):
        resolve_arch("k2-s5-f4096")
    with pytest.raises(ArchitectureError):
        resolve_arch("resnet50")


def test_all_175_architectures_build_with_consistent_shapes():
    """Build every architecture (on the meta device: no weights allocated) and check the output shape."""
    for arch in search_space():
        with torch.device("meta"):
            model = SPPNet(arch)
            out = model(torch.empty(2, 4, 100, 100))
        assert out.shape == (2, 5), arch
        assert model.head.fc.in_features == 256 * (arch.spp ** 2 + 5)


@pytest.mark.parametrize("k1", [1, 3, 5, 7, 9])
@pytest.mark.parametrize("spp", [1, 2, 3, 4, 5])
def test_real_forward_every_kernel_and_level(k1, spp):
    model = SPPNet(Arch(k1, spp, 128)).eval()
    with torch.inference_mode():
        out = model(torch.rand(3, 4, 100, 100) * 255)
    assert out.shape == (3, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("cells,k", [(12, 5), (12, 4), (12, 2), (12, 1), (7, 3), (13, 5)])
def test_pool_windows_matches_adaptive_max_pool(cells, k):
    g = torch.Generator().manual_seed(cells * 10 + k)
    feat = torch.randn(2, 3, cells + 9, cells + 6, generator=g)
    step, first = 3, 1
    rows, cols = (feat.shape[2] - first - cells) // step + 1, (feat.shape[3] - first - cells) // step + 1
    got = pool_windows(feat, (k,), first, step, rows, cols, cells).view(2, rows, cols, -1)
    for i in range(rows):
        for j in range(cols):
            r, c = first + i * step, first + j * step
            ref = F.adaptive_max_pool2d(feat[:, :, r:r + cells, c:c + cells], k).flatten(1)
            assert torch.equal(got[:, i, j], ref)


@pytest.mark.parametrize("arch", [Arch(3, 3, 256), Arch(1, 5, 128), Arch(3, 4, 128), Arch(9, 1, 128)])
@pytest.mark.parametrize("step_px", [8, 16, 24])
def test_head_as_convolutions_equals_the_gathered_spp_vectors(arch, step_px):
    """The FC layer over every window's SPP bins as dilated convolutions over max-pooled maps (even levels) or
    one 1 x 1 convolution per bin (uneven: 12 cells in 5 bins) equals gathering each window's vector."""
    torch.manual_seed(2)
    model = SPPNet(arch, context_px=16).eval()
    x = torch.rand(1, 4, 132 + step_px * 4 + 5, 132 + step_px * 6 + 3) * 255
    with torch.inference_mode():
        f = model.features(x)
        rows, cols = model.window_grid(x.shape[-2], x.shape[-1], step_px)
        conv = model.head_dense(f, step_px, rows, cols)
        gather = model.head_dense_gather(f, step_px, rows, cols)
        graph = DenseGraph(model, step_px // 8)(x).permute(0, 2, 3, 1)
    assert conv.shape == gather.shape == (1, rows, cols, 5)
    assert torch.allclose(conv, gather, atol=1e-4, rtol=1e-4)
    # the exportable graph (normalization folded into the first convolution) computes the same windows first
    assert graph.shape[1] >= rows and graph.shape[2] >= cols
    assert torch.allclose(graph[:, :rows, :cols], gather, atol=1e-4, rtol=1e-4)


def test_adaptive_bins_cover_the_input():
    for n_in in (7, 12, 13):
        for n_out in range(1, 6):
            bins = adaptive_bins(n_in, n_out)
            assert bins[0][0] == 0 and bins[-1][1] == n_in
            assert all(b1 > b0 for b0, b1 in bins)


@pytest.mark.parametrize("arch", [PRESETS["original"], Arch(9, 3, 256), Arch(1, 1, 128)])
def test_dense_equals_chip_with_context(arch):
    """With 16 px of context, pooling windows from one trunk pass equals running each chip."""
    torch.manual_seed(1)
    model = SPPNet(arch, context_px=16).eval()
    x = torch.rand(1, 4, 132 + 24 * 3, 132 + 24 * 2) * 255
    with torch.inference_mode():
        dense = model.forward_dense(x, 24)
        assert dense.shape == (1, 4, 3, 5)
        for i in range(4):
            for j in range(3):
                chip = model(x[:, :, 24 * i:24 * i + 132, 24 * j:24 * j + 132])
                assert torch.allclose(chip[0], dense[0, i, j], atol=1e-4, rtol=1e-4)


def test_context_must_be_a_multiple_of_the_feature_stride():
    with pytest.raises(ValueError):
        SPPNet(Arch(), context_px=12)
