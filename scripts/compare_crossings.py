#!/usr/bin/env python
"""Are two `geodrain detect` outputs the same detections? Coordinates, scores, window counts, sizes and the run
metadata (creation time and runtime aside) compared exactly, for checking that a change keeps detection as it
was: run the old and the new version on the same scene, then

    python scripts/compare_crossings.py old.gpkg new.gpkg      # exit 0 when identical, 1 otherwise
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pyogrio

VOLATILE = {"created_utc", "runtime_s", "model_path"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--layer", default="crossings")
    args = ap.parse_args()
    frames = [pyogrio.read_dataframe(p, layer=args.layer) for p in (args.a, args.b)]
    xy = [np.column_stack([f.geometry.x.to_numpy(), f.geometry.y.to_numpy()]) for f in frames]
    same = {"crossings": len(frames[0]) == len(frames[1])}
    if same["crossings"]:
        same["coordinates"] = np.array_equal(xy[0], xy[1])
        for col in frames[0].columns.drop("geometry"):
            same[col] = col in frames[1] and frames[0][col].equals(frames[1][col])
    meta = [pyogrio.read_info(p, layer=args.layer).get("layer_metadata") or {} for p in (args.a, args.b)]
    differ = sorted(k for k in set(meta[0]) | set(meta[1]) if k not in VOLATILE and meta[0].get(k) != meta[1].get(k))
    same["metadata"] = not differ
    print(f"{args.a}: {len(frames[0])} crossings; {args.b}: {len(frames[1])} crossings")
    for k, v in same.items():
        print(f"  {k:<12} {'identical' if v else 'DIFFERENT'}")
    if differ:
        print("  metadata differing: " + ", ".join(f"{k} {meta[0].get(k)!r} / {meta[1].get(k)!r}" for k in differ))
    if len(frames[0]):
        print(f"  max |dx|, |dy|: {np.abs(xy[0] - xy[1]).max() if same['crossings'] else float('nan'):g} m")
    sys.exit(0 if all(same.values()) else 1)


if __name__ == "__main__":
    main()
