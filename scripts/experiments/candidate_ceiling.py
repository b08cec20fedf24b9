#!/usr/bin/env python
"""Probe: how many true crossings can a path find at all? For each window floor, the share of a scene set's
true crossings with a merged crossing (every window >= the floor, merged within the scoring's radius as
detect merges) within the matching tolerance (10 m) and within 20 m: the recall no score of the merged
crossings can exceed, and how much of what is left is placement.

    python scripts/experiments/candidate_ceiling.py --scenes runs/ws/scenes --test 9002-9011 --work runs/ws
    python scripts/experiments/candidate_ceiling.py BUNDLE --cal 8001-8020 --test "" --floors 0.5 ...
"""

from __future__ import annotations

from common import load_scene, machine, parser, scene_candidates, scene_dir, seeds, setup, table

from geodrain.evaluate import match_points
from geodrain.postprocess import crossings_at

FLOORS = (0.5, 0.3, 0.1, 0.05)


def main() -> None:
    ap = parser(__doc__, cal="8001-8008", test="9002-9011", work="geodrain-ws")
    ap.add_argument("--floors", default=",".join(f"{f:g}" for f in FLOORS),
                    help="window floors, comma-separated (default %(default)s)")
    args = ap.parse_args()
    floors = tuple(float(f) for f in args.floors.split(","))
    bundle, _, _ = setup(args)
    sc = bundle.scoring_for(bundle.stride_px)
    radius = sc.merge_radius_m if sc is not None else bundle.merge_radius_m
    rows = []
    for name, group in (("calibration", args.cal), ("test", args.test)):
        if not group:
            continue
        found = {f: [0, 0, 0] for f in floors}
        n_true = 0
        for s in seeds(group):
            path = scene_dir(s, args)
            scene = load_scene(path)
            n_true += len(scene.truth_xy)
            cands, _ = scene_candidates(bundle, path, args.work, min(floors))
            for f in floors:
                merged = crossings_at(cands, f, radius)
                found[f][0] += len(match_points(merged.xy, scene.truth_xy, args.tolerance).pred_index)
                found[f][1] += len(match_points(merged.xy, scene.truth_xy, 2 * args.tolerance).pred_index)
                found[f][2] += len(merged)
        for f in floors:
            rows.append({"scenes": f"{name} {group}", "truth": n_true, "floor": f, "merged": found[f][2],
                         f"within_{args.tolerance:g}_m": found[f][0], f"within_{2 * args.tolerance:g}_m": found[f][1],
                         "ceiling": found[f][0] / n_true})
    print(f"# candidate_ceiling {bundle.model_id} on {machine()}: merge radius {radius:g} m")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
