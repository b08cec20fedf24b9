"""Cut a labelled scene into a VOC chip folder, as the paper prepared its training data.

Positives are 100 x 100 m chips centred on each crossing with a few metres of jitter; negatives are random
chips and *hard* negatives near roads, road intersections, waterways and streams (the scene's
``hard_negatives`` layer), all at least ``NEG_PX`` from any crossing so the centre rule of
:mod:`geodrain.datasets.targets` labels them unambiguously. Chips are cut from the scene as detection reads
it (:meth:`geodrain.datasets.scene.Scene.read`): on the model's grid, 8-bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from tqdm import tqdm

from ..errors import DatasetError
from ..model.sppnet import WINDOW_PX
from ..output import atomic_folder, check_output_folder
from ..window import MIN_VALID
from .scene import Scene, open_scene
from .targets import IGNORE, NEG_PX
from .voc import write_annotation


@dataclass
class ChipSummary:
    folder: Path
    positives: int
    negatives: int
    hard_negatives: int


def plan_chip_centres(scene: Scene, rng: np.random.Generator, jitter_px: float, neg_ratio: float,
                      hard_fraction: float, margin_px: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chip centres in pixels: (positives (P, 2), hard negatives (H, 2), random negatives (R, 2))."""
    cross = scene.to_pixels(scene.crossings.xy) if len(scene.crossings) else np.zeros((0, 2))
    lo, hi_x, hi_y = margin_px, scene.width - margin_px, scene.height - margin_px

    def inside(p):
        return (p[:, 0] >= lo) & (p[:, 0] <= hi_x) & (p[:, 1] >= lo) & (p[:, 1] <= hi_y)

    def clear(p):
        if len(cross) == 0 or len(p) == 0:
            return np.ones(len(p), bool)
        d = np.abs(p[:, None, :] - cross[None, :, :]).max(-1)
        return d.min(1) > NEG_PX + 2

    pos = cross + rng.uniform(-jitter_px, jitter_px, cross.shape)
    pos = pos[inside(pos)]
    n_neg = int(round(neg_ratio * max(len(pos), 1)))
    n_hard = int(round(hard_fraction * n_neg)) if len(scene.hard_negatives) else 0
    hard = np.zeros((0, 2))
    if n_hard:
        base = scene.to_pixels(scene.hard_negatives.xy)
        pick = base[rng.integers(len(base), size=4 * n_hard)]
        cand = pick + rng.uniform(-20, 20, pick.shape)
        cand = cand[inside(cand) & clear(cand)]
        hard = cand[:n_hard]
    n_rand = n_neg - len(hard)
    cand = np.column_stack([rng.uniform(lo, hi_x, 4 * n_rand + 8), rng.uniform(lo, hi_y, 4 * n_rand + 8)])
    rand = cand[clear(cand)][:n_rand]
    return pos, hard, rand


def write_chips(raster: str | Path, truth: str | Path | None, out: str | Path, *, jitter_m: float = 4.0,
                neg_ratio: float = 2.0, hard_fraction: float = 0.5, context_px: int = 0, seed: int = 0,
                overwrite: bool = False, prefix: str | None = None, quiet: bool = True) -> ChipSummary:
    """Write positive and negative chips of a scene as a VOC folder at ``out`` (atomically)."""
    out = check_output_folder(out, overwrite)
    scene = open_scene(raster, truth)
    if scene.count < 3:
        raise DatasetError(f"{scene.raster} has {scene.count} band(s); chips need 3 or 4")
    rng = np.random.default_rng(seed)
    gsd = scene.gsd
    size = WINDOW_PX + 2 * context_px
    pos, hard, rand = plan_chip_centres(scene, rng, jitter_m / gsd, neg_ratio, hard_fraction,
                                        margin_px=WINDOW_PX / 2)
    cross_px = scene.to_pixels(scene.crossings.xy) if len(scene.crossings) else np.zeros((0, 2))
    sizes_px = scene.crossings.sizes_m / gsd
    kinds = scene.crossings.kinds
    stem = prefix or scene.raster.parent.name or scene.raster.stem
    jobs = [("pos", p) for p in pos] + [("hard", p) for p in hard] + [("neg", p) for p in rand]
    bands = scene.source.bands
    profile = dict(driver="GTiff", dtype="uint8", count=len(bands), width=size, height=size, crs=scene.crs,
                   compress="deflate")
    with atomic_folder(out) as tmp:
        for i, (tag, centre) in enumerate(tqdm(jobs, desc="chips", unit="chip", disable=quiet)):
            col = int(np.floor(centre[0])) - size // 2
            row = int(np.floor(centre[1])) - size // 2
            img, _ = scene.read(col, row, size)
            name = f"{stem}_{tag}_{i:05d}"
            tf = window_transform(Window(col, row, size, size), scene.transform)
            with rasterio.open(tmp / f"{name}.tif", "w", transform=tf, **profile) as dst:
                dst.write(img)
                dst.descriptions = ("red", "green", "blue", "nir")[: len(bands)]
            local = cross_px - np.array([col, row])
            keep = (local[:, 0] >= 0) & (local[:, 0] < size) & (local[:, 1] >= 0) & (local[:, 1] < size)
            half = sizes_px[keep] / 2
            boxes = np.column_stack([local[keep] - half, local[keep] + half])
            boxes = np.clip(boxes, 0, size)
            names = [k if k in ("culvert", "bridge") else "culvert" for k in kinds[keep]]
            write_annotation(tmp / f"{name}.xml", f"{name}.tif", size, size, len(bands), boxes,
                             local[keep], names, context_px)
    return ChipSummary(out, len(pos), len(rand), len(hard))


def chip_arrays(scene: Scene, context_px: int, rng: np.random.Generator, *, jitter_m: float = 4.0,
                neg_ratio: float = 2.0, hard_fraction: float = 0.5, positives: np.ndarray | None = None,
                bands: tuple[int, ...] = (1, 2, 3, 4)) -> tuple[np.ndarray, np.ndarray]:
    """Chips of a scene in memory, as :func:`write_chips` would cut them: (N, C, S, S) uint8, (N, 5) targets
    (a chip whose window detection would skip for nodata is labelled ignored).

    ``positives`` (a boolean mask over the scene's crossings) restricts which crossings get centred chips
    (all are still used for labelling).
    """
    from .targets import grid_targets

    sub = scene
    if positives is not None:
        sub = Scene(**{**scene.__dict__, "crossings": type(scene.crossings)(
            scene.crossings.xy[positives], scene.crossings.sizes_m[positives], scene.crossings.kinds[positives])})
    pos, hard, rand = plan_chip_centres(sub, rng, jitter_m / scene.gsd, neg_ratio, hard_fraction,
                                        margin_px=WINDOW_PX / 2)
    cross_px = scene.to_pixels(scene.crossings.xy) if len(scene.crossings) else np.zeros((0, 2))
    sizes_px = scene.crossings.sizes_m / scene.gsd
    size = WINDOW_PX + 2 * context_px
    centres = np.concatenate([pos, hard, rand]) if len(pos) + len(hard) + len(rand) else np.zeros((0, 2))
    imgs = np.zeros((len(centres), len(bands), size, size), np.uint8)
    targets = np.zeros((len(centres), 5), np.float32)
    core = slice(context_px, context_px + WINDOW_PX)
    for i, c in enumerate(centres):
        col = int(np.floor(c[0])) - size // 2
        row = int(np.floor(c[1])) - size // 2
        imgs[i], valid = scene.read(col, row, size, bands)
        targets[i] = grid_targets(cross_px - np.array([col, row]), sizes_px, size / 2, 8.0, 1, 1)[0, 0]
        if valid[core, core].mean() < MIN_VALID:     # a window detection would skip is not trained
            targets[i, 0] = IGNORE
    return imgs, targets
