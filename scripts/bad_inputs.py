#!/usr/bin/env python
"""Make every kind of bad input for `geodrain detect`, run the real command on it, print what the user sees.

    python scripts/bad_inputs.py            # a markdown table: input -> exit code, message, output left?
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import from_origin
from shapely.geometry import box

X0, Y0 = 600000.0, 4500000.0


def raster(path: Path, data: np.ndarray, crs="EPSG:26914", res=1.0, origin=(X0, Y0), **kw) -> Path:
    prof = dict(driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0], dtype="uint8",
                transform=from_origin(origin[0], origin[1], res, res), tiled=True, blockxsize=128,
                blockysize=128, compress="deflate", **kw)
    if crs:
        prof["crs"] = crs
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)
    return path


def noise(h: int, w: int, count: int = 4) -> np.ndarray:
    return np.random.default_rng(0).integers(1, 255, (count, h, w)).astype(np.uint8)


def cases(d: Path, model: str) -> list[tuple[str, list[str], Path]]:
    good = raster(d / "good.tif", noise(300, 300))
    out = d / "out.gpkg"
    (d / "corrupt.tif").write_bytes(b"II*\x00" + b"not a tiff" * 50)
    raster(d / "trunc.tif", noise(600, 600))
    (d / "trunc.tif").write_bytes((d / "trunc.tif").read_bytes()[:30000])
    raster(d / "rgb.tif", noise(300, 300, 3))
    raster(d / "nocrs.tif", noise(300, 300), crs=None)
    raster(d / "wgs84.tif", noise(300, 300), crs="EPSG:4326", res=1e-5, origin=(-97.0, 41.0))
    raster(d / "small.tif", noise(40, 300))
    raster(d / "nodata.tif", np.zeros((4, 300, 300), np.uint8), nodata=0)
    gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10)], crs="EPSG:26914").to_file(d / "far_aoi.gpkg")
    (d / "exists.gpkg").write_text("an older result")
    bad_bundle = d / "bundle"
    shutil.copytree(model, bad_bundle)
    (bad_bundle / "weights.pt").write_bytes(b"x" * 100)
    mismatched = d / "mismatched"
    shutil.copytree(model, mismatched)
    m = json.loads((mismatched / "manifest.json").read_text())
    m["arch"]["fc"] = 8192 if m["arch"]["fc"] != 8192 else 128
    (mismatched / "manifest.json").write_text(json.dumps(m))
    return [
        ("missing raster", ["detect", str(d / "nope.tif"), "-o", str(out)], out),
        ("corrupt raster", ["detect", str(d / "corrupt.tif"), "-o", str(out)], out),
        ("truncated raster", ["detect", str(d / "trunc.tif"), "-o", str(out)], out),
        ("3-band raster", ["detect", str(d / "rgb.tif"), "-o", str(out)], out),
        ("no CRS", ["detect", str(d / "nocrs.tif"), "-o", str(out)], out),
        ("geographic CRS", ["detect", str(d / "wgs84.tif"), "-o", str(out)], out),
        ("raster smaller than a chip", ["detect", str(d / "small.tif"), "-o", str(out)], out),
        ("all nodata", ["detect", str(d / "nodata.tif"), "-o", str(out)], out),
        ("AOI outside the raster", ["detect", str(good), "-o", str(out), "--aoi", str(d / "far_aoi.gpkg")], out),
        ("output folder missing", ["detect", str(good), "-o", str(d / "no" / "out.gpkg")], d / "no" / "out.gpkg"),
        ("output folder not writable", ["detect", str(good), "-o", "/proc/out.gpkg"], Path("/proc/out.gpkg")),
        ("output exists", ["detect", str(good), "-o", str(d / "exists.gpkg")], None),
        ("unsupported output format", ["detect", str(good), "-o", str(d / "out.shp")], d / "out.shp"),
        ("model bundle missing", ["detect", str(good), "-o", str(out), "-m", str(d / "nobundle")], out),
        ("corrupt model weights", ["detect", str(good), "-o", str(out), "-m", str(bad_bundle)], out),
        ("bundle/architecture mismatch", ["detect", str(good), "-o", str(out), "-m", str(mismatched)], out),
        ("--bands too few for the model", ["detect", str(good), "-o", str(out), "--bands", "1,2,3"], out),
        ("stride not a multiple of 8 with --engine dense",
         ["detect", str(good), "-o", str(out), "--stride", "12", "--engine", "dense"], out),
        ("stride 0", ["detect", str(good), "-o", str(out), "--stride", "0"], out),
    ]


def main() -> None:
    from geodrain.model.bundle import default_bundle_path

    model = str(default_bundle_path())
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        print("| input | exit | message | output written |")
        print("|---|---|---|---|")
        for name, args, out in cases(d, model):
            p = subprocess.run([sys.executable, "-m", "geodrain.cli", *args, "-q"], capture_output=True, text=True)
            msg = p.stderr.strip().replace(str(d), "…").replace("|", "\\|")
            lines = msg.count("\n") + 1 if msg else 0
            written = "n/a" if out is None else ("yes" if out.exists() else "no")
            print(f"| {name} | {p.returncode} | {msg}{'' if lines == 1 else f' ({lines} lines)'} | {written} |")


if __name__ == "__main__":
    main()
