#!/usr/bin/env python
"""Make every kind of bad input for `geodrain condition`, run the real command on it, print what the user sees.

    python scripts/bad_inputs_condition.py      # a markdown table: input -> exit code, message, output left?
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
from rasterio.transform import Affine, from_origin
from shapely.geometry import LineString, Point

X0, Y0 = 600000.0, 4500000.0


def dem(path: Path, z: np.ndarray, crs="EPSG:26914", transform=None, nodata=-9999.0) -> Path:
    prof = dict(driver="GTiff", width=z.shape[1], height=z.shape[0], count=1, dtype="float32", nodata=nodata,
                transform=transform or from_origin(X0, Y0, 1.0, 1.0), tiled=True, blockxsize=128, blockysize=128,
                compress="deflate")
    if crs:
        prof["crs"] = crs
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(z.astype(np.float32), 1)
    return path


def valley(n: int = 300) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n].astype(float)
    z = 100.0 - 0.002 * xx + 0.02 * np.abs(yy - n / 2) - 0.6 * np.clip(1 - np.abs(yy - n / 2) / 2, 0, 1)
    return np.maximum(z, z.max() + 1.0 - np.maximum(np.abs(xx - n / 2) - 4.0, 0.0) / 2.0)


def points(path: Path, geoms, crs="EPSG:26914") -> Path:
    gpd.GeoDataFrame({"crossing_id": np.arange(1, len(geoms) + 1)}, geometry=geoms, crs=crs).to_file(
        path, layer="crossings", driver="GPKG")
    return path


def cases(d: Path) -> list[tuple[str, list[str], list[Path]]]:
    good = dem(d / "dem.tif", valley())
    c = Point(X0 + 150.5, Y0 - 150.5)
    pts = points(d / "crossings.gpkg", [c])
    out = d / "out.tif"
    side = [out, d / "out_breaches.gpkg"]
    (d / "corrupt.tif").write_bytes(b"II*\x00" + b"not a tiff" * 50)
    dem(d / "trunc.tif", valley(600))
    (d / "trunc.tif").write_bytes((d / "trunc.tif").read_bytes()[:20000])
    dem(d / "nocrs.tif", valley(), crs=None)
    dem(d / "wgs84.tif", valley(), crs="EPSG:4326", transform=from_origin(-97.0, 41.0, 1e-5, 1e-5))
    dem(d / "nodata.tif", np.full((300, 300), -9999.0))
    dem(d / "rect.tif", valley(), transform=Affine(1.0, 0, X0, 0, -2.0, Y0))
    points(d / "empty.gpkg", [])
    points(d / "lines.gpkg", [LineString([c, Point(c.x + 5, c.y)])])
    gpd.GeoDataFrame(geometry=[c]).to_file(d / "nocrs.gpkg", layer="crossings", driver="GPKG")
    points(d / "far.gpkg", [Point(X0 - 5000, Y0)])
    (d / "garbage.gpkg").write_text("not a geopackage")
    (d / "exists.tif").write_text("an older result")
    (d / "taken_breaches.gpkg").write_text("an older result")
    run = ["condition"]
    return [
        ("DEM missing", run + [str(d / "nope.tif"), str(pts), "-o", str(out)], side),
        ("DEM corrupt", run + [str(d / "corrupt.tif"), str(pts), "-o", str(out)], side),
        ("DEM truncated", run + [str(d / "trunc.tif"), str(pts), "-o", str(out)], side),
        ("DEM without CRS", run + [str(d / "nocrs.tif"), str(pts), "-o", str(out)], side),
        ("DEM in a geographic CRS", run + [str(d / "wgs84.tif"), str(pts), "-o", str(out)], side),
        ("DEM all nodata", run + [str(d / "nodata.tif"), str(pts), "-o", str(out)], side),
        ("DEM with non-square cells", run + [str(d / "rect.tif"), str(pts), "-o", str(out)], side),
        ("crossings file missing", run + [str(good), str(d / "nope.gpkg"), "-o", str(out)], side),
        ("crossings file unreadable", run + [str(good), str(d / "garbage.gpkg"), "-o", str(out)], side),
        ("crossings file empty", run + [str(good), str(d / "empty.gpkg"), "-o", str(out)], side),
        ("crossings not points", run + [str(good), str(d / "lines.gpkg"), "-o", str(out)], side),
        ("crossings without CRS", run + [str(good), str(d / "nocrs.gpkg"), "-o", str(out)], side),
        ("crossings not overlapping the DEM", run + [str(good), str(d / "far.gpkg"), "-o", str(out)], side),
        ("output exists", run + [str(good), str(pts), "-o", str(d / "exists.tif")], [d / "exists_breaches.gpkg"]),
        ("breaches file exists", run + [str(good), str(pts), "-o", str(d / "taken.tif")], [d / "taken.tif"]),
        ("output folder missing", run + [str(good), str(pts), "-o", str(d / "no" / "out.tif")],
         [d / "no" / "out.tif"]),
        ("output folder not writable", run + [str(good), str(pts), "-o", "/proc/out.tif"], [Path("/proc/out.tif")]),
        ("output not a GeoTIFF", run + [str(good), str(pts), "-o", str(d / "out.png")], [d / "out.png"]),
        ("--max-breach-m 0", run + [str(good), str(pts), "-o", str(out), "--max-breach-m", "0"], side),
        ("--radius 0", run + [str(good), str(pts), "-o", str(out), "--radius", "0"], side),
    ]


def main() -> None:
    warnings.filterwarnings("ignore", message="'crs' was not provided")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        print("| input | exit | message | output written |")
        print("|---|---|---|---|")
        for name, args, outs in cases(d):
            p = subprocess.run([sys.executable, "-m", "geodrain.cli", *args, "-q"], capture_output=True, text=True)
            msg = p.stderr.strip().replace(str(d), "…").replace("|", "\\|")
            lines = msg.count("\n") + 1 if msg else 0
            left = [o for o in outs if o.exists()] + list(d.glob(".*.tmp*"))
            written = "yes" if left else "no"
            print(f"| {name} | {p.returncode} | {msg}{'' if lines == 1 else f' ({lines} lines)'} | {written} |")
        # not errors: crossings off the DEM, on nodata or without a dammed channel are counted in the summary
        z = valley()
        z[:30, :30] = -9999.0
        part = dem(d / "part.tif", z)
        mixed = points(d / "mixed.gpkg", [Point(X0 + 150.5, Y0 - 150.5), Point(X0 + 10.5, Y0 - 10.5),
                                          Point(X0 + 150.5, Y0 - 40.5), Point(X0 - 5000, Y0)])
        p = subprocess.run([sys.executable, "-m", "geodrain.cli", "condition", str(part), str(mixed), "-o",
                            str(d / "mixed.tif")], capture_output=True, text=True)
        summary = [ln for ln in p.stdout.splitlines() if "crossings:" in ln]
        print(f"\nNot errors (exit {p.returncode}): one crossing on the dam, one on nodata, one on the road away from "
              f"the stream, one off the DEM:\n\n    " + "\n    ".join(s.replace(str(d), "…") for s in summary))


if __name__ == "__main__":
    main()
