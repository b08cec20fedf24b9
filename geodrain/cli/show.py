"""``geodrain show``: a quicklook PNG of a raster with its detections (and truth)."""

from __future__ import annotations

import click

from .options import overwrite_opt, parse_int_list, tolerance_opt


def _bounds(text):
    if text is None:
        return None
    try:
        b = tuple(float(v) for v in text.split(","))
    except ValueError:
        b = ()
    if len(b) != 4 or b[2] <= b[0] or b[3] <= b[1]:
        raise click.BadParameter("expected xmin,ymin,xmax,ymax", param_hint="--bounds")
    return b


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
@click.option("--before", type=click.Path(), default=None,
              help="DEM only: the DEM before conditioning; the streams extracted from it are drawn where they "
                   "differ.")
@click.option("--breaches", type=click.Path(), default=None,
              help="DEM only: breach lines of geodrain condition (default: RASTER's _breaches.gpkg if present).")
@click.option("--stream-area", "stream_area_m2", type=click.FloatRange(min=1.0), default=50000.0,
              show_default=True, help="DEM only: a stream drains at least this many m².")
@click.option("--bounds", default=None, help="DEM only: draw only xmin,ymin,xmax,ymax (the DEM's CRS).")
@overwrite_opt
def show(raster, crossings, output, truth, tolerance, cir, bands, max_side, before, breaches, stream_area_m2,
         bounds, overwrite):
    """Draw CROSSINGS (and --truth) on a downsampled view of RASTER, for a look before QGIS.

    A single-band RASTER is drawn as a DEM: hillshade, the streams D8 flow routing extracts from it, the
    breach lines of geodrain condition and the crossings. Example:

        geodrain show conditioned.tif crossings.gpkg --before dem.tif -o look.png
    """
    from ..quicklook import is_dem, render_dem_quicklook, render_quicklook

    if is_dem(raster):
        out = render_dem_quicklook(raster, crossings, output, before=before, breaches=breaches, truth=truth,
                                   stream_area_m2=stream_area_m2, max_side=max_side, overwrite=overwrite,
                                   bounds=_bounds(bounds))
    else:
        band_list = parse_int_list(bands, "--bands")
        if len(band_list) not in (3, 4) or (cir and len(band_list) != 4):
            need = "4 bands (R, G, B, NIR) for --cir" if cir else "3 or 4 bands (R, G, B[, NIR])"
            raise click.BadParameter(f"needs {need}, got {bands!r}", param_hint="--bands")
        out = render_quicklook(raster, crossings, output, truth=truth, tolerance=tolerance, cir=cir,
                               bands=tuple(band_list), max_side=max_side, overwrite=overwrite)
    click.echo(str(out))
