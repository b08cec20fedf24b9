"""``geodrain passrate``: does routed water go under the road at each true crossing?"""

from __future__ import annotations

import json

import click


@click.command(short_help="Crossing pass rate of DEMs: does D8 flow go under the roads?")
@click.argument("dems", nargs=-1, required=True, type=click.Path())
@click.option("--truth", required=True, type=click.Path(), help="True crossings (points; stream_id if known).")
@click.option("--streams", required=True, type=click.Path(),
              help="Stream lines drawn downstream (stream_id, parent_id), e.g. streams.gpkg of geodrain synth.")
@click.option("--distance", "distance_m", type=click.FloatRange(min=1.0), default=50.0, show_default=True,
              help="Start this far upstream of each crossing (m along the stream) and arrive this far below.")
@click.option("--tolerance", "tolerance_m", type=click.FloatRange(min=0.0), default=5.0, show_default=True,
              help="The flow path must pass this close (m) to the crossing and to the point below it.")
@click.option("--as-is", "as_is", is_flag=True,
              help="Route each DEM as it is (water ponds in every depression) instead of filling depressions "
                   "first.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def passrate(dems, truth, streams, distance_m, tolerance_m, as_is, as_json):
    """For every crossing in TRUTH, follow the D8 flow path from the stream --distance upstream and report
    how often it passes the crossing and continues down the stream, on each of DEMS (e.g. the raw DEM and
    the one geodrain condition wrote)."""
    from ..hydrology.dem import open_dem
    from ..hydrology.passrate import dem_pass_rate, load_targets

    rows = []
    targets = None
    for dem in dems:
        info = open_dem(dem)
        if targets is None:
            targets = load_targets(truth, streams, info.crs, distance_m, info.bounds)
        res = dem_pass_rate(dem, targets, fill=not as_is, tolerance_m=tolerance_m)
        rows.append({"dem": dem, "crossings": len(res), "pass_rate": round(res.rate, 4), **res.counts()})
        if not as_json:
            c = res.counts()
            click.echo(f"{dem}: pass rate {res.rate:.3f} ({c['pass']} of {len(res)}; ponds {c['ponds']}, "
                       f"diverted {c['diverted']}, lost below {c['lost']})")
    if as_json:
        click.echo(json.dumps(rows, indent=2))
