"""Tests of geodrain.scoring: the logistic and boosted-tree calibrators, their JSON forms, calibration
measures, and the imagery evidence that detect's merge carries for them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geodrain.merge import Candidates, merge_candidates
from geodrain.scoring import (IMAGERY_FEATURES, Calibrator, TreeCalibrator, calibrator_from_json,
                              expected_calibration_error, fit_calibrator, fit_trees, logit, reliability)


def test_fit_recovers_a_logistic_model():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (20000, 2)) * [2.0, 0.5] + [1.0, -3.0]
    z = 0.5 + 1.5 * x[:, 0] - 2.0 * x[:, 1]
    y = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(int)
    cal = fit_calibrator(x, y, ("a", "b"), l2=0.0, clip_q=0.0)
    # back to raw units: w_raw = coef / scale, b_raw = intercept - sum(coef * mean / scale)
    w = cal.coef / cal.scale
    b = cal.intercept - float(np.sum(cal.coef * cal.mean / cal.scale))
    assert w == pytest.approx([1.5, -2.0], rel=0.1)
    assert b == pytest.approx(0.5, abs=0.35)
    # its probabilities are calibrated on data drawn from the same model
    assert expected_calibration_error(cal.predict(x), y) < 0.03


def test_weights_count_as_repeated_rows_and_bad_weights_are_refused():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (400, 2))
    x[rng.random(400) < 0.05, 1] = np.nan                       # missing evidence takes the weighted mean
    y = (x[:, 0] + rng.normal(0, 1, 400) > 0.3).astype(int)
    w = rng.integers(0, 4, 400).astype(float)
    weighted = fit_calibrator(x, y, ("a", "b"), weight=w)
    rep = np.repeat(np.arange(400), w.astype(int))
    repeated = fit_calibrator(x[rep], y[rep], ("a", "b"))
    for k in ("mean", "scale", "coef", "lo", "hi"):
        assert np.allclose(getattr(weighted, k), getattr(repeated, k), atol=1e-6), k
    assert weighted.intercept == pytest.approx(repeated.intercept, abs=1e-6)
    # a few heavily weighted false examples pull the probabilities of their like down
    heavy = fit_calibrator(np.vstack([x, [[3.0, 0.0]] * 5]), np.r_[y, [0] * 5], ("a", "b"),
                           weight=np.r_[np.ones(400), [40.0] * 5])
    plain = fit_calibrator(x, y, ("a", "b"))
    assert heavy.predict(np.array([[3.0, 0.0]]))[0] < plain.predict(np.array([[3.0, 0.0]]))[0] - 0.2
    for bad in (-w, np.where(y == 1, 0.0, 1.0), np.full(400, np.nan)):
        with pytest.raises(ValueError, match="weights"):
            fit_calibrator(x, y, ("a", "b"), weight=bad)


def test_max_probability_bounds_the_probability_whatever_the_missing_evidence():
    from geodrain.merge import Crossings

    rng = np.random.default_rng(4)
    feats = IMAGERY_FEATURES + ("emb_flow", "channel_pair", "dam_depth")
    x = rng.normal(0, 1, (500, 6)) * [3, 2, 1, 1.5, 1, 0.5] + [4, 2, 2, 3, 1.5, 0.5]
    y = (x[:, 0] + 2 * x[:, 3] + rng.normal(0, 2, 500) > 9).astype(int)
    cal = fit_calibrator(x, y, feats)
    assert np.allclose(cal.lo, np.quantile(x, 0.01, axis=0, method="inverted_cdf"))
    assert np.allclose(cal.hi, np.quantile(x, 0.99, axis=0, method="inverted_cdf"))
    # outside the fitted range a feature counts as its nearest end (no extrapolation)
    far = x[:3].copy()
    far[:, 3] = cal.hi[3] + 100.0
    edge = far.copy()
    edge[:, 3] = cal.hi[3]
    assert np.allclose(cal.predict(far), cal.predict(edge))
    img = x[:50, :3]
    c = Crossings(np.zeros((50, 2)), np.full(50, 0.9, np.float32), np.ones(50, np.int32),
                  np.zeros((50, 2), np.float32), {f: img[:, j] for j, f in enumerate(IMAGERY_FEATURES)})
    bound = cal.max_probability(c)
    for _ in range(20):                                          # any DEM evidence, inside the range or far out
        dem = rng.normal(0, 10, (50, 3)) + [3, 1.5, 0.5]
        dem[rng.random((50, 3)) < 0.1] = np.nan
        assert (cal.predict(np.column_stack([img, dem])) <= bound + 1e-12).all()
    best = np.column_stack([img, np.where(cal.coef[3:] > 0, cal.hi[3:], cal.lo[3:]) * np.ones((50, 1))])
    assert np.allclose(cal.predict(best), bound)                  # and the bound is reached
    # a calibrator without a recorded range (an older bundle's) bounds nothing and clips nothing
    old = Calibrator.from_json({k: v for k, v in cal.to_json().items() if k not in ("lo", "hi")})
    assert old.lo is None and (old.max_probability(c) == 1.0).all()
    back = Calibrator.from_json(json.loads(json.dumps(cal.to_json())))
    assert np.array_equal(back.lo, cal.lo) and np.array_equal(back.predict(far), cal.predict(far))
    with pytest.raises(ValueError, match="lo above hi"):
        Calibrator.from_json({**cal.to_json(), "lo": (cal.hi + 1).tolist()})


def test_weighted_reliability_counts_rows_that_often():
    rng = np.random.default_rng(5)
    p = rng.random(300)
    y = (rng.random(300) < p ** 1.5).astype(int)
    w = rng.integers(0, 5, 300)
    rep = np.repeat(np.arange(300), w)
    a, b = reliability(p, y, weight=w.astype(float)), reliability(p[rep], y[rep])
    assert [r["n"] for r in a] == pytest.approx([r["n"] for r in b])
    assert np.allclose([r["frac_real"] for r in a], [r["frac_real"] for r in b], equal_nan=True)
    assert expected_calibration_error(p, y, weight=w.astype(float)) == pytest.approx(
        expected_calibration_error(p[rep], y[rep]))
    assert expected_calibration_error(p, y, weight=w.astype(float)) != pytest.approx(expected_calibration_error(p, y))


def test_json_round_trip_and_refusals():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (300, 3))
    y = (x[:, 0] + rng.normal(0, 1, 300) > 0).astype(int)
    feats = ("max_logit", "mean_logit", "emb_flow")
    cal = fit_calibrator(x, y, feats, fitted_on={"scenes": ["s1"]})
    text = json.dumps(cal.to_json())
    back = Calibrator.from_json(json.loads(text))
    assert back.features == feats and back.fitted_on == {"scenes": ["s1"]} and back.uses_dem
    assert np.array_equal(back.predict(x), cal.predict(x))
    _missing_counts_as_the_mean(back, x, 1)
    bad = json.loads(text)
    bad["coef"] = bad["coef"][:2]
    with pytest.raises(ValueError):
        Calibrator.from_json(bad)
    with pytest.raises(ValueError):
        Calibrator.from_json({**json.loads(text), "kind": "isotonic"})
    with pytest.raises(ValueError, match="unknown evidence"):
        Calibrator.from_json({**json.loads(text), "features": ["max_logit", "mean_logit", "colour"]})
    with pytest.raises(ValueError, match="lacks"):
        Calibrator.from_json({k: v for k, v in json.loads(text).items() if k != "intercept"})
    with pytest.raises(ValueError, match="finite"):
        Calibrator.from_json({**json.loads(text), "scale": [1.0, float("nan"), 1.0]})
    with pytest.raises(ValueError):
        fit_calibrator(x, np.ones(300), feats)


def _missing_counts_as_the_mean(cal, x, j):
    """A missing value (NaN) of feature ``j`` scores as the feature's calibration mean."""
    row = x[:1].copy()
    row[0, j] = np.nan
    filled = row.copy()
    filled[0, j] = cal.mean[j]
    assert cal.predict(row) == pytest.approx(cal.predict(filled))


def test_ece_and_reliability():
    p = np.full(100, 0.8)
    y = np.ones(100)
    assert expected_calibration_error(p, y) == pytest.approx(0.2)
    y[:20] = 0
    assert expected_calibration_error(p, y) == pytest.approx(0.0)
    rows = reliability(np.array([0.05, 0.15, 0.95, 0.96]), np.array([0, 0, 1, 0]))
    assert [r["n"] for r in rows] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert rows[9]["frac_real"] == 0.5 and rows[9]["mean_prob"] == pytest.approx(0.955)


def test_merge_carries_the_imagery_evidence_and_robust_placement():
    """The evidence a calibrator reads comes from detect's own merge; robust placement moves only the point."""
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 500, (400, 2))
    score = rng.uniform(0.5, 1.0, 400).astype(np.float32)
    cands = Candidates(xy, score, np.ones((400, 2), np.float32))
    ref = merge_candidates(cands, 30.0)
    assert set(ref.evidence) == set(IMAGERY_FEATURES)
    assert np.allclose(ref.evidence["max_logit"], logit(ref.score.astype(np.float64)))
    assert np.array_equal(np.exp(ref.evidence["log_windows"]).round().astype(int), ref.n_windows)
    assert (ref.evidence["mean_logit"] <= ref.evidence["max_logit"] + 1e-12).all()
    assert ref.n_windows.sum() == 400
    # mean logit by hand for the strongest cluster: every window within 30 m of the strongest
    i = int(np.argmax(score))
    members = np.hypot(*(xy - xy[i]).T) <= 30.0
    assert ref.evidence["mean_logit"][0] == pytest.approx(logit(score[members]).mean())
    robust = merge_candidates(cands, 30.0, place_radius=0.0)
    assert np.array_equal(robust.n_windows, ref.n_windows) and np.allclose(robust.score, ref.score)
    assert np.allclose(robust.xy[0], xy[i])                 # at the strongest window's own point
    sub = ref.subset(ref.score > 0.9)
    assert len(sub) == int((ref.score > 0.9).sum()) and set(sub.evidence) == set(ref.evidence)
    cal = fit_calibrator(ref.matrix(IMAGERY_FEATURES), (ref.score > 0.8).astype(int), IMAGERY_FEATURES)
    assert cal.predict_crossings(ref).shape == (len(ref),) and not cal.uses_dem


def test_boosted_trees_learn_an_interaction_a_logistic_model_cannot():
    """Real where both a and b are high (the DEM's word counting where the imagery is sure): the trees
    calibrate it, one logistic model over a and b cannot."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (6000, 2))
    p_true = np.where((x[:, 0] > 0.5) & (x[:, 1] > 0.5), 0.9, 0.1)
    y = (rng.random(6000) < p_true).astype(int)
    feats = ("max_logit", "emb_flow")
    trees = fit_trees(x[:3000], y[:3000], feats)
    flat = fit_calibrator(x[:3000], y[:3000], feats)
    test_x, test_y = x[3000:], y[3000:]
    assert expected_calibration_error(trees.predict(test_x), test_y) < 0.04
    assert np.abs(trees.predict(test_x) - p_true[3000:]).mean() < 0.05
    assert np.abs(flat.predict(test_x) - p_true[3000:]).mean() > 0.1


def test_trees_json_round_trip_missing_values_and_refusals():
    rng = np.random.default_rng(6)
    x = rng.normal(0, 1, (500, 3))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(0, 0.5, 500) > 0).astype(int)
    x[::11, 2] = np.nan
    w = rng.integers(1, 3, 500).astype(float)
    feats = ("max_logit", "mean_logit", "valley_along")
    cal = fit_trees(x, y, feats, weight=w, fitted_on={"scenes": ["s1"]})
    # weights move the fit: real crossings weighted up raise every probability's mean
    up = fit_trees(x, y, feats, weight=np.where(y == 1, 3.0, 1.0))
    assert up.predict(x).mean() > cal.predict(x).mean() + 0.1
    back = calibrator_from_json(json.loads(json.dumps(cal.to_json())))
    assert isinstance(back, TreeCalibrator) and back.uses_dem and back.fitted_on == {"scenes": ["s1"]}
    assert np.array_equal(back.predict(x), cal.predict(x))
    _missing_counts_as_the_mean(back, x, 2)
    good = cal.to_json()
    for bad, match in (({**good, "features": ["max_logit", "mean_logit", "colour"]}, "unknown evidence"),
                       ({k: v for k, v in good.items() if k != "trees"}, "lacks"),
                       ({**good, "trees": []}, "no trees"),
                       ({**good, "mean": [0.0, float("nan"), 0.0]}, "means"),
                       ({**good, "trees": [{**good["trees"][0], "left": [0] * len(good["trees"][0]["left"])}]},
                        "outside the tree or backwards"),
                       ({**good, "trees": [{**good["trees"][0], "value": good["trees"][0]["value"][:-1]}]}, "length")):
        with pytest.raises(ValueError, match=match):
            calibrator_from_json(bad)


def test_trees_bound_is_reached_and_never_exceeded():
    """max_probability without the DEM evidence bounds every probability the DEM evidence could give (the sum
    of each tree's best leaf: a bound, not always attained), and it rules out weak crossings."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (800, 3))
    y = (x[:, 0] + 2 * x[:, 2] * (x[:, 0] > 0) + rng.normal(0, 0.7, 800) > 0).astype(int)
    cal = fit_trees(x, y, ("max_logit", "mean_logit", "emb_flow"))
    cands = Candidates(rng.uniform(0, 400, (60, 2)), rng.uniform(0.5, 1.0, 60).astype(np.float32),
                       np.ones((60, 2), np.float32))
    crossings = merge_candidates(cands, 20.0)
    bound = cal.max_probability(crossings)
    img = crossings.matrix(("max_logit", "mean_logit"))
    grid = np.linspace(-4, 4, 81)
    best = np.max([cal.predict(np.column_stack([img, np.full(len(img), g)])) for g in grid], axis=0)
    assert (best <= bound + 1e-12).all()
    weak = cal.predict(np.column_stack([np.full(5, -3.0), np.full(5, -3.0), np.linspace(-4, 4, 5)])).max()
    c = merge_candidates(Candidates(np.array([[0.0, 0.0]]), np.array([0.05], np.float32), np.ones((1, 2), np.float32)), 20.0)
    assert weak <= cal.max_probability(c)[0] < 0.5
