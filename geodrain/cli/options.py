"""Click options and value types shared by several commands, defined once (as in rasterio's ``rio/options.py``).

Every number a command takes is checked here, once, when the command line is parsed: a range (``--stride``
1..100, ``--batch-size`` >= 1, ``--threshold`` 0..1 ...) and, for real numbers, finiteness (click's own
``FloatRange`` lets ``nan`` through, since no comparison with it fails). A bad value is a usage error (one line,
exit 2) before anything is loaded; a value is never quietly replaced by a default.
"""

from __future__ import annotations

import math

import click

# the model's window (px): a stride above it would skip pixels between windows (geodrain.model.sppnet.WINDOW_PX,
# not imported here so that parsing a command line does not load torch)
WINDOW_PX = 100


class Real(click.ParamType):
    """A finite real number in a range (bounds inclusive unless ``*_open``); never NaN or infinity."""

    name = "number"

    def __init__(self, min: float | None = None, max: float | None = None, *, min_open: bool = False,
                 max_open: bool = False):
        self.min, self.max, self.min_open, self.max_open = min, max, min_open, max_open

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            x = float(value)
        else:
            try:
                x = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(x):
            self.fail(f"{value} is not a finite number", param, ctx)
        low_bad = self.min is not None and (x <= self.min if self.min_open else x < self.min)
        high_bad = self.max is not None and (x >= self.max if self.max_open else x > self.max)
        if low_bad or high_bad:
            self.fail(f"{value} is not in {self.describe()}", param, ctx)
        return x

    def describe(self) -> str:
        lo = "" if self.min is None else f"{self.min:g} {'<' if self.min_open else '<='} "
        hi = "" if self.max is None else f" {'<' if self.max_open else '<='} {self.max:g}"
        return f"the range {lo}x{hi}"

    def __repr__(self) -> str:
        return f"Real({self.describe()})"


class MultipleOf(click.IntRange):
    """A non-negative integer multiple of ``step`` (pixels of context: the model's feature stride, 8)."""

    name = "integer"

    def __init__(self, step: int):
        super().__init__(min=0)
        self.step = step

    def convert(self, value, param, ctx):
        v = super().convert(value, param, ctx)
        if v % self.step:
            self.fail(f"{v} is not a non-negative multiple of {self.step}", param, ctx)
        return v


class Scale(click.ParamType):
    """'auto' or a finite factor > 0."""

    name = "auto|number"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return Real(0, min_open=True).convert(value, param, ctx)


PROBABILITY = Real(0, 1)
POSITIVE = Real(0, min_open=True)
NON_NEGATIVE = Real(0)
COUNT = click.IntRange(min=1)
SEED = click.IntRange(0, 2 ** 32 - 1)

overwrite_opt = click.option("--overwrite", is_flag=True, default=False,
                             help="Replace the output if it exists.")
quiet_opt = click.option("-q", "--quiet", is_flag=True, default=False,
                         help="No progress bar or summary; errors only.")
seed_opt = click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed (0 to 2³²-1).")
model_opt = click.option("-m", "--model", "model", type=click.Path(), default=None,
                         help="Model bundle folder (default: the deployed bundle in models/, or $GEODRAIN_MODEL).")
device_opt = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                          show_default=True, help="Where the model runs; auto picks CUDA when available.")
tolerance_opt = click.option("--tolerance", type=POSITIVE, default=10.0, show_default=True,
                             help="A prediction within this many metres of a true crossing matches it (> 0).")
workers_opt = click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
                           help="Data-loading processes (0: in the main process).")
context_opt = click.option("--context", "context_px", type=MultipleOf(8), default=16, show_default=True,
                           help="Pixels of image context around each window (a multiple of 8; 16 makes chip and "
                                "dense inference identical; 0 for the paper's bare 100 px chips).")
lr_opt = click.option("--lr", type=POSITIVE, default=0.005, show_default=True, help="Learning rate (> 0).")


def stride_opt(help: str):
    return click.option("--stride", type=click.IntRange(1, WINDOW_PX), default=None,
                        help=f"{help}. At most the {WINDOW_PX} px window: a larger step would skip pixels.")


def merge_radius_opt(help: str):
    return click.option("--merge-radius", "merge_radius_m", type=POSITIVE, default=None, help=f"{help} (> 0).")


def parse_int_list(text: str | None, name: str, min: int | None = 1) -> list[int] | None:
    """'1,2,4' -> [1, 2, 4]; a readable usage error otherwise (values below ``min`` too)."""
    if text is None:
        return None
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}", param_hint=name) from None
    if not values:
        raise click.BadParameter("expected at least one value", param_hint=name)
    if min is not None and any(v < min for v in values):
        raise click.BadParameter(f"values must be at least {min}, got {text!r}", param_hint=name)
    return values
