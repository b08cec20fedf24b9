"""Model bundles: a folder with the weights, an ONNX export and a JSON manifest.

::

    models/<name>/
        manifest.json   architecture, bands, normalization, GSD, window/context size, threshold,
                        the inputs it reads (imagery, a DEM), its calibrated scoring,
                        training provenance, metrics, tuned inference settings, sha256 of every file
        weights.pt      the state dict (torch.load(weights_only=True))
        model.onnx      the chip model, dynamic batch, raw DN input, output (N, 5)

A bundle is written to a temporary folder beside its destination and renamed into place, so a
half-written bundle never looks complete. Loading checks the manifest against its schema (:data:`SCHEMA`: every
field's type and range, once, with a message naming the field), the checksums and that the weights fit the
declared architecture; every failure is a one-line :class:`~geodrain.errors.BundleError`.

Detection settings come calibrated together: ``stride_px``, ``threshold`` and ``merge_radius_m`` are the
default, and ``calibrations`` may hold more window strides, each with the threshold and merge radius calibrated
at it (``{"24": {"threshold": 0.986, "merge_radius_m": 30.0, ...}}``; an entry may later carry a per-stride
score calibrator beside them). :meth:`Bundle.calibration_for` gives a stride's settings.

``scoring`` (optional) makes a crossing's score a probability (:class:`geodrain.scoring.Scoring`: the window
floor, merge radius and placement it was fitted at, a calibrator of the imagery evidence and, for DEM runs,
one of the imagery and DEM evidence with the DEM's snapping). ``inputs`` says what a bundle reads:
``{"imagery": "required", "dem": "optional"}`` by default; a DEM-aware bundle requires the DEM.

The deployed bundle ships with the package (the repository's top-level ``models/`` folder is installed as
the package data :mod:`geodrain.deployed`); ``$GEODRAIN_MODEL`` overrides it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..errors import BundleError
from ..output import atomic_folder, check_output_folder, write_json
from .arch import GSD_M, WINDOW_PX, Arch
from .boxes import CODING

if TYPE_CHECKING:   # torch and the model are imported when the weights are loaded, not with the manifest
    import torch

    from .sppnet import SPPNet

if TYPE_CHECKING:
    from ..scoring import Scoring

FORMAT = "geodrain-bundle/1"
MANIFEST = "manifest.json"
WEIGHTS = "weights.pt"
ONNX = "model.onnx"
NAIP_BANDS = ("red", "green", "blue", "nir")
ONNX_TOLERANCE = 1e-4

DEPLOYED_PACKAGE = "geodrain.deployed"                              # models/ as installed package data
CHECKOUT_MODELS = Path(__file__).resolve().parents[2] / "models"   # models/ of a source checkout


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def models_dir() -> Path | None:
    """The folder of deployed bundles: the installed package data, else the source checkout's ``models/``."""
    from importlib import resources

    try:   # a folder without __init__.py: files() gives a MultiplexedPath, its children are real paths
        pointer = resources.files(DEPLOYED_PACKAGE) / "DEFAULT"
    except ModuleNotFoundError:
        pointer = None
    if isinstance(pointer, Path) and pointer.is_file():
        return pointer.parent
    if (CHECKOUT_MODELS / "DEFAULT").is_file():
        return CHECKOUT_MODELS
    return None


def default_bundle_path() -> Path:
    """The deployed bundle: ``$GEODRAIN_MODEL``, else the folder named in ``DEFAULT`` of :func:`models_dir`."""
    env = os.environ.get("GEODRAIN_MODEL")
    if env:
        return Path(env)
    folder = models_dir()
    if folder is None:
        raise BundleError("no default model bundle is installed: set GEODRAIN_MODEL to a bundle folder "
                          "or give a model bundle")
    return folder / (folder / "DEFAULT").read_text().strip()


def device_type(device: "str | torch.device") -> str:
    """'cpu', 'cuda' ... of a device or its name, without importing torch."""
    return device.type if hasattr(device, "type") else str(device).split(":")[0]


def device_class(device: "str | torch.device") -> str:
    """Key under which tuned settings are stored: ``cpu`` or ``cuda:<GPU name>``."""
    if device_type(device) == "cuda":
        import torch

        return f"cuda:{torch.cuda.get_device_name(torch.device(device))}"
    return device_type(device)


@dataclass
class Bundle:
    """A loaded bundle: its manifest and, on first use, its torch model."""

    path: Path
    manifest: dict[str, Any]
    _model: "SPPNet | None" = field(default=None, repr=False)

    # -- what the manifest declares ------------------------------------------------------------------
    @property
    def arch(self) -> Arch:
        return Arch.from_dict(self.manifest["arch"])

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.path.name)

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.manifest['files'][WEIGHTS]['sha256'][:12]}"

    @property
    def context_px(self) -> int:
        return int(self.manifest.get("context_px", 0))

    @property
    def window_px(self) -> int:
        return int(self.manifest.get("window_px", WINDOW_PX))

    @property
    def gsd(self) -> float:
        return float(self.manifest.get("gsd_m", 1.0))

    @property
    def bands(self) -> tuple[str, ...]:
        return tuple(self.manifest.get("bands", NAIP_BANDS))

    @property
    def threshold(self) -> float:
        return float(self.manifest.get("threshold", 0.5))

    @property
    def merge_radius_m(self) -> float:
        return float(self.manifest.get("merge_radius_m", 20.0))

    @property
    def stride_px(self) -> int:
        """Window step (model pixels) the threshold was calibrated at, and detection's default."""
        return int(self.manifest.get("stride_px", 24))

    @property
    def calibrations(self) -> dict[int, dict[str, Any]]:
        """Calibrated settings by window stride: the ``calibrations`` table, and the default stride's."""
        table = {int(k): dict(v) for k, v in self.manifest.get("calibrations", {}).items()}
        table.setdefault(self.stride_px, {"threshold": self.threshold, "merge_radius_m": self.merge_radius_m})
        return dict(sorted(table.items()))

    def calibration_for(self, stride: int) -> dict[str, Any] | None:
        """The threshold and merge radius calibrated at ``stride`` (None: not calibrated there)."""
        return self.calibrations.get(int(stride))

    @property
    def inputs(self) -> dict[str, str]:
        """The inputs the bundle reads and whether each is ``required`` or ``optional`` (manifest ``inputs``;
        default: the imagery required, a DEM optional)."""
        return dict(self.manifest.get("inputs") or {"imagery": "required", "dem": "optional"})

    @property
    def needs_dem(self) -> bool:
        """True for a DEM-aware bundle: it cannot run without a DEM."""
        return self.inputs.get("dem") == "required"

    def scoring_for(self, stride: int) -> "Scoring | None":
        """The calibrated scoring at window ``stride`` (None: scores are window probabilities there): the
        manifest's ``scoring`` at the stride it was fitted at, or a ``calibrations`` entry's ``scoring``."""
        raw = self.manifest.get("scoring")
        if raw is None or int(raw.get("stride_px", -1)) != int(stride):
            raw = (self.manifest.get("calibrations") or {}).get(str(int(stride)), {}).get("scoring")
        return None if raw is None else _scoring(raw, self.path / MANIFEST)

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX

    def tuned(self, device: "str | torch.device") -> dict[str, Any]:
        """Tuned inference settings (batch size, engine ...) for a device class, or for its type."""
        table = self.manifest.get("inference", {})
        key = device_class(device)
        return dict(table.get(key) or table.get(key.split(":")[0]) or {})

    def best_batch_size(self, device: "str | torch.device", default: int | None = None) -> int:
        bs = self.tuned(device).get("batch_size")
        if bs:
            return int(bs)
        if default is not None:
            return default
        return 256 if device_type(device) == "cuda" else 16

    # -- the model -------------------------------------------------------------------------------------
    @property
    def model(self) -> "SPPNet":
        if self._model is None:
            self._model = _load_model(self.path, self.manifest)
        return self._model

    def add_files(self, files: dict[str, str | Path], **sections: Any) -> None:
        """Copy ``files`` (name in the bundle -> source path) into the bundle, checksum them in the manifest
        and merge ``sections`` into it, in one manifest rewrite. Each file is copied under a temporary name
        first and renamed into place just before the manifest is rewritten."""
        staged = {}
        try:
            for name, src in files.items():
                if Path(name).name != name or name in (MANIFEST, WEIGHTS):
                    raise BundleError(f"cannot add {name!r} to a bundle")
                tmp = self.path / f".{name}.tmp"
                shutil.copyfile(src, tmp)
                staged[name] = tmp
            entries = {name: {"sha256": sha256_file(tmp), "bytes": tmp.stat().st_size}
                       for name, tmp in staged.items()}
            for name, tmp in staged.items():
                os.replace(tmp, self.path / name)
        finally:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
        self.manifest.setdefault("files", {}).update(entries)
        self.update_manifest(**sections)

    def update_manifest(self, **sections: Any) -> None:
        """Merge sections into the manifest and rewrite it atomically (weights are untouched)."""
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(self.manifest.get(key), dict):
                _deep_merge(self.manifest[key], value)
            else:
                self.manifest[key] = value
        write_json(self.path / MANIFEST, self.manifest)


def _scoring(raw: Any, where: Path) -> "Scoring":
    from ..scoring import Scoring

    try:
        return Scoring.from_json(raw)
    except ValueError as e:
        raise BundleError(f"bundle manifest {where}: 'scoring' is malformed: {e}") from None


def _check_inputs(manifest: dict, where: Path) -> None:
    inputs = manifest.get("inputs")
    if inputs is None:
        return
    if not isinstance(inputs, dict) or inputs.get("imagery") != "required" or any(
            k not in ("imagery", "dem") or v not in ("required", "optional") for k, v in inputs.items()):
        raise BundleError(f"bundle manifest {where}: 'inputs' must be an object like {{\"imagery\": \"required\", "
                          f"\"dem\": \"optional\"}} (dem: required or optional), got {inputs!r}")
    if inputs.get("dem") == "required":
        sc = manifest.get("scoring")
        if not isinstance(sc, dict) or sc.get("dem") is None:
            raise BundleError(f"bundle manifest {where}: a bundle that requires a DEM needs a 'scoring' with "
                              "a 'dem' calibrator")


def _deep_merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _deep_merge(into[k], v)
        else:
            into[k] = v


def load_bundle(path: str | Path | None = None) -> Bundle:
    """Open a bundle folder (default: the deployed one) and validate its manifest and checksums."""
    folder = Path(path) if path is not None else default_bundle_path()
    if not folder.exists():
        raise BundleError(f"model bundle not found: {folder}")
    if folder.is_file():
        if folder.name == MANIFEST:
            folder = folder.parent
        else:
            raise BundleError(f"model bundle must be a folder with {MANIFEST}: {folder}")
    mpath = folder / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise BundleError(f"not a model bundle (no {MANIFEST}): {folder}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"unreadable bundle manifest {mpath}: {e}") from None
    check_manifest(manifest, mpath)
    _check_inputs(manifest, mpath)
    if manifest.get("scoring") is not None:
        _scoring(manifest["scoring"], mpath)
    files = manifest["files"]
    for name, meta in files.items():
        fpath = folder / name
        if not fpath.is_file():
            raise BundleError(f"bundle file missing: {fpath}")
        if sha256_file(fpath) != meta.get("sha256"):
            raise BundleError(f"bundle file {fpath} does not match its sha256 in the manifest (corrupt?)")
    return Bundle(folder, manifest)


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _numbers(v) -> bool:
    return isinstance(v, list) and len(v) > 0 and all(_real(x) for x in v)


def _file_entry(v) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("sha256"), str) and len(v["sha256"]) == 64
            and (_int(v.get("bytes")) if "bytes" in v else True))


def _calibration(v) -> bool:
    return (isinstance(v, dict) and _real(v.get("threshold")) and 0 <= v["threshold"] <= 1
            and _real(v.get("merge_radius_m")) and v["merge_radius_m"] > 0)


# field: (required, check, what it must be). Checked once, on load; unknown fields are kept as they are.
SCHEMA: dict[str, tuple[bool, Any, str]] = {
    "format": (True, lambda v: v == FORMAT, f"{FORMAT!r}"),
    "arch": (True, lambda v: isinstance(v, dict), "an object (the architecture)"),
    "files": (True, lambda v: isinstance(v, dict) and WEIGHTS in v and all(_file_entry(e) for e in v.values()),
              f"an object of file entries {{\"sha256\": 64 hex digits, \"bytes\": integer}} listing {WEIGHTS}"),
    "name": (False, lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "bands": (False, lambda v: isinstance(v, list) and len(v) > 0 and all(isinstance(b, str) for b in v),
              "a list of band names"),
    "normalization": (False, lambda v: isinstance(v, dict) and _numbers(v.get("mean")) and _numbers(v.get("std")),
                      "an object with lists 'mean' and 'std'"),
    "gsd_m": (False, lambda v: _real(v) and v > 0, "a number > 0 (metres)"),
    "window_px": (False, lambda v: v == WINDOW_PX, f"{WINDOW_PX} (the model's window)"),
    "context_px": (False, lambda v: _int(v) and v >= 0 and v % 8 == 0, "a non-negative multiple of 8"),
    "feature_stride": (False, lambda v: v == 8, "8"),
    "threshold": (False, lambda v: _real(v) and 0 <= v <= 1, "a number from 0 to 1"),
    "merge_radius_m": (False, lambda v: _real(v) and v > 0, "a number > 0 (metres)"),
    "stride_px": (False, lambda v: _int(v) and 1 <= v <= WINDOW_PX, f"an integer from 1 to {WINDOW_PX}"),
    "calibrations": (False, lambda v: isinstance(v, dict) and all(
        str(k).isdigit() and 1 <= int(k) <= WINDOW_PX and _calibration(e) for k, e in v.items()),
        "an object of strides (1 to 100) to {\"threshold\": 0..1, \"merge_radius_m\": > 0}"),
    "inference": (False, lambda v: isinstance(v, dict) and all(isinstance(e, dict) for e in v.values()),
                  "an object of device classes to settings"),
}


def check_manifest(manifest: Any, where: str | Path = "manifest.json") -> None:
    """Validate a manifest against :data:`SCHEMA`; the first violation is a :class:`BundleError` naming the
    field. The architecture is checked by :meth:`Arch.from_dict` (an ArchitectureError names what is wrong)."""
    if not isinstance(manifest, dict):
        raise BundleError(f"bundle manifest {where} must be a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{where} is not a {FORMAT} manifest ('format' is {manifest.get('format')!r})")
    for field_name, (required, ok, what) in SCHEMA.items():
        if field_name not in manifest:
            if required:
                raise BundleError(f"bundle manifest {where} lacks '{field_name}'")
            continue
        value = manifest[field_name]
        if not ok(value):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise BundleError(f"bundle manifest {where}: '{field_name}' must be {what}, got {shown}")
    arch = Arch.from_dict(manifest["arch"])
    if "bands" in manifest and len(manifest["bands"]) != arch.bands:
        raise BundleError(f"bundle manifest {where}: 'bands' names {len(manifest['bands'])} band(s) but the "
                          f"architecture takes {arch.bands}")


def _load_model(folder: Path, manifest: dict) -> "SPPNet":
    import torch

    from .sppnet import SPPNet

    arch = Arch.from_dict(manifest["arch"])
    model = SPPNet(arch, context_px=int(manifest.get("context_px", 0)))
    try:
        state = torch.load(folder / WEIGHTS, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as e:  # noqa: BLE001 - any failure here means a broken or mismatched bundle
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith(("size mismatch", "Missing key", "Unexpected key"))),
                      lines[0] if lines else type(e).__name__)
        raise BundleError(f"weights in {folder} do not fit architecture {arch.key}: {detail[:160]}") from None
    return model.eval()


def export_onnx(model: "SPPNet", path: str | Path, batch: int = 2) -> float | None:
    """Export the chip model with a dynamic batch; returns max |onnx - torch| on random chips, or None when
    ONNX Runtime is not installed to check it."""
    import torch

    model = model.eval().cpu()
    x = torch.rand(batch, model.arch.bands, model.input_px, model.input_px) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["chips"], output_names=["out"],
                          dynamic_axes={"chips": {0: "n"}, "out": {0: "n"}}, opset_version=17,
                          dynamo=False)
    return onnx_parity(model, path)


def onnx_parity(model: "SPPNet", path: str | Path, n: int = 3, seed: int = 0) -> float | None:
    """Max |onnx - torch| on random chips (ONNX Runtime on the CPU); None without ONNX Runtime."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, model.arch.bands, model.input_px, model.input_px, generator=g) * 255
    with torch.inference_mode():
        ref = model(x).numpy()
    got = sess.run(None, {"chips": x.numpy()})[0]
    return float(np.abs(got - ref).max())


def save_bundle(model: "SPPNet", dest: str | Path, *, name: str | None = None, overwrite: bool = False,
                **manifest_sections: Any) -> Bundle:
    """Write ``model`` as a bundle folder at ``dest`` (weights, ONNX, manifest), atomically.

    ``manifest_sections`` (training, metrics, threshold, inference ...) are stored as given. The ONNX
    export is checked against torch with ONNX Runtime and refused if they differ by more than 1e-4; without
    ONNX Runtime (an optional extra) the check is skipped and the manifest says so.
    """
    import torch

    dest = check_output_folder(dest, overwrite)
    model = model.eval().cpu()
    with atomic_folder(dest) as tmp:
        torch.save(model.state_dict(), tmp / WEIGHTS)
        parity = export_onnx(model, tmp / ONNX)
        if parity is not None and parity > ONNX_TOLERANCE:
            raise BundleError(f"ONNX export differs from torch by {parity:.2e} (> {ONNX_TOLERANCE})")
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "name": name or dest.name,
            "geodrain_version": __version__,
            "arch": model.arch.to_dict(),
            "notation": model.arch.notation,
            "bands": list(NAIP_BANDS[: model.arch.bands]),
            "input": "raw digital numbers (8-bit scale), band order as 'bands'; the model normalizes",
            "normalization": {"mean": model.mean.tolist(), "std": model.std.tolist()},
            "gsd_m": GSD_M,
            "window_px": WINDOW_PX,
            "context_px": model.context_px,
            "feature_stride": 8,
            "threshold": 0.5,
            "merge_radius_m": 20.0,
            "outputs": ["crossing_logit", "dx", "dy", "log_w", "log_h"],
            "box_coding": CODING,
            "onnx_parity_max_abs": parity,
        }
        if parity is None:
            manifest["onnx_parity_note"] = ("not checked: ONNX Runtime was not installed when the bundle was "
                                            "saved (pip install 'geodrain[cpu]')")
        for key, value in manifest_sections.items():
            if value is not None:
                manifest[key] = value
        manifest["files"] = {f: {"sha256": sha256_file(tmp / f), "bytes": (tmp / f).stat().st_size}
                             for f in (WEIGHTS, ONNX)}
        write_json(tmp / MANIFEST, manifest, sort_keys=False)
    return Bundle(dest, manifest, model)
