#!/usr/bin/env python
"""Prepare a bundle's dense engine for ONNX Runtime on the CPU: fp32 and int8 graphs, checked, then selected.

1. export the dense graph at the stride (default: the bundle's) and check it against the torch dense path;
2. quantize it to int8 (static QDQ, ranges calibrated on crops of generated calibration scenes: random ones
   and ones around their crossings and hard negatives);
3. window level: both graphs against each other on blocks of the check scenes (logit differences, windows
   crossing the threshold);
4. detection level, the bound a variant must meet to be selected: on every check scene (default: the unseen
   seeds 9001-9003 at 4096²) `detect` finds the same crossings as with fp32 torch (as many, one-to-one within
   --match-m metres) and the same F1 at 10 m. Variants: the fp32 graph; the int8 graph alone; the int8 graph
   with the windows it puts within a margin of the threshold (twice its largest window-level error) scored
   again by the fp32 graph;
5. speed: the torch dense engine (with the SPP head gathered per window as before, and as convolutions),
   ONNX fp32 and ONNX int8 on the same block, interleaved, in this process;
6. unless --dry-run: both graphs into the bundle (checksummed) and ``inference.cpu.dense`` set to the variant
   that meets the bound in the least detection time over the check scenes.

    python scripts/prepare_dense.py models/sppnet-k3-s3-f256 --work runs/prepare
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import geopandas as gpd
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402

from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.evaluate import evaluate_files, match_points  # noqa: E402
from geodrain.infer.dense_ort import OUTPUT, INPUT, graph_name, session_options  # noqa: E402
from geodrain.infer.prepare import (calibration_crops, export_dense_graph, graph_scores,  # noqa: E402
                                    quantize_dense_graph, uint8_input, window_agreement)
from geodrain.model.bundle import load_bundle  # noqa: E402
from geodrain.synth import generate_scene  # noqa: E402


def scenes(work: Path, seeds: str, size: int) -> list[Path]:
    out = []
    for seed in [int(s) for s in seeds.split(",") if s]:
        d = work / f"scene_{seed}_{size}"
        if not (d / "naip.tif").exists():
            generate_scene(d, seed=seed, size=size, overwrite=True)
        out.append(d)
    return out


def blocks_of(scene: Path, side: int, n: int) -> list[np.ndarray]:
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(scene / "naip.tif") as src:
        step = max(1, (min(src.height, src.width) - side) // max(1, n - 1))
        return [src.read(window=Window(k * step, k * step, side, side), boundless=True, fill_value=0)
                for k in range(n)]


def detection_agreement(candidate: gpd.GeoDataFrame, reference: gpd.GeoDataFrame, match_m: float) -> dict:
    a = np.c_[candidate.geometry.x, candidate.geometry.y] if len(candidate) else np.zeros((0, 2))
    b = np.c_[reference.geometry.x, reference.geometry.y] if len(reference) else np.zeros((0, 2))
    m = match_points(a, b, match_m)
    return {"crossings": len(a), "reference_crossings": len(b), "matched": len(m.distances),
            "max_shift_m": float(np.max(m.distances)) if len(m.distances) else 0.0,
            "same": len(a) == len(b) == len(m.distances)}


def speed(bundle, stride: int, graphs: dict[str, Path], block: np.ndarray, repeats: int) -> list[dict]:
    """Torch dense fp32 (the engine before) and each graph on one block, interleaved."""
    import onnxruntime as ort

    model = bundle.model.eval()
    x = torch.from_numpy(block)[None].float()
    rows, cols = model.window_grid(x.shape[-2], x.shape[-1], stride)
    runs = {"torch fp32 gather head": lambda: model.head_dense_gather(model.features(x), stride, rows, cols),
            "torch fp32": lambda: model.forward_dense(x, stride)}
    for name, path in graphs.items():
        sess = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        xn = np.ascontiguousarray(block[None], np.uint8)
        runs[f"onnx {name}"] = (lambda s=sess, v=xn: s.run([OUTPUT], {INPUT: v}))
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.inference_mode():
        for fn in runs.values():
            fn()
        for _ in range(repeats):
            for k, fn in runs.items():
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["torch fp32 gather head"])
    px = block.shape[1] * block.shape[2]
    return [{"variant": k, "median_s": statistics.median(v), "min_s": min(v), "mpx_s": px / statistics.median(v) / 1e6,
             "speedup_vs_gather": base / statistics.median(v)} for k, v in times.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", default=None)
    ap.add_argument("--stride", type=int, default=None, help="window stride (px; default: the bundle's)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-prepare")
    ap.add_argument("--calibration-seeds", default="8001,8002,8003,8004")
    ap.add_argument("--calibration-size", type=int, default=2048)
    ap.add_argument("--check-seeds", default="9001,9002,9003")
    ap.add_argument("--check-size", type=int, default=4096)
    ap.add_argument("--match-m", type=float, default=2.0,
                    help="int8 and fp32 crossings are the same when they pair up one-to-one within this distance")
    ap.add_argument("--block", type=int, default=1148, help="block side for the window and speed checks")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dry-run", action="store_true", help="check and report, do not change the bundle")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.bundle)
    stride = args.stride or bundle.stride_px
    print(f"# prepare_dense {bundle.model_id}, stride {stride} px, on {machine()}", flush=True)
    out = args.work / "graphs"
    out.mkdir(exist_ok=True)
    files = {p: out / graph_name(stride, p) for p in ("fp32", "int8")}

    parity = export_dense_graph(bundle.model, stride, files["fp32"])
    print(f"fp32 graph: max |onnx - torch dense| {parity:.2e} on a random block", flush=True)
    if parity > 1e-3:
        sys.exit(f"prepare_dense: the exported graph differs from torch by {parity:.2e}")
    cal = scenes(args.work, args.calibration_seeds, args.calibration_size)
    crops = calibration_crops(cal)
    t0 = time.perf_counter()
    recipe = quantize_dense_graph(files["fp32"], files["int8"], crops)
    print(f"int8 graph: {len(crops)} calibration crops of {recipe['crop_px']} px from {len(cal)} scenes "
          f"({args.calibration_seeds}), {time.perf_counter() - t0:.0f} s; float nodes {recipe['float_nodes']}",
          flush=True)

    for f in files.values():
        uint8_input(f)
    checks = scenes(args.work, args.check_seeds, args.check_size)
    blocks = [b for s in checks for b in blocks_of(s, args.block, 2)]
    ref = graph_scores(files["fp32"], blocks)
    win = window_agreement(ref, graph_scores(files["int8"], blocks), bundle.threshold)
    print("window level, int8 against fp32 on " f"{len(blocks)} blocks of {args.block}² px of the check scenes: "
          + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in win.items()), flush=True)

    margin = max(2.0, math.ceil(4 * win["logit_abs_diff_max"]) / 2)
    print(f"int8 windows within {margin:g} logits of the threshold or above it are scored again in fp32 (twice "
          "the largest int8 error above, rounded up to 0.5, at least 2)", flush=True)
    graphs = {str(stride): {p: f.name for p, f in files.items()}}

    # detection level, on a copy of the bundle holding the graphs
    variants = {"torch fp32": ("torch", "fp32", True), "onnx fp32": ("onnx", "fp32", True),
                "onnx int8 alone": ("onnx", "int8", False), "onnx int8 + fp32 rescoring": ("onnx", "int8", True)}
    tmp = Path(tempfile.mkdtemp(prefix="geodrain-prepare-", dir=args.work))
    rows = []
    try:
        copy = tmp / bundle.path.name
        shutil.copytree(bundle.path, copy)
        trial = load_bundle(copy)
        trial.manifest.get("inference", {}).get("cpu", {}).pop("dense", None)
        trial.add_files({f.name: f for f in files.values()}, inference={"cpu": {"dense": {
            "backend": "onnx", "precision": "fp32", "graphs": graphs, "arch": bundle.arch.notation,
            "int8": {"rescore": True, "rescore_margin_logit": margin}}}})
        for s in checks:
            outs = {}
            for name, (backend, precision, rescore) in variants.items():
                trial.update_manifest(inference={"cpu": {"dense": {"int8": {"rescore": rescore}}}})
                trial = load_bundle(copy)
                path = args.work / f"{s.name}_{name.replace(' ', '_').replace('+', 'and')}.gpkg"
                r = detect(s / "naip.tif", path, model=trial, progress=False,
                           options=DetectOptions(engine="dense", device="cpu", backend=backend, precision=precision,
                                                 stride=stride, overwrite=True))
                ev, _ = evaluate_files(path, s / "truth.gpkg", 10.0)
                outs[name] = gpd.read_file(path)
                row = {"scene": s.name, "variant": name, "seconds": r.seconds, "crossings": len(r.crossings),
                       "f1": ev.f1, "precision": ev.precision, "recall": ev.recall,
                       "rescored_windows": r.config.get("rescored_windows", ""), "windows": r.evaluated}
                if name == "torch fp32":
                    ref_f1 = ev.f1
                else:
                    row.update(detection_agreement(outs[name], outs["torch fp32"], args.match_m))
                    row["f1_equal"] = ev.f1 == ref_f1
                rows.append(row)
                print(json.dumps(row, default=str), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(rows, ["scene", "variant", "seconds", "crossings", "f1", "matched", "max_shift_m", "same",
                       "f1_equal", "rescored_windows"]))
    meets = {v: all(r.get("same", True) and r.get("f1_equal", True) for r in rows if r["variant"] == v)
             for v in variants}
    total = {v: sum(r["seconds"] for r in rows if r["variant"] == v) for v in variants}

    sp = speed(bundle, stride, files, blocks[0], args.repeats)
    print(f"\nspeed of the graphs alone on one {args.block}² block ({args.repeats} interleaved repeats):")
    print(table(sp, ["variant", "median_s", "min_s", "mpx_s", "speedup_vs_gather"]))

    best = min((v for v in variants if meets[v]), key=lambda v: total[v])
    backend, precision, rescore = variants[best]
    summary = [{"variant": v, "detect_s_all_scenes": total[v], "speedup_vs_torch": total["torch fp32"] / total[v],
                "meets_bound": meets[v]} for v in variants]
    print(f"\nthe bound: the same crossings as fp32 torch (one-to-one within {args.match_m} m) and the same F1 at "
          f"10 m on {args.check_seeds} ({args.check_size}²)")
    print(table(summary, ["variant", "detect_s_all_scenes", "speedup_vs_torch", "meets_bound"]))
    print(f"selected for the CPU: {best} (the fastest that meets the bound)")
    entry = {"backend": backend, "precision": precision, "graphs": graphs, "arch": bundle.arch.notation,
             "int8": {"rescore": rescore, "rescore_margin_logit": margin, "recipe": recipe,
                      "window_agreement": win, "meets_bound_alone": meets["onnx int8 alone"],
                      "meets_bound_with_rescoring": meets["onnx int8 + fp32 rescoring"],
                      "calibration_scenes": args.calibration_seeds},
             "bound": f"the same crossings as fp32 torch (one-to-one within {args.match_m} m) and the same F1 at "
                      f"10 m on scenes {args.check_seeds} at {args.check_size}²",
             "detection_check": rows, "summary": summary, "speed": sp, "block_px": args.block,
             "measured_with": "scripts/prepare_dense.py", "machine": machine(),
             "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if not args.dry_run:
        bundle.manifest.get("inference", {}).get("cpu", {}).pop("dense", None)   # replaced, not merged
        bundle.add_files({f.name: f for f in files.values()}, inference={"cpu": {"dense": entry}})
        print(f"wrote {', '.join(f.name for f in files.values())} and inference.cpu.dense into {bundle.path}")
    if args.json:
        args.json.write_text(json.dumps(entry, indent=2, default=str))


if __name__ == "__main__":
    main()
