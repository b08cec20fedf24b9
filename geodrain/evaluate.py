"""Point-level evaluation of predicted crossings against truth: precision, recall, F1, location error.

Predictions and truth are matched one-to-one within ``tolerance`` metres by an optimal assignment that
minimizes total distance (scipy's ``linear_sum_assignment``); unmatched predictions are false positives,
unmatched truth points are misses. Predictions are reprojected to the truth's CRS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

from .errors import VectorError


@dataclass
class Matching:
    pred_index: np.ndarray      # matched prediction indices
    true_index: np.ndarray      # matched truth indices (same length)
    distances: np.ndarray       # metres
    n_pred: int
    n_true: int

    @property
    def false_positives(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_pred), self.pred_index)

    @property
    def misses(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.n_true), self.true_index)


@dataclass
class Evaluation:
    tolerance_m: float
    predicted: int
    truth: int
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float
    mean_error_m: float
    median_error_m: float

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f}  "
                f"(TP {self.true_positives}, FP {self.false_positives}, FN {self.false_negatives}; "
                f"mean location error {self.mean_error_m:.2f} m at tolerance {self.tolerance_m:g} m)")


def match_points(pred: np.ndarray, true: np.ndarray, tolerance: float) -> Matching:
    """Optimal one-to-one matching of points within ``tolerance``."""
    pred = np.asarray(pred, np.float64).reshape(-1, 2)
    true = np.asarray(true, np.float64).reshape(-1, 2)
    empty = np.zeros(0, int)
    if len(pred) == 0 or len(true) == 0:
        return Matching(empty, empty, np.zeros(0), len(pred), len(true))
    pairs = cKDTree(pred).sparse_distance_matrix(cKDTree(true), tolerance, output_type="coo_matrix")
    if pairs.nnz == 0:
        return Matching(empty, empty, np.zeros(0), len(pred), len(true))
    big = 1e9
    cost = np.full((len(pred), len(true)), big)
    cost[pairs.row, pairs.col] = pairs.data
    rows, cols = linear_sum_assignment(cost)
    ok = cost[rows, cols] <= tolerance
    return Matching(rows[ok], cols[ok], cost[rows[ok], cols[ok]], len(pred), len(true))


def score_matching(m: Matching, tolerance: float) -> Evaluation:
    tp = len(m.pred_index)
    fp, fn = m.n_pred - tp, m.n_true - tp
    precision = tp / m.n_pred if m.n_pred else (1.0 if m.n_true == 0 else 0.0)
    recall = tp / m.n_true if m.n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    mean = float(m.distances.mean()) if tp else float("nan")
    med = float(np.median(m.distances)) if tp else float("nan")
    return Evaluation(tolerance, m.n_pred, m.n_true, tp, fp, fn, precision, recall, f1, mean, med)


def crossing_layer(path: str | Path) -> str | None:
    """'crossings' when a multi-layer file has it (our GeoPackages and synthetic truth), else None."""
    import pyogrio

    path = Path(path)
    if path.suffix.lower() in (".csv", ".parquet", ".geoparquet"):
        return None
    try:
        names = [n for n, _ in pyogrio.list_layers(path)]
    except Exception:  # noqa: BLE001
        raise VectorError(f"cannot read vector file {path}") from None
    return "crossings" if "crossings" in names else None


def evaluate_files(pred: str | Path, truth: str | Path, tolerance: float = 10.0) -> tuple[Evaluation, Matching]:
    """Evaluate a predictions file against a truth file (any formats and CRSs)."""
    from .datasets.scene import read_points

    t = read_points(truth, crossing_layer(truth))
    p = read_points(pred, crossing_layer(pred), crs=t.crs)
    m = match_points(p.xy, t.xy, tolerance)
    return score_matching(m, tolerance), m
