#!/usr/bin/env python
"""Record in a fine-tuned bundle's manifest how the bundle it started from was made.

The fine-tuned bundle's own ``training`` section describes its last stage; this adds
``training.earlier_stages`` (the start bundle's earlier stages, then the start bundle's own stage: config,
data summary, seconds, device) and carries over the start bundle's tuned ``inference`` settings (the
architecture is the same, so its schedule and profile still hold).

    python scripts/recipes/carry_stages.py runs/deploy/hardmined models/sppnet-k3-s3-f256
"""

from __future__ import annotations

import sys

from geodrain.model.bundle import load_bundle


def stage(training: dict) -> dict:
    data = training.get("data", {})
    summary = {k: data[k] for k in ("crossings", "crops_per_epoch", "mined") if k in data}
    summary["scenes"] = len(data.get("sources", []))
    return {"config": training["config"], "data": summary, "seconds": training.get("seconds"),
            "device": training.get("device")}


def main() -> None:
    new, old = load_bundle(sys.argv[1]), load_bundle(sys.argv[2])
    t = old.manifest["training"]
    earlier = list(t.get("earlier_stages", []))
    if not earlier and "stage_gpu" in t:          # the first CPU fine-tune recorded its GPU stage this way
        earlier = [stage(t["stage_gpu"])]
    earlier.append(stage(t))
    training = dict(new.manifest["training"])
    training.pop("stage_gpu", None)
    training.pop("stage_cpu_finetune", None)
    training["config"] = dict(training["config"], init=f"{old.model_id} (earlier_stages[-1])")
    training["earlier_stages"] = earlier
    new.manifest["training"] = training
    new.update_manifest(inference=old.manifest.get("inference", {}))
    print(f"{new.model_id}: {len(earlier)} earlier stage(s) recorded")


if __name__ == "__main__":
    main()
