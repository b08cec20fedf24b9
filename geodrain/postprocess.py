"""Post-processing: window candidates -> the crossings detection reports at a threshold (-> matched to truth).

The one path from decoded window candidates (:func:`geodrain.merge.decode`, block by block) to crossings,
shared by ``geodrain detect``, ``calibrate`` and ``mine``, the evaluation scripts and the experiments:

1. threshold: the candidates scoring at least the threshold (:meth:`~geodrain.merge.Candidates.at`);
2. merge: greedy clustering within the merge radius, one point per cluster with its imagery evidence
   (:func:`~geodrain.merge.merge_candidates`; ``rule`` says how a cluster is placed);
3. keep the crossings inside the area of interest, if any;
4. (with a DEM) the DEM's evidence of each crossing, snapped to its channel's passage where the bundle says so
   (:func:`dem_evidence`);
5. (with a bundle's calibrated scoring) each crossing's probability, and those reaching the threshold
   (:func:`report`: steps 1-5 as ``detect`` runs them);
6. (with truth) match one to one within a tolerance (:func:`geodrain.evaluate.match_points`).

Calibrating a threshold, mining a model's mistakes and scoring an experiment therefore measure exactly what
``detect`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .evaluate import Matching, match_points
from .merge import Candidates, Crossings, Weights, merge_candidates, probability_weights

if TYPE_CHECKING:
    from .scoring import Scoring


@dataclass(frozen=True)
class MergeRule:
    """How a cluster of windows is placed: weights of its windows' points (or window centres), and (robust
    placement) only from the windows within ``place_radius`` (map units) of its strongest window's point."""

    weights: Weights = probability_weights
    at_centres: bool = False
    place_radius: float | None = None


DETECT_RULE = MergeRule()


def crossings_at(cands: Candidates, threshold: float, radius: float, *,
                 inside: Callable[[np.ndarray], np.ndarray] | None = None,
                 rule: MergeRule = DETECT_RULE) -> Crossings:
    """The crossings ``detect`` reports from ``cands``: those scoring at least ``threshold``, merged within
    ``radius`` (map units), and (with ``inside``, a test of map points) those inside the area of interest."""
    crossings = merge_candidates(cands.at(threshold), radius, weights=rule.weights, at_centres=rule.at_centres,
                                 place_radius=rule.place_radius)
    if inside is not None and len(crossings):
        crossings = crossings.subset(inside(crossings.xy))
    return crossings


def dem_evidence(crossings: Crossings, dem, *, snap_m: float | None = None, move: bool = True,
                dedupe_m: float | None = None, half_m: float = 160.0, res_m: float = 2.0) -> Crossings:
    """The crossings with the DEM's evidence (:func:`geodrain.dem_features.crossing_evidence`, read from
    ``dem``, a :class:`geodrain.read.DemSource`) among their evidence columns, plus ``snapped`` (1 where the
    DEM found the channel's passage across the embankment within ``snap_m`` metres).

    ``move``: a snapped crossing is placed at that passage (else it keeps the imagery's point);
    ``dedupe_m``: of crossings whose passages lie within this distance of each other (one channel, proposed
    twice), only the strongest is kept. Crossings arrive strongest first (:func:`crossings_at`)."""
    from .dem_features import DEM_FEATURES, crossing_evidence

    if not len(crossings):
        out = crossings.subset(np.zeros(0, bool))
        out.evidence.update({k: np.zeros(0) for k in (*DEM_FEATURES, "snapped")})
        return out
    ev = crossing_evidence(dem, crossings.xy, half_m=half_m, res_m=res_m, snap_m=snap_m)
    out = Crossings(ev.xy if move else crossings.xy.copy(), crossings.score, crossings.n_windows,
                    crossings.size_m, {**crossings.evidence, **ev.evidence, "snapped": ev.snapped.astype(float)},
                    crossings.probability)
    if dedupe_m and len(out) > 1:
        from scipy.spatial import cKDTree

        keep = np.ones(len(out), bool)
        metres = ev.xy * dem.units_m
        tree = cKDTree(metres)
        for i in range(len(out)):
            if keep[i] and ev.snapped[i]:
                for j in tree.query_ball_point(metres[i], dedupe_m):
                    if j > i and ev.snapped[j]:
                        keep[j] = False
        out = out.subset(keep)
    return out


def report(cands: Candidates, threshold: float, radius: float, *,
           inside: Callable[[np.ndarray], np.ndarray] | None = None, scoring: "Scoring | None" = None,
           dem=None, units_m: float = 1.0) -> Crossings:
    """The crossings ``detect`` writes from window candidates (``radius`` in map units; ``units_m`` metres per
    map unit).

    Without ``scoring``: the windows >= ``threshold`` (a window probability) merged (:func:`crossings_at`).
    With ``scoring`` (a bundle's :class:`~geodrain.scoring.Scoring`): every window >= its floor merged (and
    placed by its rule), each crossing's probability from its evidence by the imagery calibrator, or with
    ``dem`` by the DEM calibrator after the DEM's evidence (and snapping, where the scoring says so); the
    crossings whose probability reaches ``threshold`` (a crossing probability) are kept. With ``dem`` the
    DEM's evidence columns are added in either case."""
    if scoring is None:
        crossings = crossings_at(cands, threshold, radius, inside=inside)
        return crossings if dem is None else dem_evidence(crossings, dem)
    place = None if scoring.place_radius_m is None else scoring.place_radius_m / units_m
    crossings = crossings_at(cands, scoring.floor, radius, inside=inside, rule=MergeRule(place_radius=place))
    calibrator = scoring.imagery
    if dem is not None:
        if scoring.dem is not None:
            calibrator = scoring.dem.calibrator
            if threshold > 0:
                crossings = crossings.subset(calibrator.max_probability(crossings) >= threshold)
            crossings = dem_evidence(crossings, dem, **scoring.dem.reading())
        else:
            crossings = dem_evidence(crossings, dem)
    crossings.probability = calibrator.predict_crossings(crossings).astype(np.float64)
    return crossings.subset(crossings.probability >= threshold)


@dataclass
class Outcome:
    """Crossings at one threshold and their one-to-one matching with the truth."""

    crossings: Crossings
    matching: Matching

    @property
    def true_positives(self) -> int:
        return len(self.matching.pred_index)

    @property
    def false_positives(self) -> int:
        return len(self.crossings) - self.true_positives

    @property
    def missed(self) -> np.ndarray:
        """Indices of the truth points no crossing matched."""
        return self.matching.misses


def outcome_at(cands: Candidates, truth: np.ndarray, threshold: float, radius: float, tolerance: float, *,
               rule: MergeRule = DETECT_RULE) -> Outcome:
    """:func:`crossings_at`, matched to ``truth`` (N, 2) within ``tolerance`` (map units)."""
    crossings = crossings_at(cands, threshold, radius, rule=rule)
    return Outcome(crossings, match_points(crossings.xy, truth, tolerance))
