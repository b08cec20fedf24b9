"""``geodrain evaluate``: precision, recall and F1 of predicted against true crossings."""

from __future__ import annotations

import json

import click

from .options import tolerance_opt


@click.command(short_help="Score predicted crossings against truth.")
@click.argument("pred", type=click.Path())
@click.argument("truth", type=click.Path())
@tolerance_opt
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def evaluate(pred, truth, tolerance, as_json):
    """Compare PRED (geodrain detect output) with TRUTH (points, e.g. truth.gpkg of geodrain synth)."""
    from ..evaluate import evaluate_files

    ev, _ = evaluate_files(pred, truth, tolerance)
    click.echo(json.dumps(ev.to_dict(), indent=2) if as_json else ev.summary())
