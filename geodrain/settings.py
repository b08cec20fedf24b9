"""Detection settings: what a user may set (:class:`DetectOptions`) and what a run uses (:class:`DetectSettings`).

``None`` in :class:`DetectOptions` means "the default": the window stride, threshold and merge radius the
bundle was calibrated with; the engine, run configuration, block size and reading threads suited to the
bundle on the device. :meth:`DetectOptions.resolve` fills them in once, before any pixel is read, so every
stage receives concrete, checked values.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .blocks import default_read_threads
from .errors import RasterError
from .infer.config import choose_engine, default_block_px, run_config
from .infer.runtime import RunConfig
from .model.bundle import Bundle
from .read import NAIP_BANDS
from .window import MIN_VALID


@dataclass
class DetectOptions:
    """Everything ``geodrain detect`` can set; ``None`` means: the bundle's (or the device's) default."""

    stride: int | None = None
    threshold: float | None = None
    merge_radius_m: float | None = None
    min_valid: float = MIN_VALID
    bands: tuple[int, ...] = NAIP_BANDS
    engine: str = "auto"              # auto | dense | chip
    backend: str = "torch"            # torch | onnx
    device: str = "auto"
    batch_size: int | None = None
    precision: str | None = None      # fp32 | fp16 | bf16
    cuda_graph: bool | None = None
    block_px: int | None = None
    read_threads: int | None = None
    aoi: str | Path | None = None
    scale: float | str = "auto"
    overwrite: bool = False

    def resolved(self, bundle: Bundle) -> "DetectOptions":
        """A copy with the stride, threshold and merge radius the bundle was calibrated with filled in."""
        return replace(self, stride=bundle.stride_px if self.stride is None else self.stride,
                       threshold=bundle.threshold if self.threshold is None else self.threshold,
                       merge_radius_m=bundle.merge_radius_m if self.merge_radius_m is None else self.merge_radius_m)

    def resolve(self, bundle: Bundle, device: torch.device) -> "DetectSettings":
        """Every setting of a run of ``bundle`` on ``device``; a band count the model cannot take is refused."""
        o = self.resolved(bundle)
        if len(o.bands) != bundle.arch.bands:
            raise RasterError(f"{len(o.bands)} band(s) selected ({', '.join(map(str, o.bands))}) but the model "
                              f"expects {bundle.arch.bands} ({', '.join(bundle.bands)})")
        engine = choose_engine(o.engine, o.backend, o.stride, bundle)
        config = run_config(bundle, device, backend=o.backend, batch_size=o.batch_size, precision=o.precision,
                            cuda_graph=o.cuda_graph)
        return DetectSettings(
            stride=int(o.stride), threshold=float(o.threshold), merge_radius_m=float(o.merge_radius_m),
            min_valid=float(o.min_valid), bands=tuple(o.bands), engine=engine, run=config,
            block_px=o.block_px or default_block_px(device, engine),
            read_threads=o.read_threads or default_read_threads(device, engine),
            aoi=o.aoi, scale=o.scale, overwrite=o.overwrite)


@dataclass(frozen=True)
class DetectSettings:
    """The settings a detection run uses: :class:`DetectOptions` with every default filled in."""

    stride: int
    threshold: float
    merge_radius_m: float
    min_valid: float
    bands: tuple[int, ...]
    engine: str                       # dense | chip
    run: RunConfig
    block_px: int
    read_threads: int
    aoi: str | Path | None
    scale: float | str
    overwrite: bool

    def record(self) -> dict:
        """How the model ran, as recorded in the output's metadata."""
        return {"engine": self.engine, "run": self.run.to_dict(), "block_px": self.block_px,
                "read_threads": self.read_threads}
