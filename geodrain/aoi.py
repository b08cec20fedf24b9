"""An area of interest (e.g. a watershed boundary) in any CRS, on the raster's grid.

Windows are evaluated only where the AOI covers enough of them (the AOI is part of each block's validity
mask), blocks outside its bounds are never read, and crossings outside the polygon are dropped.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.features import geometry_mask
from rasterio.transform import Affine

from .errors import GeodrainWarning, RasterError, VectorError
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


def aoi_layers(path: str | Path) -> list[str]:
    """Names of the layers of a vector file that hold geometries (not attribute-only tables such as
    ``layer_styles``)."""
    import pyogrio

    return [str(name) for name, geom in pyogrio.list_layers(path) if geom is not None]


def load_aoi(path: str | Path, grid: Grid, layer: str | None = None, footprint=None) -> AOI:
    """The polygons of ``layer`` of ``path`` (the file's only layer when None) in the grid's CRS.

    Self-intersecting ("bow-tie") or otherwise invalid polygons are repaired with shapely's ``make_valid``
    (a :class:`~geodrain.errors.GeodrainWarning` says so). ``footprint`` (the inputs' union, default the
    grid's extent) is what the AOI must overlap.
    """
    import geopandas as gpd
    import shapely
    from shapely.geometry import box

    path = Path(path)
    if not path.exists():
        raise VectorError(f"AOI file not found: {path}")
    try:
        layers = aoi_layers(path)
    except Exception as e:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"cannot read AOI {path}: {str(e).splitlines()[0][:200]}") from None
    if layer is None and len(layers) > 1:
        raise VectorError(f"AOI {path} has {len(layers)} layers ({', '.join(layers)}); choose one",
                          cli_hint={"aoi_layer": "--aoi-layer NAME"})
    if layer is not None and layer not in layers:
        raise VectorError(f"AOI {path} has no layer {layer!r} (layers: {', '.join(layers) or 'none'})")
    try:
        gdf = gpd.read_file(path, layer=layer if layer is not None else (layers[0] if layers else None))
    except Exception as e:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"cannot read AOI {path}: {str(e).splitlines()[0][:200]}") from None
    gdf = gdf[gdf.geometry.notna() & gdf.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    if len(gdf) == 0:
        raise VectorError(f"AOI {path} contains no polygons")
    if gdf.crs is None:
        raise VectorError(f"AOI {path} has no CRS")
    geoms = gdf.geometry.values
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        reasons = sorted({shapely.is_valid_reason(g).split("[")[0].strip() for g in geoms[invalid]})
        geoms = np.where(invalid, shapely.make_valid(geoms), geoms)
        # keep the polygonal parts (make_valid may add the lines or points where a polygon touched itself)
        geoms = np.array([_polygonal(g) for g in geoms], dtype=object)
        warnings.warn(f"AOI {path}: {int(invalid.sum())} invalid polygon(s) ({'; '.join(reasons)}) repaired "
                      "with make_valid", GeodrainWarning, stacklevel=2)
    geom = gpd.GeoSeries(geoms, crs=gdf.crs).to_crs(grid.crs).union_all()
    if not geom.is_valid:     # reprojection can fold a valid polygon over itself
        geom = _polygonal(shapely.make_valid(geom))
    extent = footprint if footprint is not None else box(*grid.bounds)
    if geom.is_empty or not geom.intersects(extent):
        raise RasterError(f"nothing valid inside the AOI: {path} does not overlap the raster")
    return AOI(geom, grid)


def _polygonal(g):
    """The polygons of a geometry (a GeometryCollection from make_valid may also hold lines)."""
    import shapely
    from shapely.geometry import MultiPolygon

    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else MultiPolygon()
