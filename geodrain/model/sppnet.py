"""SPP-Net for drainage-crossing chips, computable chip by chip or densely over a whole block.

A *window* is the paper's 100 x 100 px chip. The conv trunk (three conv/ReLU/max-pool stages) has a feature
stride of 8, so a window covers 12 x 12 feature cells. The model may be given ``context_px`` pixels of
surrounding image on every side (a multiple of 8); it then pools only the window's own 12 x 12 cells. With
``context_px >= 16`` those cells never see the zero padding of the chip border, so the result is the same
whether the trunk runs on one chip with context (:meth:`SPPNet.forward`) or once on a large block from
which every window's cells are pooled (:meth:`SPPNet.forward_dense`, :func:`pool_windows`). Training on crops
with context therefore trains exactly the computation that dense detection runs.

The model takes raw digital numbers (float, 0..255 for 8-bit NAIP) and normalizes them itself, so ONNX
exports and every engine share one definition of the input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .arch import Arch

FEATURE_STRIDE = 8
WINDOW_PX = 100
GSD_M = 1.0  # metres per model pixel: inputs are resampled to it
WINDOW_CELLS = WINDOW_PX // FEATURE_STRIDE  # 12: 100 -> 50 -> 25 -> 12
OUTPUTS = 5  # crossing logit, box dx, dy, log w, log h


def adaptive_bins(n_in: int, n_out: int) -> list[tuple[int, int]]:
    """Start/stop of each bin of ``adaptive_max_pool`` from ``n_in`` to ``n_out`` (PyTorch's rule)."""
    return [((i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)) for i in range(n_out)]


def pool_windows(feat: torch.Tensor, levels: tuple[int, ...], first: int, step: int,
                 rows: int, cols: int, cells: int = WINDOW_CELLS) -> torch.Tensor:
    """SPP vectors of a regular grid of windows read off a shared feature map.

    ``feat`` is (B, C, H, W); window (i, j) covers cells ``[first + i*step, +cells)`` in both axes. The result
    is (B * rows * cols, C * sum(k^2)), ordered like ``torch.cat([adaptive_max_pool2d(f, k).flatten(1)])``
    on each window's ``cells x cells`` crop, so it feeds the same FC head. Each bin is a max over a
    rectangle; a stride-1 max pool of the bin's size, sliced with the window step, gives that bin for every
    window at once.
    """
    b, c = feat.shape[:2]
    r_last = first + step * (rows - 1)
    c_last = first + step * (cols - 1)
    pooled: dict[tuple[int, int], torch.Tensor] = {}
    row_max: dict[int, torch.Tensor] = {}
    out = []
    for k in levels:
        bins = adaptive_bins(cells, k)
        parts = []
        for a0, a1 in bins:
            for b0, b1 in bins:
                size = (a1 - a0, b1 - b0)
                if size not in pooled:
                    if size[0] not in row_max:
                        row_max[size[0]] = F.max_pool2d(feat, (size[0], 1), stride=1)
                    pooled[size] = F.max_pool2d(row_max[size[0]], (1, size[1]), stride=1)
                p = pooled[size]
                parts.append(p[:, :, first + a0:r_last + a0 + 1:step, first + b0:c_last + b0 + 1:step])
        # (k*k, B, C, rows, cols) -> (B, rows, cols, C, k*k)
        level = torch.stack(parts, 0).permute(1, 3, 4, 2, 0)
        out.append(level.reshape(b * rows * cols, c * k * k))
    return torch.cat(out, 1)


def make_trunk(arch: Arch) -> nn.Sequential:
    c1, c2, c3 = arch.channels
    return nn.Sequential(
        nn.Conv2d(arch.bands, c1, arch.k1, padding=arch.k1 // 2), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
        nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
    )


class SPPPool(nn.Module):
    """The SPP layer: adaptive max pools at each level, flattened and concatenated (three branches)."""

    def __init__(self, levels: tuple[int, ...]):
        super().__init__()
        self.levels = tuple(levels)
        self.branches = nn.ModuleList(nn.AdaptiveMaxPool2d(k) for k in self.levels)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return exportable_spp(f, self.levels)
        return torch.cat([p(f).flatten(1) for p in self.branches], 1)


def exportable_spp(f: torch.Tensor, levels: tuple[int, ...]) -> torch.Tensor:
    """The SPP layer as explicit bin maxima: ONNX has no adaptive pooling with uneven bins (12 -> 5)."""
    h, w = f.shape[-2], f.shape[-1]
    out = []
    for k in levels:
        rows, cols = adaptive_bins(int(h), k), adaptive_bins(int(w), k)
        bins = [f[:, :, a0:a1, b0:b1].amax(dim=(2, 3)) for a0, a1 in rows for b0, b1 in cols]
        out.append(torch.stack(bins, 2).flatten(1))
    return torch.cat(out, 1)


class Head(nn.Module):
    """FC layer of width F, then a crossing-score head and a box head."""

    def __init__(self, in_features: int, fc: int):
        super().__init__()
        self.fc = nn.Linear(in_features, fc)
        self.score = nn.Linear(fc, 1)
        self.box = nn.Linear(fc, 4)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.fc(v))
        return torch.cat([self.score(h), self.box(h)], 1)


class SPPNet(nn.Module):
    """One architecture of the family. Input (N, bands, S, S) raw DN with S = 100 + 2 * context_px."""

    def __init__(self, arch: Arch, context_px: int = 0):
        super().__init__()
        if context_px % FEATURE_STRIDE:
            raise ValueError(f"context_px must be a multiple of {FEATURE_STRIDE}, got {context_px}")
        self.arch = arch
        self.context_px = int(context_px)
        self.register_buffer("mean", torch.full((arch.bands,), 127.5))
        self.register_buffer("std", torch.full((arch.bands,), 64.0))
        self.trunk = make_trunk(arch)
        self.spp = SPPPool(arch.levels)
        self.head = Head(arch.spp_features, arch.fc)
        self._init_weights()

    @property
    def input_px(self) -> int:
        return WINDOW_PX + 2 * self.context_px

    @property
    def context_cells(self) -> int:
        return self.context_px // FEATURE_STRIDE

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=math.sqrt(2.0 / m.in_features))
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.score.weight, std=0.01)
        nn.init.constant_(self.head.score.bias, -2.0)
        nn.init.normal_(self.head.box.weight, std=0.01)

    def set_normalization(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype))
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype).clamp_min(1e-3))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.view(1, -1, 1, 1).to(x.dtype)) / self.std.view(1, -1, 1, 1).to(x.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, bands, S, S) chips with context -> (N, 5): logit, dx, dy, log w, log h."""
        f = self.features(x)
        c = self.context_cells
        f = f[:, :, c:c + WINDOW_CELLS, c:c + WINDOW_CELLS]
        return self.head(self.spp(f))

    def window_grid(self, height: int, width: int, step_px: int) -> tuple[int, int]:
        """How many windows (rows, cols) at ``step_px`` fit in an input of this size, context included."""
        if step_px % FEATURE_STRIDE:
            raise ValueError(f"dense stride must be a multiple of {FEATURE_STRIDE} px, got {step_px}")
        rows = (height - self.input_px) // step_px + 1
        cols = (width - self.input_px) // step_px + 1
        return max(rows, 0), max(cols, 0)

    def forward_dense(self, x: torch.Tensor, step_px: int) -> torch.Tensor:
        """Every window at ``step_px`` of (B, bands, H, W) -> (B, rows, cols, 5).

        Window (i, j) starts at pixel ``(i * step_px + context_px, j * step_px + context_px)`` of ``x``; the
        trunk runs once over ``x``.
        """
        rows, cols = self.window_grid(x.shape[-2], x.shape[-1], step_px)
        f = self.features(x)
        v = pool_windows(f, self.arch.levels, self.context_cells, step_px // FEATURE_STRIDE, rows, cols)
        return self.head(v).view(x.shape[0], rows, cols, OUTPUTS)

    def head_dense(self, f: torch.Tensor, step_px: int, rows: int, cols: int) -> torch.Tensor:
        """Pool and classify a window grid from an already computed feature map."""
        v = pool_windows(f, self.arch.levels, self.context_cells, step_px // FEATURE_STRIDE, rows, cols)
        return self.head(v).view(f.shape[0], rows, cols, OUTPUTS)


def build_model(arch: Arch, context_px: int = 0) -> SPPNet:
    return SPPNet(arch, context_px=context_px)
