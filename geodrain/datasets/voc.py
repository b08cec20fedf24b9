"""Chip folders in the reference repository's layout: ``<name>.tif`` chips with Pascal VOC ``<name>.xml``.

Each chip is a small georeferenced GeoTIFF; its annotation lists ``<object><name>culvert</name>
<bndbox>xmin ymin xmax ymax</bndbox></object>`` in chip pixels (a chip without objects is a negative).
geodrain adds an optional ``<point><x/><y/></point>`` per object (the crossing point, when it is not the
box centre) and ``<context>`` (pixels of context around the 100 px window). The paper's own ``data.zip``
(``train/``, ``test/`` of 100 x 100 chips) reads unchanged; chips of another size are resized bilinearly
to the model's input size, as the reference code does.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.errors import RasterioIOError

from ..errors import DatasetError
from ..model.sppnet import WINDOW_PX
from .augment import random_dihedral
from .targets import grid_targets

CHIP_SUFFIXES = (".tif", ".tiff")


@dataclass
class Annotation:
    """Objects of one chip in chip pixels: boxes (N, 4) xmin, ymin, xmax, ymax; points (N, 2); names."""

    width: int
    height: int
    boxes: np.ndarray
    points: np.ndarray
    names: list[str]
    context_px: int = 0

    @property
    def sizes(self) -> np.ndarray:
        return np.stack([self.boxes[:, 2] - self.boxes[:, 0], self.boxes[:, 3] - self.boxes[:, 1]], 1) \
            if len(self.boxes) else np.zeros((0, 2), np.float32)


def write_annotation(path: str | Path, filename: str, width: int, height: int, depth: int,
                     boxes: np.ndarray, points: np.ndarray, names: list[str], context_px: int = 0) -> None:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = Path(path).parent.name
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    for tag, val in (("width", width), ("height", height), ("depth", depth)):
        ET.SubElement(size, tag).text = str(int(val))
    ET.SubElement(root, "segmented").text = "0"
    ET.SubElement(root, "context").text = str(int(context_px))
    for box, pt, name in zip(boxes, points, names):
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = "0"
        bb = ET.SubElement(obj, "bndbox")
        for tag, val in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ET.SubElement(bb, tag).text = f"{float(val):.1f}"
        p = ET.SubElement(obj, "point")
        ET.SubElement(p, "x").text = f"{float(pt[0]):.2f}"
        ET.SubElement(p, "y").text = f"{float(pt[1]):.2f}"
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=False)


def read_annotation(path: str | Path) -> Annotation:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        raise DatasetError(f"unreadable VOC annotation {path}: {e}") from None

    def num(el, tag, default=None):
        node = el.find(tag)
        if node is None or node.text is None:
            if default is None:
                raise DatasetError(f"VOC annotation {path} lacks <{tag}>")
            return default
        return float(node.text)

    size = root.find("size")
    width = int(num(size, "width", 0)) if size is not None else 0
    height = int(num(size, "height", 0)) if size is not None else 0
    context = int(num(root, "context", 0))
    boxes, points, names = [], [], []
    for obj in root.findall("object"):
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"VOC object without <bndbox> in {path}")
        box = [num(bb, t) for t in ("xmin", "ymin", "xmax", "ymax")]
        pt = obj.find("point")
        if pt is not None:
            points.append([num(pt, "x"), num(pt, "y")])
        else:
            points.append([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
        boxes.append(box)
        names.append((obj.findtext("name") or "culvert").strip())
    return Annotation(width, height, np.array(boxes, np.float32).reshape(-1, 4),
                      np.array(points, np.float32).reshape(-1, 2), names, context)


def chip_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"chip folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in CHIP_SUFFIXES)
    if not files:
        raise DatasetError(f"no chip GeoTIFFs (*.tif) in {folder}")
    return files


def read_chip(path: Path, input_px: int, bands: int) -> tuple[np.ndarray, Annotation]:
    """A chip resized to ``input_px`` (bilinear, as the reference code) with its annotation rescaled."""
    try:
        with rasterio.open(path) as src:
            if src.count < bands:
                raise DatasetError(f"chip {path.name} has {src.count} bands, the model needs {bands}")
            img = src.read(list(range(1, bands + 1)))
    except RasterioIOError as e:
        raise DatasetError(f"unreadable chip {path}: {str(e).splitlines()[0][:200]}") from None
    xml = path.with_suffix(".xml")
    ann = read_annotation(xml) if xml.exists() else Annotation(
        img.shape[2], img.shape[1], np.zeros((0, 4), np.float32), np.zeros((0, 2), np.float32), [])
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    h, w = img.shape[1:]
    if (h, w) != (input_px, input_px):
        t = torch.from_numpy(img.astype(np.float32))[None]
        img = torch.nn.functional.interpolate(t, size=(input_px, input_px), mode="bilinear",
                                              align_corners=False)[0].round().clamp(0, 255).byte().numpy()
        sx, sy = input_px / w, input_px / h
        ann.boxes = ann.boxes * np.array([sx, sy, sx, sy], np.float32)
        ann.points = ann.points * np.array([sx, sy], np.float32)
    return img, ann


class VocChipDataset(torch.utils.data.Dataset):
    """Chips of a VOC folder as (image uint8 (C, S, S), target (1, 1, 5)) for a model of input size S."""

    def __init__(self, folder: str | Path, input_px: int = WINDOW_PX, bands: int = 4,
                 files: list[Path] | None = None, augment: bool = False, seed: int = 0):
        self.folder = Path(folder)
        self.files = list(files) if files is not None else chip_files(folder)
        self.input_px = input_px
        self.bands = bands
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        img, ann = read_chip(self.files[i], self.input_px, self.bands)
        pts, sizes = ann.points, ann.sizes
        if self.augment:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            img, pts, sizes = random_dihedral(img, pts, sizes, rng)
        centre = self.input_px / 2.0
        target = grid_targets(pts, sizes, centre, 8.0, 1, 1)
        return torch.from_numpy(img), torch.from_numpy(target)


def detect_bands(folder: str | Path) -> int:
    """Band count of the first chip (3 or 4 band folders are both accepted)."""
    first = chip_files(folder)[0]
    try:
        with rasterio.open(first) as src:
            return src.count
    except RasterioIOError as e:
        raise DatasetError(f"unreadable chip {first}: {str(e).splitlines()[0][:200]}") from None
