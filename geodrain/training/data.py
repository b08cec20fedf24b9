"""Training data: what a DATA argument of ``geodrain train`` is, and the train/validation/test splits.

A DATA path is either a VOC chip folder (``*.tif`` + ``*.xml``; a folder with ``train/`` and ``test/``, like
the paper's ``data.zip``, uses ``train/`` and holds ``test/`` out) or a scene folder (``naip.tif`` +
``truth.gpkg``, e.g. from ``geodrain synth``). Chip folders give one window per chip; scenes give
on-the-fly crops with context (see :mod:`geodrain.datasets.sampler`). Validation is an 80/20 split:
of the chips, or of each scene's crossings (validation chips are centred on held-out crossings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..datasets.chips import chip_arrays
from ..datasets.sampler import CropSpec, SceneCropDataset
from ..datasets.scene import Scene, open_scene
from ..datasets.voc import VocChipDataset, chip_files, detect_bands
from ..errors import DatasetError


class ArrayChips(torch.utils.data.Dataset):
    """In-memory chips (N, C, S, S) uint8 with (N, 5) targets, yielded as (image, (1, 1, 5) target)."""

    def __init__(self, images: np.ndarray, targets: np.ndarray):
        self.images = images
        self.targets = targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return torch.from_numpy(self.images[i]), torch.from_numpy(self.targets[i]).view(1, 1, 5)


@dataclass
class TrainingData:
    kind: str                                  # "chips" or "scenes"
    bands: int
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    test: torch.utils.data.Dataset | None
    provenance: dict = field(default_factory=dict)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.train, "epoch"):
            self.train.epoch = epoch


def is_scene(path: Path) -> bool:
    return path.is_dir() and (path / "naip.tif").is_file() and (path / "truth.gpkg").is_file()


def load_training_data(paths: list[str | Path], context_px: int, *, val_fraction: float = 0.2,
                       test: list[str | Path] | None = None, samples_per_epoch: int = 2000,
                       crop_windows: int = 9, seed: int = 0, balance_by: str | None = None) -> TrainingData:
    paths = [Path(p) for p in paths]
    if not paths:
        raise DatasetError("no training data given")
    for p in paths:
        if not p.exists():
            raise DatasetError(f"training data not found: {p}")
    scenes = [p for p in paths if is_scene(p)]
    if scenes and len(scenes) != len(paths):
        raise DatasetError("give either scene folders (naip.tif + truth.gpkg) or chip folders, not both")
    if scenes:
        return _scene_data(scenes, context_px, val_fraction, test, samples_per_epoch, crop_windows, seed,
                           balance_by)
    return _chip_data(paths, context_px, val_fraction, test, seed)


def _chip_data(paths, context_px, val_fraction, test, seed) -> TrainingData:
    input_px = 100 + 2 * context_px
    files, held_out = [], []
    for p in paths:
        if (p / "train").is_dir():
            files += chip_files(p / "train")
            if (p / "test").is_dir():
                held_out += chip_files(p / "test")
        else:
            files += chip_files(p)
    for t in test or []:
        t = Path(t)
        held_out += chip_files(t / "test" if (t / "test").is_dir() else t)
    bands = detect_bands(files[0].parent)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    n_val = max(1, int(round(val_fraction * len(files))))
    val_files = [files[i] for i in order[:n_val]]
    train_files = [files[i] for i in order[n_val:]]
    if not train_files:
        raise DatasetError("too few chips to split into training and validation")
    train = VocChipDataset(paths[0], input_px, bands, train_files, augment=True, seed=seed)
    val = VocChipDataset(paths[0], input_px, bands, val_files)
    tst = VocChipDataset(paths[0], input_px, bands, held_out) if held_out else None
    prov = {"kind": "chips", "sources": [str(p) for p in paths], "train_chips": len(train_files),
            "val_chips": len(val_files), "test_chips": len(held_out)}
    return TrainingData("chips", bands, train, val, tst, prov)


def scene_chip_set(scenes: list[Scene], context_px: int, seed: int, masks: list[np.ndarray] | None = None,
                   bands: tuple[int, ...] = (1, 2, 3, 4)) -> ArrayChips:
    """Centred positive and negative chips of several scenes (the paper's chip evaluation)."""
    imgs, tgts = [], []
    for k, s in enumerate(scenes):
        rng = np.random.default_rng((seed, k))
        i, t = chip_arrays(s, context_px, rng, positives=None if masks is None else masks[k], bands=bands)
        imgs.append(i)
        tgts.append(t)
    return ArrayChips(np.concatenate(imgs), np.concatenate(tgts))


def _scene_data(paths, context_px, val_fraction, test, samples_per_epoch, crop_windows, seed,
                balance_by=None) -> TrainingData:
    scenes = [open_scene(p) for p in paths]
    for s in scenes:
        if s.count < 4:
            raise DatasetError(f"{s.raster} has {s.count} bands; scene training needs 4 (R, G, B, NIR)")
    rng = np.random.default_rng(seed)
    val_masks = []
    for s in scenes:
        m = np.zeros(len(s.crossings), bool)
        n_val = int(round(val_fraction * len(m)))
        m[rng.permutation(len(m))[:n_val]] = True
        val_masks.append(m)
    spec = CropSpec(context_px=context_px, windows=crop_windows)
    train = SceneCropDataset(scenes, spec, samples_per_epoch, seed=seed, exclude=val_masks, balance_by=balance_by)
    val = scene_chip_set(scenes, context_px, seed + 1, masks=val_masks)
    tst = None
    if test:
        test_scenes = [open_scene(p) for p in test]
        tst = scene_chip_set(test_scenes, context_px, seed + 2)
    prov = {"kind": "scenes", "sources": [str(p) for p in paths],
            "crossings": int(sum(len(s.crossings) for s in scenes)),
            "val_crossings": int(sum(m.sum() for m in val_masks)), "crop_px": spec.size,
            "windows_per_crop": crop_windows ** 2, "crops_per_epoch": samples_per_epoch,
            "val_chips": len(val), "test_sources": [str(p) for p in test or []],
            "test_chips": len(tst) if tst is not None else 0}
    mined = [s.mined for s in scenes if s.mined is not None]
    if mined:
        prov["mined"] = {kind: int(sum((m.kinds == kind).sum() for m in mined))
                         for kind in ("false_positive", "missed")}
    return TrainingData("scenes", 4, train, val, tst, prov)
