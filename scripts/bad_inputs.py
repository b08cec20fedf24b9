#!/usr/bin/env python
"""Every kind of bad input for every command: make it, run the real CLI on it, print what the user sees.

    python scripts/bad_inputs.py                 # a markdown table: command | input | exit | message | output left | s
    python scripts/bad_inputs.py --only detect   # the cases of one command (or of names containing the text)

Each case runs ``python -m geodrain.cli ...`` in a subprocess (with a timeout, so a hang shows as one), on files
made here with rasterio, geopandas and ``geodrain synth``. A case says what must happen: the exit status, a part
of the one-line message, and whether its output may be left behind; the table flags every row that differs
(``expected ...``) and every traceback. ``tests/test_bad_inputs.py`` runs the same cases in-process (or in a
process where the behaviour needs one: signals, file-size limits, concurrent runs).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

X0, Y0 = 600000.0, 4500000.0
TIMEOUT_S = 300


# -- inputs ---------------------------------------------------------------------------------------------------


def raster(path: Path, data: np.ndarray, crs="EPSG:26914", res=1.0, origin=(X0, Y0), transform=None, **kw) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    prof = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                dtype=data.dtype.name, transform=transform or from_origin(origin[0], origin[1], res, res),
                tiled=True, blockxsize=128, blockysize=128, compress="deflate", **kw)
    if crs:
        prof["crs"] = crs
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
    return path


def noise(h: int, w: int, count: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 255, (count, h, w)).astype(np.uint8)


def polygons(path: Path, geoms, crs="EPSG:26914", layer: str | None = None) -> Path:
    import warnings

    import geopandas as gpd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # a file without CRS is one of the cases
        gpd.GeoDataFrame(geometry=list(geoms), crs=crs).to_file(path, layer=layer)
    return path


class Inputs:
    """The files cases use, made on first use in ``root``. ``model`` is the bundle detect runs with."""

    def __init__(self, root: Path, model: str | Path):
        self.root = Path(root)
        self.model = str(model)
        self._n = 0

    def case_dir(self) -> Path:
        self._n += 1
        d = self.root / f"case{self._n:03d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    # rasters
    @cached_property
    def good(self) -> str:
        return str(raster(self.root / "good.tif", noise(300, 300)))

    def _file(self, name: str, make: Callable[[Path], object]) -> str:
        p = self.root / name
        if not p.exists():
            make(p)
        return str(p)

    def bad_raster(self, kind: str) -> str:
        from rasterio.transform import Affine

        makers = {
            "corrupt.tif": lambda p: p.write_bytes(b"II*\x00" + b"not a tiff" * 50),
            "empty.tif": lambda p: p.write_bytes(b""),
            "trunc.tif": lambda p: (raster(p, noise(600, 600)), p.write_bytes(p.read_bytes()[:30000])),
            "rgb.tif": lambda p: raster(p, noise(300, 300, 3)),
            "nocrs.tif": lambda p: raster(p, noise(300, 300), crs=None),
            "wgs84.tif": lambda p: raster(p, noise(300, 300), crs="EPSG:4326", res=1e-5, origin=(-97.0, 41.0)),
            "small.tif": lambda p: raster(p, noise(40, 300)),
            "nodata.tif": lambda p: raster(p, np.zeros((4, 300, 300), np.uint8), nodata=0),
            "rotated.tif": lambda p: raster(p, noise(300, 300), transform=Affine(0.9, 0.3, X0, 0.3, -0.9, Y0)),
            "southup.tif": lambda p: raster(p, noise(300, 300)[:, ::-1].copy(),
                                            transform=Affine(1, 0, X0, 0, 1, Y0 - 300)),
            "eastwest.tif": lambda p: raster(p, noise(300, 300)[:, :, ::-1].copy(),
                                             transform=Affine(-1, 0, X0 + 300, 0, -1, Y0)),
            "nonsquare.tif": lambda p: raster(p, noise(150, 300), transform=Affine(1, 0, X0, 0, -2, Y0)),
            "nan.tif": lambda p: raster(p, np.where(np.arange(300) < 120, np.nan, noise(300, 300)).astype(np.float32),
                                        nodata=float("nan")),
            "allnan.tif": lambda p: raster(p, np.full((4, 300, 300), np.nan, np.float32), nodata=float("nan")),
            "complex.tif": lambda p: raster(p, noise(300, 300).astype(np.complex64)),
            "coarse32m.tif": lambda p: raster(p, noise(24, 24), res=32.0),
            "utm15.tif": lambda p: raster(p, noise(300, 300), crs="EPSG:26915"),
            "u16.tif": lambda p: raster(p, noise(300, 300).astype(np.uint16) * 16),
            "later_nodata.tif": lambda p: raster(p, np.concatenate([noise(300, 100, seed=3), np.zeros((4, 300, 200),
                                                 np.uint8)], axis=2), nodata=0, origin=(X0 + 300, Y0)),
            "far.tif": lambda p: raster(p, noise(300, 300, seed=4), origin=(X0 + 20000, Y0 - 20000)),
            "folder.tif": lambda p: p.mkdir(),
            "vector.gpkg": lambda p: polygons(p, [_box(0, 0, 10, 10)]),
        }
        return self._file(kind, makers[kind])

    @cached_property
    def sparse(self) -> str:
        """A 200,000² sparse GeoTIFF (nodata declared) with one written 1024 x 512 block pair."""
        import rasterio
        from rasterio.transform import from_origin
        from rasterio.windows import Window

        p = self.root / "sparse.tif"
        with rasterio.open(p, "w", driver="GTiff", width=200_000, height=200_000, count=4, dtype="uint8",
                           crs="EPSG:26914", transform=from_origin(X0, Y0, 1, 1), tiled=True, blockxsize=512,
                           blockysize=512, compress="deflate", nodata=0, sparse_ok=True, bigtiff="YES") as dst:
            dst.write(noise(512, 1024), window=Window(1024, 2048, 1024, 512))
        return str(p)

    @cached_property
    def sparse_small(self) -> str:
        """A 20,000² sparse GeoTIFF (nodata declared) with a written 1024 x 512 area."""
        import rasterio
        from rasterio.transform import from_origin
        from rasterio.windows import Window

        p = self.root / "sparse20k.tif"
        with rasterio.open(p, "w", driver="GTiff", width=20_000, height=20_000, count=4, dtype="uint8",
                           crs="EPSG:26914", transform=from_origin(X0, Y0, 1, 1), tiled=True, blockxsize=512,
                           blockysize=512, compress="deflate", nodata=0, sparse_ok=True) as dst:
            dst.write(noise(512, 1024), window=Window(1024, 2048, 1024, 512))
        return str(p)

    @cached_property
    def zipped(self) -> str:
        p = self.root / "tiles.zip"
        with zipfile.ZipFile(p, "w") as z:
            z.write(self.good, "good.tif")
        return str(p)

    # vectors
    def aoi(self, kind: str) -> str:
        from shapely.geometry import Polygon

        makers = {
            "far": lambda p: polygons(p, [_box(0, 0, 10, 10)]),
            "bowtie": lambda p: polygons(p, [Polygon([(X0 + 20, Y0 - 280), (X0 + 280, Y0 - 20), (X0 + 280, Y0 - 280),
                                                      (X0 + 20, Y0 - 20)])]),
            "layers": lambda p: (polygons(p, [_box(X0, Y0 - 300, X0 + 150, Y0)], layer="west"),
                                 polygons(p, [_box(X0 + 150, Y0 - 300, X0 + 300, Y0)], layer="east")),
            "nocrs": lambda p: polygons(p, [_box(X0, Y0 - 300, X0 + 150, Y0)], crs=None),
            "points": lambda p: _points(p, [(X0 + 10, Y0 - 10)]),
            "garbage": lambda p: p.write_text("not a vector file"),
            "in_sparse": lambda p: polygons(p, [_box(X0 + 1300, Y0 - 2400, X0 + 1450, Y0 - 2250)]),
        }
        return self._file(f"aoi_{kind}.gpkg", makers[kind])

    def points(self, kind: str) -> str:
        makers = {
            "truth": lambda p: _points(p, [(X0 + 50, Y0 - 50), (X0 + 200, Y0 - 150)], layer="crossings"),
            "pred": lambda p: _points(p, [(X0 + 52, Y0 - 50)], layer="crossings"),
            "polygons": lambda p: polygons(p, [_box(X0, Y0 - 300, X0 + 150, Y0)]),
            "garbage": lambda p: p.write_text("not a vector file"),
        }
        return self._file(f"pts_{kind}.gpkg", makers[kind])

    # scenes, chips, bundles
    @cached_property
    def scene(self) -> str:
        from geodrain.synth import generate_scene

        return str(generate_scene(self.root / "scene", seed=7, size=512).outdir)

    @cached_property
    def chips(self) -> str:
        from geodrain.datasets.chips import write_chips

        return str(write_chips(self.scene, None, self.root / "chips", quiet=True).folder)

    def bundle(self, kind: str) -> str:
        """A copy of the model with one thing wrong."""
        p = self.root / f"bundle_{kind}"
        if p.exists():
            return str(p)
        shutil.copytree(self.model, p)
        m = json.loads((p / "manifest.json").read_text())
        if kind == "weights":
            (p / "weights.pt").write_bytes(b"x" * 100)
        elif kind == "mismatch":
            m["arch"]["fc"] = 8192 if m["arch"]["fc"] != 8192 else 128
        elif kind == "threshold_text":
            m["threshold"] = "high"
        elif kind == "files_string":
            m["files"]["model.onnx"] = "model.onnx"
        elif kind == "stride_zero":
            m["stride_px"] = 0
        elif kind == "gsd_negative":
            m["gsd_m"] = -1
        elif kind == "bands_text":
            m["bands"] = "rgbn"
        elif kind == "manifest_list":
            m = [m]
        elif kind == "no_arch":
            del m["arch"]
        elif kind == "empty":
            shutil.rmtree(p)
            p.mkdir()
            return str(p)
        elif kind == "manifest_broken":
            (p / "manifest.json").write_text("{")
            return str(p)
        (p / "manifest.json").write_text(json.dumps(m))
        return str(p)


def _box(x0, y0, x1, y1):
    from shapely.geometry import box

    return box(x0, y0, x1, y1)


def _points(path: Path, xy, layer: str | None = None) -> Path:
    import geopandas as gpd

    gdf = gpd.GeoDataFrame({"id": np.arange(len(xy))}, geometry=gpd.points_from_xy(*np.array(xy).T),
                           crs="EPSG:26914")
    gdf.to_file(path, layer=layer)
    return path


# -- cases ------------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One misuse: ``args(inputs, folder)`` is the command line; ``expect`` a part of the message; ``output``
    the path that must not be left behind (``left=False``) or must be written (``left=True``)."""

    command: str
    name: str
    args: Callable[[Inputs, Path], list[str]]
    expect: str
    exit: int = 1
    output: Callable[[Inputs, Path], Path] | None = None
    left: bool = False
    kind: str = "run"          # run | no-onnxruntime | fsize:BYTES | sigint | sigterm | concurrent | stale-temp
    quiet: bool = True         # add -q (a run's summary is shown without it)
    slow: bool = False         # a long real run: the table only, not the test suite


def _out(_f, d):
    return d / "out.gpkg"


def D(name, args, expect, exit=1, **kw) -> Case:
    """A detect case writing ``out.gpkg`` in its folder."""
    return Case("detect", name, lambda f, d: ["detect", *args(f, d), "-o", str(d / "out.gpkg")], expect, exit,
                output=kw.pop("output", _out), **kw)


def detect_cases() -> list[Case]:
    g = lambda f: f.good      # noqa: E731
    m = lambda f: ["-m", f.model]  # noqa: E731
    return [
        # inputs
        D("missing raster", lambda f, d: [str(d / "nope.tif"), *m(f)], "raster not found"),
        D("corrupt raster", lambda f, d: [f.bad_raster("corrupt.tif"), *m(f)], "cannot read raster"),
        D("empty (0-byte) raster", lambda f, d: [f.bad_raster("empty.tif"), *m(f)], "cannot read raster"),
        D("truncated raster", lambda f, d: [f.bad_raster("trunc.tif"), *m(f)], "cannot read raster"),
        D("an empty folder as the raster", lambda f, d: [f.bad_raster("folder.tif"), *m(f)], "no rasters"),
        D("a vector file as the raster", lambda f, d: [f.bad_raster("vector.gpkg"), *m(f)], "cannot read raster"),
        D("3-band raster", lambda f, d: [f.bad_raster("rgb.tif"), *m(f)], "has 3 band(s)"),
        D("no CRS", lambda f, d: [f.bad_raster("nocrs.tif"), *m(f)], "has no CRS"),
        D("geographic CRS", lambda f, d: [f.bad_raster("wgs84.tif"), *m(f)], "geographic CRS"),
        D("rotated raster", lambda f, d: [f.bad_raster("rotated.tif"), *m(f)], "rotated or sheared"),
        D("complex data type", lambda f, d: [f.bad_raster("complex.tif"), *m(f)], "unsupported data type"),
        D("raster smaller than a chip", lambda f, d: [f.bad_raster("small.tif"), *m(f)], "smaller than the 100"),
        D("all nodata", lambda f, d: [f.bad_raster("nodata.tif"), *m(f)], "no valid pixels"),
        D("all NaN (nodata NaN)", lambda f, d: [f.bad_raster("allnan.tif"), *m(f)], "no valid pixels"),
        D("south-up raster (read as north-up)", lambda f, d: [f.bad_raster("southup.tif"), *m(f)],
          "in 0.09 km²", exit=0, left=True, quiet=False),
        D("east-to-west raster", lambda f, d: [f.bad_raster("eastwest.tif"), *m(f)], "in 0.09 km²", exit=0,
          left=True, quiet=False),
        D("non-square pixels (1 m x 2 m)", lambda f, d: [f.bad_raster("nonsquare.tif"), *m(f)], "in 0.09 km²",
          exit=0, left=True, quiet=False),
        D("float raster, NaN nodata (no warning leaks)", lambda f, d: [f.bad_raster("nan.tif"), *m(f)],
          "in 0.09 km²", exit=0, left=True, quiet=False),
        D("uint16 raster (scaled)", lambda f, d: [f.bad_raster("u16.tif"), *m(f)], "in 0.09 km²", exit=0, left=True,
          quiet=False),
        D("input 32 m GSD (coarser than 2.5 m)", lambda f, d: [f.bad_raster("coarse32m.tif"), *m(f)],
          "is coarser than 2.5 x the model's 1 m"),
        D("input 32 m GSD with --force", lambda f, d: [f.bad_raster("coarse32m.tif"), *m(f), "--force"],
          "warning: input GSD 32 m", exit=0, left=True),
        D("/vsizip/ path", lambda f, d: [f"/vsizip/{f.zipped}/good.tif", *m(f)], "in 0.09 km²", exit=0, left=True,
          quiet=False),
        D("/vsizip/ path to a missing member", lambda f, d: [f"/vsizip/{f.zipped}/nope.tif", *m(f)],
          "cannot open raster /vsizip/"),
        D("/vsicurl/ URL that does not answer", lambda f, d: ["/vsicurl/http://127.0.0.1:9/x.tif", *m(f)],
          "cannot open raster /vsicurl/"),
        D("200,000² sparse raster, one block written", lambda f, d: [f.sparse, *m(f)], "without data, skipped",
          exit=0, left=True, quiet=False, slow=True),
        # mosaics
        D("mosaic: later file declares nodata", lambda f, d: [g(f), f.bad_raster("later_nodata.tif"), *m(f)],
          " 0.18 km²", exit=0, left=True, quiet=False),
        D("mosaic: two files 20 km apart (area searched)", lambda f, d: [g(f), f.bad_raster("far.tif"), *m(f)],
          " 0.18 km²", exit=0, left=True, quiet=False),
        D("mosaic: two CRSs", lambda f, d: [g(f), f.bad_raster("utm15.tif"), *m(f)], "2 CRS group(s)",
          exit=0, left=True, quiet=False),
        D("mosaic: uint8 and uint16", lambda f, d: [g(f), f.bad_raster("u16.tif"), *m(f)], "is uint16 but"),
        D("mosaic: north-up and south-up", lambda f, d: [g(f), f.bad_raster("southup.tif"), *m(f)],
          "differ in orientation"),
        # AOI
        D("AOI outside the raster", lambda f, d: [g(f), *m(f), "--aoi", f.aoi("far")], "nothing valid inside the AOI"),
        D("AOI file missing", lambda f, d: [g(f), *m(f), "--aoi", str(d / "nope.gpkg")], "AOI file not found"),
        D("AOI not a vector file", lambda f, d: [g(f), *m(f), "--aoi", f.aoi("garbage")], "cannot read AOI"),
        D("AOI without CRS", lambda f, d: [g(f), *m(f), "--aoi", f.aoi("nocrs")], "has no CRS"),
        D("AOI of points", lambda f, d: [g(f), *m(f), "--aoi", f.aoi("points")], "contains no polygons"),
        D("AOI self-intersecting (bow-tie)", lambda f, d: [g(f), *m(f), "--aoi", f.aoi("bowtie")],
          "repaired with make_valid", exit=0, left=True),
        D("AOI with two layers", lambda f, d: [g(f), *m(f), "--aoi", f.aoi("layers")], "choose one (--aoi-layer NAME)"),
        D("--aoi-layer that does not exist", lambda f, d: [g(f), *m(f), "--aoi", f.aoi("layers"), "--aoi-layer", "x"],
          "has no layer 'x'"),
        D("--aoi-layer east", lambda f, d: [g(f), *m(f), "--aoi", f.aoi("layers"), "--aoi-layer", "east"],
          "in 0.04 km²", exit=0, left=True, quiet=False),
        # outputs
        Case("detect", "output folder missing", lambda f, d: ["detect", f.good, "-m", f.model, "-o",
                                                              str(d / "no" / "out.gpkg")],
             "output folder does not exist", output=lambda f, d: d / "no" / "out.gpkg"),
        Case("detect", "output folder not writable", lambda f, d: ["detect", f.good, "-m", f.model, "-o",
                                                                   "/proc/out.gpkg"],
             "not writable", output=lambda f, d: Path("/proc/out.gpkg")),
        Case("detect", "output exists", lambda f, d: [*_exists(d), "detect", f.good, "-m", f.model, "-o",
                                                      str(d / "exists.gpkg")], "output exists"),
        Case("detect", "output is a folder", lambda f, d: ["detect", f.good, "-m", f.model, "-o", str(_folder(d))],
             "output is a folder"),
        Case("detect", "unsupported output format", lambda f, d: ["detect", f.good, "-m", f.model, "-o",
                                                                  str(d / "out.shp")],
             "unsupported output format", output=lambda f, d: d / "out.shp"),
        # model bundles
        D("model bundle missing", lambda f, d: [g(f), "-m", str(d / "nobundle")], "model bundle not found"),
        D("model bundle folder empty", lambda f, d: [g(f), "-m", f.bundle("empty")], "not a model bundle"),
        D("manifest not JSON", lambda f, d: [g(f), "-m", f.bundle("manifest_broken")], "unreadable bundle manifest"),
        D("manifest a list", lambda f, d: [g(f), "-m", f.bundle("manifest_list")], "manifest"),
        D("manifest without arch", lambda f, d: [g(f), "-m", f.bundle("no_arch")], "'arch'"),
        D('manifest "threshold": "high"', lambda f, d: [g(f), "-m", f.bundle("threshold_text")], "threshold"),
        D("manifest files entry a string", lambda f, d: [g(f), "-m", f.bundle("files_string")], "files"),
        D('manifest "stride_px": 0', lambda f, d: [g(f), "-m", f.bundle("stride_zero")], "stride_px"),
        D('manifest "gsd_m": -1', lambda f, d: [g(f), "-m", f.bundle("gsd_negative")], "gsd_m"),
        D('manifest "bands": "rgbn"', lambda f, d: [g(f), "-m", f.bundle("bands_text")], "bands"),
        D("corrupt model weights", lambda f, d: [g(f), "-m", f.bundle("weights")], "does not match its sha256"),
        D("bundle/architecture mismatch", lambda f, d: [g(f), "-m", f.bundle("mismatch")], "do not fit architecture"),
        D("--backend onnx without onnxruntime", lambda f, d: [g(f), *m(f), "--backend", "onnx"],
          "pip install", kind="no-onnxruntime"),
        D("without onnxruntime, the bundle's tuned ONNX graph", lambda f, d: [g(f), *m(f)],
          "ONNX Runtime is not installed: the dense engine runs with torch", exit=0, left=True,
          kind="no-onnxruntime", slow=True),       # the deployed bundle's graph: tests/test_dense_ort.py
        # options
        D("--bands too few for the model", lambda f, d: [g(f), *m(f), "--bands", "1,2,3"], "the model expects 4"),
        D("--bands 0,1,2,3", lambda f, d: [g(f), *m(f), "--bands", "0,1,2,3"], "--bands", exit=2),
        D("--bands a,b", lambda f, d: [g(f), *m(f), "--bands", "a,b"], "--bands", exit=2),
        D("--stride 0", lambda f, d: [g(f), *m(f), "--stride", "0"], "--stride", exit=2),
        D("--stride 101 (above the window)", lambda f, d: [g(f), *m(f), "--stride", "101"], "--stride", exit=2),
        D("--stride 200", lambda f, d: [g(f), *m(f), "--stride", "200"], "--stride", exit=2),
        D("--stride 12 --engine dense", lambda f, d: [g(f), *m(f), "--stride", "12", "--engine", "dense"],
          "multiple of 8"),
        D("--stride 12 (default engine)", lambda f, d: [g(f), *m(f), "--stride", "12"], "--engine chip"),
        D("--stride other than calibrated", lambda f, d: [g(f), *m(f), "--stride", "16"],
          "calibrated", exit=0, left=True),
        D("--threshold nan", lambda f, d: [g(f), *m(f), "--threshold", "nan"], "--threshold", exit=2),
        D("--threshold 1.5", lambda f, d: [g(f), *m(f), "--threshold", "1.5"], "--threshold", exit=2),
        D("--merge-radius nan", lambda f, d: [g(f), *m(f), "--merge-radius", "nan"], "--merge-radius", exit=2),
        D("--merge-radius -5", lambda f, d: [g(f), *m(f), "--merge-radius", "-5"], "--merge-radius", exit=2),
        D("--merge-radius 0", lambda f, d: [g(f), *m(f), "--merge-radius", "0"], "--merge-radius", exit=2),
        D("--min-valid 2", lambda f, d: [g(f), *m(f), "--min-valid", "2"], "--min-valid", exit=2),
        D("--min-valid nan", lambda f, d: [g(f), *m(f), "--min-valid", "nan"], "--min-valid", exit=2),
        D("--scale abc", lambda f, d: [g(f), *m(f), "--scale", "abc"], "--scale", exit=2),
        D("--scale 0", lambda f, d: [g(f), *m(f), "--scale", "0"], "--scale", exit=2),
        D("--scale -1", lambda f, d: [g(f), *m(f), "--scale", "-1"], "--scale", exit=2),
        D("--scale nan", lambda f, d: [g(f), *m(f), "--scale", "nan"], "--scale", exit=2),
        D("--scale inf", lambda f, d: [g(f), *m(f), "--scale", "inf"], "--scale", exit=2),
        D("--batch-size 0", lambda f, d: [g(f), *m(f), "--batch-size", "0"], "--batch-size", exit=2),
        D("--batch-size 0 --engine chip", lambda f, d: [g(f), *m(f), "--batch-size", "0", "--engine", "chip"],
          "--batch-size", exit=2),
        D("--batch-size -1 --engine chip", lambda f, d: [g(f), *m(f), "--batch-size", "-1", "--engine", "chip"],
          "--batch-size", exit=2),
        D("--batch-size -1 --backend onnx", lambda f, d: [g(f), *m(f), "--batch-size", "-1", "--backend", "onnx"],
          "--batch-size", exit=2),
        D("--batch-size 1000000000 --engine chip (20,000² raster)",
          lambda f, d: [f.sparse_small, *m(f), "--batch-size", "1000000000", "--engine", "chip", "--stride", "24",
                        "--aoi", f.aoi("in_sparse")], "free; using batches of", exit=0, left=True),
        D("--block-size -5", lambda f, d: [g(f), *m(f), "--block-size", "-5"], "--block-size", exit=2),
        D("--block-size 0", lambda f, d: [g(f), *m(f), "--block-size", "0"], "--block-size", exit=2),
        D("--block-size 10", lambda f, d: [g(f), *m(f), "--block-size", "10"], "--block-size", exit=2),
        D("--block-size 1000000 (20,000² raster)",
          lambda f, d: [f.sparse_small, *m(f), "--block-size", "1000000", "--aoi", f.aoi("in_sparse")],
          "free; using blocks of", exit=0, left=True),
        D("--read-threads -1", lambda f, d: [g(f), *m(f), "--read-threads", "-1"], "--read-threads", exit=2),
        D("--read-threads 0", lambda f, d: [g(f), *m(f), "--read-threads", "0"], "--read-threads", exit=2),
        D("--engine fast", lambda f, d: [g(f), *m(f), "--engine", "fast"], "--engine", exit=2),
        D("--engine dense --backend onnx (the bundle's dense graph on the CPU)",
          lambda f, d: [g(f), *m(f), "--engine", "dense", "--backend", "onnx"], "", exit=0, left=True),
        D("--precision int8 --engine chip", lambda f, d: [g(f), *m(f), "--engine", "chip", "--precision", "int8"],
          "int8 runs only in the dense engine"),
        D("--precision int8 --backend torch", lambda f, d: [g(f), *m(f), "--backend", "torch", "--precision", "int8"],
          "int8 runs only in the dense engine"),
        D("--device cuda without CUDA", lambda f, d: [g(f), *m(f), "--device", "cuda"], "CUDA"),
        D("--precision fp16 on the CPU", lambda f, d: [g(f), *m(f), "--device", "cpu", "--precision", "fp16"],
          "fp32", exit=0, left=True),
        # runs interrupted, racing, out of space
        D("disk full while writing (file size limit 8 KB)", lambda f, d: [g(f), *m(f)], "disk full", kind="fsize:8192"),
        D("disk full at 100 KB (R-tree index)", lambda f, d: [g(f), *m(f), "--threshold", "0"], "disk full",
          kind="fsize:102400"),
        D("two runs, same output, at once (one wins)", lambda f, d: [g(f), *m(f)],
          "exits 0 and 1: geodrain: error:", kind="concurrent", left=True),
        D("temporary left by a killed run", lambda f, d: [g(f), *m(f)], "in 0.09 km²", exit=0, left=True,
          kind="stale-temp", quiet=False),
        D("Ctrl-C (SIGINT) during the run", lambda f, d: [f.scene + "/naip.tif", *m(f), "--engine", "chip"],
          "interrupted", exit=130, kind="sigint", slow=True),
        D("SIGTERM during the run", lambda f, d: [f.scene + "/naip.tif", *m(f), "--engine", "chip"],
          "interrupted", exit=143, kind="sigterm", slow=True),
    ]


def _exists(d: Path) -> list[str]:
    (d / "exists.gpkg").write_text("an older result")
    return []


def _folder(d: Path) -> Path:
    (d / "dir.gpkg").mkdir(exist_ok=True)
    return d / "dir.gpkg"


def C(command: str, name: str, args, expect: str, exit: int = 1, **kw) -> Case:
    return Case(command, name, args, expect, exit, **kw)


def other_cases() -> list[Case]:
    out = lambda d, n="out": str(d / n)  # noqa: E731
    tiny_train = ["--epochs", "1", "--crops", "8", "--batch-size", "4"]
    tiny_nas = ["--k1", "1", "--spp", "1", "--fc", "128", "--width", "0.25", "--epochs", "1", "--crops", "8"]
    return [
        # train
        C("train", "data missing", lambda f, d: ["train", str(d / "nodata"), "-o", out(d), *tiny_train],
          "training data not found", output=lambda f, d: d / "out"),
        C("train", "data folder empty", lambda f, d: ["train", str(d), "-o", out(d), *tiny_train], "no chip GeoTIFFs"),
        C("train", "output exists", lambda f, d: ["train", f.chips, "-o", str(_folder(d)), *tiny_train],
          "output exists"),
        C("train", "--arch bogus", lambda f, d: ["train", f.chips, "-o", out(d), "--arch", "bogus"],
          "unknown architecture", output=lambda f, d: d / "out"),
        C("train", "--init bundle missing", lambda f, d: ["train", f.chips, "-o", out(d), "--init", str(d / "nob")],
          "model bundle not found", output=lambda f, d: d / "out"),
        C("train", "--epochs 0", lambda f, d: ["train", f.chips, "-o", out(d), "--epochs", "0"], "--epochs", 2),
        C("train", "--epochs -1", lambda f, d: ["train", f.chips, "-o", out(d), "--epochs", "-1"], "--epochs", 2),
        C("train", "--batch-size 0", lambda f, d: ["train", f.chips, "-o", out(d), "--batch-size", "0"],
          "--batch-size", 2),
        C("train", "--batch-size -1", lambda f, d: ["train", f.chips, "-o", out(d), "--batch-size", "-1"],
          "--batch-size", 2),
        C("train", "--lr nan", lambda f, d: ["train", f.chips, "-o", out(d), "--lr", "nan"], "--lr", 2),
        C("train", "--lr -1", lambda f, d: ["train", f.chips, "-o", out(d), "--lr", "-1"], "--lr", 2),
        C("train", "--momentum -2", lambda f, d: ["train", f.chips, "-o", out(d), "--momentum", "-2"], "--momentum", 2),
        C("train", "--weight-decay -1", lambda f, d: ["train", f.chips, "-o", out(d), "--weight-decay", "-1"],
          "--weight-decay", 2),
        C("train", "--crops 0", lambda f, d: ["train", f.scene, "-o", out(d), "--crops", "0"], "--crops", 2),
        C("train", "--crop-windows 0", lambda f, d: ["train", f.scene, "-o", out(d), "--crop-windows", "0"],
          "--crop-windows", 2),
        C("train", "--workers -1", lambda f, d: ["train", f.chips, "-o", out(d), "--workers", "-1"], "--workers", 2),
        C("train", "--context 12", lambda f, d: ["train", f.chips, "-o", out(d), "--context", "12"], "--context", 2),
        C("train", "--val-fraction 0.9", lambda f, d: ["train", f.chips, "-o", out(d), "--val-fraction", "0.9"],
          "--val-fraction", 2),
        C("train", "--test path missing", lambda f, d: ["train", f.chips, "-o", out(d), "--test", str(d / "nope"),
                                                        *tiny_train], "not found", output=lambda f, d: d / "out"),
        # calibrate
        C("calibrate", "bundle missing", lambda f, d: ["calibrate", str(d / "nob"), f.scene, "--no-record"],
          "model bundle not found"),
        C("calibrate", "scene missing", lambda f, d: ["calibrate", f.model, str(d / "noscene"), "--no-record"],
          "scene not found"),
        C("calibrate", "scene without naip.tif", lambda f, d: ["calibrate", f.model, str(d), "--no-record"],
          "not a scene folder"),
        C("calibrate", "--tolerance -1", lambda f, d: ["calibrate", f.model, f.scene, "--tolerance", "-1",
                                                       "--no-record"], "--tolerance", 2),
        C("calibrate", "--tolerance nan", lambda f, d: ["calibrate", f.model, f.scene, "--tolerance", "nan",
                                                        "--no-record"], "--tolerance", 2),
        C("calibrate", "--stride 200", lambda f, d: ["calibrate", f.model, f.scene, "--stride", "200", "--no-record"],
          "--stride", 2),
        C("calibrate", "--merge-radius nan", lambda f, d: ["calibrate", f.model, f.scene, "--merge-radius", "nan",
                                                           "--no-record"], "--merge-radius", 2),
        # mine
        C("mine", "bundle missing", lambda f, d: ["mine", str(d / "nob"), f.scene, "-q"], "model bundle not found"),
        C("mine", "scene missing", lambda f, d: ["mine", f.model, str(d / "noscene"), "-q"], "scene not found"),
        C("mine", "--floor 2", lambda f, d: ["mine", f.model, f.scene, "--floor", "2", "-q"], "--floor", 2),
        C("mine", "--floor nan", lambda f, d: ["mine", f.model, f.scene, "--floor", "nan", "-q"], "--floor", 2),
        C("mine", "--clear -1", lambda f, d: ["mine", f.model, f.scene, "--clear", "-1", "-q"], "--clear", 2),
        C("mine", "--tolerance -1", lambda f, d: ["mine", f.model, f.scene, "--tolerance", "-1", "-q"],
          "--tolerance", 2),
        # show
        C("show", "raster missing", lambda f, d: ["show", str(d / "nope.tif"), "-o", out(d, "a.png")],
          "raster not found", output=lambda f, d: d / "a.png"),
        C("show", "crossings missing", lambda f, d: ["show", f.good, str(d / "none.gpkg"), "-o", out(d, "a.png")],
          "not found", output=lambda f, d: d / "a.png"),
        C("show", "output exists", lambda f, d: ["show", f.good, "-o", str(_exists_png(d))], "output exists"),
        C("show", "output .jpg", lambda f, d: ["show", f.good, "-o", out(d, "a.jpg")], "unsupported output format",
          output=lambda f, d: d / "a.jpg"),
        C("show", "--max-side 0", lambda f, d: ["show", f.good, "-o", out(d, "a.png"), "--max-side", "0"],
          "--max-side", 2, output=lambda f, d: d / "a.png"),
        C("show", "--max-side -5", lambda f, d: ["show", f.good, "-o", out(d, "a.png"), "--max-side", "-5"],
          "--max-side", 2, output=lambda f, d: d / "a.png"),
        C("show", "--bands 1,2", lambda f, d: ["show", f.good, "-o", out(d, "a.png"), "--bands", "1,2"],
          "--bands", 2, output=lambda f, d: d / "a.png"),
        C("show", "--tolerance -1", lambda f, d: ["show", f.good, "-o", out(d, "a.png"), "--tolerance", "-1"],
          "--tolerance", 2, output=lambda f, d: d / "a.png"),
        C("show", "south-up raster", lambda f, d: ["show", f.bad_raster("southup.tif"), "-o", out(d, "a.png")],
          "a.png", 0, output=lambda f, d: d / "a.png", left=True),
        # evaluate
        C("evaluate", "predictions missing", lambda f, d: ["evaluate", str(d / "nope.gpkg"), f.points("truth")],
          "not found"),
        C("evaluate", "predictions not a vector file", lambda f, d: ["evaluate", f.points("garbage"),
                                                                     f.points("truth")], "cannot read vector file"),
        C("evaluate", "predictions a raster", lambda f, d: ["evaluate", f.good, f.points("truth")],
          "cannot read vector file"),
        C("evaluate", "truth of polygons (their representative points)",
          lambda f, d: ["evaluate", f.points("pred"), f.points("polygons")], "precision", 0),
        C("evaluate", "predictions a folder", lambda f, d: ["evaluate", str(d), f.points("truth")], "is a folder"),
        C("evaluate", "--tolerance -1", lambda f, d: ["evaluate", f.points("pred"), f.points("truth"), "--tolerance",
                                                      "-1"], "--tolerance", 2),
        C("evaluate", "--tolerance nan", lambda f, d: ["evaluate", f.points("pred"), f.points("truth"), "--tolerance",
                                                       "nan"], "--tolerance", 2),
        # synth
        C("synth", "--size 100", lambda f, d: ["synth", out(d), "--size", "100"], "--size", 2,
          output=lambda f, d: d / "out"),
        C("synth", "parent folder missing", lambda f, d: ["synth", out(d / "x" / "y"), "--size", "512", "-q"],
          "does not exist", output=lambda f, d: d / "x"),
        C("synth", "output holds a scene", lambda f, d: ["synth", str(_scene_folder(d)), "--size", "512", "-q"],
          "already holds a scene"),
        C("synth", "output is a file", lambda f, d: ["synth", f.good, "--size", "512", "-q"], "OUTDIR", 2),
        C("synth", "--seed -1", lambda f, d: ["synth", out(d), "--size", "512", "--seed", "-1", "-q"], "--seed", 2,
          output=lambda f, d: d / "out"),
        # chips
        C("chips", "raster missing", lambda f, d: ["chips", str(d / "nope.tif"), "-o", out(d), "-q"],
          "raster not found", output=lambda f, d: d / "out"),
        C("chips", "raster without truth", lambda f, d: ["chips", f.good, "-o", out(d), "-q"], "no truth file given",
          output=lambda f, d: d / "out"),
        C("chips", "truth not a vector file", lambda f, d: ["chips", f.good, f.points("garbage"), "-o", out(d), "-q"],
          "cannot read vector file", output=lambda f, d: d / "out"),
        C("chips", "output exists", lambda f, d: ["chips", f.scene, "-o", str(_folder(d)), "-q"], "output exists"),
        C("chips", "--jitter -1", lambda f, d: ["chips", f.scene, "-o", out(d), "--jitter", "-1", "-q"], "--jitter",
          2, output=lambda f, d: d / "out"),
        C("chips", "--negatives -1", lambda f, d: ["chips", f.scene, "-o", out(d), "--negatives", "-1", "-q"],
          "--negatives", 2, output=lambda f, d: d / "out"),
        C("chips", "--negatives nan", lambda f, d: ["chips", f.scene, "-o", out(d), "--negatives", "nan", "-q"],
          "--negatives", 2, output=lambda f, d: d / "out"),
        C("chips", "--context 12", lambda f, d: ["chips", f.scene, "-o", out(d), "--context", "12", "-q"],
          "--context", 2, output=lambda f, d: d / "out"),
        C("chips", "--hard-fraction 2", lambda f, d: ["chips", f.scene, "-o", out(d), "--hard-fraction", "2", "-q"],
          "--hard-fraction", 2, output=lambda f, d: d / "out"),
        # nas
        C("nas", "data missing", lambda f, d: ["nas", str(d / "nodata"), "-o", out(d), "-q", *tiny_nas], "not found"),
        C("nas", "output is a file", lambda f, d: ["nas", f.chips, "-o", f.good, "-q", *tiny_nas],
          "output is a file, not a folder"),
        C("nas", "--min-ap nan", lambda f, d: ["nas", f.chips, "-o", out(d), "--min-ap", "nan", "-q", *tiny_nas],
          "--min-ap", 2),
        C("nas", "--min-ap 2", lambda f, d: ["nas", f.chips, "-o", out(d), "--min-ap", "2", "-q", *tiny_nas],
          "--min-ap", 2),
        C("nas", "--lr nan", lambda f, d: ["nas", f.chips, "-o", out(d), "--lr", "nan", "-q", *tiny_nas], "--lr", 2),
        C("nas", "--workers -1", lambda f, d: ["nas", f.chips, "-o", out(d), "--workers", "-1", "-q", *tiny_nas],
          "--workers", 2),
        C("nas", "--context 12", lambda f, d: ["nas", f.chips, "-o", out(d), "--context", "12", "-q", *tiny_nas],
          "--context", 2),
        C("nas", "--width 0.3", lambda f, d: ["nas", f.chips, "-o", out(d), "--width", "0.3", "-q"],
          "not in the search space"),
        C("nas", "--measure-batches 0", lambda f, d: ["nas", f.chips, "-o", out(d), "--measure-batches", "0", "-q",
                                                      *tiny_nas], "--measure-batches", 2),
        C("nas", "--trials 0", lambda f, d: ["nas", f.chips, "-o", out(d), "--trials", "0", "-q"], "--trials", 2),
        # profile, schedule
        C("profile", "bundle missing", lambda f, d: ["profile", str(d / "nob"), "-q"], "model bundle not found"),
        C("profile", "--batch-sizes 0", lambda f, d: ["profile", f.model, "--batch-sizes", "0", "-q"],
          "--batch-sizes", 2),
        C("profile", "--batch-sizes abc", lambda f, d: ["profile", f.model, "--batch-sizes", "abc", "-q"],
          "--batch-sizes", 2),
        C("profile", "--iters 0", lambda f, d: ["profile", f.model, "--iters", "0", "-q"], "--iters", 2),
        C("profile", "report folder exists", lambda f, d: ["profile", f.model, "-o", str(_folder(d)), "--batch-sizes",
                                                           "1", "--iters", "1", "--profile-iters", "1", "-q"],
          "report folder exists"),
        C("schedule", "bundle missing", lambda f, d: ["schedule", str(d / "nob"), "-q"], "model bundle not found"),
        C("schedule", "--batch-sizes -1", lambda f, d: ["schedule", f.model, "--batch-sizes", "-1", "-q"],
          "--batch-sizes", 2),
        C("schedule", "--max-batch 0", lambda f, d: ["schedule", f.model, "--max-batch", "0", "-q"], "--max-batch", 2),
        # the group
        C("geodrain", "unknown command", lambda f, d: ["detcet"], "No such command", 2),
        C("geodrain", "unknown option", lambda f, d: ["detect", "--nope"], "No such option", 2),
    ]


def _scene_folder(d: Path) -> Path:
    (d / "old").mkdir(exist_ok=True)
    (d / "old" / "naip.tif").write_text("an older scene")
    return d / "old"


def _exists_png(d: Path) -> Path:
    (d / "exists.png").write_bytes(b"an older picture")
    return d / "exists.png"


def all_cases() -> list[Case]:
    return detect_cases() + other_cases()


# -- running a case in a process ---------------------------------------------------------------------------------

BAR = re.compile(r"\d+%\||\[\d\d:\d\d")


def user_lines(stdout: str, stderr: str) -> list[str]:
    """What a user reads: every stderr line but progress bars, and the last line of stdout."""
    lines = [seg.strip() for seg in re.split(r"[\r\n]+", stderr) if seg.strip() and not BAR.search(seg)]
    out = [ln for ln in stdout.strip().splitlines() if ln.strip()]
    return lines + out[-1:]


def cli_command(kind: str) -> list[str]:
    if kind == "no-onnxruntime":     # as if onnxruntime were not installed
        return [sys.executable, "-c", "import sys; sys.modules['onnxruntime'] = None; "
                "from geodrain.cli import cli; cli(prog_name='geodrain')"]
    return [sys.executable, "-m", "geodrain.cli"]


def _limits(kind: str):
    def apply():
        signal.signal(signal.SIGINT, signal.SIG_DFL)      # as a terminal delivers it, even from a background job
        if kind.startswith("fsize:"):
            import resource

            n = int(kind.split(":")[1])
            resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return apply


@dataclass
class Outcome:
    exit: int | None
    lines: list[str]
    seconds: float
    extra: dict = field(default_factory=dict)


QUIET = {"detect", "train", "mine", "chips", "synth", "nas", "profile", "schedule"}   # commands with -q


def case_args(case: Case, inputs: Inputs, folder: Path) -> list[str]:
    args = case.args(inputs, folder)
    quiet = case.quiet and case.command in QUIET and case.kind not in ("sigint", "sigterm") and "-q" not in args
    return args + (["-q"] if quiet else [])


def run_case(case: Case, inputs: Inputs, folder: Path, timeout: float = TIMEOUT_S) -> Outcome:
    """Run one case as the user would (a real process)."""
    cmd = cli_command(case.kind) + case_args(case, inputs, folder)
    t0 = time.perf_counter()
    if case.kind in ("sigint", "sigterm"):
        return _run_signal(cmd, case, t0, timeout)
    if case.kind == "concurrent":
        return _run_concurrent(cmd, t0, timeout)
    if case.kind == "stale-temp":
        out = case.output(inputs, folder)
        stale = stale_temporary(out)
        o = _run(cmd, case.kind, t0, timeout)
        o.extra["stale temporary removed"] = not stale.exists()
        if stale.exists():
            o.lines.append(f"(stale temporary {stale.name} still there)")
        return o
    return _run(cmd, case.kind, t0, timeout)


def _run(cmd, kind, t0, timeout) -> Outcome:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=_limits(kind))
    except subprocess.TimeoutExpired as e:
        return Outcome(None, [f"(no answer after {timeout:g} s: a hang)"] + user_lines(_s(e.stdout), _s(e.stderr)),
                       time.perf_counter() - t0)
    return Outcome(p.returncode, user_lines(p.stdout, p.stderr), time.perf_counter() - t0)


def _s(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def start_detect(cmd: list[str], timeout: float = 600) -> tuple[subprocess.Popen, list[str]]:
    """Start a detect run and return once its progress bar is up (it is in the detection loop), however slow the
    machine; its stderr keeps being collected."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_limits("run"))
    chunks: list[str] = []
    started = threading.Event()

    def drain():
        while chunk := os.read(proc.stderr.fileno(), 4096):     # what is there, never waiting for more
            chunks.append(chunk.decode(errors="replace"))
            if "detect:" in "".join(chunks[-2:]):
                started.set()
        started.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    if not started.wait(timeout):
        proc.kill()
        raise RuntimeError("detect never started")
    proc.reader = reader                  # joined once the process has ended: then it has read everything
    return proc, chunks


def _run_signal(cmd, case: Case, t0, timeout) -> Outcome:
    cmd = [c for c in cmd if c != "-q"]       # the progress bar says when the run is in its loop
    proc, chunks = start_detect(cmd, timeout)
    proc.send_signal(signal.SIGINT if case.kind == "sigint" else signal.SIGTERM)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    proc.reader.join(timeout=60)
    return Outcome(code, user_lines("", "".join(chunks)), time.perf_counter() - t0)


def _run_concurrent(cmd, t0, timeout) -> Outcome:
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=timeout) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    failed = [r for r in results if r[2] != 0]
    said = user_lines(failed[0][0], failed[0][1]) if failed else []
    lines = [f"exits {codes[0]} and {codes[1]}: " + (said[0] if said else "")] + said[1:]
    return Outcome(max(codes), lines, time.perf_counter() - t0)


def stale_temporary(out: Path) -> Path:
    """A temporary as a run killed while writing ``out`` leaves it: named for a process that no longer runs."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from geodrain.output import temporary_sibling

    tmp = temporary_sibling(out, pid=dead.pid)
    tmp.write_bytes(b"half a GeoPackage")
    return tmp


def verdict(case: Case, o: Outcome, left: bool | None) -> str:
    """'' when the case went as it must, else what differs."""
    problems = []
    text = " ".join(o.lines)
    if "Traceback" in text or any(ln.startswith(("File ", "raise ")) for ln in o.lines):
        problems.append("traceback")
    if o.exit != case.exit:
        problems.append(f"exit {case.exit} expected")
    if case.expect not in text:
        problems.append(f"'{case.expect}' expected")
    start = "geodrain: interrupted" if case.exit in (130, 143) else "geodrain: error:"
    errors = [ln for ln in o.lines if start in ln]
    if case.exit != 0 and len(errors) != 1:
        problems.append(f"one '{start}' line expected")
    if left is not None and left != case.left:
        problems.append("output left behind" if left else "output missing")
    return "; ".join(problems)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="run the cases whose command or name contains this")
    ap.add_argument("--model", default=None, help="bundle detect runs with (default: the deployed one)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the inputs (default: a temporary one)")
    args = ap.parse_args()
    from geodrain.model.bundle import default_bundle_path

    model = args.model or str(default_bundle_path())
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        inputs = Inputs(root, model)
        cases = [c for c in all_cases() if args.only is None or args.only in c.command or args.only in c.name]
        print("| command | input | exit | message | output left | s |")
        print("|---|---|---|---|---|---|")
        bad = 0
        for case in cases:
            folder = inputs.case_dir()
            o = run_case(case, inputs, folder)
            out = case.output(inputs, folder) if case.output else None
            left = None if out is None else out.exists()
            v = verdict(case, o, left)
            bad += bool(v)
            msg = " ⏎ ".join(o.lines).replace(str(root), "…").replace("|", "\\|")
            if len(o.lines) > 1:
                msg += f" ({len(o.lines)} lines)"
            shown_left = "n/a" if left is None else ("yes" if left else "no")
            flag = f" **{v}**" if v else ""
            print(f"| {case.command} | {case.name} | {o.exit} | {msg}{flag} | {shown_left} | {o.seconds:.1f} |",
                  flush=True)
        print(f"\n{len(cases)} cases, {bad} not as they must be")


if __name__ == "__main__":
    main()
