#!/usr/bin/env python
"""Start-up cost of the command line: `geodrain --version` and `--help` wall time in fresh processes, what
`python -X importtime` attributes to `import geodrain.cli`, and which heavy packages a real `geodrain detect`
(on a small generated raster) and `--version` import.

Fresh processes each time (the operating system's file cache is warm after the first); medians of --repeats.
On a loaded machine the wall times wander; the module lists do not.

    python scripts/import_time.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine  # noqa: E402

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


def wall(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def imported(args: list[str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def importtime(module: str, top: int = 5) -> tuple[float, list[tuple[float, str]]]:
    """Cumulative import time of ``module`` (ms) and its slowest direct imports, from -X importtime."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], check=True,
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
    args = ap.parse_args()
    exe = [sys.executable, "-m", "geodrain.cli"]
    print(f"# import_time on {machine()}, {args.repeats} fresh processes each (median)")
    rows = [("python -c pass", wall([sys.executable, "-c", "pass"], args.repeats)),
            ("geodrain --version", wall([*exe, "--version"], args.repeats)),
            ("geodrain --help", wall([*exe, "--help"], args.repeats))]
    for name, s in rows:
        print(f"{name:<22} {s:.3f} s")
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
