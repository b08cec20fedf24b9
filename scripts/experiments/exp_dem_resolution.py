#!/usr/bin/env python
"""Experiment: up to what DEM cell size does the bundle's DEM calibrator help? `detect --dem` reads any
resolution, but the calibrator was fitted on the scenes' 1 m DEMs (read at 2 m cells): a coarser DEM blurs
road embankments and channels, so the DEM evidence of real crossings weakens.

For each cell size, every scene's DEM is aggregated to it (GDAL ``average``, as a coarser product is made),
and the bundle's paths run on the scene's cached window candidates through geodrain.postprocess.report, the
function detect calls: the imagery score, and the DEM score (the bundle's DEM calibrator) with that DEM. Both
are judged as generated and with the imagery-fooling points of scripts/experiments/fooled.py at their
measured rate ("augmented"; their DEM evidence read from the same coarse DEM).

Declared rule: the DEM calibrator is used up to the largest cell size at which its augmented F1 is at least
the imagery path's on the calibration scenes (default 8001-8008, the scenes the calibrators were fitted on);
coarser DEMs get the imagery score (the bundle's ``scoring.dem.max_cell_m``).

    python scripts/experiments/exp_dem_resolution.py --scenes runs/ws/scenes --cal 8001-8008 --work runs/ws_merged
"""

from __future__ import annotations

from pathlib import Path


from common import dump, label, load_scene, machine, parser, prf, scene_candidates, scene_dir, setup, table
from fooled import RATES, confident_real, fooled_points

from geodrain.postprocess import report
from geodrain.read import open_dem

CELLS = (1.0, 2.0, 3.0, 5.0, 10.0)


def coarse_dem(src_path: Path, cell_m: float, out: Path) -> Path:
    import rasterio
    from rasterio.enums import Resampling

    if out.exists():
        return out
    with rasterio.open(src_path) as src:
        f = cell_m / abs(src.transform.a)
        if abs(f - 1.0) < 1e-9:
            return src_path
        h, w = int(round(src.height / f)), int(round(src.width / f))
        z = src.read(1, out_shape=(h, w), resampling=Resampling.average, masked=False)
        prof = src.profile
        prof.update(height=h, width=w, transform=src.transform * src.transform.scale(src.width / w, src.height / h))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **prof) as dst:
        dst.write(z, 1)
    tmp.rename(out)
    return out


def main() -> None:
    ap = parser(__doc__, cal="8001-8008", work="geodrain-ws")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    bundle, cal, _ = setup(args)
    sc = bundle.scoring_for(bundle.stride_px)
    if sc is None or sc.dem is None:
        raise SystemExit(f"{bundle.name} has no DEM calibrator")
    seeds = cal
    folders = [scene_dir(s, args) for s in seeds]
    scenes = [load_scene(f) for f in folders]
    area = sum(s.area_km2 for s in scenes)
    n_true = sum(len(s.truth_xy) for s in scenes)
    print(f"# exp_dem_resolution {bundle.model_id} on {machine()}: seeds {args.cal}, {len(scenes)} scenes, "
          f"{area:.1f} km², {n_true} crossings; report at {sc.report_at:g}, merge radius {sc.merge_radius_m:g} m",
          flush=True)
    rows = []
    for cell in CELLS:
        for path in ("imagery", "dem"):
            if path == "imagery" and cell != CELLS[0]:
                rows.append({**rows[0], "cell_m": cell})
                continue
            tp = fp = 0
            fooled_fp = 0.0
            for seed, f, scene in zip(seeds, folders, scenes):
                cands, _ = scene_candidates(bundle, f, args.work, sc.floor)
                dpath = coarse_dem(f / "dem.tif", cell, args.work / "dem_res" / f"s{seed}_{cell:g}m.tif")
                dem = open_dem(dpath, scene.crs, (scene.transform.c, scene.transform.f))
                try:
                    every = report(cands, 0.0, sc.merge_radius_m, scoring=sc,
                                   dem=dem if path == "dem" else None)
                    got = every.subset(every.probability >= sc.report_at)
                    y, _ = label(scene, got.xy)
                    tp += int(y.sum())
                    fp += int(len(y) - y.sum())
                    fo = fooled_points(scene, dem, confident_real(every, label(scene, every.xy)[0]), seed=seed,
                                       half_m=sc.dem.half_m, res_m=sc.dem.res_m)
                finally:
                    dem.close()
                cal_ = sc.dem.calibrator if path == "dem" else sc.imagery
                if len(fo.weight):
                    fooled_fp += float(fo.weight[cal_.predict(fo.matrix(cal_.features)) >= sc.report_at].sum())
            r = prf(tp, fp, n_true - tp)
            ap_ = tp / (tp + fp + fooled_fp) if tp + fp + fooled_fp else 0.0
            rows.append({"cell_m": cell, "path": path, "precision": r["precision"], "recall": r["recall"],
                         "f1": r["f1"], "false_per_km2": fp / area, "aug_precision": ap_,
                         "aug_f1": 2 * ap_ * r["recall"] / (ap_ + r["recall"]) if ap_ + r["recall"] else 0.0,
                         "aug_false_per_km2": (fp + fooled_fp) / area})
            print(f"{cell:g} m {path}: F1 {r['f1']:.3f}, augmented F1 {rows[-1]['aug_f1']:.3f}", flush=True)
    print(table(rows, list(rows[0])))
    img = rows[0]["aug_f1"]
    ok = [r["cell_m"] for r in rows if r["path"] == "dem" and r["aug_f1"] >= img]
    largest = max((c for c in CELLS if all(x in ok for x in CELLS if x <= c)), default=None)
    print(f"rule: the DEM calibrator where its augmented F1 >= the imagery path's ({img:.3f}) at every cell size up "
          f"to it -> max_cell_m {largest if largest is not None else 'none'}")
    if args.json:
        dump(args.json, {"machine": machine(), "bundle": bundle.model_id, "rows": rows, "max_cell_m": largest,
                         "rates": RATES})


if __name__ == "__main__":
    main()
