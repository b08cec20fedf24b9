#!/usr/bin/env python
"""Benchmark: what the DEM evidence of scripts/eval_watershed.py's DEM path costs next to detection itself, in
one run, alternating: `geodrain detect`'s imagery path on a scene (windows >= 0.5 kept, merged), then
geodrain.dem_features.crossing_evidence on the merged crossings (the DEM read from the scene's dem.tif, which
shares the imagery's grid). Reports each repeat's times and the end-to-end ratio DEM path / imagery path.

    python scripts/bench_dem_evidence.py runs/ws/scenes/s9501 --repeat 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402

from geodrain.dem_features import crossing_evidence  # noqa: E402
from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.scoring import cluster_evidence  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scene", type=Path)
    ap.add_argument("--bundle", default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--floor", type=float, default=0.5)
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    # warm-up: the model, and pyflwdir's compiled routines
    with rasterio.open(args.scene / "dem.tif") as src:
        crossing_evidence(src.read(1, window=((0, 400), (0, 400))), src.window_transform(((0, 400), (0, 400))),
                          np.array([src.xy(200, 200)]), nodata=src.nodata)
    rows = []
    for k in range(args.repeat):
        t0 = time.perf_counter()
        r = detect(args.scene / "naip.tif", None, model=bundle, progress=False,
                   options=DetectOptions(threshold=args.floor, device="cpu"))
        cl = cluster_evidence(r.candidates.xy, r.candidates.score, bundle.merge_radius_m)
        t_img = time.perf_counter() - t0
        t1 = time.perf_counter()
        with rasterio.open(args.scene / "dem.tif") as src:
            crossing_evidence(src.read(1), src.transform, cl.xy, nodata=src.nodata)
        t_dem = time.perf_counter() - t1
        rows.append({"repeat": k + 1, "crossings_merged": len(cl), "imagery_s": t_img, "dem_evidence_s": t_dem,
                     "ratio": (t_img + t_dem) / t_img})
    print(f"# bench_dem_evidence {bundle.model_id} on {machine()}: {args.scene.name}, windows >= {args.floor:g}")
    print(table(rows, ["repeat", "crossings_merged", "imagery_s", "dem_evidence_s", "ratio"]))
    tot_i = sum(r["imagery_s"] for r in rows)
    tot_d = sum(r["dem_evidence_s"] for r in rows)
    print(f"DEM path / imagery path end to end: {(tot_i + tot_d) / tot_i:.3f} "
          f"({tot_d / max(sum(r['crossings_merged'] for r in rows), 1) * 1000:.0f} ms per merged crossing)")


if __name__ == "__main__":
    main()
