#!/usr/bin/env python
"""Compare band statistics of generated naip.tif files with real NAIP crops.

Per image: per-band mean, standard deviation and 2nd/98th percentiles (R, G, B, NIR), the NDVI distribution
(mean and 10/50/90th percentiles) and a texture measure, the mean absolute 4-neighbour Laplacian per band at
1 m (real crops finer than 1 m are first averaged to 1 m; coarser ones are reported as they are and marked).
Pixels that are nodata in all bands are ignored. Prints a Markdown table.

    python scripts/naip_stats.py SCENE/naip.tif [MORE.tif ...] --real DIR_OF_REAL_NAIP_CROPS
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

MAX_PX = 4096  # larger rasters are read decimated for the statistics (texture always at full resolution)


def _read(path: Path):
    with rasterio.open(path) as src:
        res = abs(src.transform.a)
        f = max(1, int(np.ceil(max(src.width, src.height) / MAX_PX)))
        full = src.read(out_shape=(src.count, src.height // f, src.width // f), resampling=Resampling.nearest)
        # texture at 1 m: average finer pixels to 1 m; keep a full-resolution window of large rasters
        if res < 0.95:
            k = 1.0 / res
            tex = src.read(out_shape=(src.count, int(src.height / k), int(src.width / k)),
                           resampling=Resampling.average)
            tex_res = 1.0
        else:
            w = min(src.width, 2048)
            h = min(src.height, 2048)
            tex = src.read(window=Window((src.width - w) // 2, (src.height - h) // 2, w, h))
            tex_res = res
        nodata = src.nodata
    return full[:4].astype(np.float32), tex[:4].astype(np.float32), res, tex_res, nodata


def _valid(a: np.ndarray, nodata) -> np.ndarray:
    if nodata is None:
        return np.ones(a.shape[1:], bool)
    return ~np.all(a == nodata, axis=0)


def stats(path: Path) -> dict:
    a, tex, res, tex_res, nodata = _read(path)
    m = _valid(a, nodata)
    px = a[:, m]
    r, n = px[0], px[3]
    ndvi = (n - r) / np.maximum(n + r, 1.0)
    mt = _valid(tex, nodata)
    mt[0, :] = mt[-1, :] = False
    mt[:, 0] = mt[:, -1] = False
    lap = []
    for b in range(4):
        x = tex[b]
        L = np.zeros_like(x)
        L[1:-1, 1:-1] = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
        lap.append(float(np.abs(L[mt]).mean()))
    return dict(
        name=path.name if path.name != "naip.tif" else f"{path.parent.name}/naip.tif", res=res, tex_res=tex_res,
        mean=px.mean(1), std=px.std(1), p2=np.percentile(px, 2, axis=1), p98=np.percentile(px, 98, axis=1),
        ndvi=(float(ndvi.mean()), *np.percentile(ndvi, [10, 50, 90])), lap=lap)


def _fmt(v) -> str:
    return "/".join(f"{x:.0f}" for x in v)


def table(rows: list[dict]) -> str:
    out = ["| image | GSD m | mean R/G/B/N | std R/G/B/N | p2 R/G/B/N | p98 R/G/B/N | NDVI mean (p10/p50/p90) "
           "| abs Laplacian R/G/B/N |",
           "|---|---|---|---|---|---|---|---|"]
    for s in rows:
        nd = s["ndvi"]
        lap = "/".join(f"{x:.1f}" for x in s["lap"])
        if s["tex_res"] > 1.5:
            lap += f" (at {s['tex_res']:.0f} m)"
        out.append(f"| {s['name']} | {s['res']:.1f} | {_fmt(s['mean'])} | {_fmt(s['std'])} | {_fmt(s['p2'])} | "
                   f"{_fmt(s['p98'])} | {nd[0]:.2f} ({nd[1]:.2f}/{nd[2]:.2f}/{nd[3]:.2f}) | {lap} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", nargs="*", type=Path, help="generated naip.tif files (or scene folders)")
    ap.add_argument("--real", type=Path, default=os.environ.get("GEODRAIN_REAL_NAIP"), required="GEODRAIN_REAL_NAIP" not in os.environ,
                    help="folder of real NAIP crops (*.tif); default $GEODRAIN_REAL_NAIP")
    args = ap.parse_args(argv)
    rows = []
    for p in args.images:
        rows.append(stats(p / "naip.tif" if p.is_dir() else p))
    real = sorted(args.real.glob("*.tif")) if args.real.is_dir() else []
    if not real:
        print(f"(no real NAIP crops found in {args.real})")
    for p in real:
        s = stats(p)
        s["name"] = "real: " + s["name"]
        rows.append(s)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
