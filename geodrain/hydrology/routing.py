"""Flow routing on a DEM array with pyflwdir: depression filling, D8 directions, accumulation, streams, paths.

Thin wrappers over `pyflwdir <https://deltares.github.io/pyflwdir/>`_ (priority-flood filling after Wang &
Liu 2006, D8 flow directions, upstream area) that work on a numpy array and its affine transform, so that the
same routing serves a small window around one crossing, a whole scene for the evaluation, or DEM-aware
detection. Invalid cells are NaN in every elevation array here (:func:`as_elevation` makes such an array
from a DEM and its validity mask).

D8 codes are pyflwdir's (ESRI convention): 1 E, 2 SE, 4 S, 8 SW, 16 W, 32 NW, 64 N, 128 NE, 0 a pit,
247 no data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rasterio.transform import Affine

D8_PIT = 0
D8_NODATA = 247
# Routing a DEM "as it is": depressions deeper than this are sinks. (Not 0: pyflwdir then treats every cell
# of an exactly flat area as a new pit and slows down by orders of magnitude; 1 mm is below any DEM's
# precision.)
RAW_DEPTH_M = 0.001


def as_elevation(dem: np.ndarray, valid: np.ndarray | None = None, nodata: float | None = None) -> np.ndarray:
    """A float32 copy of ``dem`` with NaN wherever it is invalid (``~valid``, equal to ``nodata``, or NaN)."""
    z = np.array(dem, dtype=np.float32, copy=True)
    if nodata is not None and not np.isnan(nodata):
        z[dem == nodata] = np.nan
    if valid is not None:
        z[~valid] = np.nan
    return z


def fill_depressions(z: np.ndarray, *, max_depth: float | None = None, outlets: str = "edge",
                     outlet_cells: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Priority-flood depression filling: (filled elevation, D8 directions).

    Water leaves the array at its valid edge cells (``outlets='edge'``), at its lowest edge cell only
    (``'min'``), or at the flat indices ``outlet_cells``. ``max_depth=None`` fills every depression; a
    depression deeper than ``max_depth`` keeps a pit at its bottom instead (:data:`RAW_DEPTH_M` routes the
    DEM as it is: water ponds in every depression). Flats drain towards their outlet.
    """
    import pyflwdir

    z = np.ascontiguousarray(z, dtype=np.float32)
    depth = -1.0 if max_depth is None else float(max_depth)
    if outlet_cells is not None:
        filled, d8 = pyflwdir.dem.fill_depressions(z, idxs_pit=np.asarray(outlet_cells, np.int64),
                                                   nodata=np.nan, max_depth=depth)
    else:
        filled, d8 = pyflwdir.dem.fill_depressions(z, outlets=outlets, nodata=np.nan, max_depth=depth)
    return filled, d8


@dataclass
class FlowGrid:
    """D8 flow directions of a raster window with its affine transform (map units in metres)."""

    d8: np.ndarray
    transform: Affine
    filled: np.ndarray | None = None     # the elevation the directions were derived from (None: not kept)
    _flw: object = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.d8.shape

    @property
    def cell_m(self) -> float:
        return float(abs(self.transform.a))

    @property
    def flwdir(self):
        """The pyflwdir ``FlwdirRaster`` (built on first use: it holds an index per cell). Lengths and areas
        are converted here from cells."""
        if self._flw is None:
            import pyflwdir

            flw = pyflwdir.from_array(self.d8, ftype="d8", check_ftype=False)
            # pyflwdir 0.5.12 hands its transform to numba kernels, which cannot type affine 3's Affine (no
            # longer a tuple; Deltares/pyflwdir#108, fixed after 0.5.12). The identity as a plain tuple works.
            flw.transform = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
            self._flw = flw
        return self._flw

    def accumulation(self, unit: str = "cell") -> np.ndarray:
        """Upstream area of every cell (itself included), in cells or in 'm2'; -9999 on no data."""
        acc = self.flwdir.upstream_area(unit="cell").astype(np.float64)
        if unit == "m2":
            acc = np.where(acc >= 0, acc * self.cell_m ** 2, -9999.0)
        elif unit != "cell":
            raise ValueError(f"unit must be 'cell' or 'm2', not {unit!r}")
        return acc

    def streams(self, min_area_m2: float) -> np.ndarray:
        """Cells draining at least ``min_area_m2``: the extracted stream network as a boolean raster."""
        return self.accumulation("m2") >= min_area_m2

    def path(self, rows, cols, max_length_m: float | None = None) -> list[np.ndarray]:
        """Downstream D8 paths (flat indices, start included) from cells (rows, cols), each until a pit, the
        edge or about ``max_length_m`` (counted in cells)."""
        idxs = np.ravel_multi_index((np.atleast_1d(rows), np.atleast_1d(cols)), self.shape)
        cells = None if max_length_m is None else max(1, int(np.ceil(max_length_m / self.cell_m)))
        paths, _ = self.flwdir.path(idxs=idxs, max_length=cells, unit="cell")
        return [np.asarray(p) for p in paths]

    def through(self, cells: np.ndarray) -> np.ndarray:
        """Boolean raster of the cells whose downstream path passes through any of ``cells`` (flat indices),
        those included."""
        data = np.full(self.d8.size, -1, np.int8)
        data[np.asarray(cells, np.int64)] = 1
        out = self.flwdir.fillnodata(data.reshape(self.shape), nodata=-1, direction="up")
        return out == 1


def route(z: np.ndarray, transform: Affine, *, fill: bool = True, keep_filled: bool = False) -> FlowGrid:
    """D8 routing of elevation ``z`` (NaN invalid). With ``fill`` every depression is filled first (water
    crosses it towards its spill point); without, every depression is a pit where water ponds."""
    filled, d8 = fill_depressions(z, max_depth=None if fill else RAW_DEPTH_M)
    return FlowGrid(d8, transform, filled if keep_filled else None)
