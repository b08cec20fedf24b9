"""Model bundles: a folder with the weights, an ONNX export and a JSON manifest.

::

    models/<name>/
        manifest.json   architecture, bands, normalization, GSD, window/context size, threshold,
                        training provenance, metrics, tuned inference settings, sha256 of every file
        weights.pt      the state dict (torch.load(weights_only=True))
        model.onnx      the chip model, dynamic batch, raw DN input, output (N, 5)

A bundle is written to a temporary folder beside its destination and renamed into place, so a
half-written bundle never looks complete. Loading checks the manifest, the checksums and that the weights
fit the declared architecture; every failure is a one-line :class:`~geodrain.errors.BundleError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..errors import BundleError
from ..write import check_output_folder
from .arch import WINDOW_PX, Arch

if TYPE_CHECKING:   # torch and the model are imported when the weights are loaded, not with the manifest
    import torch

    from .sppnet import SPPNet

FORMAT = "geodrain-bundle/1"
MANIFEST = "manifest.json"
WEIGHTS = "weights.pt"
ONNX = "model.onnx"
NAIP_BANDS = ("red", "green", "blue", "nir")
ONNX_TOLERANCE = 1e-4

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_bundle_path() -> Path:
    """The deployed bundle: ``$GEODRAIN_MODEL``, else the folder named in ``models/DEFAULT``."""
    env = os.environ.get("GEODRAIN_MODEL")
    if env:
        return Path(env)
    pointer = MODELS_DIR / "DEFAULT"
    if not pointer.is_file():
        raise BundleError(f"no default model bundle: set GEODRAIN_MODEL or pass --model ({pointer} missing)")
    return MODELS_DIR / pointer.read_text().strip()


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
        _write_json_atomic(self.path / MANIFEST, self.manifest)


def _deep_merge(into: dict, new: dict) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _deep_merge(into[k], v)
        else:
            into[k] = v


def _write_json_atomic(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{mpath} is not a {FORMAT} manifest")
    for key in ("arch", "files"):
        if key not in manifest:
            raise BundleError(f"bundle manifest {mpath} lacks '{key}'")
    Arch.from_dict(manifest["arch"])  # raises ArchitectureError (a user error) if malformed
    files = manifest["files"]
    if WEIGHTS not in files:
        raise BundleError(f"bundle manifest {mpath} lists no {WEIGHTS}")
    for name, meta in files.items():
        fpath = folder / name
        if not fpath.is_file():
            raise BundleError(f"bundle file missing: {fpath}")
        if sha256_file(fpath) != meta.get("sha256"):
            raise BundleError(f"bundle file {fpath} does not match its sha256 in the manifest (corrupt?)")
    return Bundle(folder, manifest)


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


def export_onnx(model: "SPPNet", path: str | Path, batch: int = 2) -> float:
    """Export the chip model with a dynamic batch; returns max |onnx - torch| on random chips."""
    import torch

    model = model.eval().cpu()
    x = torch.rand(batch, model.arch.bands, model.input_px, model.input_px) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["chips"], output_names=["out"],
                          dynamic_axes={"chips": {0: "n"}, "out": {0: "n"}}, opset_version=17,
                          dynamo=False)
    return onnx_parity(model, path)


def onnx_parity(model: "SPPNet", path: str | Path, n: int = 3, seed: int = 0) -> float:
    import onnxruntime as ort
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
    export is checked against torch and refused if they differ by more than 1e-4.
    """
    import torch

    dest = check_output_folder(dest, overwrite)
    model = model.eval().cpu()
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o755)
        torch.save(model.state_dict(), tmp / WEIGHTS)
        parity = export_onnx(model, tmp / ONNX)
        if parity > ONNX_TOLERANCE:
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
            "gsd_m": 1.0,
            "window_px": WINDOW_PX,
            "context_px": model.context_px,
            "feature_stride": 8,
            "threshold": 0.5,
            "merge_radius_m": 20.0,
            "outputs": ["crossing_logit", "dx", "dy", "log_w", "log_h"],
            "box_coding": "dx, dy: offset of the crossing from the window centre / 50 px (x right, y down); "
                          "log_w, log_h: log(structure size px / 16)",
            "onnx_parity_max_abs": parity,
        }
        for key, value in manifest_sections.items():
            if value is not None:
                manifest[key] = value
        manifest["files"] = {f: {"sha256": sha256_file(tmp / f), "bytes": (tmp / f).stat().st_size}
                             for f in (WEIGHTS, ONNX)}
        _write_json_atomic(tmp / MANIFEST, manifest)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Bundle(dest, manifest, model)
