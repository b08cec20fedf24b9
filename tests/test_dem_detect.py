"""`geodrain detect` with calibrated scores and a DEM: the score is the calibrated probability and --threshold
filters on it; a DEM in another CRS, resolution and elevation unit gives the output of the DEM on the
imagery's grid; a DEM-aware bundle refuses to run without a DEM; malformed scoring sections and DEMs that do
not fit are one-line errors. Small rasters and a random-weight bundle: the model's windows land where they
land, which is all these tests need."""

from __future__ import annotations

import shutil

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.warp import Resampling, calculate_default_transform, reproject

from conftest import ORIGIN, noise_image, write_raster
from geodrain.cli import cli
from geodrain.detect import DetectOptions, detect
from geodrain.errors import BundleError, GeodrainWarning, RasterError
from geodrain.model.bundle import load_bundle
from geodrain.scoring import IMAGERY_FEATURES, Calibrator, DemScoring, Scoring

UTM = "EPSG:26914"
STATE_PLANE_FT = "EPSG:26852"          # NAD83 / Nebraska (ftUS)
US_FT = 1200.0 / 3937.0
DEM_FEATURES = ("emb_flow", "flow_near", "channel_pair", "embank", "dam_depth")


def _calibrator(features, coef, intercept=0.0) -> Calibrator:
    n = len(features)
    return Calibrator(tuple(features), np.zeros(n), np.ones(n), np.asarray(coef, float), intercept)


def _scored_bundle(src, dst, *, dem: DemScoring | None = None, require_dem=False, floor=0.02):
    shutil.copytree(src, dst)
    b = load_bundle(dst)
    imagery = _calibrator(IMAGERY_FEATURES, [0.4, 0.3, 0.5], -0.5)
    sc = Scoring(b.stride_px, floor, 30.0, imagery, 0.5, None, dem)
    b.update_manifest(scoring=sc.to_json(),
                      inputs={"imagery": "required", "dem": "required" if require_dem else "optional"})
    return load_bundle(dst)


def _terrain(n: int) -> np.ndarray:
    """A gently sloping plane with a valley running north-south and a road embankment east-west across it."""
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) + 0.5
    dx, dy = np.abs(xx - n / 2), np.abs(yy - n / 2)
    z = 300.0 - 0.004 * yy + 0.001 * xx - 2.0 * np.exp(-(dx / 12.0) ** 2)
    top = 300.0 - 0.004 * n / 2 + 0.001 * xx + 2.0 - 1.5 * np.exp(-(dx / 60.0) ** 2)
    return np.where(dy < 12.0, np.maximum(z, top - np.clip(dy - 4.0, 0, None) / 3.0), z).astype(np.float32)


@pytest.fixture(scope="module")
def site(tmp_path_factory, random_bundle):
    """A 300 m raster, the DEM of its surroundings (700 m, 1 m cells) on its grid and in a state plane CRS in
    US survey feet at 2.5 ft cells (elevations in feet), and bundles with calibrated scores."""
    d = tmp_path_factory.mktemp("site")
    raster = write_raster(d / "naip.tif", noise_image(300, 300, seed=3))
    z = _terrain(700)
    origin = (ORIGIN[0] - 200.0, ORIGIN[1] + 200.0)
    dem = write_raster(d / "dem.tif", z[None], crs=UTM, origin=origin, nodata=-9999.0)
    with rasterio.open(dem) as src:
        t = src.transform
        dst_t, w, h = calculate_default_transform(UTM, STATE_PLANE_FT, src.width, src.height, *src.bounds,
                                                  resolution=2.5)
    out = np.full((h, w), -9999.0, np.float32)
    reproject(z / US_FT, out, src_transform=t, src_crs=UTM, src_nodata=-9999.0, dst_transform=dst_t,
              dst_crs=STATE_PLANE_FT, dst_nodata=-9999.0, resampling=Resampling.bilinear)
    dem_sp = write_raster(d / "dem_sp.tif", out[None], crs=STATE_PLANE_FT, origin=(dst_t.c, dst_t.f), res=2.5,
                          nodata=-9999.0)
    check = DemScoring(_calibrator(IMAGERY_FEATURES + DEM_FEATURES, [0.4, 0.3, 0.5, 0.6, 0.2, 0.8, 0.1, 0.1]))
    return {"raster": raster, "dem": dem, "dem_sp": dem_sp,
            "random": random_bundle, "imagery": _scored_bundle(random_bundle, d / "imagery"),
            "dem_scored": _scored_bundle(random_bundle, d / "dem_scored", dem=check),
            "dem_aware": _scored_bundle(random_bundle, d / "dem_aware", dem=check, require_dem=True)}


def _run(site, bundle, out=None, **opts):
    return detect(site["raster"], out, model=bundle, progress=False,
                  options=DetectOptions(device="cpu", overwrite=True, **opts))


def test_score_is_the_calibrated_probability_and_threshold_filters_on_it(site, tmp_path):
    every = _run(site, site["imagery"], threshold=0.0)
    c = every.crossings
    assert len(c) >= 3 and c.probability is not None
    sc = site["imagery"].scoring_for(site["imagery"].stride_px)
    assert np.allclose(c.probability, sc.imagery.predict_crossings(c))
    assert (c.score >= sc.floor).all()                               # windows from the scoring's floor
    cut = float(np.median(c.probability))
    out = tmp_path / "c.gpkg"
    some = _run(site, site["imagery"], out, threshold=cut)
    gdf = gpd.read_file(out, layer="crossings")
    assert len(gdf) == int((c.probability >= cut).sum()) < len(c)
    assert (gdf["score"] >= round(cut, 4) - 1e-4).all()
    assert np.allclose(gdf["score"], np.round(some.crossings.probability, 6))
    assert np.allclose(gdf["window_score"], np.round(some.crossings.score, 6))
    assert not {"emb_flow", "snapped"} & set(gdf.columns)            # no DEM, no DEM columns
    import pyogrio
    meta = pyogrio.read_info(out, layer="crossings")["layer_metadata"]
    assert meta["score"].startswith("calibrated probability") and "imagery evidence" in meta["score"]


def test_without_scoring_the_score_is_the_window_probability(site, random_bundle):
    r = _run(site, random_bundle, threshold=0.02)
    assert r.crossings.probability is None and r.settings.scoring is None
    assert np.array_equal(r.crossings.reported_score, r.crossings.score)


def test_dem_in_another_crs_resolution_and_unit_gives_the_same_crossings(site, tmp_path):
    """The DEM of the imagery's grid and the same DEM in state plane feet (2.5 ft cells, elevations in feet):
    the same crossings, evidence and probabilities within resampling tolerance."""
    a = _run(site, site["dem_scored"], tmp_path / "a.gpkg", threshold=0.0, dem=(site["dem"],))
    b = _run(site, site["dem_scored"], tmp_path / "b.gpkg", threshold=0.0, dem=(site["dem_sp"],))
    assert len(a.crossings) >= 3 and np.array_equal(a.crossings.xy, b.crossings.xy)
    ga, gb = (gpd.read_file(tmp_path / f"{k}.gpkg", layer="crossings") for k in "ab")
    for col in DEM_FEATURES:
        tol = 0.3 if col in ("emb_flow", "flow_near") else 0.15
        assert np.allclose(ga[col], gb[col], atol=tol), col
    assert np.allclose(ga["score"], gb["score"], atol=0.1)
    assert not np.allclose(ga["score"], ga["window_score"])
    import pyogrio
    meta = pyogrio.read_info(tmp_path / "b.gpkg", layer="crossings")["layer_metadata"]
    assert "imagery and DEM" in meta["score"] and "dem_sp.tif" in meta["dem"]


def test_bundle_without_a_dem_calibrator_keeps_imagery_scores_and_adds_evidence(site):
    plain = _run(site, site["imagery"], threshold=0.0)
    with_dem = _run(site, site["imagery"], threshold=0.0, dem=(site["dem"],))
    assert np.array_equal(plain.crossings.xy, with_dem.crossings.xy)
    assert np.allclose(plain.crossings.probability, with_dem.crossings.probability)
    assert set(DEM_FEATURES) <= set(with_dem.crossings.evidence)


def test_crossings_that_cannot_reach_the_threshold_are_not_read_from_the_dem(site, tmp_path):
    """With a DEM calibrator that records its fitted range, detect reads the DEM only for the crossings that can
    still reach the threshold: the same crossings and probabilities as scoring every crossing, fewer read."""
    from geodrain.postprocess import report
    from geodrain.read import open_dem

    feats = IMAGERY_FEATURES + DEM_FEATURES
    cal = _calibrator(feats, [0.4, 0.3, 0.5, 0.6, 0.2, 0.8, 0.1, 0.1])
    cal.lo, cal.hi = np.array([0, 0, 0, 0, 0, 0, -1, 0.0]), np.array([8, 8, 3, 5, 5, 2, 2, 3.0])
    bundle = _scored_bundle(site["random"], tmp_path / "ranged", dem=DemScoring(cal, snap_m=25.0, dedupe_m=15.0))
    every = _run(site, bundle, threshold=0.0, dem=(site["dem"],))
    p = every.crossings.probability
    cut = float(np.quantile(p, 0.6))
    some = _run(site, bundle, threshold=cut, dem=(site["dem"],))
    keep = p >= cut
    assert 0 < len(some.crossings) == int(keep.sum()) < len(p)
    assert np.allclose(some.crossings.xy, every.crossings.xy[keep])
    assert np.allclose(some.crossings.probability, p[keep])
    sc = bundle.scoring_for(bundle.stride_px)
    read = sc.dem.calibrator.max_probability(every.crossings) >= cut
    assert read.sum() < len(p)                                    # some crossings were never read from the DEM


def test_a_boosted_tree_dem_calibrator_in_a_bundle(site, tmp_path):
    """A bundle whose DEM calibrator is boosted trees (geodrain.scoring.fit_trees) loads from its manifest,
    scores detect's crossings from their imagery and DEM evidence (valley_along among it, written as a
    column), and skipping the DEM read where the trees' bound is below the threshold changes nothing."""
    import pyogrio

    from geodrain.scoring import TreeCalibrator, fit_trees

    rng = np.random.default_rng(11)
    feats = IMAGERY_FEATURES + ("emb_flow", "valley_along")
    x = np.column_stack([rng.uniform(-2, 12, 600), rng.uniform(-2, 8, 600), rng.uniform(0, 3, 600),
                         rng.uniform(0, 5, 600), rng.uniform(0, 1, 600)])
    y = ((x[:, 0] > 4) & (x[:, 4] < 0.5) | (x[:, 0] > 10)).astype(int)
    bundle = _scored_bundle(site["random"], tmp_path / "trees", dem=DemScoring(fit_trees(x, y, feats)))
    sc = bundle.scoring_for(bundle.stride_px)
    assert isinstance(sc.dem.calibrator, TreeCalibrator)
    every = _run(site, bundle, tmp_path / "every.gpkg", threshold=0.0, dem=(site["dem"],))
    p = every.crossings.probability
    assert np.allclose(p, sc.dem.calibrator.predict_crossings(every.crossings))
    cut = float(np.quantile(p, 0.5))
    some = _run(site, bundle, threshold=cut, dem=(site["dem"],))
    keep = p >= cut
    assert len(some.crossings) == int(keep.sum()) and np.allclose(some.crossings.probability, p[keep])
    cols = pyogrio.read_dataframe(tmp_path / "every.gpkg", layer="crossings").columns
    assert {"valley_along", "along_road", "emb_flow"} <= set(cols)


def test_a_dem_coarser_than_the_calibrator_was_measured_at_scores_from_the_imagery(site, tmp_path):
    import pyogrio
    from rasterio.enums import Resampling

    with rasterio.open(site["dem"]) as src:                       # the site's DEM aggregated to 10 m cells
        z = src.read(1, out_shape=(70, 70), resampling=Resampling.average)
    coarse = write_raster(tmp_path / "dem10.tif", z[None], crs=UTM, origin=(ORIGIN[0] - 200.0, ORIGIN[1] + 200.0),
                          res=10.0, nodata=-9999.0)
    check = _calibrator(IMAGERY_FEATURES + DEM_FEATURES, [0.4, 0.3, 0.5, 0.6, 0.2, 0.8, 0.1, 0.1])
    bundle = _scored_bundle(site["random"], tmp_path / "limited", dem=DemScoring(check, max_cell_m=5.0),
                            require_dem=True)
    plain = _run(site, site["imagery"], threshold=0.0)
    with pytest.warns(GeodrainWarning, match=r"dem10.tif has cells of 10 m, coarser than the 5 m"):
        r = _run(site, bundle, tmp_path / "c.gpkg", threshold=0.0, dem=(coarse,))
    assert np.allclose(r.crossings.probability, plain.crossings.probability)     # the imagery calibrator's
    assert {"emb_flow", "channel_pair"} <= set(gpd.read_file(tmp_path / "c.gpkg", layer="crossings").columns)
    meta = pyogrio.read_info(tmp_path / "c.gpkg", layer="crossings")["layer_metadata"]
    assert "(imagery evidence)" in meta["score"]
    fine = _run(site, bundle, threshold=0.0, dem=(site["dem"],))                # 1 m: the DEM calibrator
    assert not np.allclose(fine.crossings.probability, plain.crossings.probability)


def test_dem_aware_bundle_refuses_without_a_dem(site, tmp_path):
    with pytest.raises(BundleError, match="needs a DEM"):
        _run(site, site["dem_aware"])
    out = tmp_path / "c.gpkg"
    res = CliRunner().invoke(cli, ["detect", str(site["raster"]), "-o", str(out), "-m",
                                   str(site["dem_aware"].path), "-q"])
    err = res.stderr.strip()
    assert res.exit_code != 0 and err.startswith("geodrain: error:") and "\n" not in err and "needs a DEM" in err
    assert not out.exists()
    ok = CliRunner().invoke(cli, ["detect", str(site["raster"]), "-o", str(out), "-m", str(site["dem_aware"].path),
                                  "--dem", str(site["dem_sp"]), "--threshold", "0", "-q"])
    assert ok.exit_code == 0, ok.output
    assert "emb_flow" in gpd.read_file(out, layer="crossings").columns


def test_dem_errors_are_one_line(site, tmp_path):
    far = write_raster(tmp_path / "far.tif", _terrain(100)[None], origin=(ORIGIN[0] + 50000, ORIGIN[1]))
    with pytest.raises(RasterError, match="does not overlap"):
        _run(site, site["imagery"], dem=(far,))
    for args, match in (((tmp_path / "none.tif",), "DEM not found"),
                        ((write_raster(tmp_path / "nocrs.tif", _terrain(50)[None], crs=None),), "no CRS")):
        res = CliRunner().invoke(cli, ["detect", str(site["raster"]), "-o", str(tmp_path / "x.gpkg"), "-m",
                                       str(site["imagery"].path), "--dem", str(args[0]), "-q"])
        err = res.stderr.strip()
        assert res.exit_code != 0 and err.startswith("geodrain: error:") and match in err, err
        assert not (tmp_path / "x.gpkg").exists()


def test_malformed_scoring_and_inputs_refused(site, tmp_path):
    import json

    bad = tmp_path / "bad"
    shutil.copytree(site["imagery"].path, bad)
    m = json.loads((bad / "manifest.json").read_text())
    for scoring, match in (({**m["scoring"], "floor": 2.0}, "'floor' must be"),
                           ({**m["scoring"], "imagery": {"kind": "isotonic"}}, "unknown calibrator"),
                           ({k: v for k, v in m["scoring"].items() if k != "stride_px"}, "stride_px")):
        (bad / "manifest.json").write_text(json.dumps({**m, "scoring": scoring}))
        with pytest.raises(BundleError, match=match):
            load_bundle(bad)
    (bad / "manifest.json").write_text(json.dumps({**m, "inputs": {"imagery": "required", "dem": "required"}}))
    with pytest.raises(BundleError, match="needs a 'scoring' with a 'dem' calibrator"):
        load_bundle(bad)
    (bad / "manifest.json").write_text(json.dumps({**m, "inputs": {"imagery": "optional"}}))
    with pytest.raises(BundleError, match="'inputs' must be"):
        load_bundle(bad)


def test_window_scores_ignore_the_calibration(site):
    """What `geodrain calibrate`, `mine` and the experiments ask for: every window from the given threshold,
    whatever the bundle's calibrated scoring (a DEM-aware bundle included: windows need no DEM)."""
    every = _run(site, site["imagery"], threshold=0.0).candidates      # calibrated: windows from its floor 0.02
    assert every.floor == 0.02
    cut = float(np.quantile(every.score, 0.5))
    for key in ("imagery", "dem_aware"):
        r = _run(site, site[key], threshold=cut, window_scores=True)
        assert r.settings.scoring is None and r.crossings.probability is None
        assert r.candidates.floor == cut and len(r.candidates) == int((every.score >= cut).sum())
        assert np.array_equal(r.crossings.reported_score, r.crossings.score) and (r.crossings.score >= cut).all()


def test_window_scores_ignore_the_calibrated_scoring(site, tmp_path):
    """--window-scores: score and threshold are the strongest window's probability, as without scoring."""
    b = site["imagery"]
    r = _run(site, b, tmp_path / "w.gpkg", window_scores=True, threshold=0.02)
    assert r.settings.scoring is None and r.settings.threshold == 0.02
    assert r.crossings.probability is None and (r.crossings.score >= 0.02).all()
    gdf = gpd.read_file(tmp_path / "w.gpkg", layer="crossings")
    assert len(gdf) == len(r.crossings) > 0 and np.allclose(gdf["score"], gdf["window_score"])
    default = _run(site, site["imagery"], window_scores=True)
    assert default.settings.threshold == b.threshold      # the bundle's window threshold, not report_at
