"""A generated scene cut into overlapping DOQQ-like tiles across a UTM zone boundary.

NAIP quarter-quads overlap their neighbours by a few hundred metres and each is delivered in the UTM zone of
its location, so a state's files lie in two or three CRSs. :func:`cut_tiles` imitates that with one
generated scene: the scene is moved (by a translation) so that a zone boundary (by default 102° W, between
UTM zones 13 and 14, which crosses Nebraska) runs through its middle, cut into ``rows`` x ``cols``
overlapping tiles, and every tile whose centre lies west of the boundary is reprojected into the western
zone (nodata 0 outside the reprojected footprint); the others keep the scene's CRS and have no nodata. The
truth (``truth.gpkg``) is moved with the scene, so detections on the tiles can be scored against it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OutputExistsError

EAST_CRS = "EPSG:26914"     # the scene's CRS (UTM zone 14N, NAD83)
WEST_CRS = "EPSG:26913"     # UTM zone 13N, NAD83
SEAM_LON = -102.0


@dataclass
class TileSet:
    folder: Path
    tiles: list[Path]
    crs: list[str]
    truth: Path
    shift: tuple[float, float]     # added to the scene's coordinates

    @property
    def west(self) -> list[Path]:
        return [t for t, c in zip(self.tiles, self.crs) if c == WEST_CRS]


def _edges(n: int, parts: int, overlap: int, tile: int | None = None) -> list[tuple[int, int]]:
    """``parts`` ranges over ``n`` px overlapping by ``overlap``: covering all of it, or ``tile`` px each from
    the start (the rest of the scene left out)."""
    if tile is not None:
        step = tile - overlap
        if (parts - 1) * step + tile > n:
            raise ValueError(f"{parts} tiles of {tile} px overlapping by {overlap} px need "
                             f"{(parts - 1) * step + tile} px, the scene has {n}")
        return [(i * step, i * step + tile) for i in range(parts)]
    size = math.ceil((n + (parts - 1) * overlap) / parts)
    step = size - overlap
    return [(i * step, n if i == parts - 1 else i * step + size) for i in range(parts)]


def cut_tiles(scene: str | Path, out: str | Path, *, rows: int = 2, cols: int = 2, overlap_px: int = 100,
              tile_px: int | None = None, seam_lon: float = SEAM_LON, west_crs: str = WEST_CRS, block: int = 256,
              overwrite: bool = False) -> TileSet:
    """Cut ``scene``/naip.tif into overlapping tiles in two UTM zones under ``out`` (see the module doc).

    With ``tile_px`` every tile (before reprojection) is ``tile_px`` square and the tiles start at the scene's
    top-left corner; the truth then keeps only what lies on the tiles."""
    import geopandas as gpd
    import pyogrio
    import rasterio
    from pyproj import Transformer
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject
    from rasterio.windows import Window

    scene, out = Path(scene), Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out} is not empty (use overwrite=True)")
    out.mkdir(parents=True, exist_ok=True)
    tiles, crss = [], []
    with rasterio.open(scene / "naip.tif") as src:
        if src.crs.to_string() != EAST_CRS:
            raise ValueError(f"expected a scene in {EAST_CRS}, got {src.crs}")
        t = src.transform
        rows_px = _edges(src.height, rows, overlap_px, tile_px)
        cols_px = _edges(src.width, cols, overlap_px, tile_px)
        # the seam runs through the middle of the part of the scene the tiles cover
        cx, cy = t @ ((cols_px[0][0] + cols_px[-1][1]) / 2, (rows_px[0][0] + rows_px[-1][1]) / 2)
        lon, lat = Transformer.from_crs(EAST_CRS, "EPSG:4326", always_xy=True).transform(cx, cy)
        seam_x, _ = Transformer.from_crs("EPSG:4326", EAST_CRS, always_xy=True).transform(seam_lon, lat)
        dx, dy = round(seam_x - cx), 0.0
        shifted = rasterio.Affine(t.a, t.b, t.c + dx, t.d, t.e, t.f + dy)
        to_lon = Transformer.from_crs(EAST_CRS, "EPSG:4326", always_xy=True)
        x0, y0 = shifted @ (cols_px[0][0], rows_px[-1][1])
        x1, y1 = shifted @ (cols_px[-1][1], rows_px[0][0])
        covered = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        base = dict(driver="GTiff", count=src.count, dtype=src.dtypes[0], tiled=True, blockxsize=block,
                    blockysize=block, compress="deflate", interleave="pixel", photometric="RGB")
        for r, (r0, r1) in enumerate(rows_px):
            for c, (c0, c1) in enumerate(cols_px):
                win = Window(c0, r0, c1 - c0, r1 - r0)
                data = src.read(window=win)
                tf = rasterio.windows.transform(win, shifted)
                tx, ty = tf @ (win.width / 2, win.height / 2)
                west = to_lon.transform(tx, ty)[0] < seam_lon
                crs = west_crs if west else EAST_CRS
                path = out / f"tile_r{r}_c{c}_{crs.split(':')[1]}.tif"
                if not west:
                    prof = dict(base, width=win.width, height=win.height, crs=EAST_CRS, transform=tf)
                    with rasterio.open(path, "w", **prof) as dst:
                        dst.write(data)
                        dst.colorinterp = src.colorinterp
                else:
                    left, top = tf.c, tf.f
                    right, bottom = left + tf.a * win.width, top + tf.e * win.height
                    dtf, w, h = calculate_default_transform(EAST_CRS, west_crs, win.width, win.height, left, bottom,
                                                            right, top, resolution=abs(tf.a))
                    dst_data = np.zeros((src.count, h, w), data.dtype)
                    # nodata 0 marks the collar; valid pixels are kept >= 1 so that none reads as nodata
                    reproject(np.maximum(data, 1), dst_data, src_transform=tf, src_crs=EAST_CRS, dst_transform=dtf,
                              dst_crs=west_crs, resampling=Resampling.bilinear, src_nodata=0, dst_nodata=0)
                    prof = dict(base, width=w, height=h, crs=west_crs, transform=dtf, nodata=0)
                    with rasterio.open(path, "w", **prof) as dst:
                        dst.write(dst_data)
                        dst.colorinterp = src.colorinterp
                tiles.append(path)
                crss.append(crs)
    truth = out / "truth.gpkg"
    for layer in ("crossings", "hard_negatives"):
        try:
            gdf = gpd.read_file(scene / "truth.gpkg", layer=layer)
        except Exception:  # noqa: BLE001 - a scene without that layer
            continue
        gdf = gdf.set_geometry(gdf.geometry.translate(dx, dy)).cx[covered[0]:covered[2], covered[1]:covered[3]]
        pyogrio.write_dataframe(gdf, truth, layer=layer, driver="GPKG", append=truth.exists())
    (out / "tiles.json").write_text(json.dumps({"scene": str(scene), "shift": [float(dx), float(dy)],
                                                "tiles": [t.name for t in tiles], "crs": crss}, indent=1))
    return TileSet(out, tiles, crss, truth, (float(dx), float(dy)))
