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

    python scripts/exp_merge.py models/sppnet-k3-s3-f256 --cal 8001,...,8008 --test 9001,9002,9003 \
        --scenes runs/deploy/scenes --work runs/exp_merge
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine  # noqa: E402

from geodrain.datasets.scene import open_scene  # noqa: E402
from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.evaluate import match_points  # noqa: E402
from geodrain.merge import Candidates  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.synth import generate_scene  # noqa: E402

LOW = 0.05


def scene_dir(seed: int, scenes: Path | None, work: Path, size: int) -> Path:
    if scenes is not None and (scenes / f"s{seed}" / "naip.tif").exists():
        return scenes / f"s{seed}"
    d = work / f"s{seed}"
    if not (d / "naip.tif").exists():
        generate_scene(d, seed=seed, size=size, overwrite=True)
    return d


def windows(bundle, folder: Path, cache: Path, stride: int = 24) -> Candidates:
    """Every window candidate >= LOW of one scene at ``stride``, fp32 (as `geodrain calibrate` runs), cached."""
    if cache.exists():
        z = np.load(cache)
        return Candidates(z["xy"], z["score"], z["size"], z["centre"])
    r = detect(folder / "naip.tif", None, model=bundle, progress=False,
               options=DetectOptions(threshold=LOW, device="cpu", precision="fp32", stride=stride))
    c = r.candidates
    np.savez(cache, xy=c.xy, score=c.score, size=c.size, centre=c.centre)
    return c


def logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def weights(c: Candidates, m: np.ndarray, rule: str) -> np.ndarray:
    """Position weights of a cluster's windows ``m`` under ``rule``."""
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


def merged(c: Candidates, radius: float, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """detect's greedy clustering (strongest first, within radius, no chaining); position by ``rule``,
    score = the strongest window."""
    from scipy.spatial import cKDTree
    if len(c) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    order = np.argsort(-c.score, kind="stable")
    tree = cKDTree(c.xy)
    claimed = np.zeros(len(c), bool)
    xy, sc = [], []
    for i in order:
        if claimed[i]:
            continue
        m = np.array([j for j in tree.query_ball_point(c.xy[i], radius) if not claimed[j]])
        claimed[m] = True
        w = weights(c, m, rule)
        pts = c.centre if rule == "window centre" else c.xy
        xy.append((pts[m] * w[:, None]).sum(0) / w.sum())
        sc.append(c.score[i])
    return np.array(xy), np.array(sc)


def floor_curve(data, seeds, floor: float, rule: str, radius: float, tol: float):
    """Windows >= floor clustered once; a cluster is reported when its strongest window reaches the threshold:
    (thresholds descending, F1, TP, FP, n_true)."""
    sc_all, hit_all, nt = [], [], 0
    for s in seeds:
        c, truth = data[s]
        xy, sc = merged(c.subset(c.score >= floor), radius, rule)
        hit = np.zeros(len(sc), bool)
        hit[match_points(xy, truth, tol).pred_index] = True
        sc_all.append(sc)
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
        xy, _ = merged(c.subset(c.score >= thr), radius, rule)
        k = len(match_points(xy, truth, tol).pred_index)
        tp, fp, nt = tp + k, fp + len(xy) - k, nt + len(truth)
    return tp, fp, nt


def at_threshold(sc, tp, fp, nt, thr):
    k = int((sc >= thr).sum())
    t, f = (int(tp[k - 1]), int(fp[k - 1])) if k else (0, 0)
    return t, f, nt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", default=None)
    ap.add_argument("--cal", default="8001,8002,8003,8004,8005,8006,8007,8008")
    ap.add_argument("--test", default="9001,9002,9003")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--scenes", type=Path, default=None, help="folder of existing scenes named s<seed>")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-exp-merge")
    ap.add_argument("--tolerance", type=float, default=10.0)
    ap.add_argument("--floors", default="0.5,0.9")
    ap.add_argument("--sigmas", default="15,25,40")
    ap.add_argument("--stride", type=int, default=24, help="window stride (px), a multiple of 8")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.bundle)
    cal, test = [int(s) for s in args.cal.split(",")], [int(s) for s in args.test.split(",")]
    data = {}
    for seed in cal + test:
        d = scene_dir(seed, args.scenes, args.work, args.size)
        tag = "" if args.stride == 24 else f"_stride{args.stride}"
        data[seed] = (windows(bundle, d, args.work / f"windows_{bundle.model_id.replace('@', '_')}_{seed}{tag}.npz",
                              args.stride),
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
