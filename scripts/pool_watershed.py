#!/usr/bin/env python
"""Pool several runs of scripts/eval_watershed.py (their --json records) into one table: for each path the
true and false crossings summed over every scene of every run, and precision, recall, F1 and false crossings
per km² over the pooled area. Runs must hold the same paths (by name).

    python scripts/pool_watershed.py docs/results/cpu/eval_watershed_{valley,fresh,third}.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="eval_watershed.py --json records")
    args = ap.parse_args()
    records = [json.loads(p.read_text()) for p in args.runs]
    names = list(records[0]["paths"])
    if any(list(r["paths"]) != names for r in records):
        raise SystemExit("the runs do not hold the same paths")
    area = sum(r["area_km2"] for r in records)
    truth = sum(r["truth"] for r in records)
    rows = []
    for name in names:
        scenes = [s for r in records for s in r["paths"][name]["per_scene"]]
        tp, fp = sum(s["tp"] for s in scenes), sum(s["fp"] for s in scenes)
        p = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / truth if truth else 0.0
        rows.append({"path": name, "truth": truth, "tp": tp, "fp": fp, "precision": p, "recall": rec,
                     "f1": 2 * p * rec / (p + rec) if p + rec else 0.0, "false_per_km2": fp / area})
    scenes = sum(len(r["scenes"]) for r in records)
    print(f"# {' '.join(sys.argv)}")
    print(f"{len(records)} runs, {scenes} scenes, {area:.1f} km², {truth} crossings")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
