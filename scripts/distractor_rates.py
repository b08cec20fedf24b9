#!/usr/bin/env python
"""Distractor rates of generated scenes: per kind, the count, per km² and per km of road (truth.gpkg layer
distractors, roads.gpkg).

    python scripts/distractor_rates.py runs/ws/scenes/s80* runs/ws/scenes/s90*
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pyogrio
import rasterio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import table  # noqa: E402


def main() -> None:
    scenes = [Path(p) for p in sys.argv[1:]]
    if not scenes:
        raise SystemExit(__doc__)
    kinds, km, km2 = Counter(), 0.0, 0.0
    for s in scenes:
        kinds.update(pyogrio.read_dataframe(s / "truth.gpkg", layer="distractors")["kind"])
        km += pyogrio.read_dataframe(s / "roads.gpkg", layer="roads").length.sum() / 1000.0
        with rasterio.open(s / "naip.tif") as src:
            km2 += src.width * src.height * abs(src.transform.a * src.transform.e) / 1e6
    print(f"{len(scenes)} scenes, {km2:.1f} km², {km:.1f} km of road")
    print(table([{"kind": k, "count": n, "per_km2": n / km2, "per_km_of_road": n / km} for k, n in kinds.most_common()],
                ["kind", "count", "per_km2", "per_km_of_road"]))


if __name__ == "__main__":
    main()
