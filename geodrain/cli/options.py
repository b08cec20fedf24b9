"""Click options shared by several commands, defined once (as in rasterio's ``rio/options.py``)."""

from __future__ import annotations

import click

overwrite_opt = click.option("--overwrite", is_flag=True, default=False,
                             help="Replace the output if it exists.")
quiet_opt = click.option("-q", "--quiet", is_flag=True, default=False,
                         help="No progress bar or summary; errors only.")
seed_opt = click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
model_opt = click.option("-m", "--model", "model", type=click.Path(), default=None,
                         help="Model bundle folder (default: the deployed bundle in models/, or $GEODRAIN_MODEL).")
device_opt = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                          show_default=True, help="Where the model runs; auto picks CUDA when available.")


def parse_int_list(text: str | None, name: str) -> list[int] | None:
    """'1,2,4' -> [1, 2, 4]; a readable usage error otherwise."""
    if text is None:
        return None
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=name) from None
    if not values:
        raise click.BadParameter("expected at least one value", param_hint=name)
    return values
