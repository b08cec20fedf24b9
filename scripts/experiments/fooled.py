"""Imagery-fooling distractors at a measured rate: what a DEM path must reject that this generator's imagery
rarely shows the model.

On an independent generator's scenes (issue 17: 4 scenes, 67 km², the deployed bundle's defaults) the
imagery was fooled 10 times: where a field boundary meets a road (5), at road intersections (2), on
farmsteads (2) and on a stream beside a road (1), all scored >= 0.998 - 0.15 false crossings per km². On this
generator's scenes the deployed weights are rarely fooled there (``false_candidates.py``), so a DEM path
fitted and judged on them only never meets the case it exists for. Here those places are taken from a
scene's truth (its ``distractors`` layer: every such point, not only those the model proposed), given the
imagery evidence of a confident real crossing of the same scene (max window >= 0.998, drawn at random with a
fixed seed) as if the imagery had been fooled there, and their DEM evidence is read from the scene's DEM
exactly as for a detection. Each point carries a weight so that a scene's points of one kind together count
for that kind's rate times the scene's area: a path keeping all of them gets 0.15 false crossings per km²
more; one rejecting them all gets none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geodrain.merge import logit
from geodrain.scoring import IMAGERY_FEATURES

# false crossings per km² on the independent generator, by what lay under them (10 in 67.1 km²)
RATES = {"field_boundary": 5 / 67.1, "road_intersection": 2 / 67.1, "farmstead": 2 / 67.1,
         "stream_near_road": 1 / 67.1}
CONFIDENT = float(logit(np.array([0.998]))[0])


@dataclass
class Fooled:
    """A scene's imagery-fooling points: evidence matrix columns by feature name, weights and kinds."""

    evidence: dict
    weight: np.ndarray
    kind: np.ndarray
    xy: np.ndarray

    def matrix(self, features) -> np.ndarray:
        return np.column_stack([self.evidence[f] for f in features]) if len(self.weight) else \
            np.zeros((0, len(features)))


def fooled_points(sc, dem_src, real_imagery: np.ndarray, *, seed: int, rates: dict = RATES,
                  half_m: float = 160.0, res_m: float = 2.0) -> Fooled:
    """The imagery-fooling points of labelled scene ``sc`` (common.SceneCrossings' scene) with the DEM
    evidence read from ``dem_src`` and imagery evidence rows drawn from ``real_imagery`` (n, IMAGERY_FEATURES)
    of confident real crossings."""
    from geodrain.dem_features import DEM_FEATURES, crossing_evidence

    dis = sc.distractors
    empty = Fooled({f: np.zeros(0) for f in IMAGERY_FEATURES + DEM_FEATURES}, np.zeros(0), np.zeros(0, object),
                   np.zeros((0, 2)))
    if dis is None or not len(dis) or not len(real_imagery):
        return empty
    kinds = dis["kind"].to_numpy().astype(object)
    take = np.isin(kinds, list(rates))
    if not take.any():
        return empty
    xy = np.column_stack([dis.geometry.x.to_numpy(), dis.geometry.y.to_numpy()])[take]
    kinds = kinds[take]
    weight = np.array([rates[k] * sc.area_km2 / int((kinds == k).sum()) for k in kinds])
    rng = np.random.default_rng(seed)
    img = real_imagery[rng.integers(0, len(real_imagery), len(xy))]
    ev = crossing_evidence(dem_src, xy, half_m=half_m, res_m=res_m)
    evidence = {f: img[:, j] for j, f in enumerate(IMAGERY_FEATURES)}
    evidence.update({k: ev.evidence[k] for k in DEM_FEATURES})
    return Fooled(evidence, weight, kinds, xy)


def confident_real(crossings, y: np.ndarray) -> np.ndarray:
    """Imagery evidence rows of the real crossings whose strongest window reaches 0.998."""
    x = crossings.matrix(IMAGERY_FEATURES)
    return x[(y == 1) & (x[:, IMAGERY_FEATURES.index("max_logit")] >= CONFIDENT)]
