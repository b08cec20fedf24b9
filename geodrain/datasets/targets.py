"""Training targets of a window grid: which windows hold a crossing near their centre, and its box.

A window (the paper's 100 x 100 px chip) is *positive* when a crossing lies within ``pos_px`` (per axis)
of its centre, *negative* when every crossing is farther than ``neg_px`` (per axis), and ignored in
between. Detection slides windows at a stride of at most ``2 * pos_px``, so every crossing has a window
that must fire; the box head regresses the crossing's offset from the window centre and the structure's
size, so overlapping positive windows agree on one point.

Box coding (shared with decoding at detection time): ``dx = offset_x / 50``, ``dy = offset_y / 50`` (pixels,
x right, y down), ``lw = log(width / 16)``, ``lh = log(height / 16)``.
"""

from __future__ import annotations

import numpy as np

OFFSET_SCALE = 50.0
SIZE_SCALE = 16.0
POS_PX = 16.0
NEG_PX = 32.0
IGNORE = -1.0


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


def grid_targets(points: np.ndarray, sizes: np.ndarray, first_centre: float, step: float, rows: int,
                 cols: int, pos_px: float = POS_PX, neg_px: float = NEG_PX) -> np.ndarray:
    """Targets (rows, cols, 5) = [label, dx, dy, lw, lh] for windows centred at ``first_centre + i*step``.

    ``points`` (K, 2) are crossing positions (x = column, y = row) in the same pixel frame, ``sizes``
    (K, 2) their structure sizes in px. Label 1 positive, 0 negative, -1 ignored.
    """
    out = np.zeros((rows, cols, 5), np.float32)
    if len(points) == 0 or rows == 0 or cols == 0:
        return out
    pts = np.asarray(points, np.float32)
    cx = first_centre + step * np.arange(cols, dtype=np.float32)
    cy = first_centre + step * np.arange(rows, dtype=np.float32)
    dx = pts[None, None, :, 0] - cx[None, :, None]          # (1, cols, K)
    dy = pts[None, None, :, 1] - cy[:, None, None]          # (rows, 1, K)
    dx, dy = np.broadcast_arrays(dx, dy)                    # (rows, cols, K)
    cheb = np.maximum(np.abs(dx), np.abs(dy))
    nearest = cheb.argmin(-1)
    near = np.take_along_axis(cheb, nearest[..., None], -1)[..., 0]
    label = np.where(near <= pos_px, 1.0, np.where(near > neg_px, 0.0, IGNORE))
    off = np.stack([np.take_along_axis(dx, nearest[..., None], -1)[..., 0],
                    np.take_along_axis(dy, nearest[..., None], -1)[..., 0]], -1)
    sz = np.asarray(sizes, np.float32)[nearest]
    out[..., 0] = label
    out[..., 1:] = encode_boxes(off.reshape(-1, 2), sz.reshape(-1, 2)).reshape(rows, cols, 4)
    return out
