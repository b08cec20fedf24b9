"""What the experiments (and scripts/eval_watershed.py) share: their command line, scenes generated when missing,
a bundle's window candidates (cached), labelled scenes with their distractor layers, the one post-processing
path applied to cached candidates, and leave-one-scene-out calibration.

Every experiment takes a bundle (default: the deployed one), calibration and test seeds, a scene size, an
optional folder of existing scenes named ``s<seed>`` and a work folder where missing scenes are generated
(`geodrain synth`) and window candidates are cached. Results are printed as Markdown, headed by the machine.

A labelled scene is what `geodrain synth` writes (naip.tif, dem.tif, truth.gpkg with the layers crossings,
distractors and distractor_areas, roads.gpkg). A detection within 10 m of a true crossing finds it (one to
one); a false crossing is attributed to what lies under it (:func:`attribute`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCRIPTS = Path(__file__).resolve().parents[1]
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from benchlib import machine, table  # noqa: E402,F401  (re-exported for the experiments)

from geodrain.detect import DetectOptions, detect  # noqa: E402
from geodrain.merge import Candidates  # noqa: E402
from geodrain.model.bundle import Bundle, load_bundle  # noqa: E402

__all__ = ["FLOOR", "ATTRIBUTE_M", "TOLERANCE_M", "Scene", "SceneCrossings", "attribute", "cache_name", "candidates",
           "calibration_args", "calibration_setup", "declared_rule", "dump", "write_calibrators", "label", "load_scene", "loso", "machine", "parser", "pooled", "prf", "road_axes", "scene_candidates",
           "scene_crossings", "scene_dir", "seeds", "setup", "table"]

FLOOR = 0.05   # window candidates are kept from this probability up (as `geodrain calibrate` keeps them)


def parser(doc: str, *, cal: str, test: str = "9001-9003", size: int = 4096, work: str) -> argparse.ArgumentParser:
    """The arguments every experiment takes; an experiment adds its own."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", nargs="?", default=None, help="model bundle (default: the deployed one)")
    ap.add_argument("--cal", "--calibrate", dest="cal", default=cal,
                    help=f"calibration seeds, e.g. 8001-8004 or 8001,8002 (default {cal})")
    ap.add_argument("--test", default=test, help=f"unseen test seeds (default {test})")
    ap.add_argument("--size", type=int, default=size, help="scene side (px) of generated scenes")
    ap.add_argument("--scenes", type=Path, default=None, help="folder of existing scenes named s<seed>")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / work,
                    help="where missing scenes are generated and candidates cached")
    ap.add_argument("--tolerance", type=float, default=10.0, help="matching tolerance (m)")
    return ap


def calibration_args(ap: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of the experiments that fit calibrators: the merge radius, where the calibrators go, a
    JSON record."""
    ap.add_argument("--radius", type=float, default=None, help="claim (merge) radius m (default: the bundle's)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the fitted calibrators (JSON)")
    ap.add_argument("--json", type=Path, default=None)
    return ap


def calibration_setup(args: argparse.Namespace) -> tuple[Bundle, list[int], list[Path], float]:
    """The bundle, calibration seeds, their scene folders and the merge radius of parsed calibration_args."""
    bundle, cal, _ = setup(args)
    return bundle, cal, [scene_dir(s, args) for s in cal], args.radius or bundle.merge_radius_m


def seeds(text: str) -> list[int]:
    """"8001-8016" or "9001,9002" -> seeds."""
    out = []
    for part in filter(None, text.split(",")):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def setup(args: argparse.Namespace) -> tuple[Bundle, list[int], list[int]]:
    """The bundle, calibration seeds and test seeds of parsed arguments (the work folder created)."""
    args.work.mkdir(parents=True, exist_ok=True)
    return load_bundle(args.bundle), seeds(args.cal), seeds(args.test)


def scene_dir(seed: int, args: argparse.Namespace) -> Path:
    """The scene of ``seed``: from --scenes when it is there, else generated under --work if missing."""
    if args.scenes is not None and (args.scenes / f"s{seed}" / "naip.tif").exists():
        return args.scenes / f"s{seed}"
    d = args.work / f"s{seed}"
    if not (d / "naip.tif").exists():
        from geodrain.synth import generate_scene

        generate_scene(d, seed=seed, size=args.size, overwrite=True)
    return d


def candidates(bundle: Bundle, folder: Path, *, stride: int | None = None, cache: Path | None = None,
               floor: float = FLOOR, **detect_kw) -> Candidates:
    """Every window candidate >= ``floor`` of one scene (what `geodrain detect` merges at a threshold), fp32
    on the CPU as `geodrain calibrate` runs it; cached in ``cache`` (.npz, with detect's wall time as
    ``seconds``) when given."""
    if cache is not None and cache.exists():
        return load_candidates(cache, floor)
    t0 = time.perf_counter()
    r = detect(folder / "naip.tif", None, model=bundle, progress=False,
               options=DetectOptions(threshold=floor, device="cpu", precision="fp32", stride=stride,
                                         window_scores=True), **detect_kw)
    c = r.candidates
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, xy=c.xy, score=c.score, size=c.size, centre=c.centre, floor=c.floor,
                 seconds=time.perf_counter() - t0, windows=r.windows)
        tmp.rename(cache)
    return c


def load_candidates(cache: Path, floor: float = FLOOR) -> Candidates:
    z = np.load(cache)
    size = z["size"] if "size" in z.files else np.zeros((len(z["score"]), 2), np.float32)
    return Candidates(z["xy"], z["score"], size, z["centre"], float(z["floor"]) if "floor" in z.files else floor)


def scene_candidates(bundle: Bundle, scene: Path, work: Path, floor: float = 0.5,
                     stride: int | None = None) -> tuple[Candidates, float]:
    """The window candidates (>= ``floor``) of a scene folder, cached under WORK/cands/<model id>_s<stride>_f<floor>/,
    and detect's wall time on the scene when they were computed."""
    stride = stride or bundle.stride_px
    cache = Path(work) / "cands" / f"{bundle.model_id}_s{stride}_f{floor:g}" / f"{Path(scene).name}.npz"
    c = candidates(bundle, Path(scene), stride=stride, cache=cache, floor=floor)
    return c, float(np.load(cache)["seconds"])


def cache_name(args: argparse.Namespace, bundle: Bundle, seed: int, stride: int) -> Path:
    """Where the candidates of ``seed`` at ``stride`` are cached under --work."""
    tag = "" if stride == 24 else f"_stride{stride}"
    return args.work / f"windows_{bundle.model_id.replace('@', '_')}_{seed}{tag}.npz"


# -- labelled scenes ------------------------------------------------------------------------------------------

TOLERANCE_M = 10.0       # a detection within 10 m of a true crossing finds it
ATTRIBUTE_M = 50.0       # a false crossing is attributed to the nearest distractor within 50 m


@dataclass
class Scene:
    path: Path
    name: str
    area_km2: float
    truth_xy: np.ndarray
    distractors: object      # GeoDataFrame (points) or None
    areas: object            # GeoDataFrame (polygons) or None
    roads: object
    crs: object
    transform: object


def load_scene(path: Path) -> Scene:
    import pyogrio
    import rasterio

    path = Path(path)
    with rasterio.open(path / "naip.tif") as src:
        area = src.width * src.height * abs(src.transform.a * src.transform.e) / 1e6
        transform, crs = src.transform, src.crs
    truth = pyogrio.read_dataframe(path / "truth.gpkg", layer="crossings")
    layers = set(pyogrio.list_layers(path / "truth.gpkg")[:, 0])
    dis = pyogrio.read_dataframe(path / "truth.gpkg", layer="distractors") if "distractors" in layers else None
    areas = pyogrio.read_dataframe(path / "truth.gpkg", layer="distractor_areas") \
        if "distractor_areas" in layers else None
    roads = pyogrio.read_dataframe(path / "roads.gpkg", layer="roads")
    xy = np.column_stack([truth.geometry.x, truth.geometry.y]) if len(truth) else np.zeros((0, 2))
    return Scene(path, path.name, area, xy, dis, areas, roads, crs, transform)


def road_axes(path: Path, truth) -> np.ndarray:
    """The unit direction of each true crossing's road at the crossing (rows of ``truth``, the scene's
    crossings layer, with their ``road_id`` in the scene's roads.gpkg)."""
    import pyogrio

    roads = pyogrio.read_dataframe(Path(path) / "roads.gpkg", layer="roads").set_index("road_id")
    out = []
    for _, row in truth.iterrows():
        g = roads.loc[row.road_id].geometry
        d = g.project(row.geometry)
        a, b = np.array(g.interpolate(d - 5).coords[0]), np.array(g.interpolate(d + 5).coords[0])
        out.append((b - a) / np.linalg.norm(b - a))
    return np.array(out).reshape(-1, 2)


def _nearest_within(xy: np.ndarray, pts: np.ndarray, radius: float) -> np.ndarray:
    from scipy.spatial import cKDTree

    if len(pts) == 0 or len(xy) == 0:
        return np.full(len(xy), -1)
    d, i = cKDTree(pts).query(xy, k=1)
    return np.where(d <= radius, i, -1)


def attribute(scene: Scene, xy: np.ndarray) -> list[str]:
    """What lies under each (false) detection: the nearest distractor point within ATTRIBUTE_M, else a
    distractor area within 15 m, else a true crossing 10-40 m away (placement), else a road within 25 m,
    else off-road."""
    import shapely

    out = []
    dis = scene.distractors
    dxy = np.column_stack([dis.geometry.x, dis.geometry.y]) if dis is not None and len(dis) else np.zeros((0, 2))
    idx = _nearest_within(xy, dxy, ATTRIBUTE_M)
    tidx = _nearest_within(xy, scene.truth_xy, 40.0)
    pts = shapely.points(xy) if len(xy) else []
    area_geoms = list(scene.areas.geometry) if scene.areas is not None else []
    area_tree = shapely.STRtree(area_geoms) if area_geoms else None
    road_tree = shapely.STRtree(list(scene.roads.geometry)) if len(scene.roads) else None
    for k in range(len(xy)):
        if idx[k] >= 0:
            out.append(str(dis["kind"].iloc[idx[k]]))
        elif area_tree is not None and len(area_tree.query(pts[k], predicate="dwithin", distance=15.0)):
            hit = area_tree.query(pts[k], predicate="dwithin", distance=15.0)
            out.append(str(scene.areas["kind"].iloc[int(hit[0])]))
        elif tidx[k] >= 0:
            out.append("near_crossing")
        elif road_tree is not None and len(road_tree.query(pts[k], predicate="dwithin", distance=25.0)):
            out.append("road_other")
        else:
            out.append("off_road")
    return out


def label(scene: Scene, xy: np.ndarray) -> tuple[np.ndarray, object]:
    """1 for detections matched one-to-one to a true crossing within TOLERANCE_M, else 0; and the matching."""
    from geodrain.evaluate import match_points

    m = match_points(xy, scene.truth_xy, TOLERANCE_M)
    y = np.zeros(len(xy), int)
    y[m.pred_index] = 1
    return y, m


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"tp": tp, "fp": fp, "fn": fn, "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def declared_rule(results: dict, f1_key: str, fp_key: str, what: str = "CV F1",
                  fp_what: str = "false per km²") -> str:
    """The rule the calibration experiments declare: the highest ``f1_key``; within 0.005 of it the fewest
    ``fp_key`` (false crossings per km²), then the first in ``results``' order (the simplest). Prints it."""
    order = list(results)
    best = max(r[f1_key] for r in results.values())
    close = [k for k in order if results[k][f1_key] >= best - 0.005]
    winner = min(close, key=lambda k: (round(results[k][fp_key], 4), order.index(k)))
    print(f"rule: highest {what} ({best:.3f}); within 0.005: {', '.join(close)}; fewest {fp_what}, then "
          f"simplest -> {winner}")
    return winner


def write_calibrators(out: Path, fitted: dict) -> None:
    """Each fitted calibrator (name -> geodrain.scoring.Calibrator or TreeCalibrator) as OUT/<name>.json, with
    a line each."""
    from geodrain.scoring import Calibrator

    out.mkdir(parents=True, exist_ok=True)
    for name, c in fitted.items():
        path = out / f"{name.replace('+', '-')}.json"
        dump(path, c.to_json())
        if isinstance(c, Calibrator):
            print(f"{name}: " + ", ".join(f"{f} {w:+.2f}" for f, w in zip(c.features, c.coef))
                  + f", intercept {c.intercept:+.2f} -> {path}")
        else:
            print(f"{name}: {len(c.trees)} trees over {', '.join(c.features)} -> {path}")


def dump(path: Path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=float) + "\n")


# -- the post-processing path on cached candidates -------------------------------------------------------------

@dataclass
class SceneCrossings:
    """A scene's merged crossings (the one post-processing path) with their evidence, labels and timing."""

    scene: Scene
    crossings: object            # geodrain.merge.Crossings
    y: np.ndarray                # 1 = real crossing (matched one to one within 10 m)
    under: list[str]             # what lies under each crossing
    seconds_imagery: float       # detect on the scene, when its candidates were computed
    seconds_dem: float = 0.0     # the DEM evidence of its merged crossings
    extra: dict = field(default_factory=dict)


def scene_crossings(bundle: Bundle, path: Path, work: Path, *, threshold: float = 0.5,
                    place_radius_m: float | None = None, radius_m: float | None = None,
                    dem: dict | None = None, floor: float = 0.5) -> SceneCrossings:
    """The crossings of ``bundle`` on a labelled scene as geodrain.postprocess makes them from the scene's
    cached window candidates: windows >= ``threshold`` merged within ``radius_m`` (default: the bundle's),
    placed from the windows within ``place_radius_m`` of the strongest; with ``dem`` (keyword arguments of
    geodrain.postprocess.dem_evidence, e.g. snap_m), the DEM evidence read from the scene's dem.tif."""
    from geodrain.postprocess import MergeRule, crossings_at, dem_evidence
    from geodrain.read import open_dem

    sc = load_scene(path)
    c, sec = scene_candidates(bundle, path, work, floor)
    radius = radius_m or bundle.merge_radius_m
    cr = crossings_at(c, threshold, radius, rule=MergeRule(place_radius=place_radius_m))
    sec_dem = 0.0
    if dem is not None:
        src = open_dem(path / "dem.tif", sc.crs, (sc.transform.c, sc.transform.f))
        t0 = time.perf_counter()
        cr = dem_evidence(cr, src, **dem)
        sec_dem = time.perf_counter() - t0
        src.close()
    y, _ = label(sc, cr.xy)
    return SceneCrossings(sc, cr, y, attribute(sc, cr.xy), sec, sec_dem)


def pooled(data: list[SceneCrossings], keep: list[np.ndarray] | None = None) -> dict:
    """Precision, recall, F1, false crossings per km² and false crossings by kind, pooled over scenes (the
    crossings selected by ``keep`` per scene, all by default)."""
    tp = fp = n_true = 0
    area = 0.0
    under = Counter()
    for i, d in enumerate(data):
        k = np.ones(len(d.y), bool) if keep is None else keep[i]
        tp += int(d.y[k].sum())
        fp += int(k.sum() - d.y[k].sum())
        n_true += len(d.scene.truth_xy)
        area += d.scene.area_km2
        under.update(np.array(d.under, dtype=object)[k & (d.y == 0)].tolist())
    return {**prf(tp, fp, n_true - tp), "false_per_km2": fp / area if area else float("nan"),
            "area_km2": area, "truth": n_true, "under": dict(under)}


def loso(data: list[SceneCrossings], features) -> list[np.ndarray]:
    """Leave-one-scene-out calibrated probabilities: each scene's crossings scored by a calibrator
    (geodrain.scoring.fit_calibrator on ``features``) fitted on the other scenes."""
    from geodrain.scoring import fit_calibrator

    out = []
    for i in range(len(data)):
        train = [d for j, d in enumerate(data) if j != i]
        cal = fit_calibrator(np.concatenate([d.crossings.matrix(features) for d in train]),
                             np.concatenate([d.y for d in train]), features)
        out.append(cal.predict_crossings(data[i].crossings))
    return out
