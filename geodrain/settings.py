"""Detection settings: what a user may set (:class:`DetectOptions`) and what a run uses (:class:`DetectSettings`).

``None`` in :class:`DetectOptions` means "the default": the window stride, threshold and merge radius the
bundle was calibrated with (with the bundle's calibrated scoring, the threshold is a crossing probability);
the engine, run configuration, block size and reading threads suited to the bundle on the device.
:meth:`DetectOptions.resolve` checks every value (:meth:`DetectOptions.check`: a range, never a 0 read as
"the default") and fills the defaults in once, before any pixel is read, so every stage receives concrete,
checked values. A stride the bundle has a calibration for (``Bundle.calibrations``) brings its own threshold
and merge radius.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from .blocks import default_read_threads
from .errors import BundleError, GeodrainWarning, RasterError, SettingsError
from .infer.config import ENGINES, MIN_BLOCK_PX, choose_engine, default_block_px, run_config
from .infer.runtime import RunConfig
from .model.bundle import Bundle
from .model.arch import WINDOW_PX
from .read import NAIP_BANDS
from .scoring import Scoring
from .window import MIN_VALID

if TYPE_CHECKING:
    import torch

BACKENDS = (None, "torch", "onnx")


@dataclass
class DetectOptions:
    """Everything ``geodrain detect`` can set; ``None`` means: the bundle's (or the device's) default."""

    stride: int | None = None
    threshold: float | None = None
    merge_radius_m: float | None = None
    min_valid: float = MIN_VALID
    bands: tuple[int, ...] = NAIP_BANDS
    engine: str = "auto"              # auto | dense | chip
    backend: str | None = None        # torch | onnx (None: the bundle's tuned choice, else torch)
    device: str = "auto"
    batch_size: int | None = None
    precision: str | None = None      # fp32 | fp16 | bf16
    cuda_graph: bool | None = None
    block_px: int | None = None
    read_threads: int | None = None
    aoi: str | Path | None = None
    aoi_layer: str | None = None      # the AOI file's layer (needed when it has several)
    scale: float | str = "auto"
    force: bool = False               # run on input coarser than MAX_GSD_RATIO x the model's GSD
    overwrite: bool = False
    # many files, resumable, scaled out (docs/statewide.md)
    crs: str | None = None            # the output CRS (None: the inputs' when shared, else EPSG:5070 …)
    stac_asset: str | None = None     # the STAC asset to read (None: 'image', else the one raster asset)
    task_px: int | None = None        # model pixels per task side (None: geodrain.plan.DEFAULT_TASK_PX)
    work_dir: str | Path | None = None  # None: <output>.work (no work folder without an output)
    resume: bool = False              # skip the tasks an earlier run of the same job finished
    restart: bool = False             # discard an existing work folder
    keep_work: bool = False           # keep the work folder after the output is written
    workers: int | None = None        # a Dask LocalCluster of this many worker processes
    scheduler: str | None = None      # or an existing Dask cluster (address or scheduler file)
    worker_threads: int | None = None  # torch/GDAL threads per worker (None: cores / workers, or nthreads)
    retries: int = 2                  # runs of a task after its first fails or loses its worker

    # elevation (docs/watershed.md)
    dem: tuple[str | Path, ...] | None = None   # DEM file(s): any CRS and resolution
    dem_z_factor: float | None = None           # metres per DEM elevation unit (None: from the DEM's CRS)
    window_scores: bool = False   # ignore the bundle's calibrated scoring: the threshold is a window probability
                                  # and every window >= it is a candidate (calibrate, mine, experiments)

    def resolved(self, bundle: Bundle) -> "DetectOptions":
        """A copy with the stride, threshold and merge radius filled in: the bundle's default stride; at a
        stride with calibrated scoring (``Bundle.scoring_for``) the threshold is a crossing probability
        (default: the scoring's ``report_at``) and the merge radius the scoring's; otherwise the window
        threshold and merge radius calibrated at the stride used (a stride the bundle was not calibrated at
        keeps the default stride's, with a :class:`~geodrain.errors.GeodrainWarning`)."""
        stride = bundle.stride_px if self.stride is None else self.stride
        scoring = None if self.window_scores else bundle.scoring_for(stride)
        if scoring is not None:
            cal = {"threshold": scoring.report_at, "merge_radius_m": scoring.merge_radius_m}
        else:
            cal = bundle.calibration_for(stride)
        if cal is None:
            cal = bundle.calibration_for(bundle.stride_px) or {"threshold": bundle.threshold,
                                                               "merge_radius_m": bundle.merge_radius_m}
            missing = [what for what, given in (("threshold", self.threshold), ("merge radius", self.merge_radius_m))
                       if given is None]
            if missing:
                known = ", ".join(f"{k} px" for k in bundle.calibrations)
                warnings.warn(f"stride {stride} px is not one the bundle was calibrated at ({known}): using the "
                              f"{' and '.join(missing)} calibrated at {bundle.stride_px} px, so precision and "
                              f"recall may differ from the bundle's (calibrating the bundle at {stride} px records "
                              "its own)", GeodrainWarning, stacklevel=3)
        return replace(self, stride=stride,
                       threshold=float(cal["threshold"]) if self.threshold is None else self.threshold,
                       merge_radius_m=float(cal["merge_radius_m"]) if self.merge_radius_m is None
                       else self.merge_radius_m)

    def check(self) -> "DetectOptions":
        """Refuse a value out of its range (a :class:`~geodrain.errors.SettingsError` naming the setting);
        ``None`` stays "the default" and 0 is never read as one."""
        checks = [
            ("stride", self.stride, _int_in(1, WINDOW_PX), f"an integer from 1 to {WINDOW_PX} px (the window)"),
            ("threshold", self.threshold, _real_in(0, 1), "a number from 0 to 1"),
            ("merge_radius_m", self.merge_radius_m, _real_in(0, None, low_open=True), "a number > 0 (metres)"),
            ("min_valid", self.min_valid, _real_in(0, 1), "a number from 0 to 1"),
            ("batch_size", self.batch_size, _int_in(1, None), "an integer >= 1"),
            ("block_px", self.block_px, _int_in(MIN_BLOCK_PX, None), f"an integer >= {MIN_BLOCK_PX} (pixels)"),
            ("read_threads", self.read_threads, _int_in(1, 256), "an integer from 1 to 256"),
            ("scale", self.scale, lambda v: v == "auto" or _real_in(0, None, low_open=True)(v),
             "'auto' or a number > 0"),
            ("dem_z_factor", self.dem_z_factor, _real_in(0, None, low_open=True),
             "a number > 0 (metres per DEM elevation unit)"),
        ]
        for name, value, ok, what in checks:
            if value is not None and not ok(value):
                raise SettingsError(f"{name} must be {what}, got {value!r}")
        for name, value, choices in (("engine", self.engine, ENGINES), ("backend", self.backend, BACKENDS),
                                     ("device", self.device, ("auto", "cpu", "cuda")),
                                     ("precision", self.precision, (None, "fp32", "fp16", "bf16", "int8"))):
            if value not in choices and not (name == "device" and str(value).startswith("cuda:")):
                raise SettingsError(f"{name} must be one of {', '.join(c for c in choices if c)}, got {value!r}")
        if not self.bands or any(not _int_in(1, None)(b) for b in self.bands):
            raise SettingsError(f"bands must be band numbers from 1, got {self.bands!r}")
        return self

    def resolve(self, bundle: Bundle, device: "str | torch.device") -> "DetectSettings":
        """Every setting of a run of ``bundle`` on ``device``, checked; a band count the model cannot take, or a
        stride the automatic engine choice could only run very slowly, is refused."""
        self.check()
        if len(self.bands) != bundle.arch.bands:
            raise RasterError(f"{len(self.bands)} band(s) selected ({', '.join(map(str, self.bands))}) but the "
                              f"model expects {bundle.arch.bands} ({', '.join(bundle.bands)})")
        engine = choose_engine(self.engine, self.backend, bundle.stride_px if self.stride is None else self.stride,
                               bundle, device)   # a stride no engine choice can run is refused before any warning
        o = self.resolved(bundle)
        scoring = None if o.window_scores else bundle.scoring_for(int(o.stride))
        dem = tuple(str(p) for p in o.dem) if o.dem else None
        if bundle.needs_dem and dem is None and not o.window_scores:
            raise BundleError(f"model bundle {bundle.name} is DEM-aware: it needs a DEM (elevation raster, any "
                              "CRS and resolution) beside the imagery, and cannot score crossings without one")
        if bundle.needs_dem and not o.window_scores and (scoring is None or scoring.dem is None):
            raise BundleError(f"model bundle {bundle.name} needs a DEM but has no DEM calibration at stride "
                              f"{o.stride}; use its stride {bundle.stride_px}")
        if scoring is None and bundle.manifest.get("scoring") is not None and not o.window_scores:
            warnings.warn(f"no calibrated scores at stride {o.stride} (the bundle's are at stride "
                          f"{bundle.manifest['scoring'].get('stride_px')}): scores are window probabilities and the "
                          "threshold is a window probability", GeodrainWarning, stacklevel=3)
        if scoring is not None and self.merge_radius_m is not None and \
                abs(self.merge_radius_m - scoring.merge_radius_m) > 1e-9:
            warnings.warn(f"scores were calibrated at a merge radius of {scoring.merge_radius_m:g} m; at "
                          f"{self.merge_radius_m:g} m they are less reliable as probabilities", GeodrainWarning,
                          stacklevel=3)
        config = run_config(bundle, device, engine=engine, stride=o.stride, backend=o.backend,
                            batch_size=o.batch_size, precision=o.precision, cuda_graph=o.cuda_graph)
        return DetectSettings(
            stride=int(o.stride), threshold=float(o.threshold), merge_radius_m=float(o.merge_radius_m),
            min_valid=float(o.min_valid), bands=tuple(o.bands), engine=engine, run=config,
            block_px=o.block_px if o.block_px is not None else default_block_px(device, engine),
            read_threads=o.read_threads if o.read_threads is not None else default_read_threads(device, engine),
            aoi=o.aoi, aoi_layer=o.aoi_layer, scale=o.scale, force=o.force, overwrite=o.overwrite,
            scoring=scoring, dem=dem, dem_z_factor=o.dem_z_factor)


def _int_in(low: int | None, high: int | None):
    def ok(v) -> bool:
        return (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and (low is None or v >= low)
                and (high is None or v <= high))
    return ok


def _real_in(low: float | None, high: float | None, *, low_open: bool = False):
    def ok(v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or v <= high
    return ok


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
    aoi_layer: str | None
    scale: float | str
    force: bool
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
