#!/usr/bin/env python
"""Experiment: which windows should place a merged crossing? Window candidates of a bundle on calibration and
test scenes are merged by alternative rules; each rule's threshold is chosen on the calibration scenes and
applied unchanged to the test scenes, in one run.

`geodrain detect` keeps only the windows at or above the detection threshold and merges those: a crossing seen
by one window above the threshold is placed by that window alone, however many windows just below it saw the
same crossing. The alternatives keep every window at or above a lower *support floor*, cluster them exactly as
detect does (greedy, strongest first, within the merge radius), report a cluster when its strongest window
reaches the threshold, and place it at the weighted mean of all its windows. Position weights: the window
probability (detect's), its logit, the probability times exp(-(d / sigma)^2) where d is the distance of the
window's point from the window's centre (windows that see the crossing near their centre count more), or only
the most central window.

    python scripts/experiments/exp_merge.py models/sppnet-k3-s3-f256 --cal 8001,...,8008 --test 9001,9002,9003 \
        --scenes runs/deploy/scenes --work runs/exp_merge
"""

from __future__ import annotations

import numpy as np

from common import cache_name, candidates, machine, parser, scene_dir, setup

from geodrain.datasets.scene import open_scene
from geodrain.merge import Candidates
from geodrain.postprocess import MergeRule, outcome_at


def logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def merge_rule(rule: str) -> MergeRule:
    """How ``rule`` places a cluster: weights of its windows' points (or, "window centre", their centres)."""

    def weights(c: Candidates, m: np.ndarray) -> np.ndarray:
        p = c.score[m].astype(np.float64)
        if rule in ("probability", "window centre"):
            return p
        if rule == "logit":
            return np.maximum(logit(p), 1e-9)
        if rule == "most central":
            w = np.zeros(len(m))
            w[int(np.argmin(c.offset[m]))] = 1.0
            return w
        sigma = float(rule.split("=")[1].split()[0])          # "centrality sigma=25 px"
        return p * np.exp(-(c.offset[m].astype(np.float64) / sigma) ** 2) + 1e-12

    return MergeRule(weights, at_centres=rule == "window centre")


def floor_curve(data, seeds, floor: float, rule: str, radius: float, tol: float):
    """Windows >= floor merged once; a crossing is reported when its strongest window reaches the threshold:
    (thresholds descending, F1, TP, FP, n_true)."""
    sc_all, hit_all, nt = [], [], 0
    for s in seeds:
        c, truth = data[s]
        o = outcome_at(c, truth, floor, radius, tol, rule=merge_rule(rule))
        hit = np.zeros(len(o.crossings), bool)
        hit[o.matching.pred_index] = True
        sc_all.append(o.crossings.score)
        hit_all.append(hit)
        nt += len(truth)
    sc, hit = np.concatenate(sc_all), np.concatenate(hit_all)
    o = np.argsort(-sc, kind="stable")
    sc, hit = sc[o], hit[o]
    tp, fp = np.cumsum(hit), np.cumsum(~hit)
    return sc, 2 * tp / (tp + fp + nt), tp, fp, nt


def threshold_counts(data, seeds, thr: float, rule: str, radius: float, tol: float):
    """Only windows >= thr merged (detect's rule): (TP, FP, n_true)."""
    tp = fp = nt = 0
    for s in seeds:
        c, truth = data[s]
        o = outcome_at(c, truth, thr, radius, tol, rule=merge_rule(rule))
        tp, fp, nt = tp + o.true_positives, fp + o.false_positives, nt + len(truth)
    return tp, fp, nt


def at_threshold(sc, tp, fp, nt, thr):
    k = int((sc >= thr).sum())
    t, f = (int(tp[k - 1]), int(fp[k - 1])) if k else (0, 0)
    return t, f, nt


def main() -> None:
    ap = parser(__doc__, cal="8001-8008", work="geodrain-exp-merge")
    ap.add_argument("--floors", default="0.5,0.9")
    ap.add_argument("--sigmas", default="15,25,40")
    ap.add_argument("--stride", type=int, default=24, help="window stride (px), a multiple of 8")
    args = ap.parse_args()
    bundle, cal, test = setup(args)
    data = {}
    for seed in cal + test:
        d = scene_dir(seed, args)
        data[seed] = (candidates(bundle, d, stride=args.stride, cache=cache_name(args, bundle, seed, args.stride)),
                      open_scene(d).crossings.xy)
    radius, tol = bundle.merge_radius_m, args.tolerance
    print(f"# exp_merge {bundle.model_id} on {machine()}: calibration seeds {args.cal}, test seeds {args.test}, "
          f"{args.size}² px, stride {args.stride} px, tolerance {tol:g} m, merge radius {radius:g} m")
    print("| support floor | position | calibration F1 | threshold | test TP | test FP | test FN | test P | test R "
          "| test F1 |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def report(name, weight, cal_f1, thr, t, f, nt):
        p = t / (t + f) if t + f else 0.0
        print(f"| {name} | {weight} | {cal_f1:.3f} | {thr:.4f} | {t} | {f} | {nt - t} | {p:.3f} | {t / nt:.3f} | "
              f"{2 * t / (t + f + nt):.3f} |", flush=True)

    rules = ["probability", "logit", "most central"] + [f"centrality sigma={v} px" for v in args.sigmas.split(",")]
    cal_scores = np.unique(np.concatenate([data[s][0].score for s in cal]))[::-1]
    grid = cal_scores[np.unique(np.linspace(0, min(len(cal_scores), 20 * sum(len(data[s][1]) for s in cal)) - 1, 400).round().astype(int))]
    for rule in rules:
        # only windows >= threshold merged (detect's rule until now); thresholds searched on a grid of ranks
        f1s = [(2 * tp / (2 * tp + fp + nt - tp), t) for (tp, fp, nt), t in
               ((threshold_counts(data, cal, t, rule, radius, tol), t) for t in grid)]
        cal_f1, thr = max(f1s)
        report("= threshold", rule, cal_f1, thr, *threshold_counts(data, test, thr, rule, radius, tol))
        for floor in [float(x) for x in args.floors.split(",")]:
            sc, f1, *_ = floor_curve(data, cal, floor, rule, radius, tol)
            i = int(np.argmax(f1))
            thr = float((sc[i] + sc[i + 1]) / 2) if i + 1 < len(sc) else float(sc[i])
            s2, _, tp, fp, nt = floor_curve(data, test, floor, rule, radius, tol)
            report(f"{floor:g}", rule, f1[i], thr, *at_threshold(s2, tp, fp, nt, thr))


if __name__ == "__main__":
    main()
