#!/usr/bin/env python
"""Does flip test-time augmentation help detection? An experiment, not a detect option.

Runs the dense engine with and without flip TTA (the crossing logit averaged over the block and its
horizontal, vertical and 180-degree flips; the box from the unflipped pass), calibrates the detection
threshold of each variant on the calibration scenes (`geodrain calibrate`'s procedure), then reports pooled
precision, recall and F1 at 10 m on the test scenes. Scenes are generated (if missing) under --work.

    python scripts/experiments/eval_tta.py models/<bundle> --cal 8001,8002 --test 9001,9002,9003 --work /tmp/tta
"""

from __future__ import annotations

import time

import torch

from common import machine, parser, scene_dir, setup, table

from geodrain.datasets.scene import open_scene
from geodrain.detect import DetectOptions, detect
from geodrain.evaluate import match_points
from geodrain.infer.config import make_engine
from geodrain.infer.dense import DenseEngine, DenseModule
from geodrain.training.calibrate import calibrate_threshold

FLIPS = ((-1,), (-2,), (-2, -1))


class FlipTTAModule(DenseModule):
    """The dense forward with the crossing logit averaged over flips of the block (cut to its exact window
    span, so that a flipped window lands on a window of the flipped grid)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        model, step = self.model, self.step_px
        rows, cols = model.window_grid(x.shape[-2], x.shape[-1], step)
        x = x[..., :model.input_px + step * (rows - 1), :model.input_px + step * (cols - 1)]
        out = model.forward_dense(x, step).clone()
        logit = out[..., 0].clone()
        for dims in FLIPS:
            flipped = model.forward_dense(torch.flip(x, dims), step)[..., 0]
            logit += torch.flip(flipped, tuple(3 + d for d in dims))   # image axes (-2, -1) -> grid axes (1, 2)
        out[..., 0] = logit / (1 + len(FLIPS))
        return out


class FlipTTAEngine(DenseEngine):
    """The dense engine running :class:`FlipTTAModule` on the model it prepared."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.module = FlipTTAModule(self.module.model, self.module.step_px).eval()


def tta_engine(kind, bundle, config, grid, block_px, threshold=None):
    """A :data:`geodrain.detect.EngineFactory`: flip TTA on the dense engine."""
    if kind != "dense":
        raise SystemExit("flip TTA runs on the dense engine (a stride that is a multiple of 8)")
    return FlipTTAEngine(bundle, config, grid, block_px)


def main() -> None:
    ap = parser(__doc__, cal="8001,8002", work="geodrain-tta")
    args = ap.parse_args()
    bundle, cal_seeds, test_seeds = setup(args)
    cal = [scene_dir(s, args) for s in cal_seeds]
    test = [scene_dir(s, args) for s in test_seeds]
    print(f"# eval_tta {bundle.model_id} on {machine()}", flush=True)
    rows = []
    for on in (False, True):
        t0 = time.perf_counter()
        engines = tta_engine if on else make_engine
        c = calibrate_threshold(bundle, cal, record=False, tolerance=args.tolerance, make_engine=engines)
        found = truth = hit = 0
        for folder in test:
            scene = open_scene(folder)
            r = detect(scene.raster, None, model=bundle, progress=False, make_engine=engines,
                       options=DetectOptions(threshold=c["threshold"]))
            found += len(r.crossings)
            truth += len(scene.crossings)
            hit += len(match_points(r.crossings.xy, scene.crossings.xy, args.tolerance).pred_index)
        p, rc = hit / max(found, 1), hit / max(truth, 1)
        rows.append({"variant": "flip TTA x4" if on else "single pass", "threshold": c["threshold"],
                     "calibration_f1": c["f1"], "precision": p, "recall": rc,
                     "f1": 2 * p * rc / max(p + rc, 1e-9), "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
