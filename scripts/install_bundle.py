#!/usr/bin/env python
"""Install a bundle trained elsewhere (e.g. on a GPU machine by scripts/recipes/gpu_deploy.sh) as a deployed bundle.

Copies the bundle folder to DEST (checksums verified on load), replaces the training machine's scene folders in
its provenance by the `geodrain synth` commands that regenerate them (scene folders named ``s<seed>``; the size
is --size), optionally records the architecture's row of an architecture-search leaderboard, and with
--default makes it the bundle `geodrain detect` uses.

    python scripts/install_bundle.py runs/gpu/bundle_b models/sppnet-k3-s3-f256 --size 4096 \\
        --leaderboard docs/results/h200/nas/leaderboard.csv --default
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import sys
from pathlib import Path

from geodrain.errors import OutputExistsError
from geodrain.model.bundle import load_bundle
from geodrain.output import atomic_folder, check_output_folder, write_text

SCENE = re.compile(r"(?:^|[\\/])s(\d+)[\\/]?$")


def synth_command(source: str, size: int) -> str:
    m = SCENE.search(source)
    return f"geodrain synth --seed {m.group(1)} --size {size}" if m else Path(source).name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--size", type=int, default=4096, help="side of the generated scenes (px)")
    ap.add_argument("--leaderboard", type=Path, default=None, help="leaderboard.csv of `geodrain nas`")
    ap.add_argument("--default", action="store_true", help="write the bundle's folder name to models/DEFAULT")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    load_bundle(args.src)                                   # checksums and manifest before copying
    try:
        check_output_folder(args.dest, args.overwrite)
    except OutputExistsError as e:
        sys.exit(f"{e} (use --overwrite)")
    with atomic_folder(args.dest) as tmp:                   # the installed bundle appears complete or not at all
        shutil.copytree(args.src, tmp, dirs_exist_ok=True)
        b = install(load_bundle(tmp), args)
    if args.default:
        write_text(args.dest.parent / "DEFAULT", args.dest.name + "\n")
    print(f"installed {b.model_id} at {args.dest}")


def install(b, args):
    """Rewrite the copied bundle's provenance (and leaderboard row) in its manifest."""
    data = dict(b.manifest["training"]["data"])
    for key in ("sources", "test_sources"):
        if key in data:
            data[key] = [synth_command(s, args.size) for s in data[key]]
    sections = {"training": {"data": data}}
    if args.leaderboard is not None:
        with open(args.leaderboard, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["key"] == b.arch.key]
        if rows:
            r = rows[0]
            sections["nas"] = {"leaderboard": args.leaderboard.as_posix(), "rank": int(r["rank"]),
                               "status": r["status"], "throughput_chips_s": float(r["throughput_chips_s"]),
                               "best_batch": int(r["best_batch"]), "latency_ms_b1": float(r["latency_ms_b1"]),
                               "params": int(r["params"])}
    b.update_manifest(**sections)
    return load_bundle(b.path)


if __name__ == "__main__":
    main()
