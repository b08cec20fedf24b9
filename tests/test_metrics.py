"""Chip metrics against hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geodrain.model.boxes import encode_boxes
from geodrain.training.metrics import average_precision, best_f1_threshold, box_ap, box_iou, chip_metrics


def test_ap_hand_worked():
    # ranks:     1    2    3    4    5
    # label:     1    0    1    0    1      (3 positives)
    # precision: 1   1/2  2/3  1/2  3/5
    # recall:   1/3  1/3  2/3  2/3   1
    # AP = 1/3*1 + 0 + 1/3*2/3 + 0 + 1/3*3/5 = 0.75556
    ap = average_precision(np.array([0.9, 0.8, 0.7, 0.6, 0.5]), np.array([1, 0, 1, 0, 1]))
    assert ap == pytest.approx(1 / 3 + 2 / 9 + 1 / 5)


def test_ap_perfect_and_worst():
    assert average_precision(np.array([0.9, 0.8, 0.1]), np.array([1, 1, 0])) == pytest.approx(1.0)
    assert average_precision(np.array([0.9, 0.1]), np.array([0, 1])) == pytest.approx(0.5)
    assert math.isnan(average_precision(np.array([0.3]), np.array([0])))


def test_box_iou():
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], float)
    assert box_iou(a, b) == pytest.approx([1.0, 50 / 150])


def test_box_ap_counts_only_good_boxes():
    true = encode_boxes(np.zeros((3, 2)), np.full((3, 2), 20.0))
    pred = true.copy()
    pred[1, :2] = 30 / 50          # second chip's box is 30 px off: IoU 0
    scores = np.array([0.9, 0.8, 0.7])
    # hits 1, 0, 1 -> AP = 1/3*1 + 0 + 1/3*2/3
    assert box_ap(scores, pred, true) == pytest.approx(1 / 3 + 2 / 9)


def test_best_f1_threshold_separates():
    thr, f1 = best_f1_threshold(np.array([0.95, 0.9, 0.4, 0.2]), np.array([1, 1, 0, 0]))
    assert 0.4 < thr < 0.9 and f1 == pytest.approx(1.0)


def test_chip_metrics_accuracy_and_ignored():
    logits = np.array([5.0, -5.0, 5.0, -5.0])
    regs = np.zeros((4, 4), np.float32)
    targets = np.zeros((4, 5), np.float32)
    targets[:, 0] = [1, 0, 0, -1]
    m = chip_metrics(logits, regs, targets)
    assert m["chips"] == 3 and m["accuracy"] == pytest.approx(2 / 3)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(1.0)


def test_detection_threshold_by_f1_hand_worked():
    from geodrain.merge import Candidates
    from geodrain.training.calibrate import f1_exact

    def cands(*rows):
        xy = np.array([r[:2] for r in rows], float)
        return Candidates(xy, np.array([r[2] for r in rows], np.float32), np.full((len(rows), 2), 5, np.float32))

    # scene 1: truth at the origin; windows at 1.5 m (0.9), 6 m (0.5, merged with the first) and 100 m (0.6)
    # scene 2: truths at the origin and 200 m; a window at 1 m (0.8). Tolerance 2 m, merge radius 20 m.
    c = [cands((1.5, 0, 0.9), (6, 0, 0.5), (100, 0, 0.6)), cands((0, 1, 0.8))]
    truths = [np.array([[0.0, 0.0]]), np.array([[0.0, 0.0], [200.0, 0.0]])]
    f1, tp, fp = f1_exact(c, truths, 20.0, 2.0, np.array([0.9, 0.8, 0.6, 0.5], np.float32))
    # F1 = 2TP / (2TP + FP + FN), 3 true crossings: >= 0.9 TP 1 -> 2/4; >= 0.8 TP 2 -> 4/5; >= 0.6 one FP -> 4/6;
    # >= 0.5 the 6 m window joins the first crossing and pulls it to 3.1 m, out of tolerance: TP 1, FP 2 -> 2/6
    assert f1 == pytest.approx([2 / 4, 4 / 5, 4 / 6, 2 / 6])
    assert list(tp) == [1, 2, 2, 1] and list(fp) == [0, 0, 1, 2]
