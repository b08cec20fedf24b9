"""The window grid and block plan: every window exactly once, halos, validity."""

from __future__ import annotations

import numpy as np
import pytest

from geodrain.errors import RasterError
from geodrain.window import BlockPlan, WindowGrid, check_size, extract_chips, plan_blocks, valid_fraction


@pytest.mark.parametrize("w,h", [(100, 100), (257, 1000), (1500, 730), (4096, 300)])
@pytest.mark.parametrize("stride", [24, 25, 50])
@pytest.mark.parametrize("block,align", [(256, (256, 256)), (1024, (512, 512)), (512, (8, 4096)), (300, (1, 1))])
def test_every_window_exactly_once(w, h, stride, block, align):
    grid = WindowGrid(w, h, 100, stride, 16)
    seen = np.zeros((grid.rows, grid.cols), int)
    for p in plan_blocks(grid, block, align):
        seen[p.row0:p.row0 + p.nrows, p.col0:p.col0 + p.ncols] += 1
        assert p.read_row == p.row0 * stride - 16 and p.read_col == p.col0 * stride - 16
        assert p.read_height == (p.nrows - 1) * stride + 132
    assert (seen == 1).all()
    # the grid covers the raster: the last window reaches the far edge
    assert (grid.cols - 1) * stride + 100 >= w and (grid.rows - 1) * stride + 100 >= h


def test_block_cores_align_to_file_blocks():
    """A block owns the windows whose origins fall in one 512-px file block row/column band."""
    grid = WindowGrid(5000, 5000, 100, 24, 0)
    for p in plan_blocks(grid, 1000, (512, 512)):
        first, last = p.row0 * 24, (p.row0 + p.nrows - 1) * 24
        assert first // 512 == last // 512
        first, last = p.col0 * 24, (p.col0 + p.ncols - 1) * 24
        assert first // 512 == last // 512


def test_plan_blocks_bounds_skip_outside():
    grid = WindowGrid(4000, 4000, 100, 24, 16)
    all_plans = plan_blocks(grid, 512)
    some = plan_blocks(grid, 512, bounds=(0, 0, 400, 400))
    assert 0 < len(some) < len(all_plans)


def test_valid_fraction_and_extract():
    grid = WindowGrid(300, 300, 100, 50, 8)
    plan = BlockPlan(0, 0, 0, 2, 2, -8, -8, 50 + 100 + 16, 50 + 100 + 16)
    valid = np.ones((plan.read_height, plan.read_width), bool)
    valid[:, :8 + 50] = False                  # the left half of window (0, 0) is invalid
    frac = valid_fraction(valid, plan, grid)
    assert frac[0, 0] == pytest.approx(0.5) and frac[0, 1] == pytest.approx(1.0)
    data = np.arange(plan.read_height * plan.read_width, dtype=np.int64).reshape(1, plan.read_height, -1)
    chips = extract_chips(data, np.array([1]), np.array([0]), grid)
    assert chips.shape == (1, 1, 116, 116)
    assert chips[0, 0, 0, 0] == data[0, 50, 0]


def test_too_small_raster():
    with pytest.raises(RasterError, match="smaller than"):
        check_size(40, 300, 100, 0.5)
    check_size(105, 86, 100, 0.5)
