#!/usr/bin/env python
"""Where the dense engine's time goes on a CPU, at the bundle's stride, on one generated scene.

* end to end: `detect` as run in a fresh process, split by detect's own timers (imports, set-up to the first
  block, waiting for reads, engine, merge, write) for each engine variant;
* the torch engine on one block, layer by layer (normalization, each conv/ReLU/pool of the trunk, the SPP
  pooling gathered per window as before, the FC head on the gathered matrix, the head as convolutions);
* the whole block with torch in channels-last fp32 and in bf16 (oneDNN), the alternatives to ONNX Runtime;
* each ONNX Runtime graph on the same block, node by node from ONNX Runtime's profiler, summed into the
  trunk's three convolutions, its pools, the head's convolutions and pools, and the rest; the int8 graph on
  a larger block (less halo recomputed per window).

    python scripts/profile_dense_cpu.py --work runs/bench --size 2048 --seed 202
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, run_child, table  # noqa: E402

CHILD = """
import json, os, sys, time
def age():
    with open('/proc/self/stat') as f:
        start = int(f.read().rsplit(')', 1)[1].split()[19]) / os.sysconf('SC_CLK_TCK')
    with open('/proc/uptime') as f:
        return float(f.read().split()[0]) - start
opts = json.loads(sys.argv[3])
os.environ.update(opts.pop("_env", {}))
from geodrain.cli import cli
from geodrain.detect import DetectOptions, detect
t = age()
r = detect(sys.argv[1], sys.argv[2], options=DetectOptions(overwrite=True, **opts), progress=False)
print(json.dumps({"imports_s": t, **r.timings, "detect_s": r.seconds, "process_s": age(), "run": {**r.config, **r.engine_stats}}))
"""

VARIANTS = {"tuned (int8 + rescoring)": {},
            "tuned, ONNX Runtime threads spinning": {"_env": {"GEODRAIN_ORT_SPINNING": "1"}},
            "onnx fp32": {"backend": "onnx", "precision": "fp32"}, "torch fp32": {"backend": "torch"}}


def ort_profile(path: Path, block: np.ndarray, repeats: int, work: Path) -> dict[str, float]:
    import onnxruntime as ort

    from geodrain.infer.dense_ort import INPUT, session_options

    opts = session_options()
    opts.enable_profiling = True
    opts.profile_file_prefix = str(work / f"ortprof_{path.stem}")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(block[None], np.uint8)
    sess.run(None, {INPUT: x})
    for _ in range(repeats):
        sess.run(None, {INPUT: x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    parts: dict[str, float] = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        name, op = e["name"][:-len("_kernel_time")], e["args"].get("op_name", "")
        trunk = "/trunk/" in name
        if "Conv" in op:
            # ONNX Runtime names a convolution fused with its ReLU after the ReLU
            layer = next((f"trunk conv {i + 1}" for i, ks in enumerate((("trunk.0/", "trunk.1/"),
                                                                       ("trunk.3/", "trunk.4/"),
                                                                       ("trunk.6/", "trunk.7/")))
                          if any(k in name for k in ks)), None)
            key = layer if trunk and layer else "head convolutions" if not trunk else "trunk conv ?"
        elif "MaxPool" in op:
            key = "trunk max pools" if trunk else "head max pools (SPP)"
        else:
            key = "other (quantize, reorder, add, slice ...)"
        parts[key] += e["dur"] / 1e3 / (repeats + 1)     # ms per run (the warm-up run included)
    return dict(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-profile")
    ap.add_argument("--seed", type=int, default=202)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--block", type=int, default=1148, help="block side (1148: 128² windows at stride 8)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    import rasterio
    import torch

    from geodrain.infer.dense_ort import prepared_graph
    from geodrain.model.bundle import load_bundle
    from geodrain.model.sppnet import FEATURE_STRIDE, pool_windows
    from geodrain.synth import generate_scene

    d = args.work / f"scene_{args.seed}_{args.size}"
    if not (d / "naip.tif").exists():
        generate_scene(d, seed=args.seed, size=args.size, overwrite=True)
    raster = d / "naip.tif"
    bundle = load_bundle()
    stride = bundle.stride_px
    load0 = os.getloadavg()[0]

    e2e = []
    for rep in range(args.repeats):       # interleaved; the median of each variant is reported
        for name, opts in VARIANTS.items():
            res = run_child(CHILD, str(raster), str(args.work / "profile.gpkg"), json.dumps(opts))
            e2e.append({"variant": name, **{k: res.get(k, float("nan")) for k in (
                "imports_s", "first_block_s", "read_wait_s", "infer_s", "merge_s", "write_s", "detect_s",
                "process_s")}, "rescored": res["run"].get("rescored_windows", "")})
    e2e = [{"variant": name, **{k: statistics.median(r[k] for r in e2e if r["variant"] == name)
                                for k in e2e[0] if k not in ("variant", "rescored")},
            "rescored": next(r["rescored"] for r in e2e if r["variant"] == name)} for name in VARIANTS]

    with rasterio.open(raster) as src:
        block = src.read(window=((0, args.block), (0, args.block)), boundless=True, fill_value=0)
    model = bundle.model.eval()
    x = torch.from_numpy(block)[None].float()
    rows, cols = model.window_grid(x.shape[-2], x.shape[-1], stride)

    def ms(fn) -> float:
        fn()
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    layers = []
    with torch.inference_mode():
        h = x
        layers.append({"part": "normalize", "ms": ms(lambda: model.normalize(x))})
        h = model.normalize(x)
        for i, layer in enumerate(model.trunk):
            kind = type(layer).__name__
            if kind == "ReLU":     # in place in the model: time it out of place on a copy
                layers.append({"part": f"trunk {i} ReLU", "ms": ms(lambda: torch.relu(h))})
            else:
                layers.append({"part": f"trunk {i} {kind}", "ms": ms(lambda layer=layer, h=h: layer(h))})
            h = layer(h)
        f = h
        step = stride // FEATURE_STRIDE
        layers.append({"part": "SPP pooling, gathered per window (before)", "ms": ms(
            lambda: pool_windows(f, model.arch.levels, model.context_cells, step, rows, cols))})
        v = pool_windows(f, model.arch.levels, model.context_cells, step, rows, cols)
        layers.append({"part": f"FC head on the gathered {tuple(v.shape)} matrix (before)", "ms": ms(lambda: model.head(v))})
        layers.append({"part": "SPP + FC head as convolutions (now)", "ms": ms(lambda: model.head_dense(f, stride, rows, cols))})
        # whole-block alternatives with torch (oneDNN): channels-last fp32 and bf16 (AVX512_BF16)
        import copy

        layers.append({"part": "whole block, fp32 (now)", "ms": ms(lambda: model.forward_dense(x, stride))})
        cl = copy.deepcopy(model).to(memory_format=torch.channels_last)
        xcl = x.contiguous(memory_format=torch.channels_last)
        layers.append({"part": "whole block, fp32 channels-last", "ms": ms(lambda: cl.forward_dense(xcl, stride))})
        bf = copy.deepcopy(model).to(torch.bfloat16).to(memory_format=torch.channels_last)
        xbf = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        ref = model.forward_dense(x, stride)[..., 0]
        d_bf = float((bf.forward_dense(xbf, stride)[..., 0].float() - ref).abs().max())
        layers.append({"part": f"whole block, bf16 channels-last (max logit difference {d_bf:.2f})",
                       "ms": ms(lambda: bf.forward_dense(xbf, stride))})
    graphs = {}
    for precision in ("fp32", "int8"):
        path = prepared_graph(bundle, stride, precision)
        if path is not None:
            graphs[precision] = ort_profile(path, block, args.repeats, args.work)
    # larger blocks recompute less halo (a 1024² block's windows read 1148² px, 26 % more)
    import onnxruntime as ort

    from geodrain.infer.dense_ort import INPUT, session_options

    sizes = []
    int8 = prepared_graph(bundle, stride, "int8")
    if int8 is not None:
        sess = ort.InferenceSession(str(int8), session_options(), providers=["CPUExecutionProvider"])
        with rasterio.open(raster) as src:
            for side in (args.block, args.block + 512):
                if side > min(src.width, src.height):
                    continue
                b = src.read(window=((0, side), (0, side)))[None]
                n = ((side - model.input_px) // stride + 1) ** 2
                t = ms(lambda b=b: sess.run(None, {INPUT: b}))
                sizes.append({"block_px": side, "windows": n, "ms": t, "us_per_window": t * 1e3 / n})
    keys = sorted({k for g in graphs.values() for k in g})
    ort_rows = [{"part": k, **{f"{p}_ms": g.get(k, 0.0) for p, g in graphs.items()}} for k in keys]
    ort_rows.append({"part": "total", **{f"{p}_ms": sum(g.values()) for p, g in graphs.items()}})

    print(f"# profile_dense_cpu on {machine()}; load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} "
          "at the end")
    print(f"scene {raster} ({args.size}² px), stride {stride} px, {bundle.model_id}\n")
    print(f"end to end in a fresh process, by detect's timers (imports: the CLI's, before detect is called), "
          f"median of {args.repeats} interleaved:")
    print(table(e2e, ["variant", "imports_s", "first_block_s", "read_wait_s", "infer_s", "merge_s", "write_s",
                      "detect_s", "process_s", "rescored"]))
    print(f"\nthe torch engine on one {args.block}² block ({rows} x {cols} windows), median of {args.repeats}:")
    print(table(layers, ["part", "ms"]))
    print(f"\nthe ONNX Runtime graphs on the same block, ms per run by ONNX Runtime's profiler:")
    print(table(ort_rows, ["part"] + [f"{p}_ms" for p in graphs]))
    if sizes:
        print("\nthe int8 graph on larger blocks (less halo per window):")
        print(table(sizes, ["block_px", "windows", "ms", "us_per_window"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "end_to_end": e2e, "torch_block": layers,
                                         "ort_block": ort_rows, "int8_block_sizes": sizes}, indent=2))


if __name__ == "__main__":
    main()
