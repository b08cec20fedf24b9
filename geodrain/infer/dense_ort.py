"""The dense engine through ONNX Runtime: the whole dense computation as one prepared graph, fp32 or int8.

The graph (:class:`geodrain.model.sppnet.DenseGraph`) is the dense engine's computation written as plain
convolutions: the conv trunk, then the SPP layer and FC head as convolutions over stride-1 max-pooled feature
maps, so no (windows x SPP features) matrix is gathered. ONNX Runtime runs it with its own CPU kernels (blocked
NCHWc convolutions with fused ReLU; with the int8 graph, VNNI integer convolutions). A bundle ships the graphs
it was prepared with (``scripts/prepare_dense.py``: export, int8 calibration on generated scenes, and the
agreement check that decides whether int8 may be selected) and selects one per device class in its tuned
inference settings (``inference.<device class>.dense`` in the manifest):

    "dense": {"backend": "onnx", "precision": "int8",
              "graphs": {"8": {"fp32": "dense_s8_fp32.onnx", "int8": "dense_s8_int8.onnx"}}, ...}

Nothing here imports torch: on a CPU the engine needs only numpy and onnxruntime.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, DeviceError, GeodrainWarning
from ..model.arch import FEATURE_STRIDE
from ..window import Block, WindowGrid
from .base import PendingScores, WindowScores

INPUT = "block"               # (1, bands, H, W) raw DN: uint8 (prepared graphs) or float32
OUTPUT = "windows"            # (1, 5, n_rows, n_cols): every window of the block, then a few to crop
ONNX_PRECISIONS = ("fp32", "int8")
DEFAULT_RESCORE_MARGIN = 3.0  # logits; a bundle records its own (scripts/prepare_dense.py)
RESCORE_TILE = 16             # windows near the threshold are rescored in tiles of at most this many a side


def graph_name(stride_px: int, precision: str) -> str:
    return f"dense_s{int(stride_px)}_{precision}.onnx"


def dense_settings(bundle, device_class: str) -> dict[str, Any]:
    """The bundle's tuned dense-engine settings for a device class (``cpu``, ``cuda:<name>``), or {}."""
    table = bundle.manifest.get("inference", {})
    entry = table.get(device_class) or table.get(device_class.split(":")[0]) or {}
    return dict(entry.get("dense") or {})


def prepared_graph(bundle, stride_px: int, precision: str) -> Path | None:
    """The bundle's prepared dense graph for windows at ``stride_px`` in a precision, if it ships one: the
    graph of that stride, else of the coarsest prepared stride that divides it (its windows include every
    window at ``stride_px``; the engine keeps every k-th row and column, :func:`graph_stride`).

    Graphs are listed once, under any device class's ``dense.graphs`` (the files do not depend on the
    device); every listed file is also in the manifest's checksummed ``files``.
    """
    found = _graph(bundle, stride_px, precision)
    return found[0] if found else None


def graph_stride(bundle, stride_px: int, precision: str) -> int | None:
    """The window stride of the graph :func:`prepared_graph` returns."""
    found = _graph(bundle, stride_px, precision)
    return found[1] if found else None


def _graph(bundle, stride_px: int, precision: str) -> tuple[Path, int] | None:
    listed: dict[int, str] = {}
    for entry in bundle.manifest.get("inference", {}).values():
        graphs = (entry.get("dense") or {}).get("graphs", {}) if isinstance(entry, dict) else {}
        for stride, files in graphs.items():
            if files.get(precision):
                listed.setdefault(int(stride), files[precision])
    usable = [s for s in listed if s > 0 and stride_px % s == 0]
    if not usable:
        return None
    best = max(usable)
    name = listed[best]
    if name not in bundle.manifest.get("files", {}):
        raise BundleError(f"bundle {bundle.path} names dense graph {name} but does not checksum it")
    return bundle.path / name, best


_VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def platform_is_x86() -> bool:
    import platform

    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def cpu_int8_exact(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU runs the int8 graph as it was prepared. On x86-64, ONNX Runtime's uint8 x int8
    convolutions without VNNI (AVX2, or AVX-512 without VNNI) add pairs of products in 16 bits, which
    saturate: the scores drift from the graph's (a random-weight graph's windows correlated 0.73 with fp32 on
    such a CPU). With VNNI or AMX they accumulate in 32 bits. An x86-64 CPU whose flags cannot be read counts
    as inexact; other architectures (ARM's dot products accumulate in 32 bits) as exact."""
    if not platform_is_x86():
        return True
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return any(f in flags for f in _VNNI_FLAGS)
    return False


def onnx_precision(bundle, stride_px: int, backend: str | None, precision: str | None,
                   device_class: str) -> str | None:
    """Which dense graph to run (its precision), or None for the torch dense engine.

    ``backend`` and ``precision`` are the user's (None: the bundle's tuned choice for the device class). The
    tuned choice applies only where the bundle ships a graph for the stride or a divisor of it (else the
    fp32 graph, else torch); an explicit ``backend='onnx'`` runs fp32 even without a prepared graph
    (exported at start); an explicit int8 needs the prepared int8 graph. On a CPU that would not run the int8
    graph exactly (:func:`cpu_int8_exact`) a tuned int8 choice runs the fp32 graph, and an explicit int8 is
    refused.
    """
    if backend == "torch" or (precision is not None and precision not in ONNX_PRECISIONS):
        return None
    on_cpu = device_class.split(":")[0] == "cpu"
    if not on_cpu:
        if backend == "onnx" or precision == "int8":
            raise DeviceError("the dense engine's ONNX graphs run on the CPU; on a GPU it runs with torch")
        return None
    tuned = dense_settings(bundle, device_class)
    tuned_onnx = tuned.get("backend") == "onnx"
    if backend is None and precision != "int8":
        if not tuned_onnx:
            return None
        if not _onnxruntime_installed():
            warnings.warn("ONNX Runtime is not installed: the dense engine runs with torch (same crossings, "
                          "several times slower on a CPU; pip install 'geodrain[cpu]' for the bundle's tuned "
                          "graph)", GeodrainWarning, stacklevel=4)
            return None
        for want in dict.fromkeys([precision or _runnable(tuned.get("precision", "fp32")), "fp32"]):
            if prepared_graph(bundle, stride_px, want) is not None:
                return want
        return None
    if precision == "int8":
        if prepared_graph(bundle, stride_px, "int8") is None:
            raise DeviceError(f"bundle {bundle.name} has no int8 dense graph for stride {stride_px} px "
                              "(prepare one with scripts/prepare_dense.py, or use --precision fp32)")
        if not cpu_int8_exact():
            raise DeviceError("this CPU has no VNNI (avx512_vnni or avx_vnni): its int8 kernels can saturate, "
                              "so the int8 graph's scores would drift; use --precision fp32")
        return "int8"
    tuned_precision = _runnable(tuned.get("precision", "fp32"))
    if precision is None and tuned_onnx and prepared_graph(bundle, stride_px, tuned_precision):
        return tuned_precision
    return "fp32"


def _runnable(precision: str) -> str:
    """A tuned precision as this CPU runs it: int8 only where its kernels are exact, else fp32."""
    return "fp32" if precision == "int8" and not cpu_int8_exact() else precision


def check_graph_fits(bundle, path: str | Path) -> None:
    """Refuse a prepared graph whose weights do not have the shapes of the manifest's architecture (a manifest
    edited after the graph was prepared): the convolutions of the trunk and the output layer must be there.
    On this path the torch weights are not loaded, so this is where a mismatch is caught: against the
    architecture the graphs were prepared from where the bundle records it (``dense.arch``, no parsing), else
    by reading the graph's weight shapes."""
    arch = bundle.arch
    recorded = dense_settings(bundle, "cpu").get("arch")
    if recorded is not None:
        if recorded != arch.notation:
            raise BundleError(f"the weights of the dense graph {Path(path).name} in bundle {bundle.name} "
                              f"(prepared from {recorded}) do not fit architecture {arch.notation} of its manifest")
        return
    import onnx

    c1, c2, c3 = arch.channels
    want = {(c1, arch.bands, arch.k1, arch.k1), (c2, c1, 3, 3), (c3, c2, 3, 3), (5, arch.fc, 1, 1)}
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises its own types
        raise BundleError(f"cannot read the dense graph {Path(path).name} of bundle {bundle.name}: {e}") from None
    have = {tuple(int(d) for d in t.dims) for t in model.graph.initializer if len(t.dims) == 4}
    if not want <= have:
        raise BundleError(f"the weights of the dense graph {Path(path).name} in bundle {bundle.name} do not fit "
                          f"architecture {arch.notation} of its manifest (missing layers of shapes "
                          f"{sorted(want - have)})")


def _onnxruntime_installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def session_options(threads: int | None = None):
    from .runtime import onnxruntime

    ort = onnxruntime()

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    opts.intra_op_num_threads = int(threads or cores)
    opts.inter_op_num_threads = 1
    # no busy-waiting between operators: the reading threads (and anything else on the machine) need the
    # cores the pool would spin on (scripts/profile_dense_cpu.py compares); GEODRAIN_ORT_SPINNING=1 allows it
    spin = "1" if os.environ.get("GEODRAIN_ORT_SPINNING") == "1" else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return opts


def logit(p: float) -> float:
    p = min(max(float(p), 1e-12), 1 - 1e-12)
    return float(np.log(p / (1 - p)))


class OrtDenseEngine:
    """Runs a prepared dense graph on each block (CPU).

    With the int8 graph and a detection ``threshold``, every window whose int8 crossing logit comes within
    ``margin`` of the threshold's logit (or above it) is scored again by the fp32 graph, on the smallest
    tiles of the block that hold such windows (:meth:`rescore`). The windows that can pass the threshold, and
    so every score, box and position that reaches the output, are then the fp32 ones, as long as int8 is
    never off by more than ``margin`` (the bundle's tuned ``rescore_margin_logit``, a multiple of the largest
    int8 error measured when it was prepared): int8 only decides, with a wide margin, which windows are
    clearly below the threshold. Windows it leaves out keep their int8 scores (all below the threshold).
    """

    name = "dense"

    def __init__(self, bundle, config, grid: WindowGrid, block_px: int = 1024, graph: str | Path | None = None,
                 threshold: float | None = None):
        from .runtime import onnxruntime

        ort = onnxruntime()

        if grid.stride % FEATURE_STRIDE:
            raise DeviceError(f"the dense engine needs a stride that is a multiple of {FEATURE_STRIDE} px "
                              f"(got {grid.stride}); use --stride 8, 16, 24 … or --engine chip")
        if config.precision not in ONNX_PRECISIONS:
            raise DeviceError(f"the dense ONNX graph runs in fp32 or int8, not {config.precision}")
        self.config = config
        self.grid = grid
        self.block_px = block_px
        found = (Path(graph), grid.stride) if graph is not None else _graph(bundle, grid.stride, config.precision)
        self._tmp = None
        if found is None:
            if config.precision != "fp32":
                raise DeviceError(f"bundle {bundle.name} has no {config.precision} dense graph for stride "
                                  f"{grid.stride} px (prepare one with scripts/prepare_dense.py)")
            found = (self._export(bundle, grid.stride), grid.stride)
        path, stride = found
        check_graph_fits(bundle, path)
        self.every = grid.stride // stride     # a finer graph's windows: keep every k-th row and column
        self.graph = path
        self.session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        self._float_input = self.session.get_inputs()[0].type != "tensor(uint8)"
        self.side = grid.size + 2 * grid.context
        self.rescored = 0            # windows scored again in fp32, and in how many tiles
        self.rescore_tiles = 0
        self._exact = None
        self.rescore_logit = None
        int8 = dense_settings(bundle, "cpu").get("int8", {})
        if config.precision == "int8" and threshold is not None and int8.get("rescore", True):
            margin = float(int8.get("rescore_margin_logit", DEFAULT_RESCORE_MARGIN))
            exact = _graph(bundle, grid.stride, "fp32")
            if exact is None:
                raise DeviceError(f"bundle {bundle.name} has an int8 dense graph for stride {grid.stride} px but "
                                  "no fp32 graph to score the windows near the threshold with")
            check_graph_fits(bundle, exact[0])
            self._exact = ort.InferenceSession(str(exact[0]), session_options(), providers=["CPUExecutionProvider"])
            self._exact_every = grid.stride // exact[1]
            self.rescore_logit = logit(threshold) - margin

    def _export(self, bundle, stride_px: int) -> Path:
        """The fp32 graph for a stride the bundle was not prepared for, exported into a temporary folder."""
        import tempfile

        from .prepare import export_dense_graph, uint8_input

        self._tmp = tempfile.TemporaryDirectory(prefix="geodrain-dense-")
        path = Path(self._tmp.name) / graph_name(stride_px, "fp32")
        export_dense_graph(bundle.model, stride_px, path)
        uint8_input(path)
        return path

    def scores(self, data: np.ndarray) -> np.ndarray:
        """(bands, H, W) uint8 block -> (5, n_rows, n_cols) float32 for every window the graph computes."""
        x = data[None].astype(np.float32) if self._float_input else np.ascontiguousarray(data[None], np.uint8)
        out = self.session.run([OUTPUT], {INPUT: x})[0][0]
        return out if self.every == 1 else np.ascontiguousarray(out[:, ::self.every, ::self.every])

    def rescore(self, data: np.ndarray, out: np.ndarray, keep: np.ndarray) -> None:
        """Score again in fp32, in place, the windows of ``out`` near or above the threshold.

        The block's window grid is cut into squares of ``RESCORE_TILE`` windows; in each square that holds
        such windows, the bounding box of those windows is scored as one tile (the windows cluster around
        crossings and road junctions, and one tile pays the trunk's halo once for all of them).
        """
        nr, nc = keep.shape
        near = keep & (out[0, :nr, :nc] >= self.rescore_logit)
        if not near.any():
            return
        step, t = self.grid.stride, RESCORE_TILE
        for tr in range(0, nr, t):
            for tc in range(0, nc, t):
                sub = near[tr:tr + t, tc:tc + t]
                if not sub.any():
                    continue
                rows, cols = np.nonzero(sub.any(axis=1))[0], np.nonzero(sub.any(axis=0))[0]
                r0, r1 = tr + rows[0], tr + rows[-1] + 1
                c0, c1 = tc + cols[0], tc + cols[-1] + 1
                tile = data[:, r0 * step:(r1 - 1) * step + self.side, c0 * step:(c1 - 1) * step + self.side]
                exact = self._exact.run([OUTPUT], {INPUT: np.ascontiguousarray(tile[None], np.uint8)})[0][0]
                k = self._exact_every
                out[:, r0:r1, c0:c1] = exact[:, ::k, ::k][:, :r1 - r0, :c1 - c0]
                self.rescored += int((r1 - r0) * (c1 - c0))
                self.rescore_tiles += 1

    def submit(self, block: Block) -> PendingScores:
        rows, cols = np.nonzero(block.keep)
        grows, gcols = rows + block.plan.row0, cols + block.plan.col0
        if len(rows) == 0:
            return PendingScores(grows, gcols, None)
        out = self.scores(block.data)
        if out.shape[1] < block.plan.nrows or out.shape[2] < block.plan.ncols:
            raise RuntimeError(f"dense graph returned {out.shape[1:]} windows for a block of "
                               f"{(block.plan.nrows, block.plan.ncols)}")
        if self._exact is not None:
            self.rescore(block.data, out, block.keep)
        return PendingScores(grows, gcols, np.ascontiguousarray(out[:, rows, cols].T))

    def stats(self) -> dict:
        if self._exact is None:
            return {}
        return {"rescore_above_logit": self.rescore_logit, "rescored_windows": int(self.rescored),
                "rescore_tiles": int(self.rescore_tiles)}

    def run(self, block: Block) -> WindowScores:
        return self.submit(block).result()

    def synchronize(self) -> None:
        pass
