"""Training targets of a window grid: which windows hold a crossing near their centre, and its box.

A window (the paper's 100 x 100 px chip) is *positive* when a crossing lies within ``pos_px`` (per axis)
of its centre, *negative* when every crossing is farther than ``neg_px`` (per axis), and ignored in
between. Detection slides windows at a stride of at most ``2 * pos_px``, so every crossing has a window
that must fire; the box head regresses the crossing's offset from the window centre and the structure's
size, so overlapping positive windows agree on one point.

The box coding is the model's (:mod:`geodrain.model.boxes`).
"""

from __future__ import annotations

import numpy as np

from ..model.boxes import encode_boxes

POS_PX = 16.0
NEG_PX = 32.0
IGNORE = -1.0


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
