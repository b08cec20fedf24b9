"""Detection settings: what a user may set (:class:`DetectOptions`) and what a run uses (:class:`DetectSettings`).

``None`` in :class:`DetectOptions` means "the default": the window stride, threshold and merge radius the
bundle was calibrated with (with its calibrated scoring, the threshold is a crossing probability); the
engine, run configuration, block size and reading threads suited to the bundle on the device. :meth:`DetectOptions.resolve` fills them in once, before any pixel is read, so every
stage receives concrete, checked values.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .blocks import default_read_threads
from .errors import BundleError, RasterError
from .infer.config import choose_engine, default_block_px, run_config
from .infer.runtime import RunConfig
from .model.bundle import Bundle
from .read import NAIP_BANDS
from .scoring import Scoring
from .window import MIN_VALID


def warn(message: str) -> None:
    print(f"geodrain: warning: {message}", file=sys.stderr)


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
    dem: tuple[str | Path, ...] | None = None   # DEM file(s): any CRS and resolution
    dem_z_factor: float | None = None           # metres per DEM elevation unit (None: from the DEM's CRS)
    window_scores: bool = False   # ignore the bundle's calibrated scoring: the threshold is a window probability
                                  # and every window >= it is a candidate (calibrate, mine, experiments)

    def resolved(self, bundle: Bundle) -> "DetectOptions":
        """A copy with the stride, threshold and merge radius the bundle was calibrated with filled in: at a
        stride with calibrated scoring, the threshold is a crossing probability (default: the scoring's
        ``report_at``) and the merge radius the scoring's; otherwise a window probability."""
        stride = bundle.stride_px if self.stride is None else self.stride
        scoring = None if self.window_scores else bundle.scoring_for(stride)
        threshold = (scoring.report_at if scoring else bundle.threshold) if self.threshold is None else self.threshold
        radius = (scoring.merge_radius_m if scoring else bundle.merge_radius_m) if self.merge_radius_m is None \
            else self.merge_radius_m
        return replace(self, stride=stride, threshold=threshold, merge_radius_m=radius)

    def resolve(self, bundle: Bundle, device: torch.device) -> "DetectSettings":
        """Every setting of a run of ``bundle`` on ``device``; a band count the model cannot take is refused."""
        o = self.resolved(bundle)
        if len(o.bands) != bundle.arch.bands:
            raise RasterError(f"{len(o.bands)} band(s) selected ({', '.join(map(str, o.bands))}) but the model "
                              f"expects {bundle.arch.bands} ({', '.join(bundle.bands)})")
        scoring = None if o.window_scores else bundle.scoring_for(int(o.stride))
        dem = tuple(str(p) for p in o.dem) if o.dem else None
        if bundle.needs_dem and dem is None and not o.window_scores:
            raise BundleError(f"model bundle {bundle.name} is DEM-aware: it needs a DEM (elevation raster, any "
                              "CRS and resolution) beside the imagery, and cannot score crossings without one")
        if bundle.needs_dem and not o.window_scores and (scoring is None or scoring.dem is None):
            raise BundleError(f"model bundle {bundle.name} needs a DEM but has no DEM calibration at stride "
                              f"{o.stride}; use its stride {bundle.stride_px}")
        if scoring is None and bundle.manifest.get("scoring") is not None and not o.window_scores:
            warn(f"no calibrated scores at stride {o.stride} (the bundle's are at stride "
                 f"{bundle.manifest['scoring'].get('stride_px')}): scores are window probabilities and the "
                 "threshold is a window probability")
        if scoring is not None and self.merge_radius_m is not None and \
                abs(self.merge_radius_m - scoring.merge_radius_m) > 1e-9:
            warn(f"scores were calibrated at a merge radius of {scoring.merge_radius_m:g} m; at "
                 f"{self.merge_radius_m:g} m they are less reliable as probabilities")
        if o.dem_z_factor is not None and not (math.isfinite(o.dem_z_factor) and o.dem_z_factor > 0):
            raise RasterError(f"the DEM's elevation unit must be a positive number of metres, got {o.dem_z_factor}")
        engine = choose_engine(o.engine, o.backend, o.stride, bundle)
        config = run_config(bundle, device, backend=o.backend, batch_size=o.batch_size, precision=o.precision,
                            cuda_graph=o.cuda_graph)
        return DetectSettings(
            stride=int(o.stride), threshold=float(o.threshold), merge_radius_m=float(o.merge_radius_m),
            min_valid=float(o.min_valid), bands=tuple(o.bands), engine=engine, run=config,
            block_px=o.block_px or default_block_px(device, engine),
            read_threads=o.read_threads or default_read_threads(device, engine),
            aoi=o.aoi, scale=o.scale, overwrite=o.overwrite, scoring=scoring, dem=dem,
            dem_z_factor=o.dem_z_factor)


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
    scoring: Scoring | None = None        # calibrated scores at this stride (None: window probabilities)
    dem: tuple[str, ...] | None = None
    dem_z_factor: float | None = None

    @property
    def decode_floor(self) -> float:
        """The window probability from which windows are decoded: the scoring's floor (every window it
        merges), else the threshold."""
        return self.scoring.floor if self.scoring is not None else self.threshold

    @property
    def score_kind(self) -> str:
        """What ``score`` means in the output."""
        if self.scoring is None:
            return "window probability (the strongest window's)"
        calibrated = "imagery and DEM" if self.dem is not None and self.scoring.dem is not None else "imagery"
        return f"calibrated probability that the crossing is real ({calibrated} evidence)"

    def record(self) -> dict:
        """How the model ran, as recorded in the output's metadata."""
        return {"engine": self.engine, "run": self.run.to_dict(), "block_px": self.block_px,
                "read_threads": self.read_threads}
