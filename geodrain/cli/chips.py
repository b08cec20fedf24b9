"""``geodrain chips``: cut a labelled raster into a VOC chip folder."""

from __future__ import annotations

import click

from .options import NON_NEGATIVE, PROBABILITY, MultipleOf, overwrite_opt, quiet_opt, seed_opt


@click.command(short_help="Cut a labelled raster into VOC chips.")
@click.argument("raster", type=click.Path())
@click.argument("truth", type=click.Path(), required=False)
@click.option("-o", "--output", "output", required=True, type=click.Path(), help="Chip folder to write.")
@click.option("--jitter", "jitter_m", type=NON_NEGATIVE, default=4.0, show_default=True,
              help="Maximum offset (m, >= 0) of a positive chip's centre from its crossing.")
@click.option("--negatives", "neg_ratio", type=NON_NEGATIVE, default=2.0, show_default=True,
              help="Negative chips per positive chip (>= 0).")
@click.option("--hard-fraction", type=PROBABILITY, default=0.5, show_default=True,
              help="Share of negatives placed near hard negatives (road intersections, waterways, streams).")
@click.option("--context", "context_px", type=MultipleOf(8), default=0, show_default=True,
              help="Pixels of context around the 100 px window (a multiple of 8; 0 = the paper's chips).")
@seed_opt
@overwrite_opt
@quiet_opt
def chips(raster, truth, output, jitter_m, neg_ratio, hard_fraction, context_px, seed, overwrite, quiet):
    """Write 100 x 100 m chips of RASTER centred on the crossings of TRUTH, plus negatives.

    RASTER may be a scene folder from `geodrain synth` (naip.tif + truth.gpkg), then TRUTH is optional.
    Chips are GeoTIFFs with Pascal VOC XML annotations, the layout of the paper's data.
    """
    from ..datasets.chips import write_chips

    s = write_chips(raster, truth, output, jitter_m=jitter_m, neg_ratio=neg_ratio, hard_fraction=hard_fraction,
                    context_px=context_px, seed=seed, overwrite=overwrite, quiet=quiet)
    if not quiet:
        click.echo(f"{s.folder}: {s.positives} positive, {s.hard_negatives} hard negative and "
                   f"{s.negatives} random negative chips")
