"""``geodrain detect``: find crossings in a raster (or a mosaic of several) and write them."""

from __future__ import annotations

import click

from .options import (COUNT, PROBABILITY, Scale, device_opt, merge_radius_opt, model_opt, overwrite_opt,
                      parse_int_list, quiet_opt, stride_opt)

# a block is at least this many pixels a side (geodrain.infer.config.MIN_BLOCK_PX; not imported, so that
# parsing the command line does not load torch)
MIN_BLOCK_PX = 128


@click.command(short_help="Detect drainage crossings in NAIP imagery.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(),
              help="Output file: .gpkg (default layer 'crossings'), .geojson, .parquet or .csv.")
@model_opt
@click.option("--bands", default="1,2,3,4", show_default=True,
              help="File bands read as R, G, B, NIR, in that order.")
@stride_opt("Window step in model pixels (default: the bundle's, the one its threshold was calibrated at; the "
            "dense engine needs a multiple of 8)")
@click.option("--threshold", type=PROBABILITY, default=None,
              help="Crossing probability threshold, 0 to 1 (default: the bundle's, calibrated with its stride).")
@merge_radius_opt("Detections closer than this many metres are one crossing (default: the bundle's)")
@click.option("--min-valid", type=PROBABILITY, default=0.5, show_default=True,
              help="Skip windows with a smaller share of valid (not nodata/masked/outside) pixels.")
@click.option("--aoi", type=click.Path(), default=None,
              help="Polygon file (any CRS), e.g. a watershed boundary: detect only inside it. Invalid "
                   "(self-intersecting) polygons are repaired with make_valid, with a warning.")
@click.option("--aoi-layer", default=None, help="The --aoi file's layer (needed when it has several).")
@click.option("--engine", type=click.Choice(["auto", "dense", "chip"]), default="auto", show_default=True,
              help="dense: convolve each block once and pool every window from it; chip: classify each "
                   "window on its own (the paper's way); auto picks dense when the bundle allows it.")
@click.option("--backend", type=click.Choice(["torch", "onnx"]), default="torch", show_default=True,
              help="Run the model with torch or with ONNX Runtime (chip engine).")
@device_opt
@click.option("--batch-size", type=COUNT, default=None,
              help="Chips per batch, >= 1 (default: the bundle's profiled best for this device; bounded by the "
                   "memory available).")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None,
              help="Arithmetic precision on the GPU (default: the bundle's tuned choice, else fp16).")
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
@overwrite_opt
@quiet_opt
def detect(inputs, output, model, bands, stride, threshold, merge_radius_m, min_valid, aoi, aoi_layer, engine,
           backend, device, batch_size, precision, block_px, read_threads, scale, force, overwrite, quiet):
    """Find drainage crossings in INPUTS and write them to OUTPUT.

    Several INPUTS are mosaicked into one output. Example:

        geodrain detect watershed.tif -o crossings.gpkg
    """
    from ..detect import DetectOptions, detect as run_detect

    opts = DetectOptions(stride=stride, threshold=threshold, merge_radius_m=merge_radius_m, min_valid=min_valid,
                         bands=tuple(parse_int_list(bands, "--bands")), engine=engine, backend=backend,
                         device=device, batch_size=batch_size, precision=precision, block_px=block_px,
                         read_threads=read_threads, aoi=aoi, aoi_layer=aoi_layer, scale=scale, force=force,
                         overwrite=overwrite)
    result = run_detect(list(inputs), output, model=model, options=opts, progress=not quiet)
    if not quiet:
        click.echo(f"{result.output}: {result.summary()}")
