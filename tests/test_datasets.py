"""Chip folders (VOC), scene crops and a tiny training run."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from conftest import noise_image, write_raster
from geodrain.datasets.chips import write_chips
from geodrain.datasets.sampler import CropSpec, SceneCropDataset
from geodrain.datasets.scene import open_scene
from geodrain.datasets.voc import VocChipDataset, read_annotation, write_annotation
from geodrain.errors import DatasetError
from geodrain.model import build_model, resolve_arch
from geodrain.synth import generate_scene
from geodrain.training.data import load_training_data
from geodrain.training.trainer import TrainConfig, window_loss


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return generate_scene(tmp_path_factory.mktemp("scene") / "s", seed=77, size=1024).outdir


def test_voc_annotation_round_trip(tmp_path):
    boxes = np.array([[40.5, 42.0, 60.0, 58.5]], np.float32)
    points = np.array([[50.25, 49.75]], np.float32)
    write_annotation(tmp_path / "a.xml", "a.tif", 100, 100, 4, boxes, points, ["culvert"], context_px=0)
    ann = read_annotation(tmp_path / "a.xml")
    assert ann.names == ["culvert"] and (ann.width, ann.height) == (100, 100)
    assert np.allclose(ann.boxes, boxes, atol=0.05) and np.allclose(ann.points, points, atol=0.01)
    # the reference layout without geodrain's <point>: the crossing is the box centre
    text = (tmp_path / "a.xml").read_text()
    (tmp_path / "b.xml").write_text(text[:text.index("<point>")] + text[text.index("</point>") + 8:])
    assert np.allclose(read_annotation(tmp_path / "b.xml").points, [[50.25, 50.25]], atol=0.05)


def test_chips_from_a_scene_round_trip(scene, tmp_path):
    out = tmp_path / "chips"
    s = write_chips(scene, None, out, jitter_m=4.0, neg_ratio=2.0, seed=1)
    truth = open_scene(scene)
    assert s.positives >= 1 and s.negatives + s.hard_negatives >= 2 * s.positives - 1
    pos = sorted(out.glob("*_pos_*.tif"))
    assert len(pos) == s.positives
    for chip in pos:
        ann = read_annotation(chip.with_suffix(".xml"))
        assert len(ann.points) >= 1
        assert np.abs(ann.points - 50).max(1).min() <= 4.0 + 1      # crossing within the jitter of the centre
        with rasterio.open(chip) as src:
            assert src.count == 4 and src.crs == truth.crs and (src.width, src.height) == (100, 100)
            # the georeferenced point of the crossing is a true crossing
            x, y = src.transform @ tuple(ann.points[np.abs(ann.points - 50).max(1).argmin()])
            assert np.hypot(*(truth.crossings.xy - [x, y]).T).min() < 0.5
    ds = VocChipDataset(out, 100, 4)
    labels = [float(ds[i][1][0, 0, 0]) for i in range(len(ds))]
    assert labels.count(1.0) == s.positives and labels.count(0.0) == len(ds) - s.positives


def test_three_band_chips_of_another_size_are_resized(tmp_path):
    write_raster(tmp_path / "c.tif", noise_image(120, 120, count=3))
    write_annotation(tmp_path / "c.xml", "c.tif", 120, 120, 3, np.array([[50, 50, 70, 70]], np.float32),
                     np.array([[60, 60]], np.float32), ["culvert"])
    ds = VocChipDataset(tmp_path, 100, 3)
    img, target = ds[0]
    assert img.shape == (3, 100, 100) and img.dtype == torch.uint8
    assert target[0, 0, 0] == 1.0   # (60, 60) * 100/120 = (50, 50): the centre


def test_scene_crops_label_windows(scene):
    spec = CropSpec(context_px=16, windows=9)
    ds = SceneCropDataset([open_scene(scene)], spec, length=40, seed=3)
    labels = torch.stack([ds[i][1] for i in range(len(ds))])[..., 0]
    assert ds[0][0].shape == (4, spec.size, spec.size)
    assert (labels == 1).any() and (labels == 0).sum() > (labels == 1).sum()
    assert torch.equal(ds[5][0], ds[5][0])                        # deterministic per index


def test_balanced_crossing_crops(scene):
    sc = open_scene(scene)
    n = len(sc.crossings)
    assert n >= 3 and set(sc.crossings.attrs) >= {"kind", "road_kind"}
    sc.crossings.attrs["surface"] = np.array(["rare"] + ["common"] * (n - 1), dtype=object)
    ds = SceneCropDataset([sc], CropSpec(context_px=16, windows=5), length=8, seed=1, balance_by="surface")
    pairs, p = ds._balanced
    rare = p[sc.crossings.attrs["surface"][pairs[:, 1]] == "rare"].sum()
    assert rare == pytest.approx(1 / (1 + np.sqrt(n - 1)))           # shares ~ sqrt(count), not count
    assert rare > 1 / n
    assert ds[3][0].shape == (4, ds.spec.size, ds.spec.size)
    with pytest.raises(DatasetError, match="no crossing attribute 'colour'"):
        SceneCropDataset([sc], CropSpec(context_px=16, windows=5), length=8, balance_by="colour")


def test_tiny_training_lowers_the_loss(scene):
    torch.manual_seed(0)
    data = load_training_data([scene], 16, samples_per_epoch=16, crop_windows=5, seed=0)
    model = build_model(resolve_arch("k1-s1-f128-w0.25"), 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    x, t = next(iter(torch.utils.data.DataLoader(data.train, batch_size=8)))
    x = x.float()

    def loss():
        return window_loss(model.forward_dense(x, 8), t)

    first = float(loss().detach())
    for _ in range(30):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < 0.7 * first


def test_time_budget_stops_training_and_keeps_the_last_epoch(scene):
    from geodrain.training.trainer import TrainConfig, train_model

    data = load_training_data([scene], 16, samples_per_epoch=8, crop_windows=3, seed=0)
    config = TrainConfig(arch=resolve_arch("k1-s1-f128-w0.25"), epochs=50, batch_size=4, device="cpu",
                         keep="last", max_seconds=1e-3)
    messages = []
    result = train_model(data, config, progress=False, log=messages.append)
    assert len(result.history) == 1 and "stopping after epoch 1" in messages[-1]
    assert config.to_dict()["keep"] == "last" and "balance_by" not in config.to_dict()
    assert "keep" not in TrainConfig().to_dict()   # defaults stay out of the manifest and search signatures


def test_training_only_the_box_layer_keeps_every_other_weight(scene, tmp_path):
    from geodrain.model import build_model, load_bundle, save_bundle
    from geodrain.training.trainer import TrainConfig, train_model

    torch.manual_seed(0)
    init = save_bundle(build_model(resolve_arch("k1-s1-f128-w0.25"), 16), tmp_path / "init").path
    data = load_training_data([scene], 16, samples_per_epoch=8, crop_windows=3, seed=0)
    config = TrainConfig(arch=resolve_arch("k1-s1-f128-w0.25"), epochs=1, batch_size=4, device="cpu", lr=0.05,
                         keep="last", init=str(init), train_only="box")
    before = load_bundle(init).model.state_dict()
    after = train_model(data, config, progress=False).model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.box.weight", "head.box.bias"}     # normalization statistics included
    assert config.to_dict()["train_only"] == "box" and "train_only" not in TrainConfig().to_dict()
    with pytest.raises(ValueError, match="needs a bundle to start from"):
        train_model(data, TrainConfig(arch=resolve_arch("k1-s1-f128-w0.25"), train_only="box"), progress=False)


def test_box_band_near_trains_boxes_of_the_ignored_band():
    from geodrain.datasets.targets import IGNORE, grid_targets

    # one crossing and three windows 24 px apart: 0 px (positive), 24 px (ignored band) and 48 px (negative) away
    t = torch.from_numpy(grid_targets(np.array([[50.0, 50.0]]), np.array([[10.0, 10.0]]), 50.0, 24.0, 1, 3))[None]
    assert t[0, 0, :, 0].tolist() == [1.0, IGNORE, 0.0]
    assert t[0, 0, 1, 1] == pytest.approx(-24 / 50)             # its target still points at the crossing
    out = torch.zeros(1, 1, 3, 5)
    out[..., 0] = torch.tensor([5.0, 0.0, -5.0])
    out[..., 1:] = t[..., 1:]                                   # every box exact ...
    base = {b: float(window_loss(out, t, box_band=b)) for b in ("positive", "near")}
    assert base["positive"] == pytest.approx(base["near"])
    out[0, 0, 1, 1] += 0.5                                      # ... but the ignored window's offset
    assert float(window_loss(out, t, box_band="positive")) == pytest.approx(base["positive"])
    assert float(window_loss(out, t, box_band="near")) > base["near"] + 0.04   # 0.45 over 8 box terms
    before = float(window_loss(out, t, box_band="near"))
    out[0, 0, 2, 1] += 0.5                                      # a negative window's box is never trained
    assert float(window_loss(out, t, box_band="near")) == pytest.approx(before)
    assert "box_band" not in TrainConfig().to_dict()
    assert TrainConfig(box_band="near").to_dict()["box_band"] == "near"


# -- training reads what detection reads ----------------------------------------------------------------------

def _labelled_scene(folder, data, res=1.0, nodata=None, at=(0.5, 0.5)):
    """A scene folder: ``data`` as naip.tif and one crossing in truth.gpkg at ``at`` (fractions of the width
    and height; default the centre)."""
    import geopandas as gpd
    from shapely.geometry import Point

    from conftest import ORIGIN

    folder.mkdir()
    write_raster(folder / "naip.tif", data, res=res, nodata=nodata)
    h, w = data.shape[1:]
    centre = Point(ORIGIN[0] + w * res * at[0], ORIGIN[1] - h * res * at[1])
    gpd.GeoDataFrame({"kind": ["culvert"]}, geometry=[centre], crs="EPSG:26914").to_file(
        folder / "truth.gpkg", layer="crossings")
    gpd.GeoDataFrame({"kind": ["road_intersection"]}, geometry=[Point(centre.x + 60, centre.y)],
                     crs="EPSG:26914").to_file(folder / "truth.gpkg", layer="hard_negatives")
    return folder


def _detect_source(raster):
    """The source `geodrain detect` reads ``raster`` through, with its default options for a 4-band model."""
    from geodrain.model.sppnet import GSD_M
    from geodrain.read import open_source
    from geodrain.settings import DetectOptions

    o = DetectOptions()
    return open_source([raster], o.bands, GSD_M, o.scale)


@pytest.mark.parametrize("res", [1.0, 0.5])
def test_a_uint16_scene_trains_on_the_pixels_detect_sees(tmp_path, res):
    """uint16 values are scaled (not wrapped modulo 256) and a finer GSD is resampled, as detection does."""
    n = int(300 / res)
    data = noise_image(n, n, dtype=np.uint16) + np.uint16(300)           # every value > 255
    folder = _labelled_scene(tmp_path / "s", data, res=res)
    scene = open_scene(folder)
    assert (scene.width, scene.height) == (300, 300) and scene.gsd == 1.0  # the model's grid
    spec = CropSpec(context_px=16, windows=3)
    ds = SceneCropDataset([scene], spec, length=6, augment=False, seed=2)
    with _detect_source(folder / "naip.tif") as src:
        for i in range(len(ds)):
            k, col, row = ds.crop_origin(i, np.random.default_rng((ds.seed, ds.epoch, i)))
            seen, valid = src.read(row, col, spec.size, spec.size)
            img = ds[i][0].numpy()
            assert np.array_equal(img, seen) and valid.all()
            assert img.max() > 200 and np.abs(img.astype(float).mean() - 127) < 40   # scaled, not wrapped
        # the paper's chips (validation and test sets) are cut the same way: the first is centred on the crossing
        imgs, targets = chip_arrays_of(scene)
        side = imgs.shape[-1]
        cx, cy = scene.to_pixels(scene.crossings.xy)[0]
        seen, _ = src.read(int(np.floor(cy)) - side // 2, int(np.floor(cx)) - side // 2, side, side)
        assert targets[0, 0] == 1.0 and np.array_equal(imgs[0], seen)


def chip_arrays_of(scene):
    from geodrain.datasets.chips import chip_arrays

    return chip_arrays(scene, 16, np.random.default_rng(0), jitter_m=0.0)


def test_windows_detect_would_skip_are_not_trained(tmp_path):
    """A crop over nodata: windows with less than half their pixels valid are ignored (as detect skips them),
    the others keep their labels; flips and rotations turn the mask with the image."""
    from geodrain.datasets.targets import IGNORE

    data = noise_image(300, 300)
    data[:, :, :150] = 0                                                  # left half nodata
    folder = _labelled_scene(tmp_path / "s", data, nodata=0, at=(0.97, 0.5))   # every crop's windows negative
    spec = CropSpec(context_px=16, windows=9)
    scene = open_scene(folder)
    plain = SceneCropDataset([scene], spec, length=40, augment=False, seed=0)
    turned = SceneCropDataset([scene], spec, length=40, augment=True, seed=0)
    straddling = 0
    for i in range(len(plain)):
        _, col, _ = plain.crop_origin(i, np.random.default_rng((plain.seed, plain.epoch, i)))
        # window j's 100 px core starts at col + 16 + 8 j; pixels from column 150 on are valid
        valid_px = np.clip(col + 16 + 8 * np.arange(9) + 100 - 150, 0, 100)
        expect = np.broadcast_to(valid_px < 50, (9, 9))
        labels = plain[i][1][..., 0].numpy()
        assert np.array_equal(labels == IGNORE, expect)
        assert ((turned[i][1][..., 0].numpy() == IGNORE).sum()) == expect.sum()
        straddling += bool(expect.any() and not expect.all())
    assert straddling > 0
