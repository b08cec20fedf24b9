#!/usr/bin/env python
"""Experiment: can post-processing raise detection F1? Window candidates of a bundle on calibration and test
scenes, merged and scored by alternative rules, each rule's threshold chosen on the calibration scenes and
applied to the test scenes, in one run; and what the missed crossings and false positives are.

Rules for a merged crossing's score: the maximum window score (what `geodrain detect` does), the sum of window
scores, the number of windows >= 0.5 plus the maximum, the mean of the top two, max logit + log(windows), and
the noisy-OR of the window scores. Positions: the score-weighted mean (what detect does), the strongest
window's point, the median. "oracle" is the best F1 over all thresholds on the test scenes themselves.

    python scripts/experiments/exp_rescoring.py models/sppnet-k3-s3-f256 --cal 8001,8002,8003,8004 --test 9001,9002,9003
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.spatial import cKDTree

from common import candidates, machine, parser, scene_dir, setup

from geodrain.datasets.scene import open_scene
from geodrain.evaluate import match_points
from geodrain.merge import clusters


def logit(p):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


SCORES = {
    "max (detect)": lambda s: s.max(),
    "sum": lambda s: s.sum(),
    "count>=0.5 + max": lambda s: (s >= 0.5).sum() + s.max(),
    "top-2 mean": lambda s: np.sort(s)[::-1][:2].mean() if len(s) > 1 else s.max() / 2,
    "max logit + log n": lambda s: logit(s.max()) + np.log(len(s)),
    "noisy-OR": lambda s: -np.log(np.prod(1 - np.clip(s, 0, 1 - 1e-7))),
}


def position(c, i, m, how: str) -> np.ndarray:
    w = c.score[m].astype(np.float64)
    if how == "weighted mean (detect)":
        return (c.xy[m] * w[:, None]).sum(0) / w.sum()
    if how == "strongest window":
        return c.xy[i]
    return np.median(c.xy[m], 0)


def f1_curve(rows):
    """rows: (scores, hit flags, n_true) per scene -> thresholds (desc), F1, TP, FP, n_true."""
    sc = np.concatenate([r[0] for r in rows])
    hit = np.concatenate([r[1] for r in rows])
    nt = sum(r[2] for r in rows)
    o = np.argsort(-sc, kind="stable")
    sc, hit = sc[o], hit[o]
    tp, fp = np.cumsum(hit), np.cumsum(~hit)
    return sc, 2 * tp / (tp + fp + nt), tp, fp, nt


def evaluate(data, seeds, score, how, radius, tol):
    rows = []
    for s in seeds:
        c, truth = data[s]
        cl = clusters(c, radius)
        xy = np.array([position(c, i, m, how) for i, m in cl]).reshape(-1, 2)
        sc = np.array([score(c.score[m].astype(np.float64)) for i, m in cl])
        hit = np.zeros(len(cl), bool)
        hit[match_points(xy, truth.crossings.xy, tol).pred_index] = True
        rows.append((sc, hit, len(truth.crossings)))
    return f1_curve(rows)


def main() -> None:
    ap = parser(__doc__, cal="8001-8004", work="geodrain-rescoring")
    args = ap.parse_args()
    bundle, cal, test = setup(args)
    data = {}
    for seed in cal + test:
        d = scene_dir(seed, args)
        data[seed] = (candidates(bundle, d), open_scene(d))
    radius = bundle.merge_radius_m
    print(f"# exp_rescoring {bundle.model_id} on {machine()}: calibration seeds {args.cal}, test seeds "
          f"{args.test}, {args.size}² px, tolerance {args.tolerance:g} m, merge radius {radius:g} m")
    print("| score | position | calibration F1 | threshold | test P | test R | test F1 | oracle test F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for how in ("weighted mean (detect)", "strongest window", "median"):
        for name, score in SCORES.items():
            if how != "weighted mean (detect)" and name != "max (detect)":
                continue
            sc, f1, *_ = evaluate(data, cal, score, how, radius, args.tolerance)
            i = int(np.argmax(f1))
            thr = (sc[i] + sc[i + 1]) / 2 if i + 1 < len(sc) else sc[i]
            s2, f2, tp, fp, nt = evaluate(data, test, score, how, radius, args.tolerance)
            k = int((s2 >= thr).sum())
            t, f = (int(tp[k - 1]), int(fp[k - 1])) if k else (0, 0)
            p = t / (t + f) if t + f else 0.0
            print(f"| {name} | {how} | {f1[i]:.3f} | {thr:.4g} | {p:.3f} | {t / nt:.3f} | "
                  f"{2 * t / (t + f + nt):.3f} | {f2.max():.3f} |")

    # what the misses and the false positives are, at the bundle's threshold, with detect's own rules
    near, scores, fp_kinds, n_missed = 0, [], Counter(), 0
    for seed in test:
        c, truth = data[seed]
        cl = clusters(c, radius)
        xy = np.array([position(c, i, m, "weighted mean (detect)") for i, m in cl]).reshape(-1, 2)
        sc = np.array([c.score[i] for i, m in cl])
        keep = sc >= bundle.threshold
        m = match_points(xy[keep], truth.crossings.xy, args.tolerance)
        missed = sorted(set(range(len(truth.crossings))) - set(m.true_index))
        n_missed += len(missed)
        if len(xy):
            d, j = cKDTree(xy).query(truth.crossings.xy[missed]) if missed else (np.zeros(0), np.zeros(0, int))
            near += int((d <= args.tolerance).sum())
            scores += [float(sc[k]) for k, dd in zip(j, d) if dd <= args.tolerance]
        fp = np.setdiff1d(np.arange(keep.sum()), m.pred_index)
        hn = truth.hard_negatives
        for q in xy[keep][fp]:
            dt = np.hypot(*(truth.crossings.xy - q).T).min() if len(truth.crossings) else np.inf
            if dt <= 25:
                fp_kinds["within 25 m of a true crossing"] += 1
            elif len(hn):
                k = int(np.argmin(np.hypot(*(hn.xy - q).T)))
                dk = float(np.hypot(*(hn.xy[k] - q)))
                fp_kinds[f"hard negative '{hn.kinds[k]}' within 25 m" if dk <= 25 else "elsewhere"] += 1
            else:
                fp_kinds["elsewhere"] += 1
    print(f"\nat the bundle's threshold {bundle.threshold:g}: {n_missed} missed crossings on the test scenes, "
          f"{near} of them with a merged candidate within {args.tolerance:g} m scoring below the threshold "
          f"(median score {np.median(scores) if scores else float('nan'):.3f})")
    print("false positives: " + ", ".join(f"{v} {k}" for k, v in fp_kinds.most_common()))


if __name__ == "__main__":
    main()
