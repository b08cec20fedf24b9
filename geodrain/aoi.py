"""An area of interest (e.g. a watershed boundary) in any CRS, on the raster's grid.

Windows are evaluated only where the AOI covers enough of them (the AOI is part of each block's validity
mask), blocks outside its bounds are never read, and crossings outside the polygon are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.features import geometry_mask
from rasterio.transform import Affine

from .errors import RasterError, VectorError
from .read import Grid


@dataclass
class AOI:
    geometry: object            # shapely (Multi)Polygon in the raster CRS
    grid: Grid

    @property
    def pixel_bounds(self) -> tuple[int, int, int, int]:
        """(row0, col0, row1, col1) of the AOI's bounding box on the grid."""
        x0, y0, x1, y1 = self.geometry.bounds
        inv = ~self.grid.transform
        c0, r0 = inv @ (x0, y1)
        c1, r1 = inv @ (x1, y0)
        return int(np.floor(r0)), int(np.floor(c0)), int(np.ceil(r1)), int(np.ceil(c1))

    @property
    def area_km2(self) -> float:
        from shapely.geometry import box

        inter = self.geometry.intersection(box(*self.grid.bounds))
        return inter.area * self.grid.units_m ** 2 / 1e6

    def mask(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """True inside the AOI for a pixel window (may extend past the raster)."""
        t = self.grid.transform @ Affine.translation(col, row)
        return geometry_mask([self.geometry], out_shape=(height, width), transform=t, invert=True)

    def contains(self, xy: np.ndarray) -> np.ndarray:
        import shapely

        return shapely.contains_xy(self.geometry, xy[:, 0], xy[:, 1])


def load_aoi(path: str | Path, grid: Grid) -> AOI:
    import geopandas as gpd
    from shapely.geometry import box

    path = Path(path)
    if not path.exists():
        raise VectorError(f"AOI file not found: {path}")
    try:
        gdf = gpd.read_file(path)
    except Exception as e:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"cannot read AOI {path}: {str(e).splitlines()[0][:200]}") from None
    gdf = gdf[gdf.geometry.notna() & gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if len(gdf) == 0:
        raise VectorError(f"AOI {path} contains no polygons")
    if gdf.crs is None:
        raise VectorError(f"AOI {path} has no CRS")
    geom = gdf.to_crs(grid.crs).union_all()
    if geom.is_empty or not geom.intersects(box(*grid.bounds)):
        raise RasterError(f"nothing valid inside the AOI: {path} does not overlap the raster")
    return AOI(geom, grid)
