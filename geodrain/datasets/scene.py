"""A labelled scene: a raster and its truth crossings (and hard negatives), on the model's pixel grid.

A scene folder as written by ``geodrain synth`` holds ``naip.tif`` and ``truth.gpkg`` (layers
``crossings`` with the structure box ``box_xmin .. box_ymax``, and ``hard_negatives``); ``geodrain mine``
adds ``mined.gpkg``, a trained model's false positives and missed crossings on it.

The raster is opened as detection opens it (:func:`geodrain.read.open_source`): resampled to the model's
GSD, scaled to 8 bit when it is not, with its validity mask. Pixel coordinates of a scene are on that grid,
and :meth:`Scene.read` cuts training crops from it, so training sees the pixels detection sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError

from ..errors import DatasetError, RasterError, VectorError
from ..read import RasterSource, open_source

DEFAULT_SIZE_M = 16.0


@dataclass
class PointSet:
    """Points in map coordinates with (width, height) sizes in metres and a kind per point."""

    xy: np.ndarray          # (N, 2) float64
    sizes_m: np.ndarray     # (N, 2) float32
    kinds: np.ndarray       # (N,) object
    crs: object = None
    attrs: dict = field(default_factory=dict)   # text attribute columns (name -> (N,) object), e.g. road_kind

    def __len__(self) -> int:
        return len(self.xy)

    @classmethod
    def empty(cls) -> "PointSet":
        return cls(np.zeros((0, 2)), np.zeros((0, 2), np.float32), np.zeros(0, object))


def read_points(path: str | Path, layer: str | None = None, crs=None, required: bool = True) -> PointSet:
    """Point features of a vector file (any CRS, reprojected to ``crs``); boxes give sizes if present."""
    import geopandas as gpd
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise VectorError(f"vector file not found: {path}")
    try:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            gdf = _read_csv_points(path)
        elif suffix in (".parquet", ".geoparquet"):
            gdf = gpd.read_parquet(path)
        else:
            if layer is not None and layer not in [name for name, _ in pyogrio.list_layers(path)]:
                if required:
                    raise VectorError(f"{path} has no layer '{layer}'")
                return PointSet.empty()
            gdf = gpd.read_file(path, layer=layer)
    except VectorError:
        raise
    except Exception as e:  # noqa: BLE001 - pyogrio raises several types for unreadable files
        raise VectorError(f"cannot read vector file {path}: {str(e).splitlines()[0][:200]}") from None
    if len(gdf) == 0:
        empty = PointSet.empty()
        empty.crs = crs if crs is not None else gdf.crs
        return empty
    if gdf.crs is None:
        raise VectorError(f"{path} has no CRS")
    box_cols = ["box_xmin", "box_ymin", "box_xmax", "box_ymax"]
    if crs is not None and gdf.crs != crs:
        gdf = gdf.to_crs(crs)
        box_cols = []  # boxes are in the source CRS; fall back to default sizes after reprojection
    geom = gdf.geometry
    if not (geom.geom_type == "Point").all():
        geom = geom.representative_point()
    xy = np.column_stack([geom.x.to_numpy(), geom.y.to_numpy()]).astype(np.float64)
    if box_cols and all(c in gdf.columns for c in box_cols):
        sizes = np.column_stack([gdf["box_xmax"] - gdf["box_xmin"], gdf["box_ymax"] - gdf["box_ymin"]])
        sizes = np.nan_to_num(sizes.astype(np.float32), nan=DEFAULT_SIZE_M)
    else:
        sizes = np.full((len(gdf), 2), DEFAULT_SIZE_M, np.float32)
    kinds = gdf["kind"].astype(str).to_numpy(object) if "kind" in gdf.columns else np.full(len(gdf), "", object)
    attrs = {c: gdf[c].astype(str).to_numpy(object) for c in gdf.columns
             if c != gdf.geometry.name and getattr(gdf[c].dtype, "kind", "") in ("O", "U", "T")}
    return PointSet(xy, sizes, kinds, gdf.crs, attrs)


def _read_csv_points(path: Path):
    """A CSV with ``x``, ``y`` (and ``crs``) columns, as ``geodrain detect`` writes it."""
    import geopandas as gpd
    import pandas as pd

    df = pd.read_csv(path)
    if not {"x", "y"} <= set(df.columns):
        raise VectorError(f"{path} has no x and y columns")
    crs = df["crs"].iloc[0] if "crs" in df.columns and len(df) else None
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["x"], df["y"]), crs=crs)


@dataclass
class Scene:
    """A raster with truth crossings and hard negatives in its CRS; ``transform``, ``width`` and ``height``
    are those of the model-GSD grid it is read on (``source``)."""

    raster: Path
    truth: Path
    crossings: PointSet
    hard_negatives: PointSet
    crs: object
    transform: object
    width: int
    height: int
    count: int                      # bands of the file
    lines: dict | None = None       # name -> (N, 2) map points sampled along roads and streams
    mined: PointSet | None = None   # hard examples of a trained model (``geodrain mine``): kinds
                                    # ``false_positive`` and ``missed``
    source: RasterSource | None = None

    @property
    def gsd(self) -> float:
        return float(abs(self.transform.a))

    def to_pixels(self, xy: np.ndarray) -> np.ndarray:
        """Map coordinates (N, 2) -> continuous pixel coordinates (x = column, y = row)."""
        inv = ~self.transform
        cols, rows = inv @ (xy[:, 0], xy[:, 1])
        return np.column_stack([cols, rows]).astype(np.float64)

    def read(self, col: int, row: int, size: int, bands: tuple[int, ...] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """A (C, size, size) uint8 crop at pixel (col, row) and its validity, read as detection reads
        (invalid and zero outside the raster); ``bands`` are file bands among the scene's (default: all)."""
        data, valid = self.source.read(row, col, size, size)
        if bands is not None and tuple(bands) != self.source.bands:
            missing = [b for b in bands if b not in self.source.bands]
            if missing:
                raise DatasetError(f"{self.raster} has no band {missing[0]} to read")
            data = data[[self.source.bands.index(b) for b in bands]]
        return data, valid


def open_scene(raster: str | Path, truth: str | Path | None = None, *, mined: bool = True) -> Scene:
    """A scene from a folder (``naip.tif`` + ``truth.gpkg``) or an explicit raster and truth file; with
    ``mined``, also the hard examples in ``mined.gpkg`` beside the raster, where there is one."""
    from ..model.sppnet import GSD_M

    raster = Path(raster)
    if raster.is_dir():
        folder = raster
        raster = folder / "naip.tif"
        truth = truth or folder / "truth.gpkg"
    if truth is None:
        raise DatasetError(f"no truth file given for {raster}")
    try:
        with rasterio.open(raster) as src:
            count = src.count
    except RasterioIOError as e:
        raise RasterError(f"cannot open raster {raster}: {str(e).splitlines()[0][:200]}") from None
    source = open_source(raster, tuple(range(1, min(count, 4) + 1)), GSD_M, "auto")
    grid = source.grid
    crs = grid.crs
    crossings = read_points(truth, "crossings", crs=crs, required=False) if _has_layer(truth, "crossings") \
        else read_points(truth, None, crs=crs)
    hard = read_points(truth, "hard_negatives", crs=crs, required=False)
    lines = {name: line_points(Path(raster).parent / f"{name}.gpkg", crs)
             for name in ("roads", "streams") if (Path(raster).parent / f"{name}.gpkg").is_file()}
    mined_file = Path(raster).parent / "mined.gpkg"
    hard_examples = read_points(mined_file, "mined", crs=crs, required=False) \
        if mined and mined_file.is_file() else None
    return Scene(Path(raster), Path(truth), crossings, hard, crs, grid.transform, grid.width, grid.height, count,
                 lines, hard_examples, source)


def line_points(path: Path, crs, spacing: float = 20.0) -> np.ndarray:
    """Points every ``spacing`` map units along the lines of a vector file (roads, streams)."""
    import geopandas as gpd
    import shapely

    try:
        gdf = gpd.read_file(path)
    except Exception:  # noqa: BLE001
        raise VectorError(f"cannot read vector file {path}") from None
    if len(gdf) == 0 or gdf.crs is None:
        return np.zeros((0, 2))
    geoms = gdf.to_crs(crs).geometry if gdf.crs != crs else gdf.geometry
    pts = []
    for g in geoms:
        if g is None or g.is_empty:
            continue
        d = np.arange(0.0, g.length, spacing)
        p = shapely.line_interpolate_point(g, d)
        pts.append(np.column_stack([shapely.get_x(p), shapely.get_y(p)]))
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def _has_layer(path: str | Path, layer: str) -> bool:
    import pyogrio

    try:
        return layer in [name for name, _ in pyogrio.list_layers(path)]
    except Exception:  # noqa: BLE001
        raise VectorError(f"cannot read vector file {path}") from None
