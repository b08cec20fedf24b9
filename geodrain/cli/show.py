"""``geodrain show``: a quicklook PNG of a raster with its detections (and truth)."""

from __future__ import annotations

import click

from .options import overwrite_opt, parse_int_list, tolerance_opt


@click.command(short_help="Render a quicklook PNG of detections on the raster.")
@click.argument("raster", type=click.Path())
@click.argument("crossings", type=click.Path(), required=False)
@click.option("-o", "--output", "output", required=True, type=click.Path(), help="PNG to write.")
@click.option("--truth", type=click.Path(), default=None,
              help="True crossings: matched, missed and false detections are drawn differently.")
@tolerance_opt
@click.option("--cir", is_flag=True, help="Colour infrared (NIR, R, G) instead of true colour.")
@click.option("--bands", default="1,2,3,4", show_default=True, help="File bands read as R, G, B, NIR.")
@click.option("--max-side", type=click.IntRange(64, 20000), default=1600, show_default=True,
              help="Longest side of the picture (px).")
@overwrite_opt
def show(raster, crossings, output, truth, tolerance, cir, bands, max_side, overwrite):
    """Draw CROSSINGS (and --truth) on a downsampled view of RASTER, for a look before QGIS."""
    from ..quicklook import render_quicklook

    band_list = parse_int_list(bands, "--bands")
    if len(band_list) not in (3, 4) or (cir and len(band_list) != 4):
        need = "4 bands (R, G, B, NIR) for --cir" if cir else "3 or 4 bands (R, G, B[, NIR])"
        raise click.BadParameter(f"needs {need}, got {bands!r}", param_hint="--bands")
    out = render_quicklook(raster, crossings, output, truth=truth, tolerance=tolerance, cir=cir,
                           bands=tuple(band_list), max_side=max_side, overwrite=overwrite)
    click.echo(str(out))
