"""``geodrain calibrate``: tune a bundle's detection threshold on labelled scenes."""

from __future__ import annotations

import json

import click

from .options import device_opt, merge_radius_opt, stride_opt, tolerance_opt


@click.command(short_help="Tune a bundle's detection threshold on labelled scenes.")
@click.argument("bundle", type=click.Path())
@click.argument("scenes", nargs=-1, required=True, type=click.Path())
@tolerance_opt
@stride_opt("Window step (px) to calibrate at and record (default: the bundle's)")
@merge_radius_opt("Merge radius (m) to calibrate at and record (default: the bundle's)")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Store the threshold (with the stride and merge radius) in the bundle's manifest, in its table "
                   "of calibrations by stride.")
@click.option("--default/--no-default", "as_default", default=True, show_default=True,
              help="Also make this stride, threshold and merge radius detection's default (--no-default only adds "
                   "the stride's calibration, which detect --stride uses).")
@device_opt
def calibrate(bundle, scenes, tolerance, stride, merge_radius_m, record, as_default, device):
    """Pick the threshold that maximizes detection F1 of BUNDLE on SCENES (folders with naip.tif and
    truth.gpkg, e.g. from `geodrain synth` with seeds not used for training)."""
    from ..model.bundle import load_bundle
    from ..training.calibrate import calibrate_threshold

    result = calibrate_threshold(load_bundle(bundle), list(scenes), tolerance=tolerance, device=device,
                                 record=record, stride=stride, merge_radius_m=merge_radius_m,
                                 default=as_default)
    click.echo(json.dumps(result, indent=2))
