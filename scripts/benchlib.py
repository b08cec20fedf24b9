"""Helpers shared by the benchmark scripts: big test rasters, peak memory of a child run, tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geodrain.memory import peak_rss_mb  # noqa: F401 - the benchmarks' peak memory


def tile_raster(src_path: str | Path, out: str | Path, factor: int, block: int = 512,
                threads: str = "ALL_CPUS") -> Path:
    """A ``factor`` x ``factor`` mosaic of one scene (alternate copies mirrored, so seams stay continuous),
    written tile by tile with bounded memory, tiled and DEFLATE-compressed like the source."""
    out = Path(out)
    with rasterio.open(src_path) as src:
        prof = src.profile.copy()
        h, w = src.height, src.width
        data = src.read()
    prof.update(width=w * factor, height=h * factor, tiled=True, blockxsize=block, blockysize=block,
                compress="deflate", predictor=2, BIGTIFF="IF_SAFER", NUM_THREADS=threads)
    with rasterio.open(out, "w", **prof) as dst:
        for i in range(factor):
            for j in range(factor):
                tile = data
                if i % 2:
                    tile = tile[:, ::-1, :]
                if j % 2:
                    tile = tile[:, :, ::-1]
                dst.write(np.ascontiguousarray(tile), window=Window(j * w, i * h, w, h))
        dst.descriptions = ("red", "green", "blue", "nir")[: prof["count"]]
    return out


def run_child(code: str, *args: str) -> dict:
    """Run ``python -c code args...`` and return its last JSON line plus its peak RSS (MB)."""
    t0 = time.perf_counter()
    path = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - t0
    return out


def table(rows: list[dict], cols: list[str]) -> str:
    """A markdown table of ``rows`` restricted to ``cols``."""
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    import platform

    import torch

    cpu = f"{os.cpu_count()} CPU cores"
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, {cpu}, torch {torch.__version__}"
    return f"{platform.processor() or platform.machine()}, {cpu}, torch {torch.__version__} (CPU)"
