"""SPP-Net for drainage-crossing chips, computable chip by chip or densely over a whole block.

A *window* is the paper's 100 x 100 px chip. The conv trunk (three conv/ReLU/max-pool stages) has a feature
stride of 8, so a window covers 12 x 12 feature cells. The model may be given ``context_px`` pixels of
surrounding image on every side (a multiple of 8); it then pools only the window's own 12 x 12 cells. With
``context_px >= 16`` those cells never see the zero padding of the chip border, so the result is the same
whether the trunk runs on one chip with context (:meth:`SPPNet.forward`) or once on a large block from
which every window's cells are pooled (:meth:`SPPNet.forward_dense`). Training on crops with context
therefore trains exactly the computation that dense detection runs.

Densely, the SPP layer and the FC layer run as convolutions over stride-1 max-pooled feature maps
(:func:`spp_fc_dense`): the FC output of a window is a sum over SPP bins of the bin's weights times the
max-pooled map at the window's offset, so the (windows x SPP features) matrix is never gathered
(:func:`pool_windows` gathers it, for reference). :class:`DenseGraph` is that whole computation as a plain
convolutional graph with constant weights, for ONNX export and int8 quantization.

The model takes raw digital numbers (float, 0..255 for 8-bit NAIP) and normalizes them itself, so ONNX
exports and every engine share one definition of the input.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .arch import FEATURE_STRIDE, GSD_M, WINDOW_CELLS, WINDOW_PX, Arch  # noqa: F401 - re-exported

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


def window_count(cells_in: int, first: int, step: int, cells: int = WINDOW_CELLS) -> int:
    """How many windows at ``step`` cells, starting at cell ``first``, fit in ``cells_in`` feature cells."""
    return max((cells_in - first - cells) // step + 1, 0)


def spp_fc_dense(feat: torch.Tensor, weights: list[torch.Tensor], bias: torch.Tensor, levels: tuple[int, ...],
                 first: int, step: int, cells: int = WINDOW_CELLS) -> torch.Tensor:
    """The FC layer over every window's SPP vector, as convolutions over max-pooled feature maps.

    ``feat`` is (B, C, H, W); windows start at cell ``first`` every ``step`` cells. ``weights`` holds the FC
    weight of each level as a (F, C, k, k) tensor (:func:`level_weights`). Returns the FC layer's
    pre-activation (B, F, n_rows, n_cols) for every window whose ``cells`` x ``cells`` region lies in ``feat``
    (:func:`window_count`). It equals ``pool_windows(...) @ weight.T + bias`` up to float rounding, without
    materializing the (windows x C*sum(k^2)) matrix: SPP bin (a, b) of a window at cell p is the max of a
    bin-sized rectangle at p + offset, i.e. the stride-1 max pool of the map at the bin's size read at
    p + offset, and the FC layer's part for that bin is a 1 x 1 convolution of it. When the ``cells`` split
    evenly into ``k`` bins per axis, a level's k x k bins are one k x k convolution with dilation cells/k over
    the max pool of that size; uneven levels (e.g. 12 cells in 5 bins) take one 1 x 1 convolution per bin.
    Every slice is fixed at both ends relative to the map's size, so the graph exports with dynamic shapes.
    """
    row_max: dict[int, torch.Tensor] = {}
    pooled: dict[tuple[int, int], torch.Tensor] = {}

    def pool(sa: int, sb: int) -> torch.Tensor:
        if (sa, sb) not in pooled:
            if sa not in row_max:
                row_max[sa] = F.max_pool2d(feat, (sa, 1), stride=1) if sa > 1 else feat
            pooled[(sa, sb)] = F.max_pool2d(row_max[sa], (1, sb), stride=1) if sb > 1 else row_max[sa]
        return pooled[(sa, sb)]

    out = None
    for k, wk in zip(levels, weights):
        if cells % k == 0:
            s = cells // k
            y = F.conv2d(pool(s, s)[:, :, first:, first:], wk, stride=step, dilation=s)
        else:
            bins = adaptive_bins(cells, k)
            y = None
            for i, (a0, a1) in enumerate(bins):
                for j, (b0, b1) in enumerate(bins):
                    # the pooled map from the bin's offset to as far before the end as the bin ends before
                    # the window's last cell: every term then has the same number of windows
                    m = pool(a1 - a0, b1 - b0)[:, :, first + a0:(a1 - cells) or None,
                                               first + b0:(b1 - cells) or None]
                    t = F.conv2d(m, wk[:, :, i:i + 1, j:j + 1], stride=step)
                    y = t if y is None else y + t
        out = y if out is None else out + y
    return out + bias.view(1, -1, 1, 1)


def level_weights(fc_weight: torch.Tensor, channels: int, levels: tuple[int, ...]) -> list[torch.Tensor]:
    """The FC weight (F, C * sum(k^2)) split into one (F, C, k, k) tensor per SPP level (views)."""
    out, off = [], 0
    for k in levels:
        out.append(fc_weight[:, off:off + channels * k * k].reshape(fc_weight.shape[0], channels, k, k))
        off += channels * k * k
    return out


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


class DenseHead(nn.Module):
    """The SPP layer and head of an :class:`SPPNet` over every window of a feature map at once.

    ``forward(feat) -> (B, 5, n_rows, n_cols)`` for windows at ``step`` cells from cell ``first``
    (:func:`spp_fc_dense`, then the score and box layers as 1 x 1 convolutions). It shares the model's
    parameters, so it can be exported (ONNX) or quantized as a plain convolutional graph.
    """

    def __init__(self, model: "SPPNet", step: int):
        super().__init__()
        self.levels = tuple(model.arch.levels)
        self.first = model.context_cells
        self.step = int(step)
        self.head = model.head

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        fc = self.head.fc
        weights = level_weights(fc.weight, feat.shape[1], self.levels)
        h = F.relu(spp_fc_dense(feat, weights, fc.bias, self.levels, self.first, self.step))
        w = torch.cat([self.head.score.weight, self.head.box.weight], 0)
        b = torch.cat([self.head.score.bias, self.head.box.bias], 0)
        return F.conv2d(h, w[:, :, None, None], b)


class DenseGraph(nn.Module):
    """The whole dense computation as one plain convolutional graph, for export and quantization.

    ``forward(block) -> (B, 5, n_rows, n_cols)``: raw DN in, every window at ``step`` cells out: the windows of
    :meth:`SPPNet.window_grid` first, then the few whose 12 cells fit in the block but whose context reaches
    past its far edge, which callers crop. A frozen copy of the model's weights with the input normalization folded
    into the first convolution (``(x - mean) / std`` then ``W`` equals ``x`` through ``W / std`` with the bias
    shifted) and the head's FC weight pre-split per SPP level, so an exported graph holds only constants.
    Folding changes what the zero padding at the block's border stands for, which no window sees: a
    window's cells lie at least ``context_px >= 16`` px inside the block, beyond the trunk's reach (7 px).
    """

    def __init__(self, model: "SPPNet", step: int):
        super().__init__()
        import copy

        self.levels = tuple(model.arch.levels)
        self.first = model.context_cells
        self.step = int(step)
        self.trunk = copy.deepcopy(model.trunk).eval()
        conv1 = self.trunk[0]
        with torch.no_grad():
            mean, std = model.mean.view(1, -1, 1, 1), model.std.view(1, -1, 1, 1)
            shift = (conv1.weight * (mean / std)).sum(dim=(1, 2, 3))
            conv1.weight.div_(std)
            conv1.bias.sub_(shift)
            fc = model.head.fc
            c = model.arch.channels[-1]
            for i, w in enumerate(level_weights(fc.weight.detach(), c, self.levels)):
                self.register_buffer(f"level{i}", w.clone().contiguous())
            self.register_buffer("fc_bias", fc.bias.detach().clone())
            self.register_buffer("out_weight", torch.cat([model.head.score.weight, model.head.box.weight], 0)
                                 .detach().clone()[:, :, None, None])
            self.register_buffer("out_bias", torch.cat([model.head.score.bias, model.head.box.bias], 0)
                                 .detach().clone())
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.trunk(x)
        weights = [getattr(self, f"level{i}") for i in range(len(self.levels))]
        h = F.relu(spp_fc_dense(f, weights, self.fc_bias, self.levels, self.first, self.step))
        return F.conv2d(h, self.out_weight, self.out_bias)


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
        return self.head_dense(self.features(x), step_px, rows, cols)

    def head_dense(self, f: torch.Tensor, step_px: int, rows: int, cols: int) -> torch.Tensor:
        """Pool and classify a window grid from an already computed feature map -> (B, rows, cols, 5)."""
        step = step_px // FEATURE_STRIDE
        # only the cells the windows cover: then the head computes exactly rows x cols windows
        end_r = self.context_cells + step * (max(rows, 1) - 1) + WINDOW_CELLS
        end_c = self.context_cells + step * (max(cols, 1) - 1) + WINDOW_CELLS
        out = DenseHead(self, step)(f[:, :, :end_r, :end_c])
        return out.permute(0, 2, 3, 1)[:, :rows, :cols]

    def head_dense_gather(self, f: torch.Tensor, step_px: int, rows: int, cols: int) -> torch.Tensor:
        """:meth:`head_dense` by gathering each window's SPP vector (:func:`pool_windows`) and one matrix
        product: the reference the convolutional form is checked against."""
        v = pool_windows(f, self.arch.levels, self.context_cells, step_px // FEATURE_STRIDE, rows, cols)
        return self.head(v).view(f.shape[0], rows, cols, OUTPUTS)


def build_model(arch: Arch, context_px: int = 0) -> SPPNet:
    return SPPNet(arch, context_px=context_px)
