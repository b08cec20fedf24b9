"""Hard-example mining: where a trained bundle errs on labelled scenes, kept as crop centres for fine-tuning.

A scene holds ~28,000 windows per 4096² px, almost all of them easy negatives; crops drawn at random or along
roads rarely land on the few places that fool a trained model. :func:`mine_scene` runs detection on a
labelled scene as ``geodrain detect`` would, with a low threshold, and keeps

* ``false_positive``: merged detections scoring at least ``floor`` with no true crossing within ``clear_m``
  (a road intersection, a creek beside a road, a driveway ...), and
* ``missed``: true crossings with no detection within ``tolerance_m`` at the bundle's threshold.

They are written to ``SCENE/mined.gpkg`` (layer ``mined``, a ``kind`` and the ``score`` per point), which
:class:`geodrain.datasets.sampler.SceneCropDataset` then uses: crops meant for hard negatives are centred on
mined false positives half of the time, and missed crossings are drawn more often than the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ..datasets.scene import open_scene
from ..model.bundle import Bundle
from ..postprocess import crossings_at, outcome_at
from ..write import check_points_output, write_points

MINED_FILE = "mined.gpkg"
MINED_LAYER = "mined"


@dataclass
class Mined:
    """One scene's mined points (map coordinates, the scene's CRS)."""

    scene: Path
    false_positives: np.ndarray     # (N, 2)
    fp_scores: np.ndarray           # (N,)
    missed: np.ndarray              # (M, 2)
    missed_scores: np.ndarray       # (M,) best window score within the tolerance (0 if none above the floor)
    crossings: int

    def summary(self) -> str:
        return (f"{self.scene.name}: {len(self.false_positives)} false positive(s), {len(self.missed)} of "
                f"{self.crossings} crossing(s) missed")


def mine_scene(bundle: Bundle, folder: str | Path, *, floor: float = 0.5, clear_m: float = 40.0,
               tolerance_m: float = 10.0, device: str = "auto", write: bool = True,
               overwrite: bool = False) -> Mined:
    """Mine one scene folder (``naip.tif`` + ``truth.gpkg``); with ``write``, store ``mined.gpkg`` in it."""
    from ..detect import DetectOptions, detect

    folder = Path(folder)
    out = folder / MINED_FILE
    scene = open_scene(folder, mined=False)
    if write:
        check_points_output(out, overwrite)
    r = detect(scene.raster, None, model=bundle, progress=False,
               options=DetectOptions(threshold=floor, device=device, precision="fp32", window_scores=True))
    units = r.source.grid.units_m
    truth = scene.crossings.xy
    c = r.candidates
    radius = bundle.merge_radius_m / units
    low = crossings_at(c, floor, radius)
    if len(truth) and len(low):
        dist, _ = cKDTree(truth).query(low.xy)
        far = dist > clear_m / units
    else:
        far = np.ones(len(low), bool)
    missed = outcome_at(c, truth, bundle.threshold, radius, tolerance_m / units).missed
    best = np.zeros(len(missed), np.float32)
    if len(missed) and len(c):
        tree = cKDTree(c.xy)
        for k, i in enumerate(missed):
            near = tree.query_ball_point(truth[i], tolerance_m / units)
            best[k] = c.score[near].max() if near else 0.0
    mined = Mined(folder, low.xy[far], low.score[far], truth[missed], best, len(truth))
    if write:
        xy = np.concatenate([mined.false_positives, mined.missed]).reshape(-1, 2)
        kinds = ["false_positive"] * len(mined.false_positives) + ["missed"] * len(mined.missed)
        scores = np.concatenate([mined.fp_scores, mined.missed_scores]).astype(np.float64)
        write_points(xy, {"kind": kinds, "score": np.round(scores, 4)}, scene.crs, out, layer=MINED_LAYER,
                     overwrite=overwrite, metadata={"model_id": bundle.model_id, "floor": floor,
                                                    "clear_m": clear_m, "tolerance_m": tolerance_m,
                                                    "threshold": bundle.threshold},
                     description=f"Hard examples of {bundle.model_id} (geodrain mine)")
    return mined
