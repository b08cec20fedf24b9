"""``geodrain mine``: a bundle's false positives and missed crossings on labelled scenes, for fine-tuning."""

from __future__ import annotations

import click

from .options import POSITIVE, PROBABILITY, device_opt, overwrite_opt, quiet_opt, tolerance_opt


@click.command(short_help="Mine a bundle's hard examples on labelled scenes.")
@click.argument("bundle", type=click.Path())
@click.argument("scenes", nargs=-1, required=True, type=click.Path())
@click.option("--floor", type=PROBABILITY, default=0.5, show_default=True,
              help="Detections scoring at least this (0 to 1) are mined as false positives when no crossing is "
                   "near.")
@click.option("--clear", "clear_m", type=POSITIVE, default=40.0, show_default=True,
              help="Distance (m, > 0) from every true crossing beyond which a detection is a false positive.")
@tolerance_opt
@device_opt
@overwrite_opt
@quiet_opt
def mine(bundle, scenes, floor, clear_m, tolerance, device, overwrite, quiet):
    """Run BUNDLE on SCENES (folders with naip.tif and truth.gpkg) and write each one's hard examples to
    SCENE/mined.gpkg: detections far from every true crossing, and crossings the bundle misses.
    `geodrain train` then centres more of its crops on them."""
    from tqdm import tqdm

    from ..model.bundle import load_bundle
    from ..training.mining import mine_scene

    b = load_bundle(bundle)
    fp = missed = total = 0
    for folder in tqdm(scenes, desc="mine", unit="scene", disable=quiet):
        m = mine_scene(b, folder, floor=floor, clear_m=clear_m, tolerance_m=tolerance, device=device,
                       overwrite=overwrite)
        fp, missed, total = fp + len(m.false_positives), missed + len(m.missed), total + m.crossings
        if not quiet:
            tqdm.write(m.summary())
    if not quiet:
        click.echo(f"{len(scenes)} scene(s): {fp} false positive(s), {missed} of {total} crossing(s) missed")
