"""Window labels and dihedral augmentation keep points and pixels together."""

from __future__ import annotations

import numpy as np
import pytest

from geodrain.datasets.augment import dihedral
from geodrain.datasets.targets import grid_targets
from geodrain.model.boxes import decode_boxes, encode_boxes


def test_grid_targets_labels():
    # windows centred at 66, 74, 82 ... (context 16 + 50, step 8); one crossing at (70, 66)
    t = grid_targets(np.array([[70.0, 66.0]]), np.array([[20.0, 10.0]]), 66.0, 8.0, 9, 9)
    assert t[0, 0, 0] == 1                    # |dx| = 4, |dy| = 0
    assert t[0, 2, 0] == 1                    # centre x 82: |dx| = 12 <= 16
    assert t[0, 3, 0] == -1                   # centre x 90: |dx| = 20 in (16, 32]: ignored
    assert t[0, 5, 0] == 0                    # |dx| = 36 > 32
    assert t[8, 8, 0] == 0                    # 64 px away
    off, size = decode_boxes(t[0, 0, 1:][None])
    assert off[0] == pytest.approx([4, 0]) and size[0] == pytest.approx([20, 10])


def test_grid_targets_ignore_band():
    t = grid_targets(np.array([[90.0, 66.0]]), np.ones((1, 2)) * 16, 66.0, 8.0, 1, 1)
    assert t[0, 0, 0] == -1                   # 24 px away: neither positive nor negative


def test_box_coding_round_trip():
    off = np.array([[12.5, -30.0]])
    size = np.array([[8.0, 40.0]])
    o, s = decode_boxes(encode_boxes(off, size))
    assert o == pytest.approx(off) and s == pytest.approx(size)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_dihedral_moves_points_with_pixels(k, flip):
    img = np.zeros((2, 40, 40), np.uint8)
    img[:, 7, 30] = 255                       # pixel (row 7, col 30): centre at x = 30.5, y = 7.5
    out, pts, sizes = dihedral(img, np.array([[30.5, 7.5]]), np.array([[10.0, 4.0]]), k, flip)
    r, c = np.argwhere(out[0] == 255)[0]
    assert pts[0] == pytest.approx([c + 0.5, r + 0.5])
    assert sorted(sizes[0]) == [4.0, 10.0]
    assert (sizes[0][0] == 10.0) == (k % 2 == 0)
