"""Train an SPP-Net of the family and save it as a model bundle.

Defaults are the paper's (SGD, lr 0.005, momentum 0.9, weight decay 0.0005, batch 20, 80/20 split), with
flips and 90-degree rotations. Every batch runs the dense path of the model (one trunk pass per crop, every
window at the 8 px feature stride pooled from it), which for a chip is the ordinary chip forward. The loss is
a class-balanced binary cross-entropy on the crossing score plus a smooth-L1 box loss on positive windows.
After each epoch the model is evaluated on the validation chips; the best epoch by chip AP is kept.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .. import __version__
from ..model.arch import Arch
from ..errors import DatasetError
from ..model.bundle import Bundle, load_bundle, save_bundle
from ..output import check_output_folder
from ..model.sppnet import FEATURE_STRIDE, SPPNet
from ..infer.runtime import resolve_device
from .data import TrainingData, load_training_data
from .metrics import best_f1_threshold, chip_metrics


@dataclass
class TrainConfig:
    arch: Arch = field(default_factory=Arch)
    context_px: int = 16
    epochs: int = 10
    batch_size: int = 20
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 0.0005
    val_fraction: float = 0.2
    samples_per_epoch: int = 2000
    crop_windows: int = 9
    box_weight: float = 1.0
    box_band: str = "positive"       # windows whose box is trained: positive, or near (positive + ignored band)
    workers: int = 0
    device: str = "auto"
    seed: int = 0
    init: str | None = None          # a bundle to start from (fine-tuning); its architecture is used
    balance_by: str | None = None    # truth attribute whose values positive crops draw equally (scene data)
    keep: str = "best"               # best: the epoch of highest validation AP; last: the final epoch
    max_seconds: float | None = None  # stop after the epoch that would overrun this budget
    train_only: str | None = None    # "box": only the box layer learns; every other weight (and so every
    #                                  score) stays as ``init``'s, the model kept in eval mode

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = self.arch.key
        # absent unless used: older manifests and search signatures match
        for k, default in (("balance_by", None), ("keep", "best"), ("max_seconds", None), ("box_band", "positive"),
                           ("train_only", None)):
            if d[k] == default:
                del d[k]
        return d


@dataclass
class TrainResult:
    model: SPPNet
    history: list[dict]
    val: dict
    test: dict | None
    threshold: float
    seconds: float
    bundle: Bundle | None = None


def window_loss(out: torch.Tensor, target: torch.Tensor, box_weight: float = 1.0,
                box_band: str = "positive") -> torch.Tensor:
    """Balanced BCE over positive and negative windows (-1, the band between them, is ignored) + smooth-L1 on
    the boxes of positive windows, or with ``box_band="near"`` of positive and ignored ones.

    Detection slides windows 24 px apart, so most crossings are also seen by windows 16-32 px from their centre
    (the ignored band). Their scores are untrained and often high; with boxes trained only on positive windows
    (offsets up to 16 px per axis) they place the crossing short of where it is, and the merged point drifts.
    """
    label = target[..., 0]
    pos, neg = label > 0.5, (label >= 0) & (label < 0.5)
    boxed = pos if box_band == "positive" else label != 0
    bce = F.binary_cross_entropy_with_logits(out[..., 0].float(), pos.float(), reduction="none")
    loss = out.new_zeros((), dtype=torch.float32)
    if pos.any():
        loss = loss + bce[pos].mean()
    if boxed.any():
        loss = loss + box_weight * F.smooth_l1_loss(out[..., 1:][boxed].float(), target[..., 1:][boxed],
                                                    beta=0.1)
    if neg.any():
        loss = loss + bce[neg].mean()
    return loss


def band_statistics(dataset, n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of raw DN over up to ``n`` samples of a dataset."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(dataset), size=min(n, len(dataset)), replace=False)
    pix = np.concatenate([dataset[int(i)][0].numpy().reshape(dataset[int(i)][0].shape[0], -1) for i in idx], 1)
    return pix.mean(1), pix.std(1)


def predict_chips(model: SPPNet, dataset, device: torch.device, batch_size: int = 64
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits (N,), box regression (N, 4), targets (N, 5)) over a dataset of single-window chips."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False)
    logits, regs, tgts = [], [], []
    model.eval()
    with torch.inference_mode():
        for x, t in loader:
            y = model(x.to(device).float()).float().cpu()
            logits.append(y[:, 0].numpy())
            regs.append(y[:, 1:].numpy())
            tgts.append(t.view(-1, 5).numpy())
    return np.concatenate(logits), np.concatenate(regs), np.concatenate(tgts)


def evaluate_model(model: SPPNet, dataset, device: torch.device, threshold: float = 0.5) -> dict:
    logits, regs, tgts = predict_chips(model, dataset, device)
    return chip_metrics(logits, regs, tgts, threshold)


def _lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train_model(data: TrainingData, config: TrainConfig, *, progress: bool = True,
                log: Callable[[str], None] | None = None) -> TrainResult:
    """Train on prepared data; returns the best-by-validation-AP (or the last) model and its metrics.

    With ``config.max_seconds`` training stops early, after the last epoch that is expected to end within the
    budget (the learning-rate schedule is then cut short); the history says how many epochs ran.
    """
    if config.keep not in ("best", "last"):
        raise ValueError(f"keep must be 'best' or 'last', not {config.keep!r}")
    if config.train_only not in (None, "box"):
        raise ValueError(f"train_only must be None or 'box', not {config.train_only!r}")
    if config.train_only is not None and config.init is None:
        raise ValueError("training only the box layer needs a bundle to start from (init)")
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    if config.init is not None:
        model = load_bundle(config.init).model
        if model.arch.bands != data.bands or model.context_px != config.context_px:
            raise DatasetError(f"{config.init} has {model.arch.bands} bands and {model.context_px} px of "
                               f"context; the data has {data.bands} bands and the training context is "
                               f"{config.context_px} px")
    else:
        arch = Arch(config.arch.k1, config.arch.spp, config.arch.fc, config.arch.width, data.bands)
        model = SPPNet(arch, context_px=config.context_px)
        mean, std = band_statistics(data.train, seed=config.seed)
        model.set_normalization(mean, std)
    model.to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    params = trainable(model, config.train_only)
    opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    loader = torch.utils.data.DataLoader(data.train, batch_size=config.batch_size, shuffle=True,
                                         num_workers=config.workers, drop_last=len(data.train) > config.batch_size,
                                         pin_memory=cuda, persistent_workers=config.workers > 0,
                                         generator=torch.Generator().manual_seed(config.seed))
    steps_per_epoch = max(1, len(loader))
    total = steps_per_epoch * config.epochs
    warmup = min(200, total // 10)
    history: list[dict] = []
    best_state, best_ap = None, -1.0
    t0 = time.perf_counter()
    step = 0
    for epoch in range(config.epochs):
        data.set_epoch(epoch)
        model.train(config.train_only is None)     # frozen features keep their normalization statistics
        losses = []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress,
                   leave=False)
        for x, t in bar:
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, config.lr, warmup)
            x = x.to(device, non_blocking=True).float()
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            t = t.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                out = model.forward_dense(x, FEATURE_STRIDE)
            loss = window_loss(out.float(), t, config.box_weight, config.box_band)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if len(losses) % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-10:]):.4f}")
        val = evaluate_model(model, data.val, device)
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"),
               "val_ap": val["ap"], "val_box_ap50": val["box_ap50"], "val_accuracy": val["accuracy"],
               "seconds": round(time.perf_counter() - t0, 1)}
        history.append(rec)
        if log:
            log(f"epoch {epoch + 1}/{config.epochs}: loss {rec['loss']:.4f}  val AP {val['ap']:.4f}  "
                f"box AP50 {val['box_ap50']:.4f}  acc {val['accuracy']:.4f}")
        ap = val["ap"] if not math.isnan(val["ap"]) else 0.0
        if ap > best_ap and config.keep == "best":
            best_ap = ap
            best_state = copy.deepcopy(model.state_dict())
        elapsed = time.perf_counter() - t0
        if config.max_seconds is not None and epoch + 1 < config.epochs \
                and elapsed * (epoch + 2) / (epoch + 1) > config.max_seconds:
            if log:
                log(f"stopping after epoch {epoch + 1}: the next would end past the time budget of "
                    f"{config.max_seconds:g} s")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model = model.to(memory_format=torch.contiguous_format)
    logits, regs, tgts = predict_chips(model, data.val, device)
    keep = tgts[:, 0] >= 0
    threshold, _ = best_f1_threshold(1 / (1 + np.exp(-logits[keep])), tgts[keep, 0] > 0.5)
    val = chip_metrics(logits, regs, tgts, threshold)
    test = evaluate_model(model, data.test, device, threshold) if data.test is not None else None
    model = model.cpu().eval()
    return TrainResult(model, history, val, test, threshold, time.perf_counter() - t0)


def trainable(model: SPPNet, only: str | None) -> list[torch.nn.Parameter]:
    """The parameters training updates: all, or with ``only="box"`` the box layer's (the rest frozen)."""
    if only is None:
        return list(model.parameters())
    keep = set(map(id, model.head.box.parameters()))
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if p.requires_grad]


def train(data_paths: list[str | Path], config: TrainConfig, out: str | Path | None = None, *,
          test_paths: list[str | Path] | None = None, name: str | None = None, overwrite: bool = False,
          progress: bool = True, log: Callable[[str], None] | None = None) -> TrainResult:
    """Load data, train, and (with ``out``) save a bundle whose manifest records provenance and metrics."""
    if out is not None:  # fail before hours of training, not after
        check_output_folder(out, overwrite)
    data = load_training_data(data_paths, config.context_px, val_fraction=config.val_fraction,
                              test=test_paths, samples_per_epoch=config.samples_per_epoch,
                              crop_windows=config.crop_windows, seed=config.seed, balance_by=config.balance_by)
    result = train_model(data, config, progress=progress, log=log)
    if out is not None:
        metrics = {"val": result.val, "history": result.history}
        if result.test is not None:
            metrics["test"] = result.test
        training = {"config": config.to_dict(), "data": data.provenance, "seconds": round(result.seconds, 1),
                    "device": str(resolve_device(config.device)), "geodrain_version": __version__,
                    "date": time.strftime("%Y-%m-%d")}
        result.bundle = save_bundle(result.model, out, name=name, overwrite=overwrite, training=training,
                                    metrics=metrics, threshold=round(result.threshold, 4))
    return result
