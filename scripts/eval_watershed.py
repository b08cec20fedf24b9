#!/usr/bin/env python
"""Watershed-scale evaluation: detection paths side by side on unseen labelled scenes, in one run.

For each path: precision, recall, F1 (a detection within 10 m of a true crossing, one-to-one), false crossings
per km², the false crossings broken down by what lies under them (from the scenes' truth.gpkg layers
distractors and distractor_areas: field boundaries, field entrances, road intersections, farmsteads, ...),
and, for calibrated paths, the expected calibration error and a reliability diagram.

A path is NAME=BUNDLE (the bundle as `geodrain detect` runs it: its threshold, stride and merge radius),
NAME=BUNDLE@THRESHOLD (the same at another window-score threshold, e.g. one recalibrated on new scenes) or
NAME=BUNDLE:CALIBRATOR.json (the bundle's windows >= 0.5 merged at its radius, each crossing scored by the
calibrator (geodrain.scoring) on its evidence, the DEM evidence included when the calibrator uses it;
reported at P >= --report-at). The scenes are generated when missing (geodrain synth, 4096² each).

    python scripts/eval_watershed.py --seeds 9001-9010 --work runs/ws \
        --path before=models/sppnet-k3-s3-f256 \
        --path imagery-cal=models/sppnet-k3-s3-f256:runs/ws/calibrators/imagery.json \
        --path dem-evidence=models/sppnet-k3-s3-f256:runs/ws/calibrators/A-evidence.json \
        --plot docs/results/cpu/watershed_reliability.png --json docs/results/cpu/eval_watershed.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402
from wsdata import scene_data  # noqa: E402
from wslib import attribute, dump, label, prf  # noqa: E402

from geodrain.dem_features import DEM_FEATURES  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.scoring import Calibrator, expected_calibration_error, reliability  # noqa: E402
from geodrain.synth import generate_scene  # noqa: E402


def seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


def parse_path(text: str):
    name, _, rest = text.partition("=")
    if not rest:
        raise SystemExit(f"--path wants NAME=BUNDLE[:CALIBRATOR.json], got {text!r}")
    bundle, _, cal = rest.partition(":")
    bundle, _, thr = bundle.partition("@")
    cal_obj = Calibrator.from_json(json.loads(Path(cal).read_text())) if cal else None
    return name, bundle, cal_obj, cal or None, (float(thr) if thr else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", action="append", required=True, help="NAME=BUNDLE[:CALIBRATOR.json], repeatable")
    ap.add_argument("--seeds", default="9001-9010")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--scenes", nargs="*", type=Path, default=None, help="existing scene folders instead")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--report-at", type=float, default=0.5, help="calibrated paths report P >= this")
    ap.add_argument("--plot", type=Path, default=None, help="reliability diagram (PNG)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    scenes = args.scenes or []
    if not scenes:
        for s in seeds(args.seeds):
            d = args.work / "scenes" / f"s{s}"
            if not (d / "scene.json").exists():
                generate_scene(d, seed=s, size=args.size, overwrite=True)
            scenes.append(d)
    paths = [parse_path(p) for p in args.path]
    bundles = {b: load_bundle(b) for _, b, _, _, _ in paths}
    print(f"# eval_watershed on {machine()}")
    print("# " + " ".join(sys.argv))
    rows, under_rows, result, curves = [], {}, {"machine": machine(), "paths": {}}, {}
    area = None
    for name, bpath, cal, cal_path, thr in paths:
        bundle = bundles[bpath]
        uses_dem = cal is not None and any(f in DEM_FEATURES for f in cal.features)
        tp = fp = n_true = 0
        t_img = t_dem = 0.0
        under, per_scene, all_p, all_y = Counter(), [], [], []
        area = 0.0
        for s in scenes:
            d = scene_data(bundle, s, args.work, with_dem=uses_dem, threshold=thr)
            area += d.scene.area_km2
            n_true += len(d.scene.truth_xy)
            t_img += d.seconds_imagery
            if cal is None:
                xy = d.default_xy
                y, _ = label(d.scene, xy)
            else:
                p = cal.predict_clusters(d.clusters)
                all_p.append(p)
                all_y.append(d.y)
                keep = p >= args.report_at
                xy = d.clusters.xy[keep]
                y, _ = label(d.scene, xy)   # == d.y[keep]: one-to-one matching of the kept crossings
                t_dem += d.seconds_dem if uses_dem else 0.0
            false_xy = xy[y == 0]
            under.update(attribute(d.scene, false_xy))
            tp += int(y.sum())
            fp += int(len(y) - y.sum())
            per_scene.append({"scene": d.scene.name, "truth": len(d.scene.truth_xy), "detected": len(y),
                              "tp": int(y.sum()), "fp": int(len(y) - y.sum())})
        r = prf(tp, fp, n_true - tp)
        row = {"path": name, "truth": n_true, "detected": tp + fp, "precision": r["precision"],
               "recall": r["recall"], "f1": r["f1"], "false_per_km2": fp / area, "ece": float("nan"),
               "s_per_km2": (t_img + t_dem) / area, "time_vs_imagery": (t_img + t_dem) / t_img}
        rel = None
        if cal is not None:
            p, yy = np.concatenate(all_p), np.concatenate(all_y)
            row["ece"] = expected_calibration_error(p, yy)
            row["ece_reported"] = expected_calibration_error(p[p >= args.report_at], yy[p >= args.report_at])
            rel = reliability(p, yy)
            curves[name] = rel
        rows.append(row)
        under_rows[name] = under
        result["paths"][name] = {"bundle": bundle.model_id, "calibrator": cal_path,
                                 "threshold": thr if thr is not None else (bundle.threshold if cal is None else
                                                                           args.report_at), **row, "per_scene": per_scene,
                                 "false_by_kind": dict(under), "reliability": rel}
    print(f"{len(scenes)} scenes ({', '.join(Path(s).name for s in scenes)}), {area:.1f} km²; a detection within "
          f"10 m of a true crossing finds it; calibrated paths report P >= {args.report_at}")
    print(table(rows, ["path", "truth", "detected", "precision", "recall", "f1", "false_per_km2", "ece",
                       "s_per_km2", "time_vs_imagery"]))
    kinds = sorted(set().union(*[set(u) for u in under_rows.values()]),
                   key=lambda k: -sum(u.get(k, 0) for u in under_rows.values()))
    print("false crossings by what lies under them (nearest distractor within 50 m, else a distractor area "
          "within 15 m, else a true crossing 10-40 m away, else a road within 25 m, else off-road):")
    print(table([{"under": k, **{n: under_rows[n].get(k, 0) for n in under_rows}} for k in kinds],
                ["under"] + list(under_rows)))
    for name, rel in curves.items():
        print(f"reliability of {name} (all merged candidates >= 0.5):")
        print(table([r for r in rel if r["n"]], ["lo", "hi", "n", "mean_prob", "frac_real"]))
    if args.plot and curves:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.5))
        a1.plot([0, 1], [0, 1], "k:", lw=1, label="perfect")
        for name, rel in curves.items():
            pts = [(r["mean_prob"], r["frac_real"], r["n"]) for r in rel if r["n"]]
            a1.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"{name} (ECE "
                    f"{result['paths'][name]['ece']:.3f})")
            a2.bar(np.arange(len(rel)) + 0.4 * list(curves).index(name) / max(len(curves), 1),
                   [r["n"] for r in rel], width=0.4 / max(len(curves), 1) * 2, label=name, alpha=0.7)
        a1.set_xlabel("predicted probability (bin mean)")
        a1.set_ylabel("fraction of real crossings")
        a1.set_title(f"Reliability on {len(scenes)} unseen scenes ({area:.0f} km²)")
        a1.legend(fontsize=8)
        a2.set_yscale("log")
        a2.set_xticks(range(10), [f"{i / 10:.1f}" for i in range(10)])
        a2.set_xlabel("probability bin (lower edge)")
        a2.set_ylabel("merged crossings")
        a2.legend(fontsize=8)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"reliability diagram: {args.plot}")
    result.update(scenes=[str(s) for s in scenes], area_km2=area, table=rows)
    if args.json:
        dump(args.json, result)


if __name__ == "__main__":
    main()
