#!/usr/bin/env python
"""geodrain against a TorchGeo pipeline on the same scene and model, in one run, at several window strides.

TorchGeo side (its own virtual environment, made by this script on first use: TorchGeo from PyPI beside the
CPU build of torch that geodrain pins): ``RasterDataset`` over the scene, ``GridGeoSampler`` of 132 px windows
(the 100 px window and the model's 16 px of context) at the stride, ``DataLoader`` with batch 64 and
``stack_samples``, each batch through the bundle's own SPPNet (``forward`` per chip). It is timed on a fixed
number of windows after a warm-up batch and extrapolated to all of the sampler's windows (at stride 8 the
whole scene takes about a quarter of an hour); the dataset's indexing time is added once.

geodrain side: ``geodrain detect`` as a user runs it (a new process: start-up, reading, the engine the
bundle's tuned settings select, merging, writing), timed from process start to written output, median of
--repeats runs.

torchvision: the TorchGeo datasets import torchvision, and PyPI's torchvision wheel carries a C++ extension
built for PyPI's CUDA torch, which does not load beside the CPU torch; torchvision's import then fails while
registering fake kernels for ``torchvision::nms`` and ``torchvision::qnms`` ("operator torchvision::nms does
not exist"). The TorchGeo child defines those two operator schemas (no kernels: a call would raise) before
importing torchvision, and says so in its output; the raster path calls no torchvision operator.

    python scripts/bench_peer.py --work runs/peer --size 2048 --strides 24,8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402

TORCH = "torch==2.13.0"              # the CPU build, as requirements/cpu.txt pins it
TORCHGEO = "torchgeo==0.8.1"         # the newest TorchGeo for Python 3.11
EXTRA = ["requests", "scipy"]   # requests: imported by torchgeo.datasets 0.8.1 but not declared by it;
#                                   scipy: the bundle loader reads calibrated scoring (geodrain.merge)

CHILD = r'''
import json, sys, time
t_start = time.perf_counter()
scene, model_path, stride, n_windows, batch, root = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
import torch
workaround = "none needed"
try:
    import torchvision  # noqa: F401
except RuntimeError as e:
    if "torchvision::nms does not exist" not in str(e):
        raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _shim = torch.library.Library("torchvision", "DEF")
    _shim.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _shim.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import torchvision  # noqa: F401
    workaround = ("torchvision's C++ extension does not load beside the CPU torch; defined the schemas of "
                  "torchvision::nms and torchvision::qnms (no kernels) before importing it")
import torchgeo
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset, stack_samples
from torchgeo.samplers import GridGeoSampler
sys.path.insert(0, root)
from geodrain.model.bundle import load_bundle

class Scene(RasterDataset):
    filename_glob = "naip.tif"
    is_image = True
    all_bands = ("red", "green", "blue", "nir")

model = load_bundle(model_path or None).model.eval()
side = model.input_px
t0 = time.perf_counter()
ds = Scene(paths=scene)
sampler = GridGeoSampler(ds, size=side, stride=stride)
loader = DataLoader(ds, batch_size=batch, sampler=sampler, collate_fn=stack_samples, num_workers=0)
setup_s = time.perf_counter() - t0
total = len(sampler)
it = iter(loader)
done = 0
with torch.inference_mode():
    x = next(it)["image"]
    model(x.float())                      # warm-up batch, not timed
    t0 = time.perf_counter()
    while done < n_windows:
        b = next(it, None)
        if b is None:
            break
        x = b["image"].float()
        assert x.shape[1:] == (4, side, side), x.shape
        model(x)
        done += x.shape[0]
    seconds = time.perf_counter() - t0
rate = done / seconds
print(json.dumps({"torchgeo": torchgeo.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                  "workaround": workaround, "windows_total": total, "windows_timed": done, "timed_s": seconds,
                  "windows_per_s": rate, "setup_s": setup_s, "extrapolated_s": setup_s + total / rate,
                  "process_s": time.perf_counter() - t_start, "threads": torch.get_num_threads()}))
'''


def ensure_venv(venv: Path) -> Path:
    """The TorchGeo environment: made (or completed) with pip on first use."""
    py = venv / "bin" / "python"
    check = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('torchgeo') and u.find_spec('requests') and u.find_spec('scipy') else 1)"
    if py.exists() and subprocess.run([str(py), "-c", check]).returncode == 0:
        return py
    print(f"making the TorchGeo environment {venv.name} ({TORCH}, {TORCHGEO})", flush=True)
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", TORCH, TORCHGEO, *EXTRA], check=True)
    return py


def scene(work: Path, seed: int, size: int) -> Path:
    from geodrain.synth import generate_scene

    d = work / f"scene_{seed}_{size}"
    if not (d / "naip.tif").exists():
        generate_scene(d, seed=seed, size=size, overwrite=True)
    return d


def geodrain_runs(raster: Path, out: Path, stride: int, model: str | None, repeats: int) -> dict:
    cmd = [sys.executable, "-m", "geodrain.cli", "detect", str(raster), "-o", str(out), "--overwrite", "-q",
           "--stride", str(stride)] + (["--model", model] if model else [])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": len(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-peer")
    ap.add_argument("--venv", type=Path, default=None, help="TorchGeo environment (default: WORK/venv-torchgeo)")
    ap.add_argument("--seed", type=int, default=202)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--model", default=None, help="bundle (default: the deployed one)")
    ap.add_argument("--strides", default="24,8")
    ap.add_argument("--windows", type=int, default=2048, help="TorchGeo windows timed per stride")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="geodrain detect runs per stride")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    py = ensure_venv((args.venv or args.work / "venv-torchgeo").resolve())
    d = scene(args.work, args.seed, args.size).resolve()
    model = str(Path(args.model).resolve()) if args.model else None
    rows, info = [], {}
    load0 = os.getloadavg()
    for stride in [int(s) for s in args.strides.split(",")]:
        child = subprocess.run([str(py), "-c", CHILD, str(d), model or "", str(stride), str(args.windows),
                                str(args.batch), str(ROOT)], capture_output=True, text=True, env={
                                    **os.environ, "PYTHONPATH": ""})
        if child.returncode != 0:
            raise RuntimeError(child.stderr[-3000:])
        tg = json.loads(child.stdout.strip().splitlines()[-1])
        gd = geodrain_runs(d / "naip.tif", (args.work / f"geodrain_s{stride}.gpkg").resolve(), stride, model,
                           args.repeats)
        info = {k: tg[k] for k in ("torchgeo", "torch", "torchvision", "workaround", "threads")}
        rows.append({"stride": stride, "torchgeo_windows": tg["windows_total"], "timed_windows": tg["windows_timed"],
                     "torchgeo_windows_per_s": tg["windows_per_s"], "torchgeo_setup_s": tg["setup_s"],
                     "torchgeo_s_extrapolated": tg["extrapolated_s"], "geodrain_s": gd["median_s"],
                     "geodrain_runs": gd["runs"], "ratio": tg["extrapolated_s"] / gd["median_s"]})
        print(json.dumps(rows[-1]), flush=True)
    print(f"# bench_peer on {machine()}; load average {load0[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    shown = args.work / f"scene_{args.seed}_{args.size}" / "naip.tif"    # as given: the log names no machine's folders
    print(f"scene {shown} ({args.size}² px); TorchGeo {info['torchgeo']} with torch {info['torch']} "
          f"and torchvision {info['torchvision']} ({info['threads']} threads): RasterDataset + GridGeoSampler of "
          f"132 px + DataLoader batch {args.batch} (stack_samples, no workers) -> the bundle's SPPNet chip by chip, "
          f"timed on {args.windows} windows after one warm-up batch and extrapolated to the sampler's windows "
          "(plus the dataset's indexing time); geodrain: `geodrain detect` end to end (process start to written "
          f"output, median of {args.repeats}) at the bundle's tuned settings")
    print(f"torchvision workaround: {info['workaround']}\n")
    print(table(rows, ["stride", "torchgeo_windows", "timed_windows", "torchgeo_windows_per_s",
                       "torchgeo_s_extrapolated", "geodrain_s", "ratio"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows, "torchgeo": info}, indent=2))


if __name__ == "__main__":
    main()
