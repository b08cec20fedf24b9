#!/usr/bin/env python
"""Benchmark: `geodrain synth` of this working tree against the generator of an earlier git revision, in one
run, alternating (so that machine load hits both alike); reports each run's wall time, the layout time and
the ratio of the medians.

    python scripts/bench_synth.py --against ec3d02a --seed 1 --size 4096 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
from geodrain.synth.params import draw_params
from geodrain.synth.layout import build_layout
from geodrain.synth import generate_scene
seed, size, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(seed)
t1 = time.perf_counter()
build_layout(rng, draw_params(rng, seed, size))
layout = time.perf_counter() - t1
t2 = time.perf_counter()
res = generate_scene(out, seed=seed, size=size, overwrite=True)
print(json.dumps({"wall_s": time.perf_counter() - t2, "layout_s": layout, "crossings": res.crossings}))
"""


def run(pkg_root: Path, seed: int, size: int, out: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", CHILD, str(seed), str(size), str(out)], cwd=pkg_root,
                       capture_output=True, text=True, check=True, env={"PYTHONPATH": str(pkg_root),
                                                                          "PATH": "/usr/bin:/bin"})
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", required=True, help="git revision of the earlier generator")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = subprocess.run(["git", "archive", args.against, "geodrain"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        rows = []
        for k in range(args.repeat):
            for name, root in (("earlier", old), ("this tree", ROOT)):
                r = run(root, args.seed, args.size, Path(tmp) / f"scene_{name.replace(' ', '_')}")
                rows.append({"generator": name, "run": k + 1, **r})
        print(f"# bench_synth on {machine()}: seed {args.seed}, {args.size}², this tree against {args.against}")
        print(table(rows, ["generator", "run", "wall_s", "layout_s", "crossings"]))
        import numpy as np
        med = {n: float(np.median([r["wall_s"] for r in rows if r["generator"] == n])) for n in ("earlier", "this tree")}
        lay = {n: float(np.median([r["layout_s"] for r in rows if r["generator"] == n])) for n in ("earlier", "this tree")}
        print(f"median wall: earlier {med['earlier']:.2f} s, this tree {med['this tree']:.2f} s, ratio "
              f"{med['this tree'] / med['earlier']:.2f}; median layout: {lay['earlier']:.2f} s against "
              f"{lay['this tree']:.2f} s")


if __name__ == "__main__":
    t = time.perf_counter()
    main()
