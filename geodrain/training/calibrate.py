"""Detection threshold calibrated where it is used: on whole labelled scenes, not on chips.

A chip validation set holds a few hundred negatives; a 4096² scene holds ~28,000 windows, almost all of them
negative, so a threshold chosen on chips lets through many false detections. :func:`calibrate_threshold`
runs detection with a low floor on labelled scenes, then picks the crossing-score threshold that maximizes
F1 against the truth (pooled over the scenes) at the given tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..datasets.scene import open_scene
from ..evaluate import match_points
from ..model.bundle import Bundle


def f1_by_threshold(scores: list[np.ndarray], matched: list[np.ndarray], n_true: int) -> tuple[np.ndarray, np.ndarray]:
    """F1 at every candidate threshold (each distinct score), pooled over scenes."""
    s = np.concatenate(scores) if scores else np.zeros(0)
    m = np.concatenate(matched) if matched else np.zeros(0, bool)
    order = np.argsort(-s, kind="stable")
    s, m = s[order], m[order]
    tp = np.cumsum(m)
    fp = np.cumsum(~m)
    f1 = 2 * tp / np.maximum(2 * tp + fp + (n_true - tp), 1)
    return s, f1


def calibrate_threshold(bundle: Bundle, scenes: Sequence[str | Path], *, tolerance: float = 10.0,
                        floor: float = 0.05, device: str = "auto", record: bool = True) -> dict:
    """The threshold maximizing pooled detection F1 on ``scenes`` (folders with naip.tif + truth.gpkg)."""
    from ..detect import DetectOptions, detect

    scores, matched, n_true = [], [], 0
    for folder in scenes:
        scene = open_scene(folder)
        r = detect(scene.raster, None, model=bundle, progress=False,
                   options=DetectOptions(threshold=floor, device=device))
        m = match_points(r.crossings.xy, scene.crossings.xy, tolerance)
        hit = np.zeros(len(r.crossings), bool)
        hit[m.pred_index] = True
        scores.append(r.crossings.score.astype(np.float64))
        matched.append(hit)
        n_true += len(scene.crossings)
    s, f1 = f1_by_threshold(scores, matched, n_true)
    if len(s) == 0:
        best, threshold = 0.0, bundle.threshold
    else:
        i = int(np.argmax(f1))
        best = float(f1[i])
        threshold = float((s[i] + s[i + 1]) / 2) if i + 1 < len(s) else float(s[i])
    result = {"threshold": round(threshold, 4), "f1": round(best, 4), "tolerance_m": tolerance,
              "truth_crossings": n_true, "scenes": [Path(p).name for p in scenes],
              "chip_threshold": bundle.threshold}
    if record:
        bundle.update_manifest(threshold=result["threshold"], calibration=result)
    return result
