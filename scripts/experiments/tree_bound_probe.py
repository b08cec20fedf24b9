#!/usr/bin/env python
"""Probe: could a tighter bound let `detect --dem` skip reading the DEM for some crossings? detect reads the
DEM only for merged crossings whose DEM calibrator's bound (``max_probability``, before the DEM is read) reaches
the report threshold. For boosted trees the bound takes each tree's best leaf on its own, so it is loose. This
probe asks what the trees can really give each crossing: a coordinate search over the DEM features (each set
in turn to the value between two of the trees' thresholds on it that scores best, from random starts) finds
DEM evidence that reaches a probability, a lower bound on the true maximum. Where that already reaches the
threshold, no bound, however tight, could skip the read.

    python scripts/experiments/tree_bound_probe.py runs/ws/scenes/s9002 runs/ws/scenes/s9012 --work runs/ws
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from common import machine, scene_candidates, table

from geodrain.model.bundle import load_bundle
from geodrain.postprocess import crossings_at
from geodrain.scoring import IMAGERY_FEATURES


def split_values(cal, j: int) -> np.ndarray:
    """One value in each interval the trees' thresholds on feature ``j`` cut its axis into."""
    th = sorted({float(t["threshold"][k]) for t in cal.trees for k in range(len(t["feature"])) if t["feature"][k] == j})
    if not th:
        return np.zeros(1)
    return np.array([th[0] - 1.0] + [(a + b) / 2 for a, b in zip(th[:-1], th[1:])] + [th[-1] + 1.0])


def reachable(cal, x: np.ndarray, free: list[int], rng, starts: int = 5, rounds: int = 4) -> np.ndarray:
    """The best probability a coordinate search over the ``free`` columns finds for each row of ``x``."""
    values = {j: split_values(cal, j) for j in free}
    best = np.zeros(len(x))
    for _ in range(starts):
        z = x.copy()
        for j in free:
            z[:, j] = rng.choice(values[j], len(z))
        for _ in range(rounds):
            for j in free:
                scores = []
                for v in values[j]:
                    zz = z.copy()
                    zz[:, j] = v
                    scores.append(cal.predict(zz))
                z[:, j] = values[j][np.argmax(scores, axis=0)]
        best = np.maximum(best, cal.predict(z))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenes", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, required=True, help="where the scenes' window candidates are cached")
    ap.add_argument("--bundle", default=None)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    sc = bundle.scoring_for(bundle.stride_px)
    cal = sc.dem.calibrator
    feats = list(cal.features)
    known = [j for j, f in enumerate(feats) if f in IMAGERY_FEATURES]
    free = [j for j in range(len(feats)) if j not in known]
    rng = np.random.default_rng(0)
    rows = []
    for scene in args.scenes:
        cands, _ = scene_candidates(bundle, scene, args.work, sc.floor)
        merged = crossings_at(cands, sc.floor, sc.merge_radius_m)
        x = np.zeros((len(merged), len(feats)))
        x[:, known] = merged.matrix([feats[j] for j in known])
        found = reachable(cal, x, free, rng)
        rows.append({"scene": scene.name, "merged": len(merged),
                     "bound_below": int((cal.max_probability(merged) < sc.report_at).sum()),
                     "found_below": int((found < sc.report_at).sum()),
                     "found_min": float(found.min()) if len(found) else float("nan")})
    print(f"# tree_bound_probe {bundle.model_id} on {machine()}: the DEM calibrator's {len(cal.trees)} trees, report "
          f"at {sc.report_at:g}; bound_below: crossings the bound lets skip the read; found_below: crossings for "
          f"which the search found no DEM evidence reaching the threshold (at most these could skip it)")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
