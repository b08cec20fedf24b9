"""Detection threshold calibrated where it is used: on whole labelled scenes, not on chips.

A chip validation set holds a few hundred negatives; a 4096² scene holds ~28,000 windows, almost all of them
negative, so a threshold chosen on chips lets through many false detections. :func:`calibrate_threshold`
runs detection with a low floor on labelled scenes, then picks the window-score threshold at which detection
has the highest F1 against the truth (pooled over the scenes) at the given tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..datasets.scene import open_scene
from ..merge import Candidates
from ..model.bundle import Bundle
from ..postprocess import outcome_at

if TYPE_CHECKING:
    from ..detect import EngineFactory

MAX_THRESHOLDS = 1000
WINDOWS_PER_CROSSING = 40


def f1_exact(cands: list[Candidates], truths: list[np.ndarray], radius: float, tolerance: float,
             thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pooled (F1, true positives, false positives) at each threshold, computed as ``detect`` would produce
    them (:func:`geodrain.postprocess.outcome_at`): window candidates at or above the threshold, merged,
    matched to the truth."""
    f1, tps, fps = np.zeros(len(thresholds)), np.zeros(len(thresholds), int), np.zeros(len(thresholds), int)
    n_true = sum(len(t) for t in truths)
    for k, t in enumerate(thresholds):
        tp = fp = 0
        for c, truth in zip(cands, truths):
            o = outcome_at(c, truth, t, radius, tolerance)
            tp, fp = tp + o.true_positives, fp + o.false_positives
        f1[k] = 2 * tp / max(2 * tp + fp + (n_true - tp), 1)
        tps[k], fps[k] = tp, fp
    return f1, tps, fps


def calibrate_threshold(bundle: Bundle, scenes: Sequence[str | Path], *, tolerance: float = 10.0,
                        floor: float = 0.05, device: str = "auto", record: bool = True,
                        stride: int | None = None, merge_radius_m: float | None = None, default: bool = True,
                        make_engine: "EngineFactory | None" = None) -> dict:
    """The window-score threshold maximizing pooled detection F1 on ``scenes`` (folders with naip.tif and
    truth.gpkg), evaluated exactly as ``geodrain detect`` would run at each candidate threshold, at the given
    window stride and merge radius (default: the bundle's). Recording stores all three in the manifest's
    ``calibrations`` table under the stride, so that detection at that stride runs with the settings chosen for
    it, and (``default``) makes them detection's default stride, threshold and merge radius.

    Detection runs once per scene with a low floor; its window candidates are kept, and for each distinct
    candidate score the candidates at or above it are merged and matched as ``detect`` would (merging only
    the windows that pass changes the positions, not only which crossings are kept). The model runs in fp32,
    the reference precision, on any device: near-saturated scores move with fp16 rounding, and F1 can have
    near-equal peaks far apart, so half precision can flip which one is chosen. ``make_engine`` is passed to
    :func:`geodrain.detect.detect` (experiments run the model differently with it).
    """
    from ..detect import DetectOptions, detect
    from ..infer.config import make_engine as default_engine

    stride = bundle.stride_px if stride is None else stride
    radius_m = bundle.merge_radius_m if merge_radius_m is None else merge_radius_m
    cands, truths, radius = [], [], None
    for folder in scenes:
        scene = open_scene(folder)
        r = detect(scene.raster, None, model=bundle, progress=False,
                   options=DetectOptions(threshold=floor, device=device, precision="fp32", stride=stride,
                                         merge_radius_m=radius_m, window_scores=True),
                   make_engine=make_engine or default_engine)
        cands.append(r.candidates)
        truths.append(scene.crossings.xy)
        radius = radius_m / r.source.grid.units_m
    scores = np.unique(np.concatenate([c.score for c in cands])) if cands else np.zeros(0)
    n_true = sum(len(t) for t in truths)
    # descending distinct window scores; past the top WINDOWS_PER_CROSSING x n_true windows F1 can only be
    # small (far more detections than crossings), and a weak model at the floor is searched at evenly spaced
    # ranks (F1 still exact at each), which keeps the search to seconds
    scores = scores[::-1][:WINDOWS_PER_CROSSING * max(n_true, 1)]
    if len(scores) > MAX_THRESHOLDS:
        scores = scores[np.unique(np.linspace(0, len(scores) - 1, MAX_THRESHOLDS).round().astype(int))]
    if len(scores) == 0:
        best, threshold, tp, fp = 0.0, bundle.threshold, 0, 0
    else:
        f1, tps, fps = f1_exact(cands, truths, radius, tolerance, scores)
        i = int(np.argmax(f1))
        best, tp, fp = float(f1[i]), int(tps[i]), int(fps[i])
        threshold = float((scores[i] + scores[i + 1]) / 2) if i + 1 < len(scores) else float(scores[i])
    result = {"threshold": round(threshold, 4), "f1": round(best, 4), "true_positives": tp, "false_positives": fp,
              "tolerance_m": tolerance, "stride_px": stride, "merge_radius_m": radius_m,
              "precision": "fp32", "truth_crossings": n_true,
              "scenes": [Path(p).name for p in scenes],
              "chip_threshold": bundle.manifest.get("calibration", {}).get("chip_threshold", bundle.threshold)}
    if record:
        entry = {k: result[k] for k in ("threshold", "merge_radius_m", "f1", "true_positives", "false_positives",
                                        "truth_crossings", "tolerance_m", "scenes")}
        sections = {"calibrations": {str(stride): entry}}
        if default:
            sections.update(threshold=result["threshold"], stride_px=stride, merge_radius_m=radius_m,
                            calibration=result)
        bundle.update_manifest(**sections)
    return result
