#!/usr/bin/env python
"""The crossing-probability threshold at which detect reports crossings (the bundle's ``scoring.report_at``),
chosen on the calibration scenes and then measured on the unseen ones, from cached window candidates.

Rule, declared before running: on the calibration scenes (those the imagery calibrator was fitted on), every
crossing is scored by a calibrator fitted on the *other* calibration scenes (leave-one-scene-out, so a scene
never scores itself); the threshold is the one of 0.05, 0.10, ... 0.95 with the highest pooled F1 at 10 m
(ties: the higher threshold). On the unseen scenes the deployed calibrator scores the crossings, and the
chosen threshold is compared with 0.5 (the deployed default) in one table.

    python scripts/experiments/exp_report_threshold.py --scenes runs/ws/scenes --work runs/ws \\
        --cal 8001-8006 --test 9002-9011
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import machine, table  # noqa: E402
from common import label, loso, pooled, scene_crossings, seeds  # noqa: E402

from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.scoring import IMAGERY_FEATURES  # noqa: E402

GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def at(data, probs, t: float) -> dict:
    """Pooled P / R / F1 of the crossings reported at ``t``, matched to the truth after thresholding (as
    geodrain evaluate matches a detect output), not before."""
    kept = []
    for d, p in zip(data, probs):
        keep = p >= t
        y, _ = label(d.scene, d.crossings.xy[keep])
        kept.append(replace(d, y=y, under=list(np.array(d.under, dtype=object)[keep]),
                            crossings=d.crossings.subset(keep)))
    return pooled(kept)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="bundle with calibrated scoring (default: the deployed one)")
    ap.add_argument("--scenes", type=Path, required=True, help="folder of scene folders s<seed>")
    ap.add_argument("--work", type=Path, required=True, help="folder holding the cached candidates (cands/)")
    ap.add_argument("--cal", default="8001-8006")
    ap.add_argument("--test", default="9002-9011")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    bundle = load_bundle(args.model)
    sc = bundle.scoring_for(bundle.stride_px)
    if sc is None:
        sys.exit(f"{bundle.name} has no calibrated scoring at its stride")

    def crossings(seed_list):
        return [scene_crossings(bundle, args.scenes / f"s{s}", args.work, threshold=sc.floor,
                                radius_m=sc.merge_radius_m, floor=sc.floor) for s in seed_list]

    cal, test = crossings(seeds(args.cal)), crossings(seeds(args.test))
    cal_probs = loso(cal, IMAGERY_FEATURES)
    rows = [{"threshold": float(t), **{k: v for k, v in at(cal, cal_probs, t).items() if k != "under"}}
            for t in GRID]
    best = max(rows, key=lambda r: (round(r["f1"], 12), r["threshold"]))
    chosen = best["threshold"]
    print(f"# exp_report_threshold on {machine()}: {bundle.model_id}; calibration {args.cal} "
          f"(leave-one-scene-out probabilities), test {args.test}; floor {sc.floor}, merge radius "
          f"{sc.merge_radius_m:g} m, 10 m matching")
    print(table(rows, ["threshold", "precision", "recall", "f1", "false_per_km2", "tp", "fp", "fn"]))
    print(f"chosen on the calibration scenes: {chosen:g} (F1 {best['f1']:.3f})")
    test_probs = [sc.imagery.predict_crossings(d.crossings) for d in test]
    out = []
    for name, t in (("deployed default", sc.report_at), ("chosen", chosen)):
        r = at(test, test_probs, t)
        out.append({"report_at": name, "threshold": t, **{k: v for k, v in r.items() if k != "under"}})
    area = out[0]["area_km2"]
    print(f"\nunseen scenes {args.test} ({area:.1f} km², {out[0]['truth']} crossings):")
    print(table(out, ["report_at", "threshold", "precision", "recall", "f1", "false_per_km2", "tp", "fp", "fn"]))
    if args.json:
        args.json.write_text(json.dumps({"calibration": rows, "chosen": chosen, "test": out}, indent=2) + "\n")


if __name__ == "__main__":
    main()
