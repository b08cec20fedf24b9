"""``geodrain nas``: the most efficient architecture whose validation AP reaches A (the paper's section 5.4)."""

from __future__ import annotations

import sys

import click

from .options import device_opt, overwrite_opt, parse_int_list, quiet_opt, seed_opt


def _float_list(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}", param_hint=name) from None


@click.command(short_help="Search the SPP-Net space for the most efficient architecture with AP >= A.")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(),
              help="Output folder (created; an existing search in it is resumed).")
@click.option("--strategy", type=click.Choice(["exact", "random", "tpe"]), default="exact", show_default=True,
              help="exact: measure e(n) for all, train in descending e(n) until the first feasible; random (the "
                   "paper's) or tpe: Optuna samplers with the accuracy constraint.")
@click.option("--min-ap", type=float, default=0.97, show_default=True,
              help="Accuracy constraint A on the validation chip AP.")
@click.option("--efficiency", "metric", type=click.Choice(["throughput", "latency"]), default="throughput",
              show_default=True, help="e(n): chips/s at the best batch size, or 1 / latency at batch 1.")
@click.option("--space", type=click.Choice(["paper", "extended"]), default="paper", show_default=True,
              help="paper: 175 architectures; extended: also conv widths x0.25, x0.5 (CPU deployments).")
@click.option("--k1", default=None, metavar="K,K,...", help="Restrict the first-conv kernel (1,3,5,7,9).")
@click.option("--spp", default=None, metavar="K,K,...", help="Restrict the first SPP level (1..5).")
@click.option("--fc", default=None, metavar="F,F,...", help="Restrict the FC width (128..8192).")
@click.option("--width", default=None, metavar="W,W,...", help="Restrict the conv width multiplier (0.25,0.5,1).")
@click.option("--trials", type=click.IntRange(1), default=None,
              help="Total trials of the study, resumed runs included [default: exact none, random/tpe 20].")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds for this run; no new measurement or training starts after it.")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True, help="Epochs per candidate.")
@click.option("--crops", "samples_per_epoch", type=click.IntRange(1), default=2000, show_default=True,
              help="Training crops per epoch (scene data).")
@click.option("--crop-windows", type=click.IntRange(1), default=9, show_default=True,
              help="Windows per crop side (scene data).")
@click.option("--batch-size", type=click.IntRange(1), default=20, show_default=True, help="Training batch size.")
@click.option("--lr", type=float, default=0.005, show_default=True)
@click.option("--context", "context_px", type=int, default=16, show_default=True,
              help="Pixels of context around each window (multiple of 8).")
@click.option("--measure-batches", default=None, metavar="N,N,...",
              help="Batch sizes of the throughput sweep [default: GPU 128,256,512,1024; CPU 1,4].")
@click.option("--iters", type=click.IntRange(1), default=None,
              help="Timed runs per batch size (median) [default: GPU 5, CPU 3].")
@click.option("--workers", type=int, default=0, show_default=True, help="Data-loading processes.")
@device_opt
@seed_opt
@overwrite_opt
@quiet_opt
def nas(data, output, strategy, min_ap, metric, space, k1, spp, fc, width, trials, timeout, epochs,
        samples_per_epoch, crop_windows, batch_size, lr, context_px, measure_batches, iters, workers, device,
        seed, overwrite, quiet):
    """Maximize inference efficiency e(n) subject to validation AP a(n) >= A over DATA (scene folders from
    `geodrain synth`, or VOC chip folders). Writes OUTPUT/leaderboard.{csv,md}, OUTPUT/pareto.png and the
    winning bundle OUTPUT/winner/; OUTPUT/nas.db lets an interrupted search resume."""
    from tqdm import tqdm

    from ..errors import import_optional

    import_optional("optuna", "research", "the architecture search")
    from ..nas import build_space, search
    from ..training import TrainConfig

    if context_px % 8 or context_px < 0:
        raise click.BadParameter("must be a non-negative multiple of 8", param_hint="--context")
    archs = build_space(space, k1=parse_int_list(k1, "--k1"), spp=parse_int_list(spp, "--spp"),
                        fc=parse_int_list(fc, "--fc"), width=_float_list(width, "--width"))
    config = TrainConfig(context_px=context_px, epochs=epochs, batch_size=batch_size, lr=lr,
                         samples_per_epoch=samples_per_epoch, crop_windows=crop_windows, workers=workers,
                         device=device, seed=seed)
    log = None if quiet else (lambda m: tqdm.write(m, file=sys.stderr))
    result = search(list(data), output, strategy=strategy, min_ap=min_ap, efficiency=metric, space=archs,
                    device=device, trials=trials, timeout=timeout, train_config=config,
                    batch_sizes=parse_int_list(measure_batches, "--measure-batches"), iters=iters,
                    overwrite=overwrite, progress=not quiet, log=log)
    if not quiet:
        click.echo(result.summary())
        click.echo(f"leaderboard: {result.out / 'leaderboard.md'}")
