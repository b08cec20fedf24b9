#!/usr/bin/env python
"""Cost of detection's window stride: the same scene, model and engine at each stride, in one run.

Each stride runs `geodrain detect` in its own child process (so peak RSS is that run's), and is reported as
seconds, windows, chips/s and peak RSS, with ratios against the first stride given. A finer stride gives the
dense engine more windows to pool from the same convolved features; the convolutions, the bulk of the work
on a CPU, do not change.

    python scripts/bench_stride.py --strides 24,8 --size 4096 --device cpu
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detect import RSS_CHILD, scene  # noqa: E402
from benchlib import machine, run_child, table  # noqa: E402

from geodrain.model.bundle import load_bundle  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "geodrain-bench")
    ap.add_argument("--seed", type=int, default=202)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--model", default=None, help="bundle (default: the deployed one)")
    ap.add_argument("--engine", default="dense", choices=["chip", "dense"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--strides", default="24,8")
    ap.add_argument("--repeats", type=int, default=1, help="runs per stride, interleaved; the fastest is kept")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    bundle = load_bundle(args.model)
    raster = scene(args.work, args.seed, args.size)
    strides = [int(s) for s in args.strides.split(",")]
    best: dict[int, dict] = {}
    for _ in range(args.repeats):
        for stride in strides:
            res = run_child(RSS_CHILD, str(raster), str(args.work / f"stride_{stride}.gpkg"), args.model or "",
                            args.engine, args.device, str(stride))
            if stride not in best or res["seconds"] < best[stride]["seconds"]:
                best[stride] = {"stride_px": stride, **res}
    rows = [best[s] for s in strides]
    for row in rows:
        row["chips_per_s"] = row["windows"] / row["seconds"]
        row["time_ratio"] = row["seconds"] / rows[0]["seconds"]
        row["windows_ratio"] = row["windows"] / rows[0]["windows"]
        row["rss_ratio"] = row["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(f"# bench_stride on {machine()}: {bundle.model_id}, scene seed {args.seed} ({args.size}² px), "
          f"{args.engine} engine, device {args.device}, best of {args.repeats}")
    print(table(rows, ["stride_px", "seconds", "windows", "chips_per_s", "peak_rss_mb", "crossings", "time_ratio",
                       "windows_ratio", "rss_ratio"]))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "model": bundle.model_id, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
