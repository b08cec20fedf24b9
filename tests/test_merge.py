"""Merge stage: window outputs decoded to map points, then clustered into one point per crossing."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from geodrain.model.boxes import encode_boxes
from geodrain.infer.base import WindowScores
from geodrain.merge import Candidates, decode, merge_candidates
from geodrain.window import Block, BlockPlan, WindowGrid


def test_decode_places_points_through_the_transform_and_drops_invalid_ones():
    grid = WindowGrid(300, 300, 100, 24)
    plan = BlockPlan(0, 0, 0, grid.rows, grid.cols, 0, 0, 300, 300)
    valid = np.ones((300, 300), bool)
    valid[:, 200:] = False                                          # right third is nodata
    block = Block(plan, np.zeros((4, 300, 300), np.uint8), valid, np.ones((grid.rows, grid.cols), bool))
    offsets = np.array([[10.0, -5.0], [0.0, 0.0], [30.0, 40.0], [0.0, 0.0]])
    reg = encode_boxes(offsets, np.full((4, 2), 16.0))
    scores = WindowScores(np.array([0, 1, 2, 0]), np.array([0, 1, 2, 8]), np.array([3.0, 3.0, -3.0, 3.0], np.float32),
                          reg)
    transform = Affine(1.0, 0, 500000.0, 0, -1.0, 4500000.0)
    c = decode(scores, block, grid, transform, threshold=0.5)
    # window (0, 0): centre (50, 50) + (10, -5) px; (1, 1): centre (74, 74); (2, 2) scores under the threshold;
    # (0, 8): centre at column 242, on nodata
    assert c.xy.tolist() == [[500060.0, 4499955.0], [500074.0, 4499926.0]]
    assert c.centre.tolist() == [[500050.0, 4499950.0], [500074.0, 4499926.0]]
    assert c.offset.tolist() == pytest.approx([np.hypot(10, 5), 0.0])
    assert c.score.tolist() == pytest.approx([1 / (1 + np.exp(-3.0))] * 2)
    assert c.size.ravel().tolist() == pytest.approx([16.0] * 4)


def test_subset_and_concat_keep_fields_aligned():
    a = Candidates(np.array([[0.0, 0.0], [5.0, 0.0]]), np.array([0.9, 0.6], np.float32),
                   np.ones((2, 2), np.float32), np.array([[1.0, 0.0], [5.0, 2.0]]))
    b = Candidates(np.array([[100.0, 0.0]]), np.array([0.7], np.float32), np.ones((1, 2), np.float32))
    both = Candidates.concat([a, Candidates(), b])
    assert both.offset.tolist() == [1.0, 2.0, 0.0]                  # no centres: the points themselves
    s = both.subset(both.score >= 0.65)
    assert s.xy.tolist() == [[0.0, 0.0], [100.0, 0.0]] and s.offset.tolist() == [1.0, 0.0]


def test_merge_is_greedy_by_score_without_chaining():
    # a chain of points 8 m apart: the strongest (x=8) claims x=0 and x=16 within 10 m; x=24 starts its own
    xy = np.array([[0.0, 0.0], [8.0, 0.0], [16.0, 0.0], [24.0, 0.0]])
    c = Candidates(xy, np.array([0.5, 1.0, 0.5, 0.9], np.float32), np.full((4, 2), 4.0, np.float32))
    m = merge_candidates(c, 10.0)
    assert m.n_windows.tolist() == [3, 1]
    assert m.score.tolist() == pytest.approx([1.0, 0.9])
    assert m.xy.tolist() == [[8.0, 0.0], [24.0, 0.0]]               # score-weighted mean of 0, 8, 16
    assert len(merge_candidates(Candidates(), 10.0)) == 0


def test_the_post_processing_path_thresholds_merges_clips_and_matches():
    from geodrain.postprocess import MergeRule, crossings_at, outcome_at

    # two crossings: windows at x = 0, 4 (scores 0.9, 0.6) and x = 100 (0.7); window centres 1 m to the left
    xy = np.array([[0.0, 0.0], [4.0, 0.0], [100.0, 0.0]])
    c = Candidates(xy, np.array([0.9, 0.6, 0.7], np.float32), np.full((3, 2), 8.0, np.float32), xy - [1.0, 0.0],
                   floor=0.5)
    assert c.at(0.5) is c and c.at(0.3) is c                           # nothing below the floor to drop
    low = crossings_at(c, 0.5, 10.0)
    assert low.n_windows.tolist() == [2, 1]
    assert low.xy[0].tolist() == pytest.approx([(0.9 * 0 + 0.6 * 4) / 1.5, 0.0])
    high = crossings_at(c, 0.65, 10.0)                                 # the 0.6 window no longer places it
    assert high.xy.tolist() == [[0.0, 0.0], [100.0, 0.0]] and high.n_windows.tolist() == [1, 1]
    inside = crossings_at(c, 0.5, 10.0, inside=lambda p: p[:, 0] > 50)
    assert inside.xy.tolist() == [[100.0, 0.0]] and inside.score.tolist() == pytest.approx([0.7])
    centres = crossings_at(c, 0.65, 10.0, rule=MergeRule(at_centres=True))
    assert centres.xy.tolist() == [[-1.0, 0.0], [99.0, 0.0]]
    truth = np.array([[1.0, 0.0], [300.0, 0.0]])
    o = outcome_at(c, truth, 0.65, 10.0, 2.0)
    assert (o.true_positives, o.false_positives, o.missed.tolist()) == (1, 1, [1])
