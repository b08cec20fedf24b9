"""``geodrain detect``: find crossings in a raster, a mosaic or a statewide set of files, and write them."""

from __future__ import annotations

import click

from .options import (COUNT, POSITIVE, PROBABILITY, Scale, device_opt, merge_radius_opt, model_opt,
                      overwrite_opt, parse_int_list, quiet_opt, stride_opt)

# a block is at least this many pixels a side (geodrain.infer.config.MIN_BLOCK_PX; not imported, so that
# parsing the command line does not load torch)
MIN_BLOCK_PX = 128


@click.command(short_help="Detect drainage crossings in NAIP imagery.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", "output", required=True, type=click.Path(),
              help="Output file: .gpkg (default layer 'crossings'), .geojson, .parquet or .csv.")
@model_opt
@click.option("--bands", default="1,2,3,4", show_default=True,
              help="File bands read as R, G, B, NIR, in that order.")
@stride_opt("Window step in model pixels (default: the bundle's, the one its threshold was calibrated at; the "
            "dense engine needs a multiple of 8)")
@click.option("--threshold", type=PROBABILITY, default=None,
              help="Report crossings scoring at least this, 0 to 1 (default: the bundle's, calibrated with its "
                   "stride). With a bundle whose scores are calibrated, a crossing's probability of being real "
                   "(default 0.5); otherwise the strongest window's probability.")
@click.option("--window-scores", is_flag=True, default=False,
              help="Ignore the bundle's calibrated scoring: score and --threshold are the strongest window's "
                   "probability (default threshold: the bundle's window threshold). docs/condition.md uses "
                   "--window-scores --threshold 0.9 to favour recall before conditioning a DEM.")
@merge_radius_opt("Detections closer than this many metres are one crossing (default: the bundle's)")
@click.option("--min-valid", type=PROBABILITY, default=0.5, show_default=True,
              help="Skip windows with a smaller share of valid (not nodata/masked/outside) pixels.")
@click.option("--aoi", type=click.Path(), default=None,
              help="Polygon file (any CRS), e.g. a watershed boundary: detect only inside it. Invalid "
                   "(self-intersecting) polygons are repaired with make_valid, with a warning.")
@click.option("--aoi-layer", default=None, help="The --aoi file's layer (needed when it has several).")
@click.option("--dem", "dem", multiple=True, type=click.Path(),
              help="Elevation raster(s) (e.g. 1 m lidar or a 10 m DEM; any CRS and resolution, warped onto the "
                   "imagery's grid on read): each crossing gets the DEM's evidence (flow across the road "
                   "embankment, channels on both sides, digital-dam depth) and, with a bundle calibrated on it "
                   "(the default one is), a score from imagery and DEM; a DEM coarser than the bundle was "
                   "measured at (10 m for the default one) scores from the imagery, with a warning. Repeat for "
                   "several files.")
@click.option("--dem-z-factor", type=POSITIVE, default=None,
              help="Metres per DEM elevation unit (default: from the DEM's CRS, e.g. 0.3048 for feet).")
@click.option("--engine", type=click.Choice(["auto", "dense", "chip"]), default="auto", show_default=True,
              help="dense: convolve each block once and pool every window from it; chip: classify each "
                   "window on its own (the paper's way); auto picks dense when the bundle allows it.")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default=None,
              help="Run the model with torch or with ONNX Runtime (default: the bundle's tuned choice for this "
                   "device, else torch; on a CPU the dense engine runs the bundle's prepared ONNX graph).")
@device_opt
@click.option("--batch-size", type=COUNT, default=None,
              help="Chips per batch, >= 1 (default: the bundle's profiled best for this device; bounded by the "
                   "memory available).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "int8"]), default=None,
              help="Arithmetic precision (default: the bundle's tuned choice, else fp16 on a GPU, fp32 on a CPU). "
                   "int8: the dense engine's prepared int8 graph on a CPU; fp32 there runs exactly.")
@click.option("--block-size", "block_px", type=click.IntRange(min=MIN_BLOCK_PX), default=None,
              help=f"Pixels per block side read at once, >= {MIN_BLOCK_PX} (default 1024 on CPU, 2048 on GPU; "
                   "bounded by the memory available).")
@click.option("--read-threads", type=click.IntRange(1, 256), default=None,
              help="Background reading threads, 1 to 256 (default: 2, or the cores for the dense engine on a GPU).")
@click.option("--scale", type=Scale(), default="auto", show_default=True,
              help="Multiply input values by this (> 0) to reach 8-bit DN; 'auto' scales non-8-bit input by "
                   "its 99.9th percentile.")
@click.option("--force", is_flag=True, default=False,
              help="Run on input coarser than 2.5 x the model's GSD (2.5 m for the 1 m model), which is refused "
                   "otherwise: crossings are not resolvable there.")
@click.option("--crs", default=None,
              help="CRS of the output, e.g. EPSG:5070 (default: the inputs' when they share one, otherwise "
                   "EPSG:5070, NAD83 / Conus Albers, equal-area; outside the contiguous US an equal-area "
                   "projection centred on the inputs).")
@click.option("--stac-asset", default=None,
              help="Asset of each STAC item to read (default: 'image', else the item's one raster asset).")
@click.option("--task-size", "task_px", type=click.IntRange(min=1), default=None,
              help="Model pixels per task side (default 8192, ~67 km² at 1 m): the unit of work that is "
                   "saved, resumed and sent to a Dask worker.")
@click.option("--work-dir", type=click.Path(file_okay=False), default=None,
              help="Folder for the run's finished tasks and manifest (default: OUTPUT.work beside the "
                   "output); removed when the output is written unless --keep-work.")
@click.option("--resume", is_flag=True, default=False,
              help="Continue an interrupted run: skip the tasks its work folder holds (same inputs, model and "
                   "settings required; the output is byte-identical to an uninterrupted run's).")
@click.option("--restart", is_flag=True, default=False, help="Discard an existing work folder and start over.")
@click.option("--keep-work", is_flag=True, default=False,
              help="Keep the work folder after the output is written (then --resume --overwrite rewrites the "
                   "output without computing anything).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Run the tasks on a Dask LocalCluster of this many worker processes (torch and GDAL get "
                   "the cores / N each).")
@click.option("--scheduler", default=None,
              help="Run the tasks on an existing Dask cluster: its address (tcp://host:8786) or scheduler "
                   "file. Workers must read the inputs and the model at the same paths.")
@click.option("--worker-threads", type=click.IntRange(min=1), default=None,
              help="torch/GDAL threads per Dask worker (default: cores / --workers; with --scheduler, each "
                   "worker's --nthreads).")
@overwrite_opt
@quiet_opt
def detect(inputs, output, model, bands, stride, threshold, window_scores, merge_radius_m, min_valid, aoi,
           aoi_layer, dem, dem_z_factor, engine, backend, device, batch_size, precision, block_px, read_threads,
           scale, force, crs, stac_asset, task_px, work_dir, resume, restart, keep_work, workers, scheduler,
           worker_threads, overwrite, quiet):
    """Find drainage crossings in INPUTS and write them to OUTPUT.

    INPUTS are raster files, folders (every raster inside), glob patterns, list files (.txt: one path per
    line) or STAC JSON (an ItemCollection); local paths, URLs or GDAL /vsi paths. Files in one CRS are
    mosaicked; files in several CRSs (UTM zones) are scored so that every location is scored once, and all
    crossings are merged in one output CRS (--crs). Examples:

        geodrain detect watershed.tif -o crossings.gpkg

        geodrain detect naip/ -o state.gpkg --workers 4        # then, after a crash: ... --resume

        geodrain detect naip_*.tif --dem lidar_1m.tif -o crossings.gpkg
    """
    from ..detect import DetectOptions, detect as run_detect

    opts = DetectOptions(stride=stride, threshold=threshold, merge_radius_m=merge_radius_m, min_valid=min_valid,
                         bands=tuple(parse_int_list(bands, "--bands")), engine=engine, backend=backend,
                         device=device, batch_size=batch_size, precision=precision, block_px=block_px,
                         read_threads=read_threads, aoi=aoi, aoi_layer=aoi_layer, scale=scale, force=force,
                         overwrite=overwrite, crs=crs, stac_asset=stac_asset, task_px=task_px, work_dir=work_dir,
                         resume=resume, restart=restart, keep_work=keep_work, workers=workers, scheduler=scheduler,
                         worker_threads=worker_threads, dem=tuple(dem) or None, window_scores=window_scores,
                         dem_z_factor=dem_z_factor)
    result = run_detect(list(inputs), output, model=model, options=opts, progress=not quiet)
    if not quiet:
        click.echo(f"{result.output}: {result.summary()}")
