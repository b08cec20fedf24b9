"""Tests of geodrain.dem_features and the DEM reader (geodrain.read.DemSource) on DEMs written here: a valley
crossed by a road embankment (a digital dam) against a field edge beside the same road, the channel's passage
found from a point off it, nodata handling, and the same evidence from the DEM in another CRS, resolution and
elevation unit."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import Resampling, reproject

from conftest import write_raster
from geodrain.dem_features import DEM_FEATURES, crossing_evidence, local_relief
from geodrain.errors import RasterError
from geodrain.read import open_dem

UTM = "EPSG:26914"
ORIGIN = (600000.0, 4500000.0)


def _dem(n=600):
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
    return z.astype(np.float32)


def _at(col, row):
    """Map point of a cell position of the 1 m test grid."""
    return ORIGIN[0] + col, ORIGIN[1] - row


@pytest.fixture(scope="module")
def dem_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("dem") / "dem.tif"
    return write_raster(path, _dem()[None], crs=UTM, nodata=-9999.0)


def test_crossing_has_more_evidence_than_a_field_edge(dem_path):
    dem = open_dem(dem_path, UTM, ORIGIN)
    ev = crossing_evidence(dem, np.array([_at(300, 300), _at(120, 300)])).evidence   # crossing; field edge
    assert ev["channel_pair"][0] > 1.0 and ev["channel_pair"][0] > ev["channel_pair"][1] + 0.5
    assert ev["emb_flow"][0] > ev["emb_flow"][1] + 1.0     # the valley's flow spills across the road
    assert ev["embank"][0] > 0.5 and ev["embank"][1] > 0.5  # both on the raised road
    assert ev["dam_depth"][0] > 0.5 > 0.2 > ev["dam_depth"][1]  # the road ponds the valley: a digital dam


def test_a_ditch_runs_along_the_road_and_a_stream_leaves_it(dem_path):
    dem = open_dem(dem_path, UTM, ORIGIN)
    pts = np.array([_at(300, 300), _at(380, 300), _at(450, 300)])    # the crossing; two points on the road
    for half in (100.0, 160.0):
        along = crossing_evidence(dem, pts, half_m=half).evidence["along_road"]
        assert along[0] < 0.4 and (along[1:] > 0.9).all(), (half, along)
    # no channel within reach (a flat field): no evidence either way
    flat = write_raster(dem_path.parent / "flat.tif", np.full((1, 400, 400), 250.0, np.float32), crs=UTM,
                        nodata=-9999.0)
    ev = crossing_evidence(open_dem(flat, UTM, ORIGIN), np.array([_at(200, 200)])).evidence
    assert np.isnan(ev["along_road"][0]) and ev["emb_flow"][0] == 0.0


def test_the_valley_without_the_road_where_the_window_drains_upstream(dem_path):
    """A trough upstream of the road, open to the window's east edge, holds the window's lowest edge cell:
    filled towards it, the dammed stream runs off along the road's ditch (along_road is fooled), while routed
    with the road taken out the stream still leaves the road (valley_along), and a ditch still runs along it."""
    z = _dem()
    yy, xx = np.mgrid[0:z.shape[0], 0:z.shape[1]] + 0.5
    z = z - 6.0 * np.exp(-((yy - 215.0) / 6.0) ** 2) * ((xx > 330) & (xx < 420))
    path = write_raster(dem_path.parent / "trough.tif", z.astype(np.float32)[None], crs=UTM, nodata=-9999.0)
    pts = np.array([_at(300, 300), _at(380, 300), _at(450, 300)])
    ev = crossing_evidence(open_dem(path, UTM, ORIGIN), pts, half_m=100.0).evidence
    assert ev["along_road"][0] > 0.5
    assert ev["valley_along"][0] < 0.4 and (ev["valley_along"][1:] > 0.9).all(), ev["valley_along"]
    plain = crossing_evidence(open_dem(dem_path, UTM, ORIGIN), pts, half_m=100.0).evidence["valley_along"]
    assert plain[0] < 0.5 and (plain[1:] > 0.9).all(), plain


def test_snap_finds_the_channel_passage(dem_path):
    dem = open_dem(dem_path, UTM, ORIGIN)
    pts = np.array([_at(315, 306), _at(288, 296), _at(120, 300)])   # 16 and 13 m off the crossing; a field edge
    ev = crossing_evidence(dem, pts, snap_m=25.0)
    assert ev.snapped.tolist() == [True, True, False]
    for k in (0, 1):
        assert np.hypot(*(ev.xy[k] - np.array(_at(300, 300)))) < 3.0
    assert np.array_equal(ev.xy[2], pts[2])                       # nothing to snap to: left where it was
    assert ev.evidence["emb_flow"][0] > 3.0                        # measured at the passage


def test_nodata_and_edges(tmp_path):
    z = _dem()
    z[:, :150] = -9999.0
    dem = open_dem(write_raster(tmp_path / "nd.tif", z[None], crs=UTM, nodata=-9999.0), UTM, ORIGIN)
    ev = crossing_evidence(dem, np.array([_at(300, 300), _at(20, 20), _at(5000, 10)])).evidence
    assert np.isfinite(ev["channel_pair"][0]) and ev["channel_pair"][0] > 1.0
    assert np.isnan(ev["emb_flow"][1])            # mostly nodata around it
    assert np.isnan(ev["emb_flow"][2])            # outside the DEM
    nan = _dem()
    nan[400:, :] = np.nan                         # NaN without a declared nodata: invalid, never data
    dem = open_dem(write_raster(tmp_path / "nan.tif", nan[None], crs=UTM), UTM, ORIGIN)
    ev = crossing_evidence(dem, np.array([_at(300, 300)])).evidence
    assert np.isfinite(ev["emb_flow"][0])
    t, n = dem.window_transform(*_at(300, 450), 160.0, 2.0)
    zz, ok = dem.read(t, n, n)
    assert not ok[n // 2 + 30:].any() and ok[:n // 2 - 30].all() and np.isnan(zz[~ok]).all()


def test_dem_in_another_crs_resolution_and_unit_gives_the_same_evidence(tmp_path, dem_path):
    """The DEM of the test in a state plane CRS in US survey feet, at 2.5 ft cells, elevations in feet, is
    warped back onto the imagery's grid on read and gives the evidence of the DEM on that grid."""
    sp = "EPSG:26852"   # NAD83 / Nebraska (ftUS)
    with rasterio.open(dem_path) as src:
        z, t = src.read(1), src.transform
    ft = 1200.0 / 3937.0                                   # metres per US survey foot
    from rasterio.warp import calculate_default_transform

    dst_t, w, h = calculate_default_transform(UTM, sp, z.shape[1], z.shape[0], *calculate_bounds(t, z.shape),
                                              resolution=2.5)
    out = np.full((h, w), -9999.0, np.float32)
    reproject(z / ft, out, src_transform=t, src_crs=UTM, src_nodata=-9999.0, dst_transform=dst_t, dst_crs=sp,
              dst_nodata=-9999.0, resampling=Resampling.bilinear)
    other = write_raster(tmp_path / "sp.tif", out[None], crs=sp, nodata=-9999.0, origin=(dst_t.c, dst_t.f),
                         res=2.5)
    pts = np.array([_at(300, 300), _at(120, 300), _at(312, 305)])
    ref = crossing_evidence(open_dem(dem_path, UTM, ORIGIN), pts, snap_m=25.0)
    got = crossing_evidence(open_dem(other, UTM, ORIGIN), pts, snap_m=25.0)
    assert open_dem(other, UTM).files[0].z_to_m == pytest.approx(ft)
    for k in DEM_FEATURES:
        tol = {"emb_flow": 0.3, "flow_near": 0.3}.get(k, 0.15)
        assert got.evidence[k] == pytest.approx(ref.evidence[k], abs=tol), k
    assert got.snapped.tolist() == ref.snapped.tolist()
    assert np.hypot(*(got.xy - ref.xy).T).max() < 4.0


def calculate_bounds(t: Affine, shape) -> tuple[float, float, float, float]:
    h, w = shape
    return t.c, t.f + t.e * h, t.c + t.a * w, t.f


def test_dem_refusals(tmp_path):
    with pytest.raises(RasterError, match="DEM not found"):
        open_dem(tmp_path / "missing.tif", UTM)
    nocrs = write_raster(tmp_path / "nocrs.tif", _dem(50)[None], crs=None)
    with pytest.raises(RasterError, match="no CRS"):
        open_dem(nocrs, UTM)
    geo = write_raster(tmp_path / "geo.tif", _dem(50)[None], crs="EPSG:4326", res=1e-5, origin=(-97.8, 40.6))
    with pytest.raises(RasterError, match="geographic"):
        open_dem(geo, UTM)


def test_local_relief_signs():
    z = _dem(600)
    rel = local_relief(z.astype(np.float64), 1.0)
    assert rel[100, 300] < -0.5    # the valley floor, away from the road, is below its surroundings
    assert rel[300, 100] > 0.5     # the road embankment, away from the valley, above them
    assert abs(rel[100, 100]) < 0.1   # a plain field
