"""``geodrain detect``: find crossings in a raster (or a mosaic of several) and write them."""

from __future__ import annotations

import click

from .options import device_opt, model_opt, overwrite_opt, parse_int_list, quiet_opt


@click.command(short_help="Detect drainage crossings in NAIP imagery.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(),
              help="Output file: .gpkg (default layer 'crossings'), .geojson, .parquet or .csv.")
@model_opt
@click.option("--bands", default="1,2,3,4", show_default=True,
              help="File bands read as R, G, B, NIR, in that order.")
@click.option("--stride", type=click.IntRange(min=1), default=None,
              help="Window step in model pixels (default: the bundle's, the one its threshold was calibrated "
                   "at; the dense engine needs a multiple of 8).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Report crossings scoring at least this (default: the bundle's). With a bundle whose scores "
                   "are calibrated, a crossing's probability of being real (default 0.5); otherwise the "
                   "strongest window's probability.")
@click.option("--merge-radius", "merge_radius_m", type=float, default=None,
              help="Detections closer than this many metres are one crossing (default: the bundle's).")
@click.option("--min-valid", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Skip windows with a smaller share of valid (not nodata/masked/outside) pixels.")
@click.option("--aoi", type=click.Path(), default=None,
              help="Polygon file (any CRS), e.g. a watershed boundary: detect only inside it.")
@click.option("--dem", "dem", multiple=True, type=click.Path(),
              help="Elevation raster(s) (e.g. 1 m lidar or a 10 m DEM; any CRS and resolution, warped onto the "
                   "imagery's grid on read): each crossing gets the DEM's evidence (flow across the road "
                   "embankment, channels on both sides, digital-dam depth) and, with a bundle calibrated on it, "
                   "a score from imagery and DEM. Repeat for several files.")
@click.option("--dem-z-factor", type=float, default=None,
              help="Metres per DEM elevation unit (default: from the DEM's CRS, e.g. 0.3048 for feet).")
@click.option("--engine", type=click.Choice(["auto", "dense", "chip"]), default="auto", show_default=True,
              help="dense: convolve each block once and pool every window from it; chip: classify each "
                   "window on its own (the paper's way); auto picks dense when the bundle allows it.")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="Run the model with torch or with ONNX Runtime (chip engine).")
@device_opt
@click.option("--batch-size", type=int, default=None,
              help="Chips per batch (default: the bundle's profiled best for this device).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None,
              help="Arithmetic precision on the GPU (default: the bundle's tuned choice, else fp16).")
@click.option("--block-size", "block_px", type=int, default=None,
              help="Pixels per block side read at once (default 1024 on CPU, 2048 on GPU).")
@click.option("--read-threads", type=int, default=None, help="Background reading threads.")
@click.option("--scale", default="auto", show_default=True,
              help="Multiply input values by this to reach 8-bit DN; 'auto' scales non-8-bit input by "
                   "its 99.9th percentile.")
@overwrite_opt
@quiet_opt
def detect(inputs, output, model, bands, stride, threshold, merge_radius_m, min_valid, aoi, dem, dem_z_factor,
           engine, backend, device, batch_size, precision, block_px, read_threads, scale, overwrite, quiet):
    """Find drainage crossings in INPUTS and write them to OUTPUT.

    Several INPUTS are mosaicked into one output. Examples:

        geodrain detect watershed.tif -o crossings.gpkg

        geodrain detect naip_*.tif --dem lidar_1m.tif -o crossings.gpkg
    """
    from ..detect import DetectOptions, detect as run_detect

    opts = DetectOptions(stride=stride, threshold=threshold, merge_radius_m=merge_radius_m, min_valid=min_valid,
                         bands=tuple(parse_int_list(bands, "--bands")), engine=engine, backend=backend,
                         device=device, batch_size=batch_size, precision=precision, block_px=block_px,
                         read_threads=read_threads, aoi=aoi, scale=scale if scale == "auto" else float(scale),
                         overwrite=overwrite, dem=tuple(dem) or None, dem_z_factor=dem_z_factor)
    result = run_detect(list(inputs), output, model=model, options=opts, progress=not quiet)
    if not quiet:
        click.echo(f"{result.output}: {result.summary()}")
