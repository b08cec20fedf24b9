"""Quicklook pictures: a downsampled RGB or colour-infrared view of a raster with crossings drawn on it, or of a
DEM with its hillshade, the streams extracted from it (before and after conditioning) and the breach lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import RasterError
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


def _routed_overview(path, side: int, bounds=None):
    """A DEM (or its part inside map ``bounds`` (xmin, ymin, xmax, ymax)) read at most ``side`` cells across,
    each cell the minimum of the cells it covers so that one-cell breaches and channels survive, and its
    filled D8 routing: (z, grid, DEM info, transform, bounds)."""
    import math

    import rasterio
    from rasterio.enums import Resampling
    from rasterio.transform import Affine

    from .hydrology.dem import _valid, open_dem
    from .hydrology.routing import route

    from rasterio.vrt import WarpedVRT

    info = open_dem(path)
    x0, y0, x1, y1 = info.bounds
    if bounds is not None:
        x0, y0, x1, y1 = max(x0, bounds[0]), max(y0, bounds[1]), min(x1, bounds[2]), min(y1, bounds[3])
        if x1 <= x0 or y1 <= y0:
            raise RasterError(f"--bounds do not overlap {path}")
    res = abs(info.transform.a)
    w, h = max(1, round((x1 - x0) / res)), max(1, round((y1 - y0) / res))
    f = max(1, math.ceil(max(w, h) / side))
    shape = (max(1, h // f), max(1, w // f))
    transform = Affine(res * w / shape[1], 0, x0, 0, -res * h / shape[0], y1)
    with rasterio.open(info.path) as src, WarpedVRT(src, crs=src.crs, transform=transform, width=shape[1],
                                                    height=shape[0], resampling=Resampling.min) as vrt:
        a = vrt.read(1, masked=True)
    z = a.data.astype(np.float32)
    z[~_valid(a)] = np.nan
    return z, route(z, transform), info, transform, (x0, y0, x1, y1)


def render_dem_quicklook(dem, crossings: str | Path | None, out: str | Path, *, before: str | Path | None = None,
                         breaches: str | Path | None = None, truth: str | Path | None = None,
                         stream_area_m2: float = 50000.0, max_side: int = 1600, route_side: int = 2048,
                         bounds: tuple[float, float, float, float] | None = None, overwrite: bool = False,
                         title: str | None = None) -> Path:
    """A PNG of a DEM for a hydrologist: hillshade, the streams extracted from it (D8 flow accumulation of at
    least ``stream_area_m2`` after filling depressions), the streams extracted from the DEM ``before``
    conditioning where they differ, the breach lines and the crossings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LightSource, ListedColormap

    out = check_output(out, overwrite, formats={".png": "PNG"})
    if breaches is None:
        guess = Path(dem).with_name(Path(dem).stem + "_breaches.gpkg")
        breaches = guess if guess.exists() else None
    from scipy.ndimage import binary_dilation

    z, grid, info, transform, (x0, y0, x1, y1) = _routed_overview(dem, route_side, bounds)
    cell = abs(transform.a) * info.units_m
    thick = max(0, round(max(z.shape) / max_side))          # streams drawn at least ~2 px wide

    def streams(g):
        s = g.accumulation("cell") * cell ** 2 >= stream_area_m2
        return binary_dilation(s, iterations=thick) if thick else s

    after = streams(grid)
    old = streams(_routed_overview(before, route_side, (x0, y0, x1, y1))[1]) if before is not None else None
    ext = (x0, x1, y0, y1)
    zf = np.where(np.isfinite(z), z, np.nanmin(z) if np.isfinite(z).any() else 0.0)
    shade = LightSource(azdeg=315, altdeg=45).hillshade(zf, vert_exag=3.0, dx=cell, dy=cell)
    fig, ax = plt.subplots(figsize=(10, 10 * z.shape[0] / z.shape[1] + 0.6), dpi=110)
    ax.imshow(np.where(np.isfinite(z), shade, 1.0), cmap="gray", vmin=0, vmax=1, extent=ext, interpolation="bilinear")
    handles = []
    if old is not None:
        ax.imshow(np.ma.masked_where(~(old & ~after), old), cmap=ListedColormap(["#ff8c00"]), extent=ext,
                  interpolation="nearest", alpha=0.9)
        handles.append(plt.Line2D([], [], color="#ff8c00", lw=2, label="streams before (where they differ)"))
    ax.imshow(np.ma.masked_where(~after, after), cmap=ListedColormap(["#1f5fff"]), extent=ext,
              interpolation="nearest", alpha=0.9)
    handles.append(plt.Line2D([], [], color="#1f5fff", lw=2, label=f"streams (≥ {stream_area_m2 / 1e4:g} ha)"))
    crs = info.crs
    if breaches is not None:
        import geopandas as gpd

        lines = gpd.read_file(breaches, layer="breaches").to_crs(crs).clip((x0, y0, x1, y1))
        for g in lines.geometry:
            ax.plot(*np.asarray(g.coords).T, color="red", lw=2.2)
        handles.append(plt.Line2D([], [], color="red", lw=2.2, label=f"breaches ({len(lines)})"))
    style = dict(s=60, linewidths=1.4)

    def shown(path):
        xy = read_points(path, crossing_layer(path), crs=crs).xy
        return xy[(xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)]

    if crossings is not None:
        xy = shown(crossings)
        ax.scatter(*xy.T, facecolors="none", edgecolors="yellow", label=f"crossings ({len(xy)})", **style)
    if truth is not None:
        xy = shown(truth)
        ax.scatter(*xy.T, marker="+", c="cyan", label=f"truth ({len(xy)})", **style)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(title or f"{Path(str(dem)).name}: hillshade, D8 streams after filling depressions, breaches",
                 fontsize=10)
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=7)
    h2, _ = ax.get_legend_handles_labels()
    ax.legend(handles=handles + h2, loc="lower right", fontsize=8, framealpha=0.85)
    fig.tight_layout()
    _save(fig, out, plt)
    return out


def _save(fig, out: Path, plt) -> None:
    try:
        with atomic_file(out) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def is_dem(path: str | Path) -> bool:
    """A single-band raster is drawn as a DEM."""
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as src:
            return src.count == 1
    except RasterioIOError:
        return False
