#!/usr/bin/env python
"""Render a PNG quicklook of a generated scene (``geodrain synth``).

Top: the scene downsampled (true colour, and colour-infrared with --cir) with the truth crossings (culverts
as circles, bridges as triangles) and the hard negatives (crosses) drawn. Below: full-resolution
100 x 100 m zooms around a few crossings (with the structure box) and hard negatives.

    python scripts/quicklook_scene.py SCENE_DIR [-o quicklook.png] [--cir] [--zooms 8] [--negatives 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyogrio  # noqa: E402
import rasterio  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from rasterio.enums import Resampling  # noqa: E402
from rasterio.windows import Window  # noqa: E402

NEG_COLOURS = {"road_intersection": "yellow", "waterway_end": "lime", "stream_near_road": "cyan",
               "pond_near_road": "deepskyblue", "farmstead": "orange", "driveway": "white",
               "field_entrance": "pink"}


def _stretch(a: np.ndarray) -> np.ndarray:
    """uint8 bands (3, H, W) -> display array; NAIP is already stretched, so only a mild clip."""
    return np.clip(np.moveaxis(a, 0, -1).astype(np.float32) / 255.0, 0, 1)


def _overview(src, max_px: int):
    f = max(1, int(np.ceil(max(src.width, src.height) / max_px)))
    shape = (4, src.height // f, src.width // f)
    return src.read(out_shape=shape, resampling=Resampling.average), f


def _chip(src, x: float, y: float, half: int = 50):
    row, col = src.index(x, y)
    win = Window(col - half, row - half, 2 * half, 2 * half)
    return src.read(window=win, boundless=True, fill_value=0), win


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", type=Path)
    ap.add_argument("-o", "--out", type=Path, default=None, help="PNG path (default SCENE/quicklook.png)")
    ap.add_argument("--cir", action="store_true", help="also show colour-infrared (NIR, R, G)")
    ap.add_argument("--zooms", type=int, default=8, help="crossing zooms")
    ap.add_argument("--negatives", type=int, default=4, help="hard-negative zooms")
    ap.add_argument("--max-px", type=int, default=1400, help="overview size in pixels")
    ap.add_argument("--seed", type=int, default=0, help="which crossings/negatives to zoom on")
    args = ap.parse_args(argv)

    scene = args.scene
    out = args.out or scene / "quicklook.png"
    cross = pyogrio.read_dataframe(scene / "truth.gpkg", layer="crossings")
    neg = pyogrio.read_dataframe(scene / "truth.gpkg", layer="hard_negatives")
    rng = np.random.default_rng(args.seed)
    with rasterio.open(scene / "naip.tif") as src:
        ov, f = _overview(src, args.max_px)
        t = src.transform
        zc = cross.iloc[np.sort(rng.permutation(len(cross))[:args.zooms])] if len(cross) else cross
        zn = neg.iloc[np.sort(rng.permutation(len(neg))[:args.negatives])] if len(neg) else neg
        chips = [(_chip(src, g.x, g.y), r) for g, (_, r) in zip(zc.geometry, zc.iterrows())]
        nchips = [(_chip(src, g.x, g.y), r) for g, (_, r) in zip(zn.geometry, zn.iterrows())]

    n_top = 2 if args.cir else 1
    n_z = len(chips) + len(nchips)
    zcols = 6 * n_top
    per = 2 if args.cir else 1           # panels per zoom (true colour, colour infrared)
    zrows = int(np.ceil(n_z * per / zcols))
    width = 9.0 * n_top
    zh = width / zcols * 1.12
    fig = plt.figure(figsize=(width, 9.0 + zh * zrows))
    gs = fig.add_gridspec(2, 1, height_ratios=[9.0, max(0.01, zh * zrows)], hspace=0.04)
    top = gs[0].subgridspec(1, n_top, wspace=0.02)
    ext = (t.c, t.c + t.a * ov.shape[2] * f, t.f + t.e * ov.shape[1] * f, t.f)
    views = [("true colour", ov[[0, 1, 2]])] + ([("colour infrared", ov[[3, 0, 1]])] if args.cir else [])
    for k, (title, bands) in enumerate(views):
        ax = fig.add_subplot(top[k])
        ax.imshow(_stretch(bands), extent=ext, interpolation="lanczos" if f > 1 else "nearest")
        for kind, marker, colour in (("culvert", "o", "red"), ("bridge", "^", "magenta")):
            sel = cross[cross["kind"] == kind]
            ax.scatter(sel.geometry.x, sel.geometry.y, s=36, marker=marker, facecolors="none", edgecolors=colour,
                       linewidths=1.3, label=f"{kind} ({len(sel)})")
        for kind, colour in NEG_COLOURS.items():
            sel = neg[neg["kind"] == kind]
            if len(sel):
                ax.scatter(sel.geometry.x, sel.geometry.y, s=22, marker="x", c=colour, linewidths=1.0,
                           label=f"{kind} ({len(sel)})")
        ax.set_title(f"{scene.name}: {title}")
        ax.set_xticks([]), ax.set_yticks([])
        if k == 0:
            ax.legend(loc="lower left", fontsize=7, framealpha=0.7)
    if n_z:
        zg = gs[1].subgridspec(zrows, zcols, wspace=0.04, hspace=0.18)
        items = [(c, r, "crossing") for c, r in chips] + [(c, r, "negative") for c, r in nchips]
        panel = 0
        for (arr, win), r, what in items:
            blocks = [arr[[0, 1, 2]]] + ([arr[[3, 0, 1]]] if args.cir else [])
            for bands in blocks:
                ax = fig.add_subplot(zg[panel // zcols, panel % zcols])
                panel += 1
                ax.imshow(_stretch(bands), interpolation="nearest")
                if what == "crossing":
                    # structure box in chip pixel coordinates
                    x0 = (r["box_xmin"] - t.c) / t.a - win.col_off
                    x1 = (r["box_xmax"] - t.c) / t.a - win.col_off
                    y0 = (r["box_ymax"] - t.f) / t.e - win.row_off
                    y1 = (r["box_ymin"] - t.f) / t.e - win.row_off
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="red", lw=0.7))
                    title = f"#{r['crossing_id']} {r['kind']} {r['stream_width_m']:.0f} m, {r['angle_deg']:.0f}°"
                else:
                    title = str(r["kind"]).replace("_", " ")
                ax.set_title(title, fontsize=7, pad=2)
                ax.set_xticks([]), ax.set_yticks([])
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
