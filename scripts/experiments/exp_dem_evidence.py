#!/usr/bin/env python
"""Experiment: how should the DEM enter? Alternatives compared on CALIBRATION scenes only, by leave-one-scene-out
cross-validation, under a rule declared here before any test scene is looked at.

Every alternative starts from the same merged crossings: the bundle's windows >= 0.5 merged as detect merges
them (claim radius and placement as chosen by scripts/experiments/exp_placement.py), each scored by a
logistic calibrator (geodrain.scoring) fitted on the other calibration scenes and reported at P >= 0.5. The
DEM (the scene's dem.tif, read by geodrain.read.DemSource as `geodrain detect --dem` reads it: windows of
+-160 m at 2 m) enters as:

* ``imagery``      no DEM: the imagery evidence only (max / mean window logit, log window count);
* ``check``        the hydrologic evidence of geodrain.dem_features (flow across the embankment, flow nearby,
                   channels on both sides, embankment, digital-dam depth) added to the calibrator's evidence;
* ``filter``       ``imagery``, then only crossings whose flow across the embankment (emb_flow, log10 m²)
                   reaches tau, tau fitted on the training folds for the best F1 (a hard hydrologic check);
* ``dedupe``       each crossing's channel passage found in the DEM (Hydrology.snap within 25 m); of crossings
                   sharing a passage (within 15 m) only the strongest kept; points stay where the imagery put
                   them; imagery calibrator;
* ``snap``         as ``dedupe``, and each crossing moved to its channel passage; imagery calibrator;
* ``dedupe+check``, ``snap+check``: the same with the hydrologic evidence in the calibrator.

(B, DEM-derived input channels in a fine-tuned bundle, enters as another bundle's candidates once trained.)

Declared rule: the highest pooled cross-validated F1; within 0.005 of it the fewest false crossings per km²,
then the simplest (the order above). The calibrators of ``imagery`` and of the winner are then fitted on all
calibration scenes and written to --out (JSON, geodrain.scoring.Calibrator).

    python scripts/experiments/exp_dem_evidence.py models/sppnet-k3-s3-f256 --scenes runs/ws/scenes \
        --cal 8001-8006 --work runs/ws --radius 40 --out runs/ws/calibrators
"""

from __future__ import annotations

import numpy as np

from common import calibration_args, calibration_setup, declared_rule, dump, loso, machine, parser, pooled, \
    scene_crossings, table, write_calibrators

from geodrain.dem_features import DEM_FEATURES, SNAP_M
from geodrain.scoring import IMAGERY_FEATURES, expected_calibration_error, fit_calibrator

P_REPORT = 0.5
DEDUPE_M = 15.0
ALTERNATIVES = {   # name: (DEM reading, calibrator features, hard filter)
    "imagery": (None, IMAGERY_FEATURES, False),
    "check": ({}, IMAGERY_FEATURES + DEM_FEATURES, False),
    "filter": ({}, IMAGERY_FEATURES, True),
    "dedupe": ({"snap_m": SNAP_M, "move": False, "dedupe_m": DEDUPE_M}, IMAGERY_FEATURES, False),
    "snap": ({"snap_m": SNAP_M, "move": True, "dedupe_m": DEDUPE_M}, IMAGERY_FEATURES, False),
    "dedupe+check": ({"snap_m": SNAP_M, "move": False, "dedupe_m": DEDUPE_M}, IMAGERY_FEATURES + DEM_FEATURES, False),
    "snap+check": ({"snap_m": SNAP_M, "move": True, "dedupe_m": DEDUPE_M}, IMAGERY_FEATURES + DEM_FEATURES, False),
}


def _best_tau(values, y, base_keep, n_true) -> float:
    """The emb_flow threshold with the best F1 (ties: the lowest) among crossings kept by the base."""
    best, tau_best = -1.0, 0.0
    for tau in np.unique(np.concatenate([[0.0], np.round(values[base_keep], 2)])):
        keep = base_keep & (values >= tau)
        tp = int((y[keep] == 1).sum())
        fp = int(keep.sum()) - tp
        f1 = 2 * tp / (2 * tp + fp + n_true - tp) if n_true else 0.0
        if f1 > best + 1e-12:
            best, tau_best = f1, float(tau)
    return tau_best


def main() -> None:
    ap = calibration_args(parser(__doc__, cal="8001-8006", work="geodrain-ws"))
    ap.add_argument("--place-radius", type=float, default=None, help="robust placement radius m (default: none)")
    args = ap.parse_args()
    bundle, cal, folders, radius = calibration_setup(args)
    print(f"# exp_dem_evidence {bundle.model_id} on {machine()}: calibration seeds {args.cal}, merge radius "
          f"{radius:g} m, placement {'all windows' if args.place_radius is None else f'within {args.place_radius:g} m'}")
    readings: dict = {}
    rows, results, fitted_all = [], {}, {}
    for name, (dem, feats, hard) in ALTERNATIVES.items():
        key = None if dem is None else tuple(sorted(dem.items()))
        if key not in readings:
            readings[key] = [scene_crossings(bundle, f, args.work, radius_m=radius, place_radius_m=args.place_radius,
                                             dem=dem) for f in folders]
        data = readings[key]
        probs = loso(data, feats)
        taus = []
        if hard:
            for i in range(len(data)):
                train = [d for j, d in enumerate(data) if j != i]
                ptr = np.concatenate(loso(train, feats)) if len(train) > 1 else np.concatenate(
                    [np.ones(len(d.y)) for d in train])
                ef = np.nan_to_num(np.concatenate([d.crossings.evidence["emb_flow"] for d in train]), nan=0.0)
                tau = _best_tau(ef, np.concatenate([d.y for d in train]), ptr >= P_REPORT,
                                sum(len(d.scene.truth_xy) for d in train))
                taus.append(tau)
                probs[i] = np.where(np.nan_to_num(data[i].crossings.evidence["emb_flow"], nan=0.0) >= tau,
                                    probs[i], 0.0)
        keep = [p >= P_REPORT for p in probs]
        r = pooled(data, keep)
        p_all, y_all = np.concatenate(probs), np.concatenate([d.y for d in data])
        r["ece"] = expected_calibration_error(p_all, y_all)
        r["taus"] = taus
        r["merged"] = int(len(y_all))
        r["dem_s_per_crossing"] = (sum(d.seconds_dem for d in data) / max(len(y_all), 1)) if dem is not None else 0.0
        results[name] = r
        rows.append({"alternative": name, "merged": r["merged"], "precision": r["precision"], "recall": r["recall"],
                     "f1": r["f1"], "false_per_km2": r["false_per_km2"], "ece_all": r["ece"],
                     "dem_ms_per_crossing": 1000 * r["dem_s_per_crossing"]})
        print(f"{name}: F1 {r['f1']:.3f}" + (f" (tau per fold {', '.join(f'{t:.2f}' for t in taus)})" if hard else ""),
              flush=True)
        if not hard:
            x = np.concatenate([d.crossings.matrix(feats) for d in data])
            fitted_all[name] = fit_calibrator(x, y_all, feats, fitted_on={
                "bundle": bundle.model_id, "scenes": [d.scene.name for d in data], "merged_crossings": int(len(y_all)),
                "real": int(y_all.sum()), "floor": 0.5, "merge_radius_m": radius,
                "place_radius_m": args.place_radius, "stride_px": bundle.stride_px, "report_at": P_REPORT,
                "dem": dem, "measured_with": "scripts/experiments/exp_dem_evidence.py"})
    area = sum(d.scene.area_km2 for d in readings[None])
    n_true = sum(len(d.scene.truth_xy) for d in readings[None])
    print(f"\n{len(folders)} calibration scenes, {area:.1f} km², {n_true} crossings; leave-one-scene-out, reported "
          f"at P >= {P_REPORT}")
    print(table(rows, list(rows[0])))
    kinds = sorted({k for r in results.values() for k in r["under"]})
    print("false crossings by what lies under them (cross-validated):")
    print(table([{"under": k, **{n: r["under"].get(k, 0) for n, r in results.items()}} for k in kinds],
                ["under"] + list(results)))
    winner = declared_rule(results, "f1", "false_per_km2")
    write_calibrators(args.out, fitted_all)
    if args.json:
        dump(args.json, {"machine": machine(), "bundle": bundle.model_id, "radius_m": radius,
                         "place_radius_m": args.place_radius, "results": results, "winner": winner,
                         "calibrators": {k: v.to_json() for k, v in fitted_all.items()}})


if __name__ == "__main__":
    main()
