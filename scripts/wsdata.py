"""Merged crossings of a bundle on labelled scenes with all their evidence and labels, for the calibration
experiments and the watershed evaluation (shared by scripts/eval_watershed.py and scripts/experiments/).

Per scene: the bundle's window candidates (wslib.scene_candidates, cached) merged as detect merges them
(geodrain.scoring.cluster_evidence) at the bundle's merge radius, the DEM evidence of each merged crossing
(geodrain.dem_features.crossing_evidence on the scene's dem.tif, which shares the imagery's grid; cached),
the label (matched one-to-one to a true crossing within 10 m) and what lies under it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio

from geodrain.dem_features import DEM_FEATURES, crossing_evidence
from geodrain.scoring import Clusters, cluster_evidence
from wslib import Scene, attribute, label, load_scene, scene_candidates


@dataclass
class SceneData:
    scene: Scene
    clusters: Clusters            # merged at the floor, with imagery and DEM evidence
    y: np.ndarray                 # 1 = real crossing (matched within 10 m)
    under: list[str]              # what lies under each merged crossing (for the false ones)
    default_xy: np.ndarray        # detect's own output at the bundle's threshold
    default_score: np.ndarray
    seconds_imagery: float        # detect on the scene (inference + merge)
    seconds_dem: float            # the DEM evidence of its merged crossings
    extra: dict = field(default_factory=dict)


def dem_evidence_cached(scene: Scene, clusters: Clusters, cache: Path) -> tuple[dict, float]:
    if cache.exists():
        z = np.load(cache)
        if len(z["xy"]) == len(clusters) and np.allclose(z["xy"], clusters.xy):
            return {k: z[k] for k in DEM_FEATURES}, float(z["seconds"])
    t0 = time.perf_counter()
    with rasterio.open(scene.path / "dem.tif") as src:
        dem = src.read(1)
        ev = crossing_evidence(dem, src.transform, clusters.xy, nodata=src.nodata)
    sec = time.perf_counter() - t0
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, xy=clusters.xy, seconds=sec, **ev)
    return ev, sec


def scene_data(bundle, path: Path, work: Path, radius: float | None = None, with_dem: bool = True,
               threshold: float | None = None) -> SceneData:
    """``threshold``: the window-score threshold of the default path (the bundle's when None)."""
    sc = load_scene(path)
    c = scene_candidates(bundle, path, work)
    radius = radius or bundle.merge_radius_m
    cl = cluster_evidence(c["xy"], c["score"], radius)
    sec_dem = 0.0
    if with_dem:
        ev, sec_dem = dem_evidence_cached(sc, cl, Path(work) / "dem_ev" / bundle.model_id / f"{sc.name}.npz")
        cl.evidence.update(ev)
    y, _ = label(sc, cl.xy)
    under = attribute(sc, cl.xy)
    keep = c["score"] >= (bundle.threshold if threshold is None else threshold)
    d = cluster_evidence(c["xy"][keep], c["score"][keep], radius)
    return SceneData(sc, cl, y, under, d.xy, d.score, float(c["seconds"]), sec_dem)
