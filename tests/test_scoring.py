"""Tests of geodrain.scoring: the logistic calibrator, its JSON form, calibration measures, and the imagery
evidence that detect's merge carries for it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geodrain.merge import Candidates, merge_candidates
from geodrain.scoring import (IMAGERY_FEATURES, Calibrator, expected_calibration_error, fit_calibrator, logit,
                              reliability)


def test_fit_recovers_a_logistic_model():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (20000, 2)) * [2.0, 0.5] + [1.0, -3.0]
    z = 0.5 + 1.5 * x[:, 0] - 2.0 * x[:, 1]
    y = (rng.random(20000) < 1 / (1 + np.exp(-z))).astype(int)
    cal = fit_calibrator(x, y, ("a", "b"), l2=0.0)
    # back to raw units: w_raw = coef / scale, b_raw = intercept - sum(coef * mean / scale)
    w = cal.coef / cal.scale
    b = cal.intercept - float(np.sum(cal.coef * cal.mean / cal.scale))
    assert w == pytest.approx([1.5, -2.0], rel=0.1)
    assert b == pytest.approx(0.5, abs=0.35)
    # its probabilities are calibrated on data drawn from the same model
    assert expected_calibration_error(cal.predict(x), y) < 0.03


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
    # a missing value counts as the feature's calibration mean
    row = x[:1].copy()
    row[0, 1] = np.nan
    filled = row.copy()
    filled[0, 1] = cal.mean[1]
    assert back.predict(row) == pytest.approx(back.predict(filled))
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
