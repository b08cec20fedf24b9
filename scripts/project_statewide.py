#!/usr/bin/env python
"""Projection: wall time and cost of detecting crossings in all of a state's NAIP on N workers.

From measured per-file figures: the 2-core CPU rate comes from ``scripts/bench_catalog.py``'s JSON (one
process on 16 files of 4096² px at 1 m); the GPU rate is a figure measured on an NVIDIA H200 and given here
(default: the dense engine end to end on a 1 m DEFLATE GeoTIFF, 183 model Mpx/s at stride 24, read-bound at
the 198 Mpx/s decode ceiling of 16 CPU threads; docs/performance.md). The state's NAIP is ~0.6 m DOQQs:
decoding costs per *native* pixel, (1 / 0.6)² = 2.8 native pixels per model pixel, and DOQQs overlap their
neighbours (a 3.75' x 3.75' quarter-quad plus a ~300 m buffer on each side), so the overlaps are read twice.
Workers are assumed to scale linearly (tasks are independent; the measured 2-worker CPU ratio is printed for
comparison). The price of a GPU-hour is an assumption (``--usd-per-gpu-hour``), not a measurement.

    python scripts/project_statewide.py --bench docs/results/cpu/bench_catalog.json --area-km2 200000
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def doqq_overlap_factor(lat_deg: float, buffer_m: float) -> float:
    """Area read per area owned: a 3.75' x 3.75' quarter-quad grown by ``buffer_m`` on each side."""
    ny = 3.75 / 60 * 111_320.0
    nx = ny * math.cos(math.radians(lat_deg))
    return (nx + 2 * buffer_m) * (ny + 2 * buffer_m) / (nx * ny)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", type=Path, required=True, help="bench_catalog.py --json output")
    ap.add_argument("--area-km2", type=float, default=200_000.0, help="the state (Nebraska: ~200,000 km²)")
    ap.add_argument("--lat", type=float, default=41.5, help="latitude of the state's middle (DOQQ width)")
    ap.add_argument("--native-gsd", type=float, default=0.6, help="NAIP pixel size (m)")
    ap.add_argument("--buffer-m", type=float, default=300.0, help="DOQQ buffer on each side (m)")
    ap.add_argument("--gpu-mpx-s", type=float, default=183.0,
                    help="H200 end-to-end model Mpx/s on 1 m input (docs/performance.md, dense engine)")
    ap.add_argument("--gpu-decode-mpx-s", type=float, default=198.0,
                    help="H200 machine's decode ceiling, native Mpx/s on 16 threads (docs/performance.md)")
    ap.add_argument("--usd-per-gpu-hour", type=float, default=4.0, help="assumed price of one H200-hour")
    ap.add_argument("--usd-per-cpu-core-hour", type=float, default=0.04, help="assumed price of a core-hour")
    ap.add_argument("--workers", default="1,4,16,64")
    ap.add_argument("--bench-overlap", type=int, default=300, help="overlap of the benchmark's files (px)")
    args = ap.parse_args()

    b = json.loads(args.bench.read_text())
    clean = next(r for r in b["runs"] if r["run"] == "1 process")
    dask = next(r for r in b["runs"] if r["run"].startswith("--workers"))
    km2_per_file = b["tile_px"] ** 2 / 1e6
    n = round(math.sqrt(b["files"]))
    side_m = (n - 1) * (b["tile_px"] - args.bench_overlap) + b["tile_px"]
    bench_km2 = side_m ** 2 / 1e6             # each location scored once, whatever the overlaps
    cpu_s_per_km2 = clean["seconds"] / bench_km2
    model_px = args.area_km2 * 1e6                                     # at the model's 1 m
    native_per_model = (1.0 / args.native_gsd) ** 2
    overlap = doqq_overlap_factor(args.lat, args.buffer_m)
    # GPU worker: the slower of the measured end-to-end rate (1 m input) and decoding 0.6 m natives
    decode_model_mpx_s = args.gpu_decode_mpx_s / native_per_model / overlap
    gpu_rate = min(args.gpu_mpx_s / overlap, decode_model_mpx_s)
    gpu_1m_rate = args.gpu_mpx_s / overlap
    print(f"# project_statewide: {args.area_km2:,.0f} km² of {args.native_gsd} m NAIP, DOQQ overlap factor "
          f"{overlap:.3f} (3.75' quarter-quads at {args.lat}° plus {args.buffer_m:.0f} m), "
          f"{native_per_model:.2f} native px per model px")
    print(f"# measured 2-core CPU: {clean['seconds']:.0f} s for {b['files']} files of {km2_per_file:.1f} km² "
          f"({bench_km2:.1f} km² without the overlaps) = {cpu_s_per_km2:.2f} s/km² (one process, the model "
          f"dominates: time follows the area scored); --workers 2 / 1 process time {dask['time_vs_1_process']:.2f}")
    print(f"# H200 worker: min({args.gpu_mpx_s:.0f} Mpx/s measured end to end / overlap = {gpu_1m_rate:.0f}, "
          f"decode {args.gpu_decode_mpx_s:.0f} native Mpx/s / {native_per_model:.2f} / overlap = "
          f"{decode_model_mpx_s:.0f}) = {gpu_rate:.0f} model Mpx/s")
    print(f"# prices assumed: ${args.usd_per_gpu_hour:.2f} per GPU-hour, ${args.usd_per_cpu_core_hour:.3f} per "
          "CPU core-hour")
    print()
    print("| workers | kind | wall time | worker-hours | cost (USD) |")
    print("|---|---|---|---|---|")
    cpu_hours = args.area_km2 * cpu_s_per_km2 / 3600
    workers = [int(v) for v in args.workers.split(",")]
    for w in workers:
        h = cpu_hours / w
        print(f"| {w} | 2-core CPU machine | {h:,.0f} h ({h / 24:,.1f} days) | {cpu_hours:,.0f} | "
              f"{cpu_hours * 2 * args.usd_per_cpu_core_hour:,.0f} |")
    for w in workers:
        for label, rate in (("H200, 0.6 m NAIP (decode-bound)", gpu_rate), ("H200, 1 m input", gpu_1m_rate)):
            sec = model_px / (rate * 1e6) / w
            print(f"| {w} | {label} | {sec / 3600:,.2f} h ({sec / 60:,.0f} min) | {sec * w / 3600:,.1f} | "
                  f"{sec * w / 3600 * args.usd_per_gpu_hour:,.0f} |")


if __name__ == "__main__":
    main()
