#!/usr/bin/env python
"""Give a bundle calibrated scores: record score calibrators (geodrain.scoring.Calibrator or TreeCalibrator
JSON, as written by scripts/experiments/exp_dem_evidence.py and exp_dem_fooled.py) in its manifest's
``scoring`` section, which `geodrain detect` then uses (a crossing's ``score`` becomes its calibrated
probability; --threshold filters on it). With --dem-calibrator, `geodrain detect --dem` scores from imagery and
DEM evidence (with the DEM's snapping and de-duplication as given); with --require-dem the bundle becomes DEM-aware (``inputs.dem: required``: it
refuses to run without a DEM). --copy-to writes a copy of the bundle instead of changing it. The calibrators'
own record (fitted_on) must match the floor, merge radius and stride given.

    python scripts/set_scoring.py models/sppnet-k3-s3-f256 --imagery docs/results/cpu/calibrators/imagery.json \
        --merge-radius 40
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from geodrain.model.bundle import load_bundle
from geodrain.scoring import Calibrator, DemScoring, Scoring, TreeCalibrator, calibrator_from_json


def _calibrator(path: Path, floor: float, radius: float, stride: int) -> Calibrator | TreeCalibrator:
    cal = calibrator_from_json(json.loads(Path(path).read_text()))
    f = cal.fitted_on
    for key, want in (("floor", floor), ("merge_radius_m", radius), ("stride_px", stride)):
        if key in f and f[key] is not None and abs(float(f[key]) - want) > 1e-9:
            sys.exit(f"{path}: fitted at {key} {f[key]}, not {want}")
    return cal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--imagery", type=Path, required=True, help="calibrator of the imagery evidence (JSON)")
    ap.add_argument("--dem-calibrator", type=Path, default=None, help="calibrator of imagery and DEM evidence")
    ap.add_argument("--snap", type=float, default=None, help="DEM snapping distance (m)")
    ap.add_argument("--move", action="store_true", help="move snapped crossings to the channel's passage")
    ap.add_argument("--dedupe", type=float, default=None, help="de-duplicate crossings sharing a passage (m)")
    ap.add_argument("--half-m", type=float, default=160.0,
                    help="half side (m) of the DEM window of each crossing's evidence (as the calibrator was fitted)")
    ap.add_argument("--max-dem-cell", type=float, default=None,
                    help="the coarsest DEM cell (m) the DEM calibrator applies to (coarser: imagery scores)")
    ap.add_argument("--merge-radius", type=float, required=True)
    ap.add_argument("--place-radius", type=float, default=None)
    ap.add_argument("--floor", type=float, default=0.5)
    ap.add_argument("--report-at", type=float, default=0.5)
    ap.add_argument("--stride", type=int, default=None, help="default: the bundle's")
    ap.add_argument("--require-dem", action="store_true")
    ap.add_argument("--copy-to", type=Path, default=None)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    stride = args.stride or bundle.stride_px
    dem = None
    if args.dem_calibrator is not None:
        cal = _calibrator(args.dem_calibrator, args.floor, args.merge_radius, stride)
        fitted_half = float((cal.fitted_on.get("dem") or {}).get("half_m", 160.0))
        if abs(fitted_half - args.half_m) > 1e-9:
            sys.exit(f"{args.dem_calibrator}: fitted on DEM windows of +-{fitted_half:g} m, not {args.half_m:g}")
        dem = DemScoring(cal, args.snap, args.move, args.dedupe, half_m=args.half_m, max_cell_m=args.max_dem_cell)
    elif args.require_dem:
        sys.exit("--require-dem needs --dem-calibrator")
    scoring = Scoring(stride, args.floor, args.merge_radius,
                      _calibrator(args.imagery, args.floor, args.merge_radius, stride), args.report_at,
                      args.place_radius, dem)
    if args.copy_to is not None:
        shutil.copytree(bundle.path, args.copy_to)
        bundle = load_bundle(args.copy_to)
    inputs = {"imagery": "required", "dem": "required" if args.require_dem else "optional"}
    bundle.update_manifest(scoring=scoring.to_json(), inputs=inputs)
    bundle = load_bundle(bundle.path)           # validated as detect will load it
    print(f"{bundle.path}: scoring at stride {stride} (floor {args.floor:g}, merge radius {args.merge_radius:g} m, "
          f"report at {args.report_at:g}), imagery calibrator" + (", DEM calibrator" if dem else "")
          + (", DEM required" if args.require_dem else ""))


if __name__ == "__main__":
    main()
