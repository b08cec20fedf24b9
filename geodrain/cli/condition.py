"""``geodrain condition``: breach a DEM's digital dams at drainage crossings."""

from __future__ import annotations

import click

from .options import overwrite_opt, quiet_opt


@click.command(short_help="Breach a DEM's digital dams at drainage crossings.")
@click.argument("dem", type=click.Path())
@click.argument("crossings", type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(),
              help="Conditioned DEM to write (.tif): the input's grid, CRS and nodata, tiled and compressed.")
@click.option("--breaches", type=click.Path(), default=None,
              help="GeoPackage of the breaches as lines (layer 'breaches') and every crossing with what was "
                   "done there (layer 'crossings'). Default: OUTPUT with _breaches.gpkg.")
@click.option("--radius", "radius_m", type=click.FloatRange(min=2.0), default=None,
              help="Search radius around each crossing (m) for the channel on both sides of the embankment. "
                   "Default: twice the structure's larger side (the width_m/height_m columns geodrain detect "
                   "writes, or the boxes of geodrain synth truth), 30-60 m; 40 m without sizes.")
@click.option("--max-breach-m", "max_breach_m", type=click.FloatRange(min=0.0, min_open=True), default=15.0,
              show_default=True, help="Deepest cut allowed (DEM elevation units); a crossing that needs more is "
                                      "left as it is and reported.")
@click.option("--min-dam-m", "min_dam_m", type=click.FloatRange(min=0.0), default=0.25, show_default=True,
              help="Breach only where the embankment holds water at least this deep.")
@overwrite_opt
@quiet_opt
def condition(dem, crossings, output, breaches, radius_m, max_breach_m, min_dam_m, overwrite, quiet):
    """Cut the least-cost breach through the road embankment at every crossing in CROSSINGS (points in any
    CRS, e.g. geodrain detect output) and write the conditioned DEM.

    Only cells on the breach paths change. Crossings off the DEM, on nodata, without a dammed channel within
    the radius, or needing a cut deeper than --max-breach-m are counted in the summary and left as they are.
    Example:

        geodrain condition dem.tif crossings.gpkg -o conditioned.tif
    """
    from ..condition import ConditionOptions, condition as run_condition

    opts = ConditionOptions(radius_m=radius_m, max_breach_m=max_breach_m, min_dam_m=min_dam_m,
                            breaches=breaches, overwrite=overwrite)
    result = run_condition(dem, crossings, output, options=opts, progress=not quiet)
    if not quiet:
        click.echo(f"{result.output}: {result.summary()}")
        click.echo(f"{result.breaches_path}: breach lines")
