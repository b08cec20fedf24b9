"""Batch and block sizes bounded by the free memory (given here, so the test is the same on any machine)."""

from __future__ import annotations

import torch

from geodrain.memory import MEMORY_FRACTION, block_bytes, chip_bytes, dense_bytes, fit
from geodrain.model.bundle import load_bundle

CPU = torch.device("cpu")
GB = 2 ** 30


def test_chip_batch_is_bounded_and_said(random_bundle):
    model = load_bundle(random_bundle).model
    per_chip = chip_bytes(model)
    assert per_chip > model.input_px ** 2 * 4 * 4          # more than the input alone
    f = fit(model, engine="chip", batch_size=10 ** 9, block_px=1024, stride=8, raster_px=20000, device=CPU,
            available=4 * GB)
    assert f.batch_size == int(MEMORY_FRACTION * 4 * GB // per_chip) and f.block_px == 1024
    assert len(f.notes) == 1 and "batch size of 1000000000" in f.notes[0] and "4.0 GB free" in f.notes[0]
    ok = fit(model, engine="chip", batch_size=16, block_px=1024, stride=8, raster_px=20000, device=CPU,
             available=4 * GB)
    assert (ok.batch_size, ok.notes) == (16, [])
    # a batch never spans blocks: on a small raster a huge batch holds only that raster's windows
    small = fit(model, engine="chip", batch_size=10 ** 9, block_px=1024, stride=24, raster_px=300, device=CPU,
                available=16 * GB)
    assert small.notes == [] and (300 / 24 + 1) ** 2 * per_chip < MEMORY_FRACTION * 16 * GB


def test_dense_block_is_bounded_and_said(random_bundle):
    model = load_bundle(random_bundle).model
    cost = dense_bytes(model)
    f = fit(model, engine="dense", batch_size=16, block_px=10 ** 6, stride=8, raster_px=20000, device=CPU,
            available=2 * GB)
    assert 128 <= f.block_px < 10 ** 6 and "block size of 1000000 px" in f.notes[0]
    assert block_bytes(cost, f.block_px, 100, model.context_px, 8) <= MEMORY_FRACTION * 2 * GB
    assert block_bytes(cost, f.block_px + 16, 100, model.context_px, 8) > MEMORY_FRACTION * 2 * GB
    # the raster is the largest block there is
    small = fit(model, engine="dense", batch_size=16, block_px=10 ** 6, stride=8, raster_px=300, device=CPU,
                available=2 * GB)
    assert (small.block_px, small.notes) == (10 ** 6, [])
