"""a(n): train one candidate architecture on the search's data (loaded once) and score it by validation AP."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..model.arch import Arch
from ..training.data import TrainingData
from ..training.trainer import TrainConfig, TrainResult, train_model
from .study import TrainingRecord

METRIC_KEYS = ("ap", "box_ap50", "accuracy", "f1", "precision", "recall")


def training_signature(template: TrainConfig, data: TrainingData) -> dict[str, Any]:
    """What makes two trainings of the same architecture interchangeable (not the device or loader workers)."""
    cfg = template.to_dict()
    for k in ("arch", "device", "workers"):
        cfg.pop(k, None)
    prov = {k: v for k, v in data.provenance.items() if k not in ("sources", "test_sources")}
    sources = [str(Path(s).resolve()) for s in data.provenance.get("sources", [])]
    return {"config": cfg, "data": prov, "sources": sources}


def candidate_config(template: TrainConfig, arch: Arch, data: TrainingData) -> TrainConfig:
    return replace(template, arch=Arch(arch.k1, arch.spp, arch.fc, arch.width, data.bands))


def _summary(metrics: dict | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    return {k: float(metrics[k]) for k in METRIC_KEYS if k in metrics}


def train_candidate(data: TrainingData, template: TrainConfig, arch: Arch) -> tuple[TrainingRecord, TrainResult]:
    """Train ``arch`` with the template's hyper-parameters; the record and the full result (with the model)."""
    result = train_model(data, candidate_config(template, arch, data), progress=False)
    ap = float(result.val.get("ap", math.nan))
    epochs = [{"epoch": h["epoch"], "loss": h["loss"], "val_ap": h["val_ap"]} for h in result.history]
    rec = TrainingRecord(arch.key, ap, float(result.threshold), float(result.seconds), _summary(result.val) or {},
                         _summary(result.test), epochs)
    return rec, result
