"""Preparing the dense engine's ONNX Runtime graphs: export (fp32), int8 calibration, agreement with fp32.

Done once per bundle (``scripts/prepare_dense.py``), never at detection time: detection loads the prepared
graphs from the bundle (:mod:`geodrain.infer.dense_ort`).

* :func:`export_dense_graph` writes :class:`~geodrain.model.sppnet.DenseGraph` for one window stride with
  dynamic block height and width, and checks it against the torch dense path.
* :func:`quantize_dense_graph` makes the int8 graph with ONNX Runtime's static QDQ quantization: weights int8
  per output channel, activations uint8 per tensor with ranges measured (min/max) on calibration crops of
  generated scenes, the raw 8-bit input quantized exactly (scale 1, zero point 0). The FC layer's three
  per-level sums, its ReLU and the 5-output layer stay in float (:data:`FLOAT_OPS`): they are cheap and
  requantizing the logits costs the most accuracy for the least time.
* :func:`window_agreement` compares two graphs window by window on the same blocks.

Calibration crops must include crossings and hard negatives: activations peak there, and ranges measured on
random crops alone clip exactly the windows that decide detection (:func:`calibration_crops`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .dense_ort import INPUT, OUTPUT, session_options

CROP_PX = 388                 # calibration crops: 33 x 33 windows at stride 8
FLOAT_OPS = ("Add", "Relu")   # head ops kept in float (besides the output layer), see the module docstring


def export_dense_graph(model, stride_px: int, path: str | Path, check_px: int = 260) -> float:
    """Export the dense graph of ``model`` at ``stride_px``; returns max |onnx - torch dense| on a random block."""
    from .runtime import onnxruntime

    ort = onnxruntime()
    import torch

    from ..model.sppnet import FEATURE_STRIDE, DenseGraph

    if stride_px % FEATURE_STRIDE:
        raise ValueError(f"stride must be a multiple of {FEATURE_STRIDE} px, got {stride_px}")
    model = model.eval().cpu()
    graph = DenseGraph(model, stride_px // FEATURE_STRIDE).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, model.arch.bands, check_px, check_px + 24, generator=g) * 255
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (x,), str(path), input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {2: "height", 3: "width"}, OUTPUT: {2: "rows", 3: "cols"}},
                          opset_version=17, dynamo=False)
    # check on another block size than the one exported (the graph must not have kept fixed sizes)
    y = torch.rand(1, model.arch.bands, check_px + 8 * 5 + 3, check_px + 11, generator=g) * 255
    with torch.inference_mode():
        rows, cols = model.window_grid(y.shape[-2], y.shape[-1], stride_px)
        ref = model.forward_dense(y, stride_px)[0].numpy()
    sess = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT], {INPUT: y.numpy()})[0][0].transpose(1, 2, 0)[:rows, :cols]
    return float(np.abs(got - ref).max())


def uint8_input(path: str | Path) -> None:
    """Make a dense graph take the block's raw 8-bit pixels as they are read (uint8), in place.

    In the int8 graph the input's quantization (scale 1, zero point 0) is the identity on 0..255, so its
    QuantizeLinear node is dropped and the pixels feed its DequantizeLinear directly; an fp32 graph gets a
    Cast. Either way the engine hands over the block without a float copy.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    graph = model.graph
    (inp,) = [i for i in graph.input if i.name == INPUT]
    if inp.type.tensor_type.elem_type == TensorProto.UINT8:
        return
    quant = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == INPUT]
    if quant:
        q = quant[0]
        init = {i.name: i for i in graph.initializer}
        scale = onnx.numpy_helper.to_array(init[q.input[1]])
        zero = onnx.numpy_helper.to_array(init[q.input[2]])
        if float(scale) != 1.0 or int(zero) != 0 or zero.dtype != np.uint8:
            raise ValueError(f"the graph's input is quantized with scale {scale} zero point {zero}, not the "
                             "identity on 8-bit values")
        for n in graph.node:
            for k, name in enumerate(n.input):
                if name == q.output[0]:
                    n.input[k] = INPUT
        graph.node.remove(q)
    else:
        cast_out = f"{INPUT}_float"
        for n in graph.node:
            for k, name in enumerate(n.input):
                if name == INPUT:
                    n.input[k] = cast_out
        graph.node.insert(0, helper.make_node("Cast", [INPUT], [cast_out], to=TensorProto.FLOAT,
                                              name=f"{INPUT}_Cast"))
    inp.type.tensor_type.elem_type = TensorProto.UINT8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def calibration_crops(scenes: Sequence[str | Path], random_per_scene: int = 8, targets_per_scene: int = 10,
                      crop_px: int = CROP_PX, seed: int = 0) -> list[np.ndarray]:
    """Crops (bands, crop_px, crop_px) uint8 of generated scenes: random ones, and ones around true crossings
    and hard negatives (a random offset of up to 60 px from the crop's centre)."""
    import geopandas as gpd
    import pyogrio
    import rasterio
    from rasterio.windows import Window

    rng = np.random.default_rng(seed)
    crops = []
    for scene in scenes:
        scene = Path(scene)
        with rasterio.open(scene / "naip.tif") as src:
            def crop(row: int, col: int) -> np.ndarray:
                return src.read(window=Window(col, row, crop_px, crop_px), boundless=True, fill_value=0)

            for _ in range(random_per_scene):
                crops.append(crop(int(rng.integers(0, max(1, src.height - crop_px))),
                                  int(rng.integers(0, max(1, src.width - crop_px)))))
            truth = scene / "truth.gpkg"
            if truth.exists():
                inv = ~src.transform
                layers = [name for name, _ in pyogrio.list_layers(truth)]
                for layer in ("crossings", "hard_negatives"):
                    if layer not in layers:
                        continue
                    pts = gpd.read_file(truth, layer=layer).to_crs(src.crs).geometry
                    pick = rng.permutation(len(pts))[:targets_per_scene]
                    for k in pick:
                        c, r = inv * (pts.iloc[k].x, pts.iloc[k].y)
                        jr, jc = rng.integers(-60, 61, size=2)
                        crops.append(crop(int(r) - crop_px // 2 + int(jr), int(c) - crop_px // 2 + int(jc)))
    return crops


class _Reader:
    """ONNX Runtime's calibration data reader over a list of crops."""

    def __init__(self, crops: Iterable[np.ndarray]):
        self._it = iter(list(crops))

    def get_next(self):
        c = next(self._it, None)
        return None if c is None else {INPUT: c[None].astype(np.float32)}   # the graph before uint8_input

    def rewind(self):   # not needed by min/max calibration
        raise NotImplementedError


def quantize_dense_graph(fp32_path: str | Path, int8_path: str | Path, crops: Sequence[np.ndarray]) -> dict:
    """The int8 (QDQ) version of a dense graph, calibrated on ``crops``; returns the recipe as recorded."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    if not crops:
        raise ValueError("int8 calibration needs crops")
    model = onnx.load(str(fp32_path))
    convs = [n.name for n in model.graph.node if n.op_type == "Conv"]
    out_conv = next(n.name for n in model.graph.node if OUTPUT in n.output)
    # the head's float ops (the trunk's modules export under /trunk/)
    floats = [n.name for n in model.graph.node if n.op_type in FLOAT_OPS and not n.name.startswith("/trunk/")]
    exclude = sorted({out_conv, *floats})

    class Reader(_Reader, CalibrationDataReader):
        pass

    # ONNX Runtime 1.32's CalibMaxIntermediateOutputs drops the ranges of all but the last chunk of
    # crops: not used (min/max calibration keeps only two numbers per tensor and crop anyway)
    overrides = {INPUT: [{"scale": np.array(1.0, np.float32), "zero_point": np.array(0, np.uint8)}]}
    quantize_static(str(fp32_path), str(int8_path), Reader(crops), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
                    extra_options={"TensorQuantOverrides": overrides})
    return {"method": "onnxruntime static QDQ, MinMax calibration", "weights": "int8 per output channel",
            "activations": "uint8 per tensor", "input": "uint8 scale 1 zero point 0 (exact raw DN)",
            "float_nodes": exclude, "quantized_convs": [c for c in convs if c not in exclude],
            "calibration_crops": len(crops), "crop_px": int(crops[0].shape[-1])}


def graph_scores(path: str | Path, blocks: Sequence[np.ndarray], threads: int | None = None) -> list[np.ndarray]:
    from .runtime import onnxruntime

    ort = onnxruntime()

    sess = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    return [sess.run([OUTPUT], {INPUT: np.ascontiguousarray(b[None], dtype=np.uint8)})[0][0] for b in blocks]


def window_agreement(reference: Sequence[np.ndarray], other: Sequence[np.ndarray], threshold: float) -> dict:
    """Window-level differences of ``other`` from ``reference`` (lists of (5, rows, cols) outputs)."""
    thr = float(np.log(threshold / (1 - threshold)))
    d = np.concatenate([np.abs(o[0] - r[0]).ravel() for r, o in zip(reference, other)])
    box = np.concatenate([np.abs(o[1:] - r[1:]).ravel() for r, o in zip(reference, other)])
    above_ref = sum(int((r[0] > thr).sum()) for r in reference)
    flips = sum(int(((o[0] > thr) != (r[0] > thr)).sum()) for r, o in zip(reference, other))
    return {"windows": int(d.size), "logit_abs_diff_max": float(d.max()), "logit_abs_diff_p999":
            float(np.percentile(d, 99.9)), "logit_abs_diff_mean": float(d.mean()), "box_abs_diff_max":
            float(box.max()), "windows_above_threshold": above_ref, "windows_flipped": flips}


def file_size_mb(path: str | Path) -> float:
    return os.path.getsize(path) / 1e6
