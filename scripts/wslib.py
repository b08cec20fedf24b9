"""Helpers shared by the watershed-scale evaluation and the DEM experiments: window candidates of a bundle on
labelled scenes (cached), the truth and distractor layers, matching, attribution of false crossings.

A scene folder is what `geodrain synth` writes (naip.tif, dem.tif, truth.gpkg with the layers crossings,
distractors and distractor_areas, roads.gpkg). Candidates are every window proposing a point with a
probability >= a floor, exactly what `geodrain detect` merges (detect run with the floor as threshold), kept in
WORK/cands/<model id>/<scene>.npz so that several detection paths, calibrations and experiments reuse one
inference pass.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from scipy.spatial import cKDTree

from geodrain.detect import DetectOptions, detect
from geodrain.evaluate import match_points

FLOOR = 0.5              # window probability floor of the candidates
TOLERANCE_M = 10.0       # a detection within 10 m of a true crossing finds it
ATTRIBUTE_M = 50.0       # a false crossing is attributed to the nearest distractor within 50 m


@dataclass
class Scene:
    path: Path
    name: str
    area_km2: float
    truth_xy: np.ndarray
    truth: object            # GeoDataFrame of crossings
    distractors: object      # GeoDataFrame (points)
    areas: object            # GeoDataFrame (polygons)
    roads: object
    transform: object


def load_scene(path: Path) -> Scene:
    path = Path(path)
    with rasterio.open(path / "naip.tif") as src:
        area = src.width * src.height * abs(src.transform.a * src.transform.e) / 1e6
        transform = src.transform
    truth = pyogrio.read_dataframe(path / "truth.gpkg", layer="crossings")
    layers = set(pyogrio.list_layers(path / "truth.gpkg")[:, 0])
    dis = pyogrio.read_dataframe(path / "truth.gpkg", layer="distractors") if "distractors" in layers else None
    areas = pyogrio.read_dataframe(path / "truth.gpkg", layer="distractor_areas") \
        if "distractor_areas" in layers else None
    roads = pyogrio.read_dataframe(path / "roads.gpkg", layer="roads")
    xy = np.column_stack([truth.geometry.x, truth.geometry.y]) if len(truth) else np.zeros((0, 2))
    return Scene(path, path.name, area, xy, truth, dis, areas, roads, transform)


def scene_candidates(bundle, scene: Path, work: Path, floor: float = FLOOR, stride: int | None = None,
                     dem_channels: bool = False) -> dict:
    """Window candidates (xy, score) of ``bundle`` on a scene's naip.tif, >= ``floor``, with detect's timing."""
    stride = stride or bundle.stride_px
    cache = Path(work) / "cands" / f"{bundle.model_id}_s{stride}_f{floor:g}" / f"{Path(scene).name}.npz"
    if cache.exists():
        z = np.load(cache)
        return {k: z[k] for k in z.files}
    t0 = time.perf_counter()
    r = detect(Path(scene) / "naip.tif", None, model=bundle, progress=False,
               options=DetectOptions(threshold=floor, stride=stride, device="cpu"))
    c = r.candidates
    out = {"xy": np.asarray(c.xy, np.float64), "score": np.asarray(c.score, np.float32),
           "centre": np.asarray(c.centre, np.float64), "seconds": np.float64(time.perf_counter() - t0),
           "windows": np.int64(r.windows)}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    tmp.rename(cache)
    return out


def nearest_within(xy: np.ndarray, pts: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the nearest of ``pts`` for each of ``xy`` (index -1 beyond ``radius``)."""
    if len(pts) == 0 or len(xy) == 0:
        return np.full(len(xy), -1), np.full(len(xy), np.inf)
    d, i = cKDTree(pts).query(xy, k=1)
    i = np.where(d <= radius, i, -1)
    return i, d


def attribute(scene: Scene, xy: np.ndarray) -> list[str]:
    """What lies under each (false) detection: the nearest distractor point within ATTRIBUTE_M, else a
    distractor area within 15 m, else a true crossing 10-40 m away (placement), else a road within 25 m,
    else off-road."""
    out = []
    dxy = np.column_stack([scene.distractors.geometry.x, scene.distractors.geometry.y]) \
        if scene.distractors is not None and len(scene.distractors) else np.zeros((0, 2))
    idx, _ = nearest_within(xy, dxy, ATTRIBUTE_M)
    tidx, _ = nearest_within(xy, scene.truth_xy, 40.0)
    pts = shapely.points(xy) if len(xy) else []
    area_geoms = list(scene.areas.geometry) if scene.areas is not None else []
    area_tree = shapely.STRtree(area_geoms) if area_geoms else None
    road_tree = shapely.STRtree(list(scene.roads.geometry)) if len(scene.roads) else None
    for k in range(len(xy)):
        if idx[k] >= 0:
            out.append(str(scene.distractors["kind"].iloc[idx[k]]))
            continue
        if area_tree is not None:
            hit = area_tree.query(pts[k], predicate="dwithin", distance=15.0)
            if len(hit):
                out.append(str(scene.areas["kind"].iloc[int(hit[0])]))
                continue
        if tidx[k] >= 0:
            out.append("near_crossing")
            continue
        if road_tree is not None and len(road_tree.query(pts[k], predicate="dwithin", distance=25.0)):
            out.append("road_other")
            continue
        out.append("off_road")
    return out


def label(scene: Scene, xy: np.ndarray) -> tuple[np.ndarray, object]:
    """1 for detections matched one-to-one to a true crossing within TOLERANCE_M, else 0; and the matching."""
    m = match_points(xy, scene.truth_xy, TOLERANCE_M)
    y = np.zeros(len(xy), int)
    y[m.pred_index] = 1
    return y, m


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def dump(path: Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")
