"""The model's box coding: how the four regression outputs of a window encode a crossing's place and size.

``dx = offset_x / 50``, ``dy = offset_y / 50`` (the crossing's offset from the window centre in pixels, x right,
y down), ``lw = log(width / 16)``, ``lh = log(height / 16)`` (the structure's size in pixels). Training targets
encode with it (:mod:`geodrain.datasets.targets`), detection decodes with it (:mod:`geodrain.merge`).
"""

from __future__ import annotations

import numpy as np

OFFSET_SCALE = 50.0
SIZE_SCALE = 16.0
CODING = (f"dx, dy: offset of the crossing from the window centre / {OFFSET_SCALE:g} px (x right, y down); "
          f"log_w, log_h: log(structure size px / {SIZE_SCALE:g})")


def encode_boxes(offsets: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(N, 2) offsets and (N, 2) sizes in px -> (N, 4) regression targets."""
    sizes = np.maximum(np.asarray(sizes, np.float32), 1.0)
    return np.concatenate([np.asarray(offsets, np.float32) / OFFSET_SCALE,
                           np.log(sizes / SIZE_SCALE)], 1).astype(np.float32)


def decode_boxes(reg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) regression outputs -> (offsets px (N, 2), sizes px (N, 2))."""
    reg = np.asarray(reg, np.float32)
    offsets = reg[:, :2] * OFFSET_SCALE
    sizes = SIZE_SCALE * np.exp(np.clip(reg[:, 2:4], -4.0, 4.0))
    return offsets, sizes
