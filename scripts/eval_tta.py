#!/usr/bin/env python
"""Does flip test-time augmentation help detection? An experiment, not a detect option.

Runs the dense engine with and without flip TTA (the crossing logit averaged over the block and its
horizontal, vertical and 180-degree flips; the box from the unflipped pass), calibrates the detection
threshold of each variant on the calibration scenes (`geodrain calibrate`'s procedure), then reports pooled
precision, recall and F1 at 10 m on the test scenes. Scenes are generated (if missing) under --work.

    python scripts/eval_tta.py models/<bundle> --calibrate 8001,8002 --test 9001,9002,9003 --work /tmp/tta
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402

from geodrain.datasets.scene import open_scene  # noqa: E402
from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.evaluate import match_points  # noqa: E402
from geodrain.infer import dense  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.synth import generate_scene  # noqa: E402
from geodrain.training.calibrate import calibrate_threshold  # noqa: E402

FLIPS = ((-1,), (-2,), (-2, -1))


def tta_forward(self: dense.DenseModule, x: torch.Tensor) -> torch.Tensor:
    """The dense forward with the crossing logit averaged over flips of the block (cut to its exact window
    span, so that a flipped window lands on a window of the flipped grid)."""
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


@contextlib.contextmanager
def flip_tta(on: bool):
    saved = dense.DenseModule.forward
    if on:
        dense.DenseModule.forward = tta_forward
    try:
        yield
    finally:
        dense.DenseModule.forward = saved


def scenes(work: Path, seeds: str, size: int) -> list[Path]:
    out = []
    for seed in (int(s) for s in seeds.split(",")):
        d = work / f"scene_{seed}_{size}"
        if not (d / "naip.tif").exists():
            generate_scene(d, seed=seed, size=size, overwrite=True)
        out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", default=None)
    ap.add_argument("--calibrate", default="8001,8002")
    ap.add_argument("--test", default="9001,9002,9003")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-tta")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.bundle)
    cal, test = scenes(args.work, args.calibrate, args.size), scenes(args.work, args.test, args.size)
    print(f"# eval_tta {bundle.model_id} on {machine()}", flush=True)
    rows = []
    for on in (False, True):
        t0 = time.perf_counter()
        with flip_tta(on):
            c = calibrate_threshold(bundle, cal, record=False)
            found = truth = hit = 0
            for folder in test:
                scene = open_scene(folder)
                r = detect(scene.raster, None, model=bundle, progress=False,
                           options=DetectOptions(threshold=c["threshold"]))
                found += len(r.crossings)
                truth += len(scene.crossings)
                hit += len(match_points(r.crossings.xy, scene.crossings.xy, 10.0).pred_index)
        p, rc = hit / max(found, 1), hit / max(truth, 1)
        rows.append({"variant": "flip TTA x4" if on else "single pass", "threshold": c["threshold"],
                     "calibration_f1": c["f1"], "precision": p, "recall": rc,
                     "f1": 2 * p * rc / max(p + rc, 1e-9), "seconds": time.perf_counter() - t0})
        print(rows[-1], flush=True)
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
