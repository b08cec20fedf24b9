"""Training of the SPP-Net family: data, metrics and the trainer."""

from .metrics import average_precision, box_ap, chip_metrics
from .trainer import TrainConfig, TrainResult, train, train_model

__all__ = ["TrainConfig", "TrainResult", "train", "train_model", "average_precision", "box_ap", "chip_metrics"]
