"""Planning a run: inputs -> CRS groups -> tasks, and the CRS crossings are merged in.

:func:`plan_run` resolves the inputs (:mod:`geodrain.catalog`), opens each CRS group as one mosaic on the
model's grid (:func:`geodrain.read.open_source`), lays the sliding-window grid over it and cuts it into blocks
(:func:`geodrain.window.plan_blocks`), drops the blocks that no file reaches and (with several groups) those
whose every window another group owns, and groups the rest into tasks of ``task_px`` x ``task_px`` model
pixels (:class:`geodrain.tasks.TaskSpec`). The plan is deterministic: the same inputs and settings give the
same tasks with the same keys, which is what lets a run resume (its digest is kept in the run manifest).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .aoi import AOI, load_aoi
from .catalog import (Claim, Ownership, file_footprint, group_by_crs, inspect_files, lonlat_bounds, make_claim,
                      output_crs, resolve_inputs, transform_geometry)
from .errors import RasterError
from .read import InputFile, RasterSource, open_source
from .tasks import TaskSpec, blocks_per_task, centre_rect_px, tile_blocks
from .window import BlockPlan, WindowGrid, check_size, plan_blocks, window_region

DEFAULT_TASK_PX = 8192      # model pixels per task side: ~67 km² at 1 m, about four DOQQs


@dataclass
class GroupPlan:
    index: int
    source: RasterSource
    window: WindowGrid
    aoi: AOI | None
    claim: Claim | None
    inputs: list[int]                # indices of the group's files in the run's input list
    region: object | None = None     # where the group's windows are scored (area), None: the whole grid

    @property
    def crs(self):
        return self.source.grid.crs


@dataclass
class RunPlan:
    inputs: list[str]
    files: list[InputFile]           # in input order
    groups: list[GroupPlan]
    tasks: list[TaskSpec]
    crs: object                      # output CRS
    ownership: Ownership | None
    block_px: int
    task_px: int
    windows: int = 0
    area_km2: float = 0.0
    empty_km2: float = 0.0           # of area_km2: blocks without data (sparse files, gaps), skipped unread
    notes: list[str] = field(default_factory=list)

    @property
    def groups_by_index(self) -> dict[int, GroupPlan]:
        return {g.index: g for g in self.groups}

    def close(self) -> None:
        for g in self.groups:
            g.source.close()

    def digest(self) -> str:
        """A fingerprint of the tasks (keys, blocks, files, grids): resuming needs the same plan."""
        h = hashlib.sha256()
        for g in self.groups:
            h.update(json.dumps([g.index, g.crs.to_wkt(), list(g.source.grid.transform)[:6], g.source.grid.width,
                                 g.source.grid.height, g.source.scale]).encode())
        for t in self.tasks:
            h.update(json.dumps([t.key, [[p.row0, p.col0, p.nrows, p.ncols, p.read_row, p.read_col,
                                          p.read_height, p.read_width] for p in t.blocks],
                                 [f.path for f in t.files]]).encode())
        h.update(self.crs.to_wkt().encode())
        return h.hexdigest()

    def summary(self) -> str:
        zones = ", ".join(f"{g.crs.to_string()} ({len(g.inputs)} files)" for g in self.groups)
        return (f"{len(self.files)} files in {len(self.groups)} CRS group(s): {zones}; {len(self.tasks)} tasks, "
                f"{self.area_km2:,.1f} km²; crossings in {self.crs.to_string()}")


def shapely_box(x0: float, y0: float, x1: float, y1: float):
    from shapely.geometry import box

    return box(x0, y0, x1, y1)


def _box_map(grid, col0: float, row0: float, col1: float, row1: float):
    """A pixel rectangle of ``grid`` as a map-coordinate polygon."""
    from shapely.geometry import box

    x0, y0 = grid.transform @ (col0, row0)
    x1, y1 = grid.transform @ (col1, row1)
    return box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _read_box(grid, plans: Sequence[BlockPlan]):
    r0 = min(p.read_row for p in plans)
    c0 = min(p.read_col for p in plans)
    r1 = max(p.read_row + p.read_height for p in plans)
    c1 = max(p.read_col + p.read_width for p in plans)
    return _box_map(grid, c0, r0, c1, r1)


def plan_run(inputs: str | Path | Sequence[str | Path], *, bands: Sequence[int], gsd_m: float, window_px: int,
             stride: int, context_px: int, min_valid: float, block_px: int, task_px: int = DEFAULT_TASK_PX,
             scale: float | str = "auto", aoi: str | Path | None = None, aoi_layer: str | None = None,
             crs: str | None = None, stac_asset: str | None = None) -> RunPlan:
    """The tasks of a run over ``inputs`` (see the module docstring)."""
    import shapely
    from shapely.strtree import STRtree

    paths = resolve_inputs(inputs, stac_asset=stac_asset)
    files = inspect_files(paths, bands)
    index_of = {id(f): i for i, f in enumerate(files)}
    groups_files = group_by_crs(files)
    sources: list[RasterSource] = []
    try:
        for gf in groups_files:
            sources.append(open_source([f.path for f in gf], bands, gsd_m, scale))
        window_m = window_px * gsd_m
        claims = None
        ownership = None
        if len(groups_files) > 1:
            from concurrent.futures import ThreadPoolExecutor

            import warnings

            import rasterio.errors

            # warning filters are process-wide: the threads' own catch_warnings blocks would restore each
            # other's state, so the filter is set once around them all
            with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=8) as pool:
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                fps = [list(pool.map(file_footprint, gf)) for gf in groups_files]
            claims = [make_claim(src.grid.crs, fp, window_m, src.grid.units_m) for src, fp in zip(sources, fps)]
            ownership = Ownership(claims)
            ll = lonlat_bounds((c.valid, src.grid.crs) for c, src in zip(claims, sources))
        else:
            ll = lonlat_bounds([(_box_map(sources[0].grid, 0, 0, sources[0].grid.width, sources[0].grid.height),
                                 sources[0].grid.crs)])
        out_crs = output_crs([s.grid.crs for s in sources], ll, crs)

        groups: list[GroupPlan] = []
        aoi_error: RasterError | None = None
        for gi, (gf, src) in enumerate(zip(groups_files, sources)):
            grid = src.grid
            check_size(grid.width, grid.height, window_px, min_valid)
            window = WindowGrid(grid.width, grid.height, window_px, stride, context_px)
            group_aoi = None
            if aoi is not None:
                try:
                    group_aoi = load_aoi(aoi, grid, aoi_layer, src.footprint())
                except RasterError as e:      # the AOI misses this group (an error only if it misses all)
                    aoi_error = e
                    continue
            region = src.footprint() if len(gf) > 1 else None    # files far apart: not the bounding box
            if claims is not None:
                region = claims[gi].valid
                for k in range(gi):
                    seg = max(grid.gsd * 50, 1.0)
                    region = region.difference(transform_geometry(claims[k].valid, claims[k].crs_wkt,
                                                                  grid.crs.to_wkt(), segment=seg))
            if group_aoi is not None:
                region = group_aoi.geometry if region is None else region.intersection(group_aoi.geometry)
            groups.append(GroupPlan(gi, src, window, group_aoi, claims[gi] if claims else None,
                                    [index_of[id(f)] for f in gf], region))
        if not groups:
            raise aoi_error or RasterError("nothing to do")

        tasks: list[TaskSpec] = []
        per_side = blocks_per_task(task_px, block_px)
        windows = 0
        area = empty = 0.0
        for g in groups:
            grid, window = g.source.grid, g.window
            plans = plan_blocks(window, block_px, g.source.block_shape, g.aoi.pixel_bounds if g.aoi else None)
            tree = STRtree([shapely.box(*f.bounds) for f in g.source.files])
            near: dict = {}
            kept = [p for p in plans if len(tree.query(_read_box(grid, [p]), predicate="intersects"))
                    and not (ownership is not None and _owned_elsewhere(ownership, g, grid, window, p, near))]
            has_data = g.source.coverage().any        # unwritten blocks of sparse files, gaps between files
            for p in [p for p in kept if not has_data(*window_region(p, window))]:
                rect = _box_map(grid, *centre_rect_px([p], window))
                empty += (rect.area if g.region is None else rect.intersection(g.region).area) * grid.units_m ** 2 / 1e6
                windows += p.nrows * p.ncols
            kept = [p for p in kept if has_data(*window_region(p, window))]
            rank = 0
            for tile in tile_blocks(kept, per_side):
                tile = sorted(tile, key=lambda p: p.index)
                idx = sorted(int(i) for i in tree.query(_read_box(grid, tile), predicate="intersects"))
                tfiles = tuple(g.source.files[i] for i in idx)
                rect = _box_map(grid, *centre_rect_px(tile, window))
                a = (rect.area if g.region is None else rect.intersection(g.region).area) * grid.units_m ** 2 / 1e6
                reach = _read_box(grid, tile)
                aoi_geom = g.aoi.geometry.intersection(reach.buffer(grid.gsd)) if g.aoi is not None else None
                own = _clip_ownership(ownership, grid.crs.to_wkt(), reach) if ownership is not None else None
                spec = TaskSpec(f"g{g.index:02d}-t{rank:06d}", g.index, grid, window, tuple(tile), tfiles,
                                tuple(int(b) for b in bands), g.source.scale, g.source.native_gsd_m, min_valid,
                                aoi_geom, own, a, tuple(g.inputs[i] for i in idx))
                tasks.append(spec)
                windows += spec.windows
                area += a
                rank += 1
        plan = RunPlan(paths, files, groups, tasks, out_crs, ownership, block_px, task_px, windows, area + empty,
                       empty_km2=empty)
        if not tasks:
            raise RasterError("no block of the inputs holds data to score (inside the AOI)")
        return plan
    except BaseException:
        for s in sources:
            s.close()
        raise


def _owned_elsewhere(ownership: Ownership, g: GroupPlan, grid, window: WindowGrid, p: BlockPlan,
                     near: dict | None = None) -> bool:
    """True only when no window centre of block ``p`` can be owned by group ``g`` (exact, conservative)."""
    rect = _box_map(grid, *centre_rect_px([p], window))
    mine = ownership.claims[g.index]
    if not rect.intersects(mine.halo):
        return True                     # no data of this group within reach of any window centre
    wkt = grid.crs.to_wkt()
    core_hit = rect.intersects(mine.core)
    seg = max(window.stride * grid.gsd, 1.0)
    near = {} if near is None else near
    for k, other in enumerate(ownership.claims):
        if k == g.index or other.core.is_empty or (k > g.index and core_hit):
            continue
        if k not in near:   # the other core's bounding box here, grown by a kilometre: a cheap first test
            box = transform_geometry(shapely_box(*other.core.bounds), other.crs_wkt, wkt, segment=1000.0)
            near[k] = box.buffer(1000.0)
        if not rect.intersects(near[k]):
            continue
        r = transform_geometry(rect, wkt, other.crs_wkt, segment=seg) if other.crs_wkt != wkt else rect
        if other.core.contains(r.buffer(1.0)):
            return True
    return False


def _clip_ownership(ownership: Ownership, wkt: str, reach) -> Ownership:
    """The claims near a task's read region (in each claim's CRS, with a kilometre to spare)."""
    claims = []
    for c in ownership.claims:
        r = reach if c.crs_wkt == wkt else transform_geometry(reach, wkt, c.crs_wkt, segment=100.0)
        claims.append(c.clipped(r.buffer(1000.0)))
    return Ownership(claims)


def file_progress(plan: RunPlan) -> dict[int, int]:
    """How many tasks read each input (an input is done when all of them are)."""
    count: dict[int, int] = {}
    for t in plan.tasks:
        for i in t.inputs:
            count[i] = count.get(i, 0) + 1
    return count


def source_names(plan: RunPlan, xy_out: np.ndarray) -> list[str]:
    """The input file under each output point: in the group that owns the point, the last file given that
    contains it (as in the mosaic)."""
    from pyproj import Transformer

    names = [""] * len(xy_out)
    if len(xy_out) == 0:
        return names
    owner = np.zeros(len(xy_out), int)
    per_group = []
    for g in plan.groups:
        if g.crs == plan.crs:
            x, y = xy_out[:, 0], xy_out[:, 1]
        else:
            tr = Transformer.from_crs(plan.crs.to_wkt(), g.crs.to_wkt(), always_xy=True)
            x, y = (np.asarray(v) for v in tr.transform(xy_out[:, 0], xy_out[:, 1]))
        per_group.append((x, y))
    if plan.ownership is not None and len(plan.groups) > 1:
        g0 = plan.groups[0]
        owner = plan.ownership.owner(g0.crs.to_wkt(), *per_group[0])
    for gi, g in enumerate(plan.groups):
        x, y = per_group[gi]
        for f in g.source.files:
            x0, y0, x1, y1 = f.bounds
            inside = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
            for i in np.nonzero(inside)[0]:
                if owner[i] == g.index or owner[i] < 0 or not names[i]:
                    names[i] = Path(f.path).name
    return names
