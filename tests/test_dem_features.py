"""Tests of geodrain.dem_features on DEMs built here: a valley crossed by a road embankment (a digital dam)
against a field edge beside the same road, nodata handling and refusal of skewed grids."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from geodrain.dem_features import crossing_evidence, local_relief


def _scene(n=600):
    """1 m DEM: a plane falling south, a channel (2 m deep valley) running south along x = 300 and a road
    embankment (2 m high, flat top 8 m, side slopes 3:1) with ditches along y = 300, continuous over the
    channel; the road's grade follows the terrain smoothly (it sags 1.5 m into the valley)."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) + 0.5
    plane = 300.0 - 0.004 * yy + 0.001 * xx
    dx = np.abs(xx - 300.0)
    dy = np.abs(yy - 300.0)
    z = plane - 2.0 * np.exp(-(dx / 12.0) ** 2)                  # valley
    z -= 0.5 * np.exp(-((dy - 12.0) / 1.5) ** 2)                   # road ditches
    top = 300.0 - 0.004 * 300.0 + 0.001 * xx + 2.0 - 1.5 * np.exp(-(dx / 60.0) ** 2)
    z = np.where(dy < 12.0, np.maximum(z, top - np.clip(dy - 4.0, 0, None) / 3.0), z)
    return z.astype(np.float32), Affine(1.0, 0, 500000.0, 0, -1.0, 4600000.0)


def test_crossing_has_more_evidence_than_a_field_edge():
    z, t = _scene()
    cross = t @ (300.0, 300.0)
    edge = t @ (120.0, 300.0)          # on the same road, no channel under it
    ev = crossing_evidence(z, t, np.array([cross, edge]))
    assert ev["channel_pair"][0] > 1.0 and ev["channel_pair"][0] > ev["channel_pair"][1] + 0.5
    assert ev["emb_flow"][0] > ev["emb_flow"][1] + 1.0     # the valley's flow spills across the road
    assert ev["embank"][0] > 0.5 and ev["embank"][1] > 0.5  # both on the raised road
    assert ev["dam_depth"][0] > 0.5 > 0.2 > ev["dam_depth"][1]  # the road ponds the valley: a digital dam


def test_nodata_and_edges():
    z, t = _scene()
    z2 = z.copy()
    z2[:, :150] = -9999.0
    ev = crossing_evidence(z2, t, np.array([t @ (300.0, 300.0), t @ (20.0, 20.0), t @ (5000.0, 10.0)]),
                           nodata=-9999.0)
    assert np.isfinite(ev["channel_pair"][0]) and ev["channel_pair"][0] > 1.0
    assert np.isnan(ev["emb_flow"][1])            # mostly nodata around it
    assert np.isnan(ev["emb_flow"][2])            # outside the DEM
    nan = z.copy()
    nan[400:, :] = np.nan
    ev = crossing_evidence(nan, t, np.array([t @ (300.0, 300.0)]), nodata=None)
    assert np.isfinite(ev["emb_flow"][0])


def test_refuses_skewed_or_south_up_grids():
    z, _ = _scene(200)
    for bad in (Affine(1, 0.1, 0, 0, -1, 0), Affine(1, 0, 0, 0, 1, 0), Affine(1, 0, 0, 0, -2, 0)):
        with pytest.raises(ValueError):
            crossing_evidence(z, bad, np.array([[10.0, -10.0]]))


def test_local_relief_signs():
    z, _ = _scene(600)
    rel = local_relief(z.astype(np.float64), 1.0)
    assert rel[100, 300] < -0.5    # the valley floor, away from the road, is below its surroundings
    assert rel[300, 100] > 0.5     # the road embankment, away from the valley, above them
    assert abs(rel[100, 100]) < 0.1   # a plain field
