"""Chip-level metrics: accuracy, average precision (the paper's eq. 1) and box AP at IoU 0.5.

AP follows the paper's equation 1, ``AP = sum_i (R_i - R_{i-1}) * P_i`` over the ranks of the
precision-recall curve (the printed ``1/n`` factor would make AP depend on the number of chips and is taken
as a typesetting slip: with it a perfect detector would not score 1).
"""

from __future__ import annotations

import numpy as np

from ..model.boxes import decode_boxes


def average_precision(scores: np.ndarray, labels: np.ndarray, n_positives: int | None = None) -> float:
    """AP of ``scores`` for binary ``labels``; ``n_positives`` overrides the recall denominator."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels).astype(bool)
    npos = int(labels.sum()) if n_positives is None else int(n_positives)
    if npos == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    hits = labels[order]
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / npos
    prev = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - prev) * precision))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) boxes xmin, ymin, xmax, ymax."""
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def boxes_from_regression(reg: np.ndarray) -> np.ndarray:
    """(N, 4) box regression (offsets from the window centre, log sizes) -> (N, 4) corner boxes."""
    off, size = decode_boxes(reg)
    return np.concatenate([off - size / 2, off + size / 2], 1)


def box_ap(scores: np.ndarray, pred_reg: np.ndarray, true_reg: np.ndarray, iou: float = 0.5) -> float:
    """AP over positive chips: a chip is a true positive when its predicted box has IoU >= ``iou``."""
    if len(scores) == 0:
        return float("nan")
    hit = box_iou(boxes_from_regression(pred_reg), boxes_from_regression(true_reg)) >= iou
    return average_precision(scores, hit, n_positives=len(scores))


def best_f1_threshold(probs: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The probability threshold that maximizes F1 (midway between neighbouring scores) and that F1."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels).astype(bool)
    if labels.sum() == 0:
        return 0.5, float("nan")
    order = np.argsort(-probs, kind="stable")
    p, hits = probs[order], labels[order]
    tp = np.cumsum(hits)
    fp = np.cumsum(~hits)
    f1 = 2 * tp / (tp + fp + labels.sum())
    i = int(np.argmax(f1))
    thr = (p[i] + p[i + 1]) / 2 if i + 1 < len(p) else p[i] / 2
    return float(thr), float(f1[i])


def chip_metrics(logits: np.ndarray, regs: np.ndarray, targets: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, chip AP, box AP@0.5, precision/recall/F1 at ``threshold`` for chips labelled 0/1.

    ``logits`` (N,), ``regs`` (N, 4) model outputs; ``targets`` (N, 5) = [label, box regression]. Chips
    labelled -1 (ambiguous) are left out.
    """
    keep = targets[:, 0] >= 0
    logits, regs, targets = logits[keep], regs[keep], targets[keep]
    labels = targets[:, 0] > 0.5
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    pred = probs >= threshold
    tp = int((pred & labels).sum())
    fp = int((pred & ~labels).sum())
    fn = int((~pred & labels).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "chips": int(len(labels)),
        "positives": int(labels.sum()),
        "accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
        "ap": average_precision(probs, labels),
        "box_ap50": box_ap(probs[labels], regs[labels], targets[labels, 1:]),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "threshold": float(threshold),
    }
