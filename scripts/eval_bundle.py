#!/usr/bin/env python
"""Evaluate a model bundle on unseen-seed generated scenes, as the paper does and as users run it.

* chip level (the paper's evaluation): chips centred on every crossing with a few metres of jitter plus
  random and hard negatives, cut as `geodrain chips` does: accuracy, chip AP (eq. 1), box AP@0.5;
* detection level (what `geodrain detect` delivers): precision, recall, F1 and location error of the merged
  crossings against the truth at 10 m, per scene and pooled.

With --record the results are stored in the bundle's manifest (metrics.test_unseen / metrics.detect_unseen).

    python scripts/eval_bundle.py models/<bundle> --seeds 9001,9002,9003 --size 4096 --work /tmp/eval
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402

from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.evaluate import evaluate_files  # noqa: E402
from geodrain.infer.runtime import resolve_device  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.synth import generate_scene  # noqa: E402
from geodrain.training.data import scene_chip_set  # noqa: E402
from geodrain.training.trainer import evaluate_model  # noqa: E402
from geodrain.datasets.scene import open_scene  # noqa: E402


def recall_by_attribute(truth: pd.DataFrame) -> list[dict]:
    """Detection recall of the pooled true crossings by structure kind, road surface and stream width."""
    width = pd.cut(truth["stream_width_m"], [0, 2, 4, 8, np.inf], right=False,
                   labels=["< 2 m", "2-4 m", "4-8 m", ">= 8 m"])
    rows = []
    for name, key in (("kind", truth["kind"]), ("road_kind", truth["road_kind"]), ("stream_width", width)):
        for value, g in truth.groupby(key, observed=True)["found"]:
            rows.append({"attribute": name, "value": str(value), "crossings": int(g.size), "recall": float(g.mean())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", default=None)
    ap.add_argument("--seeds", default="9001,9002,9003")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--scenes", nargs="*", type=Path, default=None, help="existing scene folders instead")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-eval")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--record", action="store_true", help="store the results in the bundle's manifest")
    ap.add_argument("--chips-only", action="store_true",
                    help="chip-level metrics only (e.g. adding scenes that tuned the detection threshold: chip AP "
                         "does not depend on it)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.bundle)
    scenes = args.scenes or []
    if not scenes:
        for seed in [int(s) for s in args.seeds.split(",")]:
            d = args.work / f"scene_{seed}_{args.size}"
            if not (d / "naip.tif").exists():
                generate_scene(d, seed=seed, size=args.size, overwrite=True)
            scenes.append(d)
    device = resolve_device(args.device)
    chips = scene_chip_set([open_scene(s) for s in scenes], bundle.context_px, seed=12345)
    model = bundle.model.to(device)
    chip = evaluate_model(model, chips, device, bundle.threshold)
    bundle.model.cpu()
    if args.chips_only:
        print(f"# eval_bundle {bundle.model_id} on {machine()}")
        print(f"chip level on {len(scenes)} scenes ({chip['chips']} chips, {chip['positives']} positive): "
              + ", ".join(f"{k} {chip[k]:.4f}" for k in ("accuracy", "ap", "box_ap50")))
        if args.record:
            bundle.update_manifest(metrics={"test_unseen_chips": {
                **chip, "scenes": [Path(s).name for s in scenes], "measured_with": "scripts/eval_bundle.py --chips-only"}})
        return
    rows, tp, fp, fn, errs, tp25, found = [], 0, 0, 0, [], 0, []
    opts = DetectOptions(engine=args.engine, device=args.device, overwrite=True).resolved(bundle)
    settings = {"stride_px": opts.stride, "merge_radius_m": opts.merge_radius_m, "threshold": opts.threshold}
    for s in scenes:
        out = args.work / f"{Path(s).name}_{bundle.name}.gpkg"
        r = detect(Path(s) / "naip.tif", out, model=bundle, progress=False, options=opts)
        ev, m = evaluate_files(out, Path(s) / "truth.gpkg", 10.0)
        rows.append({"scene": Path(s).name, "truth": ev.truth, "detected": ev.predicted, "precision": ev.precision,
                     "recall": ev.recall, "f1": ev.f1, "mean_error_m": ev.mean_error_m, "seconds": r.seconds,
                     "engine": r.config["engine"]})
        tp, fp, fn = tp + ev.true_positives, fp + ev.false_positives, fn + ev.false_negatives
        errs += list(m.distances)
        tp25 += evaluate_files(out, Path(s) / "truth.gpkg", 25.0)[0].true_positives
        truth = gpd.read_file(Path(s) / "truth.gpkg", layer="crossings")
        truth["found"] = np.isin(np.arange(len(truth)), m.true_index)
        found.append(truth)
    p = tp / (tp + fp) if tp + fp else 0.0
    rcl = tp / (tp + fn) if tp + fn else 0.0
    pooled = {"scene": "all", "truth": tp + fn, "detected": tp + fp, "precision": p, "recall": rcl,
              "f1": 2 * p * rcl / (p + rcl) if p + rcl else 0.0,
              "mean_error_m": float(np.mean(errs)) if errs else float("nan")}
    # error analysis: detections 10-25 m from an unmatched true crossing are placement errors, not false alarms
    p25, r25 = tp25 / max(tp + fp, 1), tp25 / max(tp + fn, 1)
    placement = {"placed_10_to_25m": tp25 - tp, "f1_at_25m": 2 * p25 * r25 / (p25 + r25) if p25 + r25 else 0.0}
    rows.append(pooled)
    print(f"# eval_bundle {bundle.model_id} on {machine()}")
    print(f"chip level ({chip['chips']} chips, {chip['positives']} positive, threshold {bundle.threshold:.3f}): "
          + ", ".join(f"{k} {chip[k]:.4f}" for k in ("accuracy", "ap", "box_ap50", "precision", "recall", "f1")))
    print("detection at " + ", ".join(f"{k} {v:g}" for k, v in settings.items()))
    print(table(rows, ["scene", "truth", "detected", "precision", "recall", "f1", "mean_error_m", "seconds"]))
    by_attr = recall_by_attribute(pd.concat(found, ignore_index=True)) if found else []
    print(table(by_attr, ["attribute", "value", "crossings", "recall"]))
    print(f"placement: {placement['placed_10_to_25m']} of {fp} false positives lie 10-25 m from a missed true "
          f"crossing; pooled F1 at a 25 m tolerance {placement['f1_at_25m']:.3f}")
    result = {"machine": machine(), "model": bundle.model_id, "scenes": [str(s) for s in scenes], "chip": chip,
              "detect": rows, "settings": settings, "placement": placement, "recall_by_attribute": by_attr}
    if args.record:
        names = [Path(s).name for s in scenes]
        bundle.update_manifest(metrics={
            "test_unseen": {**chip, "scenes": names, "measured_with": "scripts/eval_bundle.py"},
            "detect_unseen": {**pooled, "tolerance_m": 10.0, **settings, "scenes": names,
                              "measured_with": "scripts/eval_bundle.py"}})
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
