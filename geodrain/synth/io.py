"""Writing a scene: the output folder protocol, raster profiles and the vector layers.

A scene is written into a hidden temporary folder beside OUTDIR and renamed into place only when complete
(:func:`geodrain.output.atomic_folder`), so an interrupted run never leaves a complete-looking scene behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import shapely
from affine import Affine
from rasterio.enums import ColorInterp
from shapely.geometry import box

from ..errors import OutputError, OutputExistsError

CRS = "EPSG:26914"
BLOCK = 512
SCENE_FILES = ("naip.tif", "dem.tif", "truth.gpkg", "roads.gpkg", "streams.gpkg", "scene.json")


def check_outdir(outdir, overwrite: bool) -> Path:
    """Validate OUTDIR before any work: parent must exist and be writable; an existing scene needs overwrite."""
    out = Path(outdir).expanduser().absolute()
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {out}: the folder {parent} is not writable")
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise OutputError(f"cannot write {out}: it exists and is not a folder")
        entries = list(out.iterdir())
        if entries and not overwrite:
            what = "already holds a scene" if any((out / f).exists() for f in SCENE_FILES) else "is not empty"
            raise OutputExistsError(f"{out} {what}")
    return out


def naip_profile(size: int, transform: Affine) -> dict:
    return dict(driver="GTiff", dtype="uint8", count=4, width=size, height=size, crs=CRS, transform=transform,
                tiled=True, blockxsize=BLOCK, blockysize=BLOCK, compress="deflate", predictor=2, zlevel=6,
                interleave="pixel", photometric="RGB", BIGTIFF="IF_SAFER", num_threads="ALL_CPUS")


def dem_profile(size: int, transform: Affine) -> dict:
    return dict(driver="GTiff", dtype="float32", count=1, width=size, height=size, crs=CRS, transform=transform,
                tiled=True, blockxsize=BLOCK, blockysize=BLOCK, compress="deflate", predictor=3, zlevel=6,
                nodata=-9999.0, BIGTIFF="IF_SAFER", num_threads="ALL_CPUS")


def tag_naip(dst) -> None:
    for i, name in enumerate(("red", "green", "blue", "nir"), start=1):
        dst.set_band_description(i, name)
    dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.undefined]


def to_map(geoms, origin_x: float, origin_y: float):
    """Scene coordinates (x right, y down, metres from the top-left corner) -> EPSG:26914."""
    off = np.array([origin_x, origin_y])
    return shapely.transform(np.asarray(geoms, dtype=object), lambda c: c * np.array([1.0, -1.0]) + off)


def write_vectors(layout, folder: Path) -> dict:
    """truth.gpkg (crossings, hard_negatives, distractors, distractor_areas), roads.gpkg and streams.gpkg;
    returns counts."""
    p = layout.params
    ox, oy = p.origin_x, p.origin_y
    scene = box(0, 0, p.size, p.size)

    cr = layout.crossings
    boxes = [to_map([c.footprint()], ox, oy)[0].bounds for c in cr]
    crossings = gpd.GeoDataFrame({
        "crossing_id": np.array([c.id for c in cr], np.int32),
        "kind": [c.kind for c in cr],
        "road_id": np.array([c.road_id for c in cr], np.int32),
        "stream_id": np.array([c.stream_id for c in cr], np.int32),
        "road_kind": [c.road_kind for c in cr],
        "road_width_m": np.round([c.road_width for c in cr], 2).astype(float),
        "stream_width_m": np.round([c.stream_width for c in cr], 2).astype(float),
        "angle_deg": np.round([c.angle_deg for c in cr], 1).astype(float),
        "box_xmin": [b[0] for b in boxes], "box_ymin": [b[1] for b in boxes],
        "box_xmax": [b[2] for b in boxes], "box_ymax": [b[3] for b in boxes],
    }, geometry=list(to_map(shapely.points([(c.x, c.y) for c in cr]), ox, oy)) if cr else [], crs=CRS)
    neg = layout.negatives
    negatives = gpd.GeoDataFrame(
        {"negative_id": np.arange(1, len(neg) + 1, dtype=np.int32), "kind": [n.kind for n in neg]},
        geometry=list(to_map(shapely.points([(n.x, n.y) for n in neg]), ox, oy)) if neg else [], crs=CRS)
    truth = folder / "truth.gpkg"
    pyogrio.write_dataframe(crossings, truth, layer="crossings", driver="GPKG", geometry_type="Point")
    pyogrio.write_dataframe(negatives, truth, layer="hard_negatives", driver="GPKG", geometry_type="Point")
    dis = layout.distractors
    pts = dis.points
    cross_xy = np.array([(c.x, c.y) for c in cr]).reshape(-1, 2)
    dcross = [float(np.min(np.hypot(*(cross_xy - (d.x, d.y)).T))) if len(cross_xy) else -1.0 for d in pts]
    distractors = gpd.GeoDataFrame({
        "distractor_id": np.arange(1, len(pts) + 1, dtype=np.int32),
        "kind": [d.kind for d in pts],
        "road_id": np.array([d.road_id for d in pts], np.int32),
        "culvert": np.array([d.culvert for d in pts], bool),
        "sides": np.array([d.sides for d in pts], np.int32),
        "contrast": np.array([d.contrast for d in pts], float),
        "crossing_m": np.round(dcross, 1).astype(float),
    }, geometry=list(to_map(shapely.points([(d.x, d.y) for d in pts]), ox, oy)) if pts else [], crs=CRS)
    pyogrio.write_dataframe(distractors, truth, layer="distractors", driver="GPKG", geometry_type="Point")
    areas = [(g.intersection(scene), k) for g, k in dis.areas]
    areas = [(g, k) for g, k in areas if not g.is_empty and g.area > 0]
    area_df = gpd.GeoDataFrame(
        {"area_id": np.arange(1, len(areas) + 1, dtype=np.int32), "kind": [k for _, k in areas]},
        geometry=list(to_map([shapely.make_valid(g) for g, _ in areas], ox, oy)) if areas else [], crs=CRS)
    area_df = area_df[area_df.geometry.geom_type.isin(["Polygon", "MultiPolygon"])]
    area_df["geometry"] = [g if g.geom_type == "MultiPolygon" else shapely.MultiPolygon([g]) for g in area_df.geometry]
    pyogrio.write_dataframe(area_df, truth, layer="distractor_areas", driver="GPKG", geometry_type="MultiPolygon")

    rows, geoms = [], []
    for r in layout.roads:
        for part in _parts(r.line.intersection(scene)):
            rows.append(dict(road_id=r.id, kind=r.kind, surface=r.surface, width_m=round(r.width, 2),
                             embankment_m=round(r.embankment, 2)))
            geoms.append(part)
    roads = gpd.GeoDataFrame(rows, geometry=list(to_map(geoms, ox, oy)) if geoms else [], crs=CRS)
    pyogrio.write_dataframe(roads, folder / "roads.gpkg", layer="roads", driver="GPKG", geometry_type="LineString")
    rows, geoms = [], []
    for s in layout.streams:
        for part in _parts(s.line.intersection(scene)):
            rows.append(dict(stream_id=s.id, width_m=round(s.width, 2), riparian_m=round(s.riparian, 1),
                             water=bool(s.water), parent_id=int(s.parent or 0)))
            geoms.append(part)
    streams = gpd.GeoDataFrame(rows, geometry=list(to_map(geoms, ox, oy)) if geoms else [], crs=CRS)
    pyogrio.write_dataframe(streams, folder / "streams.gpkg", layer="streams", driver="GPKG",
                            geometry_type="LineString")
    kinds: dict[str, int] = {}
    for n in neg:
        kinds[n.kind] = kinds.get(n.kind, 0) + 1
    dkinds: dict[str, int] = {}
    for d in pts:
        dkinds[d.kind] = dkinds.get(d.kind, 0) + 1
    return dict(crossings=len(cr), culverts=sum(c.kind == "culvert" for c in cr),
                bridges=sum(c.kind == "bridge" for c in cr), roads=int(roads["road_id"].nunique()) if len(roads) else 0,
                streams=int(streams["stream_id"].nunique()) if len(streams) else 0, hard_negatives=len(neg),
                hard_negative_kinds=kinds, distractors=len(pts), distractor_kinds=dkinds,
                ditch_culverts=sum(f.culvert for f in dis.fills), terraced_fields=len(dis.terraced))


def _parts(geom):
    if geom.is_empty:
        return []
    if geom.geom_type == "LineString":
        return [geom] if geom.length > 0 else []
    return [g for g in getattr(geom, "geoms", []) if g.geom_type == "LineString" and g.length > 0]


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
