"""``geodrain show``: a quicklook PNG of a raster with its detections (and truth)."""

from __future__ import annotations

import click

from .options import overwrite_opt, parse_int_list


@click.command(short_help="Render a quicklook PNG of detections on the raster.")
@click.argument("raster", type=click.Path())
@click.argument("crossings", type=click.Path(), required=False)
@click.option("-o", "--output", "output", required=True, type=click.Path(), help="PNG to write.")
@click.option("--truth", type=click.Path(), default=None,
              help="True crossings: matched, missed and false detections are drawn differently.")
@click.option("--tolerance", type=float, default=10.0, show_default=True, help="Matching tolerance (m).")
@click.option("--cir", is_flag=True, help="Colour infrared (NIR, R, G) instead of true colour.")
@click.option("--bands", default="1,2,3,4", show_default=True, help="File bands read as R, G, B, NIR.")
@click.option("--max-side", type=int, default=1600, show_default=True, help="Longest side of the picture (px).")
@overwrite_opt
def show(raster, crossings, output, truth, tolerance, cir, bands, max_side, overwrite):
    """Draw CROSSINGS (and --truth) on a downsampled view of RASTER, for a look before QGIS."""
    from ..quicklook import render_quicklook

    out = render_quicklook(raster, crossings, output, truth=truth, tolerance=tolerance, cir=cir,
                           bands=tuple(parse_int_list(bands, "--bands")), max_side=max_side, overwrite=overwrite)
    click.echo(str(out))
