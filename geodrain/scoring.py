"""Crossing scores that are probabilities.

A merged crossing gathers the windows that proposed it. Its *evidence* is a short vector of numbers: the
windows' maximum and mean logit, how many windows support it, and (where a DEM is given) the hydrologic
evidence of :mod:`geodrain.dem_features`. A :class:`Calibrator` maps evidence to the probability that the
crossing is real: logistic regression (Platt scaling when the only feature is the maximum logit) fitted on
labelled calibration scenes, with a JSON form that a bundle manifest can store.

Also here: :func:`cluster_evidence` (detect's greedy merge, keeping every member window) and the
calibration measures :func:`expected_calibration_error` and :func:`reliability`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

LOGIT_CLIP = 1e-7   # window probabilities are float32: logits are finite within about +-16


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    return np.log(p / (1.0 - p))


# -- evidence of merged crossings -------------------------------------------------------------------------

IMAGERY_FEATURES = ("max_logit", "mean_logit", "log_windows")


@dataclass
class Clusters:
    """Merged crossings with their member windows' evidence (map units)."""

    xy: np.ndarray                      # (n, 2) score-weighted mean of the members' points
    score: np.ndarray                   # (n,) maximum window probability
    members: list[np.ndarray]           # candidate indices per crossing
    evidence: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.score)

    def matrix(self, names) -> np.ndarray:
        return np.column_stack([self.evidence[n] for n in names]) if len(self) else np.zeros((0, len(names)))

    def subset(self, keep: np.ndarray) -> "Clusters":
        idx = np.flatnonzero(keep) if np.asarray(keep).dtype == bool else np.asarray(keep)
        return Clusters(self.xy[idx], self.score[idx], [self.members[i] for i in idx],
                        {k: v[idx] for k, v in self.evidence.items()})


def cluster_evidence(xy: np.ndarray, score: np.ndarray, radius: float) -> Clusters:
    """detect's merge (the strongest unclaimed window claims every unclaimed window within ``radius``; the
    crossing is their score-weighted mean) with the imagery evidence of each crossing."""
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    score = np.asarray(score, np.float64)
    n = len(score)
    if n == 0:
        return Clusters(np.zeros((0, 2)), np.zeros(0), [], {k: np.zeros(0) for k in IMAGERY_FEATURES})
    order = np.argsort(-score, kind="stable")
    tree = cKDTree(xy)
    claimed = np.zeros(n, bool)
    pts, best, members = [], [], []
    for i in order:
        if claimed[i]:
            continue
        m = np.array([j for j in tree.query_ball_point(xy[i], radius) if not claimed[j]])
        claimed[m] = True
        w = score[m]
        pts.append((xy[m] * w[:, None]).sum(0) / w.sum())
        best.append(score[i])
        members.append(m)
    lg = logit(score)
    ev = {
        "max_logit": np.array([lg[m].max() for m in members]),
        "mean_logit": np.array([lg[m].mean() for m in members]),
        "log_windows": np.log(np.array([len(m) for m in members], np.float64)),
    }
    return Clusters(np.array(pts), np.array(best), members, ev)


# -- the calibrator ---------------------------------------------------------------------------------------

@dataclass
class Calibrator:
    """P(real crossing | evidence) = sigmoid(b + w . (x - mean) / scale)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    l2: float = 1e-3
    fitted_on: dict = field(default_factory=dict)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for evidence rows ``x`` (n, features); a missing value (NaN, e.g. DEM evidence where
        the DEM has no data) counts as the calibration mean of that feature (no evidence either way)."""
        x = np.asarray(x, np.float64).reshape(-1, len(self.features))
        x = np.where(np.isfinite(x), x, self.mean)
        z = self.intercept + ((x - self.mean) / self.scale) @ self.coef
        return 1.0 / (1.0 + np.exp(-z))

    def predict_clusters(self, c: Clusters) -> np.ndarray:
        return self.predict(c.matrix(self.features))

    def to_json(self) -> dict:
        return {"kind": "logistic", "features": list(self.features), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(), "intercept": float(self.intercept),
                "l2": self.l2, "fitted_on": self.fitted_on}

    @classmethod
    def from_json(cls, d: dict) -> "Calibrator":
        if d.get("kind") != "logistic":
            raise ValueError(f"unknown calibrator kind {d.get('kind')!r}")
        n = len(d["features"])
        arrs = [np.asarray(d[k], np.float64) for k in ("mean", "scale", "coef")]
        if any(a.shape != (n,) for a in arrs):
            raise ValueError("calibrator arrays do not match its feature list")
        return cls(tuple(d["features"]), *arrs, float(d["intercept"]), float(d.get("l2", 1e-3)),
                   dict(d.get("fitted_on", {})))


def fit_calibrator(x: np.ndarray, y: np.ndarray, features, l2: float = 1e-3, iters: int = 100,
                   fitted_on: dict | None = None) -> Calibrator:
    """Logistic regression by Newton's method (L2 penalty ``l2`` on the standardized weights). Missing values
    (NaN) take their feature's mean."""
    x = np.asarray(x, np.float64).reshape(len(y), -1)
    y = np.asarray(y, np.float64)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("calibration needs both real and false crossings")
    mean = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.0 for c in x.T])
    x = np.where(np.isfinite(x), x, mean)
    scale = x.std(0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    a = np.column_stack([np.ones(len(y)), z])
    w = np.zeros(a.shape[1])
    w[0] = np.log(y.mean() / (1 - y.mean()))
    reg = np.full(a.shape[1], l2 * len(y))
    reg[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        g = a.T @ (p - y) + reg * w
        h = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(h, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return Calibrator(tuple(features), mean, scale, w[1:], float(w[0]), l2, dict(fitted_on or {}))


# -- calibration measures ---------------------------------------------------------------------------------

def reliability(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Per probability bin: count, mean predicted probability, fraction real."""
    prob, y = np.asarray(prob, np.float64), np.asarray(y, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    k = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = k == b
        out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(m.sum()),
                    "mean_prob": float(prob[m].mean()) if m.any() else float("nan"),
                    "frac_real": float(y[m].mean()) if m.any() else float("nan")})
    return out


def expected_calibration_error(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE: the count-weighted mean |fraction real - mean probability| over equal-width bins."""
    rows = reliability(prob, y, bins)
    n = sum(r["n"] for r in rows)
    if n == 0:
        return float("nan")
    return float(sum(r["n"] * abs(r["frac_real"] - r["mean_prob"]) for r in rows if r["n"]) / n)
