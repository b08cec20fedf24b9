#!/usr/bin/env python
"""Start-up cost of the command line: `geodrain --version` and `--help` wall time in fresh processes, what
`python -X importtime` attributes to `import geodrain.cli`, and which heavy packages a real `geodrain detect`
(on a small generated raster) and `--version` import.

Fresh processes each time (the operating system's file cache is warm after the first); medians of --repeats.
On a loaded machine the wall times wander; the module lists do not. ``--baseline DIR`` also times a folder
holding another version of the package (e.g. ``git archive REV geodrain | tar -x -C DIR``), interleaved with
this one, and reports the ratio.

    python scripts/import_time.py --repeats 7 --baseline /tmp/geodrain-old
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine  # noqa: E402

NEUTRAL = tempfile.gettempdir()   # run from outside the checkout: `python -m` puts the working folder first
HEAVY = ("torch", "numpy", "rasterio", "geopandas", "pandas", "scipy", "shapely", "pyogrio", "onnx",
         "onnxruntime", "optuna", "matplotlib", "tqdm")

# runs a command through the click group in this process, then prints the heavy top-level packages imported
PROBE = """
import json, sys
from geodrain.cli import cli
try:
    cli(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = %r
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))
""" % (HEAVY,)


def wall(cmd: list[str], repeats: int, env: dict | None = None) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=NEUTRAL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def imported(args: list[str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], check=True, capture_output=True, text=True,
                         cwd=NEUTRAL)
    return json.loads(out.stdout.strip().splitlines()[-1])


def importtime(module: str, top: int = 5) -> tuple[float, list[tuple[float, str]]]:
    """Cumulative import time of ``module`` (ms) and its slowest direct imports, from -X importtime."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], check=True, cwd=NEUTRAL,
                         capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line or "cumulative" in line:
            continue
        _, cum, name = (p.strip() for p in line.split("|"))
        rows.append((int(cum) / 1e3, name))
    total = next((ms for ms, name in rows if name == module), float("nan"))
    return total, sorted(rows, reverse=True)[1:top + 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--size", type=int, default=512, help="side (px) of the scene detect runs on")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a folder holding another version of the geodrain package, timed the same way")
    args = ap.parse_args()
    exe = [sys.executable, "-m", "geodrain.cli"]
    base_env = None
    if args.baseline is not None:
        base_env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(args.baseline.resolve()), *filter(None, [os.environ.get("PYTHONPATH")])]))
    print(f"# import_time on {machine()}, {args.repeats} fresh processes each (median)")
    print(f"{'':<22} {'this':>8}" + (f" {'baseline':>9} {'ratio':>6}" if base_env else ""))
    for name, cmd in (("python -c pass", [sys.executable, "-c", "pass"]), ("geodrain --version", [*exe, "--version"]),
                      ("geodrain --help", [*exe, "--help"])):
        this, base = [], []
        for _ in range(args.repeats):        # interleaved, so both see the same load
            this.append(wall(cmd, 1))
            if base_env:
                base.append(wall(cmd, 1, base_env))
        line = f"{name:<22} {statistics.median(this):7.3f}s"
        if base:
            b = statistics.median(base)
            line += f" {b:8.3f}s {statistics.median(this) / b:6.2f}"
        print(line)
    total, slowest = importtime("geodrain.cli")
    print(f"\n-X importtime: import geodrain.cli {total:.1f} ms cumulative; slowest: "
          + ", ".join(f"{n} {ms:.1f} ms" for ms, n in slowest))
    print(f"\nheavy packages imported by geodrain --version: {imported(['--version']) or 'none'}")
    with tempfile.TemporaryDirectory() as tmp:
        scene = Path(tmp) / "scene"
        subprocess.run([*exe, "synth", str(scene), "--seed", "3", "--size", str(args.size), "-q"], check=True)
        used = imported(["detect", str(scene / "naip.tif"), "-o", str(Path(tmp) / "c.gpkg"), "-q"])
    print(f"heavy packages imported by geodrain detect: {', '.join(used)}")
    print(f"not imported by detect: {', '.join(sorted(set(HEAVY) - set(used))) or 'none'}")


if __name__ == "__main__":
    main()
