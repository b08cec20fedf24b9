"""Quicklook pictures: a downsampled RGB or colour-infrared view of a raster with crossings drawn on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .evaluate import crossing_layer, match_points, score_matching
from .datasets.scene import read_points
from .read import NAIP_BANDS, open_source
from .output import atomic_file, check_output


def stretch(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """2-98 % linear stretch per band of (C, H, W) -> (H, W, C) floats in 0..1, invalid pixels white."""
    out = np.ones((img.shape[1], img.shape[2], img.shape[0]), np.float32)
    for i in range(img.shape[0]):
        band = img[i].astype(np.float32)
        vals = band[valid] if valid.any() else band.ravel()
        lo, hi = np.percentile(vals, [2, 98])
        out[..., i] = np.where(valid, np.clip((band - lo) / max(hi - lo, 1.0), 0, 1), 1.0)
    return out


def render_quicklook(raster, crossings: str | Path | None, out: str | Path, *, truth: str | Path | None = None,
                     tolerance: float = 10.0, cir: bool = False, bands=NAIP_BANDS, max_side: int = 1600,
                     overwrite: bool = False, title: str | None = None) -> Path:
    """Write a PNG of ``raster`` with detections (and truth: matched / missed / false marked apart)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = check_output(out, overwrite, formats={".png"})
    with open_source(raster if isinstance(raster, (list, tuple)) else [raster], bands, gsd_m=None) as src:
        img, valid = src.overview(max_side)
        grid = src.grid
    rgb = stretch(img[[3, 0, 1]] if cir else img[:3], valid)
    x0, y0, x1, y1 = grid.bounds
    fig, ax = plt.subplots(figsize=(10, 10 * rgb.shape[0] / rgb.shape[1] + 0.6), dpi=110)
    ax.imshow(rgb, extent=(x0, x1, y0, y1), interpolation="bilinear")
    pred = read_points(crossings, crossing_layer(crossings), crs=grid.crs) if crossings else None
    tru = read_points(truth, crossing_layer(truth), crs=grid.crs) if truth else None
    style = dict(s=70, linewidths=1.6)
    if tru is not None and pred is not None:
        m = match_points(pred.xy, tru.xy, tolerance)
        ev = score_matching(m, tolerance)
        ax.scatter(*pred.xy[m.pred_index].T, facecolors="none", edgecolors="lime", label=f"matched ({ev.true_positives})", **style)
        ax.scatter(*tru.xy[m.misses].T, marker="x", c="magenta", label=f"missed ({ev.false_negatives})", **style)
        ax.scatter(*pred.xy[m.false_positives].T, facecolors="none", edgecolors="yellow",
                   label=f"false ({ev.false_positives})", **style)
        title = title or f"{Path(str(raster)).name}: P {ev.precision:.2f}  R {ev.recall:.2f}  F1 {ev.f1:.2f}"
    else:
        if pred is not None:
            ax.scatter(*pred.xy.T, facecolors="none", edgecolors="orangered", label=f"detected ({len(pred)})", **style)
        if tru is not None:
            ax.scatter(*tru.xy.T, marker="+", c="cyan", label=f"truth ({len(tru)})", **style)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(title or Path(str(raster)).name, fontsize=10)
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=7)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    fig.tight_layout()
    try:
        with atomic_file(out) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return out
