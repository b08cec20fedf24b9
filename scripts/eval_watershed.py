#!/usr/bin/env python
"""Watershed-scale evaluation: detection paths side by side on unseen labelled scenes, in one run.

For each path: precision, recall, F1 (a detection within 10 m of a true crossing, one to one), false crossings
per km², the false crossings broken down by what lies under them (from the scenes' truth.gpkg layers
distractors and distractor_areas: field boundaries, field entrances, road intersections, farmsteads, ...),
and, for paths with calibrated scores, the expected calibration error and a reliability diagram.

A path is NAME=BUNDLE[+dem][@THRESHOLD]: the bundle as `geodrain detect` runs it with its defaults (its
calibrated scoring when its manifest has one, else its window threshold), with `+dem` as
`geodrain detect --dem` runs it (the scene's dem.tif read through geodrain.read.DemSource), and with
`@THRESHOLD` at another threshold (a probability on the bundle's scale). With --fooled each path is also
judged with the scenes' imagery-fooling points added at the rate measured on an independent generator's
scenes (scripts/experiments/fooled.py: field boundaries, road intersections, farmsteads and streams beside
roads given a confident real crossing's imagery evidence; the DEM evidence read at each point): the
"augmented" precision, F1 and false crossings per km², and how many of those points each path keeps. Every path goes through
geodrain.postprocess.report, the function detect itself calls, on the scene's window candidates (computed
once per bundle and scene by detect at the scoring floor and cached under --work). The scenes are generated
when missing (geodrain synth, 4096² each).

    python scripts/eval_watershed.py --seeds 9002-9011 --work runs/ws \
        --path before=runs/ws/bundles/before --path imagery=models/sppnet-k3-s3-f256 \
        --path dem=models/sppnet-k3-s3-f256+dem \
        --plot docs/results/cpu/eval_watershed_reliability.png --json docs/results/cpu/eval_watershed.json
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "experiments"))
from common import attribute, dump, label, load_scene, machine, parser, prf, scene_candidates, scene_dir, seeds, \
    table  # noqa: E402
from fooled import RATES, confident_real, fooled_points  # noqa: E402

from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.postprocess import report  # noqa: E402
from geodrain.read import open_dem  # noqa: E402
from geodrain.merge import logit  # noqa: E402
from geodrain.scoring import expected_calibration_error, reliability  # noqa: E402


def fooled_kept(sc, scene, seed: int, every, y_every, with_dem: bool, threshold: float):
    """The weighted count of the scene's imagery-fooling points a path reports (and by kind): scored by the
    DEM calibrator where the path reads the DEM and has one, else by the imagery calibrator, else by the
    strongest window against the window threshold; and (with a calibrator) their probabilities and weights."""
    src = open_dem(scene.path / "dem.tif", scene.crs, (scene.transform.c, scene.transform.f))
    try:
        reading = sc.dem.reading() if sc is not None and sc.dem is not None else {}
        f = fooled_points(scene, src, confident_real(every, y_every), seed=seed,
                          **{k: reading[k] for k in ("half_m", "res_m") if k in reading})
    finally:
        src.close()
    if not len(f.weight):
        return 0.0, {}, np.zeros(0), np.zeros(0)
    prob = np.zeros(0)
    if sc is None:
        kept = f.evidence["max_logit"] >= float(logit(np.array([threshold]))[0])
    else:
        cal = sc.dem.calibrator if with_dem and sc.dem is not None else sc.imagery
        prob = cal.predict(f.matrix(cal.features))
        kept = prob >= threshold
    return (float(f.weight[kept].sum()), {k: float(f.weight[kept & (f.kind == k)].sum()) for k in RATES}, prob,
            f.weight if len(prob) else np.zeros(0))


def parse_path(text: str) -> tuple[str, str, bool, float | None]:
    name, _, rest = text.partition("=")
    if not rest:
        raise SystemExit(f"--path wants NAME=BUNDLE[+dem][@THRESHOLD], got {text!r}")
    rest, _, thr = rest.partition("@")
    with_dem = rest.endswith("+dem")
    return name, rest[:-4] if with_dem else rest, with_dem, (float(thr) if thr else None)


def plot(curves: dict, result: dict, n_scenes: int, area: float, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.5))
    a1.plot([0, 1], [0, 1], "k:", lw=1, label="perfect")
    for k, (name, rel) in enumerate(curves.items()):
        pts = [(r["mean_prob"], r["frac_real"]) for r in rel if r["n"]]
        a1.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{name} (ECE {result[name]['ece']:.3f})")
        width = 0.8 / len(curves)
        a2.bar(np.arange(len(rel)) + k * width, [r["n"] for r in rel], width=width, label=name, alpha=0.8)
    a1.set_xlabel("predicted probability (bin mean)")
    a1.set_ylabel("fraction of real crossings")
    a1.set_title(f"Reliability on {n_scenes} unseen scenes ({area:.0f} km²)")
    a1.legend(fontsize=8)
    a2.set_yscale("log")
    a2.set_xticks(range(10), [f"{i / 10:.1f}" for i in range(10)])
    a2.set_xlabel("probability bin (lower edge)")
    a2.set_ylabel("merged crossings")
    a2.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = parser(__doc__, cal="8001-8006", test="9002-9011", work="geodrain-ws")
    ap.add_argument("--path", action="append", required=True, help="NAME=BUNDLE[+dem][@THRESHOLD], repeatable")
    ap.add_argument("--plot", type=Path, default=None, help="reliability diagram (PNG)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--fooled", action="store_true",
                    help="also judge each path with imagery-fooling points at the measured rate")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folders = [scene_dir(s, args) for s in seeds(args.test)]
    scenes = [load_scene(f) for f in folders]
    area = sum(s.area_km2 for s in scenes)
    n_true = sum(len(s.truth_xy) for s in scenes)
    paths = [parse_path(p) for p in args.path]
    bundles = {b: load_bundle(b) for _, b, _, _ in paths}
    print(f"# eval_watershed on {machine()}")
    print("# " + " ".join(sys.argv))
    rows, under_rows, curves, result, fooled_rows = [], {}, {}, {}, []
    for name, bpath, with_dem, thr in paths:
        bundle = bundles[bpath]
        sc = bundle.scoring_for(bundle.stride_px)
        floor = sc.floor if sc is not None else min(0.5, bundle.threshold)
        threshold = thr if thr is not None else (sc.report_at if sc is not None else bundle.threshold)
        radius = sc.merge_radius_m if sc is not None else bundle.merge_radius_m     # as detect merges
        tp = fp = 0
        under, per_scene, all_p, all_y = Counter(), [], [], []
        t_dem = 0.0
        n_dem = 0
        fp_fooled, by_kind, fooled_p, fooled_w = 0.0, Counter(), [], []
        for seed, f, scene in zip(seeds(args.test), folders, scenes):
            cands, _ = scene_candidates(bundle, f, args.work, floor)
            dem = open_dem(f / "dem.tif", scene.crs, (scene.transform.c, scene.transform.f)) if with_dem else None
            t0 = time.perf_counter()
            if sc is not None:
                every = report(cands, 0.0, radius, scoring=sc, dem=dem)
                t1 = time.perf_counter()
                y_all, _ = label(scene, every.xy)
                all_p.append(every.probability)
                all_y.append(y_all)
                if dem is not None and sc.dem is not None:     # as detect runs: only what can reach it read
                    got = report(cands, threshold, radius, scoring=sc, dem=dem)
                else:
                    got = every.subset(every.probability >= threshold)
            else:
                got = report(cands, threshold, radius, dem=dem)
                t1 = time.perf_counter()
            if dem is not None:
                t_dem += t1 - t0
                n_dem += len(every) if sc is not None else len(got)
                dem.close()
            y, _ = label(scene, got.xy)
            if args.fooled:
                ev_all = every if sc is not None else report(cands, floor, radius)
                kept, kinds, fp_prob, fp_w = fooled_kept(sc, scene, seed, ev_all, label(scene, ev_all.xy)[0],
                                                         with_dem, threshold)
                fp_fooled += kept
                by_kind.update(kinds)
                fooled_p.append(fp_prob)
                fooled_w.append(fp_w)
            under.update(attribute(scene, got.xy[y == 0]))
            tp += int(y.sum())
            fp += int(len(y) - y.sum())
            per_scene.append({"scene": scene.name, "truth": len(scene.truth_xy), "detected": len(y),
                              "tp": int(y.sum()), "fp": int(len(y) - y.sum())})
        r = prf(tp, fp, n_true - tp)
        row = {"path": name, "truth": n_true, "detected": tp + fp, "precision": r["precision"],
               "recall": r["recall"], "f1": r["f1"], "false_per_km2": fp / area, "ece": float("nan"),
               "dem_ms_per_crossing": 1000 * t_dem / n_dem if n_dem else float("nan")}
        rel = None
        if all_p:
            p, yy = np.concatenate(all_p), np.concatenate(all_y)
            row["ece"] = expected_calibration_error(p, yy)
            rel = reliability(p, yy)
            curves[name] = rel
        rows.append(row)
        under_rows[name] = under
        if args.fooled:
            aug_p = tp / (tp + fp + fp_fooled) if tp + fp + fp_fooled else 0.0
            aug_ece = float("nan")
            if all_p:                   # every merged crossing, and the fooled points at their weight (all false)
                fpp, fpw = np.concatenate(fooled_p), np.concatenate(fooled_w)
                pp, yy = np.concatenate(all_p), np.concatenate(all_y)
                aug_ece = expected_calibration_error(np.r_[pp, fpp], np.r_[yy, np.zeros(len(fpp))],
                                                     weight=np.r_[np.ones(len(pp)), fpw])
            fooled_rows.append({"path": name, "aug_precision": aug_p, "recall": r["recall"],
                                "aug_f1": 2 * aug_p * r["recall"] / (aug_p + r["recall"]) if aug_p + r["recall"] else 0.0,
                                "aug_false_per_km2": (fp + fp_fooled) / area, "aug_ece": aug_ece,
                                "fooled_kept": fp_fooled / (sum(RATES.values()) * area),
                                **{k: by_kind.get(k, 0.0) for k in RATES}})
        result[name] = {"bundle": bundle.model_id, "bundle_path": bpath, "dem": with_dem, "threshold": threshold,
                        "scoring": sc is not None, **row, "per_scene": per_scene, "false_by_kind": dict(under),
                        "reliability": rel}
        print(f"{name}: F1 {r['f1']:.3f}", flush=True)
    print(f"{len(scenes)} scenes ({', '.join(s.name for s in scenes)}), {area:.1f} km², {n_true} crossings; a "
          f"detection within 10 m of a true crossing finds it")
    print(table(rows, ["path", "truth", "detected", "precision", "recall", "f1", "false_per_km2", "ece",
                       "dem_ms_per_crossing"]))
    kinds = sorted(set().union(*[set(u) for u in under_rows.values()]),
                   key=lambda k: -sum(u.get(k, 0) for u in under_rows.values()))
    print("false crossings by what lies under them (nearest distractor within 50 m, else a distractor area "
          "within 15 m, else a true crossing 10-40 m away, else a road within 25 m, else off-road):")
    print(table([{"under": k, **{n: under_rows[n].get(k, 0) for n in under_rows}} for k in kinds],
                ["under"] + list(under_rows)))
    if fooled_rows:
        print(f"with imagery-fooling points at the rate measured on an independent generator's scenes "
              f"({sum(RATES.values()):.3f} per km², {sum(RATES.values()) * area:.1f} false crossings here for a path "
              f"that keeps them all; by kind: the weighted count kept):")
        print(table(fooled_rows, list(fooled_rows[0])))
    for name, rel in curves.items():
        print(f"reliability of {name} (every merged crossing of windows >= the scoring floor):")
        print(table([r for r in rel if r["n"]], ["lo", "hi", "n", "mean_prob", "frac_real"]))
    if args.plot and curves:
        plot(curves, result, len(scenes), area, args.plot)
        print(f"reliability diagram: {args.plot}")
    if args.json:
        dump(args.json, {"machine": machine(), "scenes": [s.name for s in scenes], "area_km2": area,
                         "truth": n_true, "table": rows, "paths": result, "fooled": fooled_rows})


if __name__ == "__main__":
    main()
