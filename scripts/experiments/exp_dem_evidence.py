#!/usr/bin/env python
"""Experiment: how should the DEM enter? Alternatives compared on CALIBRATION scenes only, by leave-one-scene-out
cross-validation, under a rule declared before any test scene is looked at.

Every alternative starts from the same merged crossings of the bundle's window candidates (windows >= 0.5,
merged as detect merges them at the bundle's radius) and reports a crossing when its score reaches its
threshold:

* ``threshold``     the bundle as deployed: only windows >= the bundle's threshold, merged (no calibration);
* ``imagery``       P(real) from a logistic calibrator on the imagery evidence (max / mean window logit,
                    log number of windows); reported at P >= 0.5;
* ``A-filter``      ``imagery``, then only crossings whose DEM shows a channel on both sides of the point
                    (``channel_pair`` >= tau, tau fitted on the training folds for the best F1);
* ``A-evidence``    a logistic calibrator on the imagery AND the DEM evidence (geodrain.dem_features:
                    emb_flow, flow_near, channel_pair, embank); reported at P >= 0.5.

(B, DEM-derived input channels in a bundle fine-tuned from the imagery weights, needs a trained DEM-aware
bundle; it enters this table as another bundle's candidates once one exists: --bundle-b.)

Declared rule: the alternative with the highest pooled cross-validated F1 wins; within 0.01 of the best, the
one with fewer false crossings per km2, then the simpler (the order above). The winner's calibrator is then
fitted on all calibration scenes and written to --out (JSON, geodrain.scoring.Calibrator).

    python scripts/experiments/exp_dem_evidence.py models/sppnet-k3-s3-f256 runs/ws/scenes/s80{01..08} \
        --work runs/ws --out runs/ws/calibrators
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchlib import machine, table  # noqa: E402
from wsdata import scene_data  # noqa: E402
from wslib import dump, prf  # noqa: E402

from geodrain.dem_features import DEM_FEATURES  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.scoring import IMAGERY_FEATURES, expected_calibration_error, fit_calibrator  # noqa: E402

P_REPORT = 0.5
FEATURES = {"imagery": IMAGERY_FEATURES, "A-evidence": IMAGERY_FEATURES + DEM_FEATURES}


def _best_tau(values, y, base_keep, n_true) -> float:
    """The channel_pair threshold with the best F1 (ties: the lowest) among crossings kept by the base."""
    best, tau_best = -1.0, 0.0
    for tau in np.unique(np.concatenate([[0.0], np.round(values[base_keep], 2)])):
        keep = base_keep & (values >= tau)
        tp = int((y[keep] == 1).sum())
        f1 = prf(tp, int(keep.sum()) - tp, n_true - tp)["f1"]
        if f1 > best + 1e-12:
            best, tau_best = f1, float(tau)
    return tau_best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("scenes", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="folder for the fitted calibrators (JSON)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    data = [scene_data(bundle, s, args.work) for s in args.scenes]
    area = sum(d.scene.area_km2 for d in data)
    n_true = sum(len(d.scene.truth_xy) for d in data)
    print(f"# exp_dem_evidence {bundle.model_id} on {machine()}")
    print(f"calibration scenes: {', '.join(d.scene.name for d in data)} ({area:.1f} km², {n_true} crossings); "
          f"merged candidates >= 0.5: {sum(len(d.y) for d in data)} ({sum(int(d.y.sum()) for d in data)} real)")

    rows, results = [], {}
    # the bundle as deployed
    tp = fp = 0
    from wslib import label
    for d in data:
        y, _ = label(d.scene, d.default_xy)
        tp += int(y.sum())
        fp += int(len(y) - y.sum())
    r = prf(tp, fp, n_true - tp)
    results["threshold"] = {**r, "fp_per_km2": fp / area, "ece": float("nan")}
    under = {"threshold": Counter()}
    missed_best = []
    from wslib import attribute, scene_candidates
    for d in data:
        y, m = label(d.scene, d.default_xy)
        under["threshold"].update(attribute(d.scene, d.default_xy[y == 0]))
        c = scene_candidates(bundle, d.scene.path, args.work)
        for j in sorted(set(range(len(d.scene.truth_xy))) - set(m.true_index.tolist())):
            dist = np.hypot(*(c["xy"] - d.scene.truth_xy[j]).T)
            missed_best.append(float(c["score"][dist < 10.0].max()) if (dist < 10.0).any() else 0.0)

    # cross-validated calibrated alternatives
    probs = {k: [None] * len(data) for k in ("imagery", "A-filter", "A-evidence")}
    taus = []
    for i in range(len(data)):
        train = [d for j, d in enumerate(data) if j != i]
        ytr = np.concatenate([d.y for d in train])
        for name, feats in FEATURES.items():
            xtr = np.concatenate([d.clusters.matrix(feats) for d in train])
            cal = fit_calibrator(xtr, ytr, feats)
            probs[name][i] = cal.predict(data[i].clusters.matrix(feats))
        # A-filter: tau on the training folds, applied to the imagery probabilities of the held-out scene
        feats = FEATURES["imagery"]
        cal = fit_calibrator(np.concatenate([d.clusters.matrix(feats) for d in train]), ytr, feats)
        ptr = cal.predict(np.concatenate([d.clusters.matrix(feats) for d in train]))
        cp = np.concatenate([d.clusters.evidence["channel_pair"] for d in train])
        tau = _best_tau(np.nan_to_num(cp, nan=0.0), ytr, ptr >= P_REPORT,
                        sum(len(d.scene.truth_xy) for d in train))
        taus.append(tau)
        cpi = np.nan_to_num(data[i].clusters.evidence["channel_pair"], nan=0.0)
        probs["A-filter"][i] = np.where(cpi >= tau, probs["imagery"][i], 0.0)

    for name in ("imagery", "A-filter", "A-evidence"):
        p = np.concatenate(probs[name])
        y = np.concatenate([d.y for d in data])
        keep = p >= P_REPORT
        under[name] = Counter(np.concatenate([np.array(d.under, dtype=object) for d in data])[keep & (y == 0)])
        tp = int(y[keep].sum())
        fp = int(keep.sum() - tp)
        r = prf(tp, fp, n_true - tp)
        results[name] = {**r, "fp_per_km2": fp / area, "ece": expected_calibration_error(p, y),
                         "ece_reported": expected_calibration_error(p[keep], y[keep])}
    for name, r in results.items():
        rows.append({"alternative": name, "precision": r["precision"], "recall": r["recall"], "f1": r["f1"],
                     "false_per_km2": r["fp_per_km2"], "ece_all": r["ece"], "ece_reported": r.get("ece_reported",
                                                                                                float("nan"))})
    print(f"leave-one-scene-out on the calibration scenes, reported at P >= {P_REPORT} "
          f"(A-filter channel_pair tau per fold: {', '.join(f'{t:.2f}' for t in taus)})")
    print(table(rows, ["alternative", "precision", "recall", "f1", "false_per_km2", "ece_all", "ece_reported"]))

    kinds = sorted(set().union(*[set(u) for u in under.values()]), key=lambda k: -sum(u[k] for u in under.values()))
    print("false crossings by what lies under them (cross-validated):")
    print(table([{"under": k, **{n: under[n].get(k, 0) for n in under}} for k in kinds], ["under"] + list(under)))
    mb = np.array(missed_best)
    print(f"crossings missed at the bundle's threshold ({bundle.threshold:g}): {len(mb)}; best window within 10 m "
          f">= 0.99: {int((mb >= 0.99).sum())}, 0.9-0.99: {int(((mb >= 0.9) & (mb < 0.99)).sum())}, "
          f"0.5-0.9: {int(((mb >= 0.5) & (mb < 0.9)).sum())}, none >= 0.5: {int((mb < 0.5).sum())}")

    # the declared rule
    order = ["threshold", "imagery", "A-filter", "A-evidence"]
    best_f1 = max(results[k]["f1"] for k in order)
    close = [k for k in order if results[k]["f1"] >= best_f1 - 0.01]
    winner = min(close, key=lambda k: (round(results[k]["fp_per_km2"], 3), order.index(k)))
    print(f"rule: highest CV F1 ({best_f1:.3f}); within 0.01: {', '.join(close)}; fewest false per km2, then "
          f"simplest -> {winner}")

    # the calibrators fitted on all calibration scenes (both calibrated paths: the evaluation shows them)
    args.out.mkdir(parents=True, exist_ok=True)
    y = np.concatenate([d.y for d in data])
    fitted = {}
    for name, feats in FEATURES.items():
        x = np.concatenate([d.clusters.matrix(feats) for d in data])
        cal = fit_calibrator(x, y, feats, fitted_on={
            "bundle": bundle.model_id, "scenes": [d.scene.name for d in data], "merged_candidates": int(len(y)),
            "real": int(y.sum()), "floor": 0.5, "merge_radius_m": bundle.merge_radius_m,
            "stride_px": bundle.stride_px, "report_at": P_REPORT, "measured_with": "scripts/experiments/exp_dem_evidence.py"})
        path = args.out / f"{name}.json"
        dump(path, cal.to_json())
        fitted[name] = cal.to_json()
        print(f"{name}: " + ", ".join(f"{f} {w:+.2f}" for f, w in zip(feats, cal.coef))
              + f", intercept {cal.intercept:+.2f} -> {path}")
    if "A-filter" == winner:
        dump(args.out / "A-filter.json", {"imagery": fitted["imagery"], "channel_pair_min": float(np.median(taus))})
    if args.json:
        dump(args.json, {"machine": machine(), "bundle": bundle.model_id, "results": results, "winner": winner,
                         "taus": taus, "calibrators": fitted, "false_by_kind": {k: dict(v) for k, v in under.items()},
                         "missed_best_window": missed_best})


if __name__ == "__main__":
    main()
