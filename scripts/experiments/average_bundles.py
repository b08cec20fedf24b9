#!/usr/bin/env python
"""Average the weights of bundles of one architecture fine-tuned from a common ancestor (a "model soup"):
one model, no extra inference cost. The result is a new bundle whose manifest names its parents; its
threshold is the first parent's until `geodrain calibrate` sets it.

    python scripts/experiments/average_bundles.py runs/deploy/hardmined runs/deploy/hardmined2 -o runs/deploy/soup
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from geodrain.model.bundle import load_bundle, save_bundle


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    if len(args.bundles) < 2:
        ap.error("give at least two bundles")
    bundles = [load_bundle(b) for b in args.bundles]
    first = bundles[0]
    for b in bundles[1:]:
        if b.arch != first.arch:
            raise SystemExit(f"average_bundles: {b.model_id} is {b.arch.notation}, not {first.arch.notation}")
    states = [b.model.state_dict() for b in bundles]
    avg = {k: sum(s[k].double() for s in states).div(len(states)).to(states[0][k].dtype) for k in states[0]}
    model = first.model
    model.load_state_dict(avg)
    training = dict(first.manifest.get("training", {}))
    training["average_of"] = [{"model": b.model_id, "training": b.manifest.get("training", {}).get("config", {})}
                              for b in bundles]
    out = save_bundle(model, args.output, name=first.name, overwrite=args.overwrite, training=training,
                      threshold=first.threshold, merge_radius_m=first.merge_radius_m,
                      inference=first.manifest.get("inference"))
    print(f"{out.model_id}: mean of {', '.join(b.model_id for b in bundles)}")


if __name__ == "__main__":
    with torch.no_grad():
        main()
