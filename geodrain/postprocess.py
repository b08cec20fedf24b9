"""Post-processing: window candidates -> the crossings detection reports at a threshold (-> matched to truth).

The one path from decoded window candidates (:func:`geodrain.merge.decode`, block by block) to crossings,
shared by ``geodrain detect``, ``calibrate`` and ``mine``, the evaluation scripts and the experiments:

1. threshold: the candidates scoring at least the threshold (:meth:`~geodrain.merge.Candidates.at`);
2. merge: greedy clustering within the merge radius, one point per cluster
   (:func:`~geodrain.merge.merge_candidates`; ``rule`` varies how a cluster is placed, for experiments);
3. keep the crossings inside the area of interest, if any;
4. (with truth) match one to one within a tolerance (:func:`geodrain.evaluate.match_points`).

Calibrating a threshold, mining a model's mistakes and scoring an experiment therefore measure exactly what
``detect`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .evaluate import Matching, match_points
from .merge import Candidates, Crossings, Weights, merge_candidates, probability_weights


@dataclass(frozen=True)
class MergeRule:
    """How a cluster of windows is placed: weights of its windows' points (or window centres)."""

    weights: Weights = probability_weights
    at_centres: bool = False


DETECT_RULE = MergeRule()


def crossings_at(cands: Candidates, threshold: float, radius: float, *,
                 inside: Callable[[np.ndarray], np.ndarray] | None = None,
                 rule: MergeRule = DETECT_RULE) -> Crossings:
    """The crossings ``detect`` reports from ``cands``: those scoring at least ``threshold``, merged within
    ``radius`` (map units), and (with ``inside``, a test of map points) those inside the area of interest."""
    crossings = merge_candidates(cands.at(threshold), radius, weights=rule.weights, at_centres=rule.at_centres)
    if inside is not None and len(crossings):
        crossings = crossings.subset(inside(crossings.xy))
    return crossings


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
