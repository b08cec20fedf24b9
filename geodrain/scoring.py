"""Crossing scores that are probabilities.

A merged crossing gathers the windows that proposed it. Its *evidence* is a short vector of numbers: the
windows' maximum and mean logit and how many windows support it (computed where the windows are merged,
:func:`geodrain.merge.merge_candidates`), and (where a DEM is given) the hydrologic evidence of
:mod:`geodrain.dem_features`. A :class:`Calibrator` maps evidence to the probability that the
crossing is real: logistic regression (Platt scaling when the only feature is the maximum logit) fitted on
labelled calibration scenes, with a JSON form that a bundle manifest can store.

Also here: the calibration measures :func:`expected_calibration_error` and :func:`reliability`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .merge import IMAGERY_EVIDENCE, Crossings, logit  # noqa: F401  (logit re-exported)

IMAGERY_FEATURES = IMAGERY_EVIDENCE
DEM_EVIDENCE = ("emb_flow", "flow_near", "channel_pair", "embank", "dam_depth", "along_road", "valley_along",
                "snapped")
KNOWN_FEATURES = IMAGERY_EVIDENCE + DEM_EVIDENCE
CLIP_Q = 0.01     # a fitted calibrator holds each feature to the 1st..99th percentile of its examples


# -- the calibrators --------------------------------------------------------------------------------------

def _features_of(d: dict, kind: str) -> tuple[str, ...]:
    """The feature list of a calibrator's JSON form of ``kind``; ValueError when it is another kind, lacks its
    features or reads evidence nobody computes."""
    if not isinstance(d, dict) or d.get("kind") != kind:
        raise ValueError(f"unknown calibrator kind {d.get('kind') if isinstance(d, dict) else d!r}")
    try:
        feats = tuple(str(f) for f in d["features"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"calibrator lacks or mangles {e}") from None
    unknown = [f for f in feats if f not in KNOWN_FEATURES]
    if unknown:
        raise ValueError(f"calibrator reads unknown evidence {', '.join(unknown)}")
    return feats


class _EvidenceModel:
    """What both calibrators share: they read the evidence columns named by ``features``."""

    features: tuple[str, ...]

    def predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict_crossings(self, c: Crossings) -> np.ndarray:
        """Probabilities of merged crossings from their evidence columns."""
        return self.predict(c.matrix(self.features))

    @property
    def uses_dem(self) -> bool:
        return any(f in DEM_EVIDENCE for f in self.features)


@dataclass
class Calibrator(_EvidenceModel):
    """P(real crossing | evidence) = sigmoid(b + w . (x - mean) / scale), with each feature held to the range
    ``lo``..``hi`` it was fitted on where that range is recorded (a logistic model is not extrapolated)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    l2: float = 1e-3
    fitted_on: dict = field(default_factory=dict)
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None

    def _terms(self, x: np.ndarray) -> np.ndarray:
        x = np.where(np.isfinite(x), x, self.mean)
        if self.lo is not None:
            x = np.clip(x, self.lo, self.hi)
        return ((x - self.mean) / self.scale) * self.coef

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for evidence rows ``x`` (n, features); a missing value (NaN, e.g. DEM evidence where
        the DEM has no data) counts as the calibration mean of that feature (no evidence either way)."""
        x = np.asarray(x, np.float64).reshape(-1, len(self.features))
        z = self.intercept + self._terms(x).sum(1)
        return 1.0 / (1.0 + np.exp(-z))

    def max_probability(self, c: Crossings) -> np.ndarray:
        """The highest probability this calibrator can give each crossing whatever the evidence it does not
        carry yet (the DEM's, before it is read), within the range the calibrator was fitted on: a crossing
        below a threshold here stays below it once that evidence is in. 1 where no range is recorded."""
        if self.lo is None:
            return np.ones(len(c))
        known = [j for j, f in enumerate(self.features) if f in c.evidence]
        x = np.full((len(c), len(self.features)), np.nan)
        if known:
            x[:, known] = c.matrix([self.features[j] for j in known])
        t = self._terms(x)
        unknown = [j for j in range(len(self.features)) if j not in known]
        ends = np.maximum((self.lo - self.mean) / self.scale * self.coef, (self.hi - self.mean) / self.scale * self.coef)
        t[:, unknown] = ends[unknown]
        return 1.0 / (1.0 + np.exp(-(self.intercept + t.sum(1))))

    def to_json(self) -> dict:
        out = {"kind": "logistic", "features": list(self.features), "mean": self.mean.tolist(),
               "scale": self.scale.tolist(), "coef": self.coef.tolist(), "intercept": float(self.intercept),
               "l2": self.l2, "fitted_on": self.fitted_on}
        if self.lo is not None:
            out["lo"], out["hi"] = self.lo.tolist(), self.hi.tolist()
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Calibrator":
        """The calibrator of :meth:`to_json`'s form; a malformed one is a ValueError saying what is wrong."""
        feats = _features_of(d, "logistic")
        try:
            arrs = [np.asarray(d[k], np.float64) for k in ("mean", "scale", "coef")]
            intercept = float(d["intercept"])
            ends = [np.asarray(d[k], np.float64) for k in ("lo", "hi")] if "lo" in d or "hi" in d else None
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"calibrator lacks or mangles {e}") from None
        if any(a.shape != (len(feats),) for a in arrs + (ends or [])) \
                or not all(np.isfinite(a).all() for a in arrs + (ends or [])) \
                or not np.isfinite(intercept) or (arrs[1] <= 0).any():
            raise ValueError("calibrator arrays do not match its feature list or are not finite")
        if ends is not None and (ends[0] > ends[1]).any():
            raise ValueError("calibrator range has lo above hi")
        return cls(feats, *arrs, intercept, float(d.get("l2", 1e-3)), dict(d.get("fitted_on", {})),
                   *(ends or (None, None)))


@dataclass
class TreeCalibrator(_EvidenceModel):
    """P(real crossing | evidence) = sigmoid(the summed leaves of boosted regression trees), for evidence whose
    effect is not additive in the log-odds (the DEM's word counts most where the imagery is sure). Each tree
    is four arrays over its nodes (``feature``: the column split on, -1 at a leaf; ``threshold``: go left
    where the value is <= it; ``left``, ``right``: child nodes) and ``value`` (a leaf's log-odds, the learning
    rate included). A missing value (NaN) counts as the calibration mean of its feature, as for
    :class:`Calibrator`. Trees do not extrapolate: beyond the examples' range a value falls in the outermost
    leaf."""

    features: tuple[str, ...]
    mean: np.ndarray
    trees: list[dict[str, np.ndarray]]
    fitted_on: dict = field(default_factory=dict)

    def _x(self, x: np.ndarray) -> np.ndarray:
        """Evidence rows with missing values at the mean, in float32 (the precision the splits were learnt at)."""
        x = np.asarray(x, np.float64).reshape(-1, len(self.features))
        return np.where(np.isfinite(x), x, self.mean).astype(np.float32)

    def _leaf_values(self, tree: dict, x: np.ndarray) -> np.ndarray:
        node = np.zeros(len(x), np.int64)
        for _ in range(len(tree["feature"])):
            f = tree["feature"][node]
            inner = f >= 0
            if not inner.any():
                break
            go_left = x[np.arange(len(x)), np.maximum(f, 0)] <= tree["threshold"][node]   # x is float32, as fitted
            node = np.where(inner, np.where(go_left, tree["left"][node], tree["right"][node]), node)
        return tree["value"][node]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for evidence rows ``x`` (n, features)."""
        x = self._x(x)
        z = np.zeros(len(x))
        for t in self.trees:
            z += self._leaf_values(t, x)
        return 1.0 / (1.0 + np.exp(-z))

    def max_probability(self, c: Crossings) -> np.ndarray:
        """The highest probability each crossing can get whatever the evidence it does not carry yet (the
        DEM's, before it is read): at a split on such evidence both branches are open."""
        known = np.array([f in c.evidence for f in self.features])
        x = np.full((len(c), len(self.features)), np.nan)
        if known.any():
            x[:, known] = c.matrix([f for f, k in zip(self.features, known) if k])
        x = self._x(x)

        def best(t, node):
            f = int(t["feature"][node])
            if f < 0:
                return np.full(len(x), t["value"][node])
            a, b = best(t, int(t["left"][node])), best(t, int(t["right"][node]))
            return np.where(x[:, f] <= t["threshold"][node], a, b) if known[f] else np.maximum(a, b)

        z = sum((best(t, 0) for t in self.trees), np.zeros(len(x)))
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict:
        return {"kind": "trees", "features": list(self.features), "mean": self.mean.tolist(),
                "trees": [{k: t[k].tolist() for k in TREE_ARRAYS} for t in self.trees], "fitted_on": self.fitted_on}

    @classmethod
    def from_json(cls, d: dict) -> "TreeCalibrator":
        """The calibrator of :meth:`to_json`'s form; a malformed one is a ValueError saying what is wrong."""
        feats = _features_of(d, "trees")
        try:
            mean = np.asarray(d["mean"], np.float64)
            trees = [{k: np.asarray(t[k], np.int64 if k in ("feature", "left", "right") else np.float64)
                      for k in TREE_ARRAYS} for t in d["trees"]]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"calibrator lacks or mangles {e}") from None
        if mean.shape != (len(feats),) or not np.isfinite(mean).all() or not trees:
            raise ValueError("calibrator means do not match its feature list, or it has no trees")
        for t in trees:
            n = len(t["feature"])
            if any(t[k].shape != (n,) for k in TREE_ARRAYS) or not n \
                    or not (np.isfinite(t["threshold"]).all() and np.isfinite(t["value"]).all()):
                raise ValueError("calibrator tree arrays differ in length or are not finite")
            node = np.arange(n)
            child_bad = (t["left"] <= node) | (t["right"] <= node) | (t["left"] >= n) | (t["right"] >= n)
            if (t["feature"] >= len(feats)).any() or ((t["feature"] >= 0) & child_bad).any():
                raise ValueError("calibrator tree nodes point outside the tree or backwards")
        return cls(feats, mean, trees, dict(d.get("fitted_on", {})))


TREE_ARRAYS = ("feature", "threshold", "left", "right", "value")


def calibrator_from_json(d: dict) -> "Calibrator | TreeCalibrator":
    """A calibrator of either kind (``"logistic"``, ``"trees"``) from its JSON form."""
    if isinstance(d, dict) and d.get("kind") == "trees":
        return TreeCalibrator.from_json(d)
    return Calibrator.from_json(d)


@dataclass(frozen=True)
class DemScoring:
    """How a bundle's scores read a DEM: the hydrologic evidence's window (``half_m``, cells of ``res_m``), the
    snapping to the channel's passage (``snap_m``; None: none), whether a snapped crossing moves there
    (``move``), the de-duplication of crossings sharing a passage (``dedupe_m``) and the calibrator of the
    imagery and DEM evidence. ``max_cell_m``: the coarsest DEM cell (m) the calibrator was shown to help at
    (None: not recorded); a run with a coarser DEM scores from the imagery evidence (``detect`` warns)."""

    calibrator: "Calibrator | TreeCalibrator"
    snap_m: float | None = None
    move: bool = False
    dedupe_m: float | None = None
    half_m: float = 160.0
    res_m: float = 2.0
    max_cell_m: float | None = None

    def reading(self) -> dict:
        """Keyword arguments of :func:`geodrain.postprocess.dem_evidence`."""
        return {"snap_m": self.snap_m, "move": self.move, "dedupe_m": self.dedupe_m, "half_m": self.half_m,
                "res_m": self.res_m}


@dataclass(frozen=True)
class Scoring:
    """A bundle's calibrated scores (its manifest's ``scoring``): every window >= ``floor`` is merged within
    ``merge_radius_m`` (placed from the windows within ``place_radius_m`` of the strongest, when set), each
    crossing's probability comes from the ``imagery`` calibrator, or the ``dem`` one when a DEM is given, and
    crossings are reported from ``report_at`` unless a threshold is given. ``stride_px`` is the window stride
    the calibrators were fitted at."""

    stride_px: int
    floor: float
    merge_radius_m: float
    imagery: "Calibrator | TreeCalibrator"
    report_at: float = 0.5
    place_radius_m: float | None = None
    dem: DemScoring | None = None

    def to_json(self) -> dict:
        out = {"stride_px": self.stride_px, "floor": self.floor, "merge_radius_m": self.merge_radius_m,
               "place_radius_m": self.place_radius_m, "report_at": self.report_at,
               "imagery": self.imagery.to_json()}
        if self.dem is not None:
            d = self.dem
            out["dem"] = {"calibrator": d.calibrator.to_json(), "snap_m": d.snap_m, "move": d.move,
                          "dedupe_m": d.dedupe_m, "half_m": d.half_m, "res_m": d.res_m, "max_cell_m": d.max_cell_m}
        return out

    @classmethod
    def from_json(cls, d: dict) -> "Scoring":
        """The scoring of :meth:`to_json`'s form; a malformed one is a ValueError saying what is wrong."""
        if not isinstance(d, dict):
            raise ValueError("must be an object")

        def num(key, lo=None, hi=None, src=d, optional=False):
            v = src.get(key)
            if v is None and optional:
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) \
                    or (lo is not None and v < lo) or (hi is not None and v > hi):
                raise ValueError(f"'{key}' must be a number" + (f" from {lo}" if lo is not None else "")
                                 + (f" to {hi}" if hi is not None else "") + f", got {v!r}")
            return float(v)

        imagery = calibrator_from_json(d.get("imagery"))
        if imagery.uses_dem:
            raise ValueError("the 'imagery' calibrator reads DEM evidence")
        dem = None
        if d.get("dem") is not None:
            e = d["dem"]
            if not isinstance(e, dict):
                raise ValueError("'dem' must be an object")
            dem = DemScoring(calibrator_from_json(e.get("calibrator")), num("snap_m", 0, src=e, optional=True),
                             bool(e.get("move", False)), num("dedupe_m", 0, src=e, optional=True),
                             num("half_m", 20, 2000, src=e) if "half_m" in e else 160.0,
                             num("res_m", 0.1, 50, src=e) if "res_m" in e else 2.0,
                             num("max_cell_m", 0.01, src=e, optional=True))
        stride = d.get("stride_px")
        if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride <= 100:
            raise ValueError(f"'stride_px' must be an integer from 1 to 100, got {stride!r}")
        return cls(stride, num("floor", 0, 1), num("merge_radius_m", 0), imagery,
                   num("report_at", 0, 1) if "report_at" in d else 0.5,
                   num("place_radius_m", 0, optional=True), dem)


def _wquantile(x: np.ndarray, w: np.ndarray, q: float) -> np.ndarray:
    """Per column, the smallest value whose weighted share of the rows at or below it reaches ``q`` (the
    inverted CDF; with integer weights, the quantile of the rows repeated that often)."""
    out = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j], kind="stable")
        cum = np.cumsum(w[order])
        out[j] = x[order[min(int(np.searchsorted(cum, q * cum[-1] - 1e-12 * cum[-1])), len(order) - 1)], j]
    return out


def _weighted_means(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per column, the ``w``-weighted mean of its finite values (0 where it has none): what a missing value
    stands for in a fitted calibrator."""
    def one(c):
        ok = np.isfinite(c) & (w > 0)
        return float(np.average(c[ok], weights=w[ok])) if ok.any() else 0.0

    return np.array([one(c) for c in x.T])


def fit_calibrator(x: np.ndarray, y: np.ndarray, features, l2: float = 1e-3, iters: int = 100,
                   fitted_on: dict | None = None, weight: np.ndarray | None = None,
                   clip_q: float = CLIP_Q) -> Calibrator:
    """Logistic regression by Newton's method (L2 penalty ``l2`` on the standardized weights). Missing values
    (NaN) take their feature's mean; each feature is held to the ``clip_q``..1-``clip_q`` quantiles of the
    examples (``lo``, ``hi``; by default the 1st..99th percentile: a few outliers, a 9 m embankment, do not set
    a slope, and the calibrator does not extrapolate). ``weight``: a weight per row (default 1), e.g. to let a few examples
    stand for how often such crossings occur; the means, scales and penalty count weighted rows."""
    x = np.asarray(x, np.float64).reshape(len(y), -1)
    y = np.asarray(y, np.float64)
    sw = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64).reshape(len(y))
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("calibration needs both real and false crossings")
    if not np.isfinite(sw).all() or (sw < 0).any() or not (sw[y == 1].sum() > 0 and sw[y == 0].sum() > 0):
        raise ValueError("calibration weights must be finite, not negative, and weigh both classes")

    mean = _weighted_means(x, sw)
    x = np.where(np.isfinite(x), x, mean)
    lo, hi = _wquantile(x, sw, clip_q), _wquantile(x, sw, 1.0 - clip_q)
    x = np.clip(x, lo, hi)
    scale = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=sw))
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    a = np.column_stack([np.ones(len(y)), z])
    w = np.zeros(a.shape[1])
    base = float(np.average(y, weights=sw))
    w[0] = np.log(base / (1 - base))
    reg = np.full(a.shape[1], l2 * sw.sum())
    reg[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        g = a.T @ (sw * (p - y)) + reg * w
        h = (a * (sw * p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(h, g)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return Calibrator(tuple(features), mean, scale, w[1:], float(w[0]), l2, dict(fitted_on or {}), lo, hi)


def fit_trees(x: np.ndarray, y: np.ndarray, features, *, weight: np.ndarray | None = None, n_trees: int = 100,
              depth: int = 2, rate: float = 0.1, min_leaf: int = 20, fitted_on: dict | None = None,
              seed: int = 0) -> TreeCalibrator:
    """Gradient-boosted regression trees on the log-loss (scikit-learn's GradientBoostingClassifier, from the
    log-odds 0: ``n_trees`` trees of ``depth`` splits, learning rate ``rate``, at least ``min_leaf`` examples
    per leaf, counted as rows whatever their weight), stored as a :class:`TreeCalibrator`. Missing values (NaN)
    take their feature's (weighted) mean first; ``weight``: a weight per row, as for :func:`fit_calibrator`.
    Needs scikit-learn (the research extra); a bundle's trees are then read with numpy alone."""
    from sklearn.ensemble import GradientBoostingClassifier

    x = np.asarray(x, np.float64).reshape(len(y), -1)
    y = np.asarray(y, np.int64)
    sw = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64).reshape(len(y))
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("calibration needs both real and false crossings")
    mean = _weighted_means(x, sw)
    x = np.where(np.isfinite(x), x, mean)
    m = GradientBoostingClassifier(n_estimators=n_trees, max_depth=depth, learning_rate=rate,
                                   min_samples_leaf=min_leaf, init="zero", random_state=seed)
    m.fit(x, y, sample_weight=sw)
    trees = []
    for est in m.estimators_[:, 0]:
        t = est.tree_
        leaf = t.children_left < 0
        trees.append({"feature": np.where(leaf, -1, t.feature).astype(np.int64),
                      "threshold": np.where(leaf, 0.0, t.threshold).astype(np.float64),
                      "left": np.where(leaf, -1, t.children_left).astype(np.int64),
                      "right": np.where(leaf, -1, t.children_right).astype(np.int64),
                      "value": (rate * t.value[:, 0, 0]).astype(np.float64)})
    return TreeCalibrator(tuple(features), mean, trees, dict(fitted_on or {}))


# -- calibration measures ---------------------------------------------------------------------------------

def reliability(prob: np.ndarray, y: np.ndarray, bins: int = 10, weight: np.ndarray | None = None) -> list[dict]:
    """Per probability bin: count (summed ``weight`` where given), mean predicted probability, fraction real."""
    prob, y = np.asarray(prob, np.float64), np.asarray(y, np.float64)
    w = np.ones(len(prob)) if weight is None else np.asarray(weight, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    k = np.clip(np.digitize(prob, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = (k == b) & (w > 0)
        n = float(w[m].sum())
        out.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(n) if weight is None else n,
                    "mean_prob": float(np.average(prob[m], weights=w[m])) if m.any() else float("nan"),
                    "frac_real": float(np.average(y[m], weights=w[m])) if m.any() else float("nan")})
    return out


def expected_calibration_error(prob: np.ndarray, y: np.ndarray, bins: int = 10,
                               weight: np.ndarray | None = None) -> float:
    """ECE: the count-weighted mean |fraction real - mean probability| over equal-width bins (rows weighted
    by ``weight`` where given)."""
    rows = reliability(prob, y, bins, weight)
    n = sum(r["n"] for r in rows)
    if n == 0:
        return float("nan")
    return float(sum(r["n"] * abs(r["frac_real"] - r["mean_prob"]) for r in rows if r["n"]) / n)
