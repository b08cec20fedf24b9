#!/usr/bin/env python
"""Window candidates (>= a probability floor) of a bundle on labelled scenes, cached under WORK/cands for the
watershed evaluation and the DEM experiments (one inference pass per bundle and scene).

    python scripts/experiments/extract_candidates.py models/sppnet-k3-s3-f256 runs/ws/scenes/s* --work runs/ws
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import scene_candidates

from geodrain.model.bundle import load_bundle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("scenes", nargs="+", type=Path)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--floor", type=float, default=0.5)
    ap.add_argument("--wait", action="store_true", help="wait for scenes that are still being generated")
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    for s in args.scenes:
        while args.wait and not (s / "scene.json").exists():
            time.sleep(5)
        c, seconds = scene_candidates(bundle, s, args.work, args.floor)
        print(f"{s.name}: {len(c)} candidates >= {args.floor:g}, {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main()
