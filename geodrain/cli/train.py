"""``geodrain train``: train an SPP-Net of the family and save a model bundle."""

from __future__ import annotations

import json

import click

from .options import (COUNT, NON_NEGATIVE, POSITIVE, Real, context_opt, device_opt, lr_opt, overwrite_opt,
                      quiet_opt, seed_opt, workers_opt)


@click.command(short_help="Train an SPP-Net and save a model bundle.")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", "output", required=True, type=click.Path(), help="Bundle folder to write.")
@click.option("--arch", default="original", show_default=True,
              help="Preset (original, spp1, spp2, spp3), key (k3-s5-f4096) or the paper's notation.")
@click.option("--epochs", type=COUNT, default=10, show_default=True, help="Training epochs (>= 1).")
@click.option("--batch-size", type=COUNT, default=20, show_default=True, help="Training batch size (>= 1).")
@lr_opt
@click.option("--momentum", type=Real(0, 1, max_open=True), default=0.9, show_default=True,
              help="SGD momentum (0 <= m < 1).")
@click.option("--weight-decay", type=NON_NEGATIVE, default=0.0005, show_default=True, help="L2 weight decay (>= 0).")
@click.option("--val-fraction", type=Real(0.05, 0.5), default=0.2, show_default=True,
              help="Share of the data held out for validation (0.05 to 0.5).")
@context_opt
@click.option("--crops", "samples_per_epoch", type=COUNT, default=2000, show_default=True,
              help="Training crops per epoch (scene data, >= 1).")
@click.option("--crop-windows", type=COUNT, default=9, show_default=True,
              help="Windows per crop side at the 8 px feature stride (scene data, >= 1).")
@click.option("--test", "test_paths", multiple=True, type=click.Path(),
              help="Held-out scenes or chip folders (e.g. unseen seeds) to report test metrics on.")
@workers_opt
@click.option("--init", "init", type=click.Path(), default=None,
              help="Start from this bundle's weights (fine-tuning); its architecture replaces --arch.")
@click.option("--name", default=None, help="Bundle name (default: the folder name).")
@click.option("--balance-by", default=None, metavar="COLUMN",
              help="Scene data: draw crossing-centred crops from each value of this truth attribute "
                   "(e.g. road_kind) in proportion to the square root of its count, not its count.")
@click.option("--keep", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="Weights to save: the epoch of highest validation chip AP, or the last epoch (the end of the "
                   "cosine schedule).")
@click.option("--box-band", type=click.Choice(["positive", "near"]), default="positive", show_default=True,
              help="Windows whose crossing offset and size are trained: positive ones (crossing within 16 px of "
                   "the centre per axis), or near ones (within 32 px: also the band where the score is not "
                   "trained, whose windows detection still merges).")
@click.option("--train-only", type=click.Choice(["box"]), default=None,
              help="Train only these weights of the --init bundle: box (the box layer; every other weight, and "
                   "so every score, stays as it was).")
@click.option("--max-seconds", type=POSITIVE, default=None,
              help="Time budget: stop after the last epoch expected to end within it.")
@device_opt
@seed_opt
@overwrite_opt
@quiet_opt
def train(data, output, arch, epochs, batch_size, lr, momentum, weight_decay, val_fraction, context_px,
          samples_per_epoch, crop_windows, test_paths, workers, init, name, balance_by, keep, box_band, train_only,
          max_seconds, device, seed, overwrite, quiet):
    """Train on DATA (scene folders from `geodrain synth`, or VOC chip folders) and write a bundle."""
    from ..model.arch import resolve_arch
    from ..training import TrainConfig, train as run_training

    if train_only is not None and init is None:
        raise click.UsageError(f"--train-only {train_only} needs --init (the bundle whose other weights are kept)")
    if init is not None:
        from ..model.bundle import load_bundle

        arch = load_bundle(init).arch
    config = TrainConfig(arch=resolve_arch(arch), init=init, context_px=context_px, epochs=epochs, batch_size=batch_size,
                         lr=lr, momentum=momentum, weight_decay=weight_decay, val_fraction=val_fraction,
                         samples_per_epoch=samples_per_epoch, crop_windows=crop_windows, workers=workers,
                         device=device, seed=seed, balance_by=balance_by, keep=keep, max_seconds=max_seconds,
                         box_band=box_band, train_only=train_only)
    log = None if quiet else (lambda m: click.echo(m, err=True))
    result = run_training(list(data), config, output, test_paths=list(test_paths), name=name,
                          overwrite=overwrite, progress=not quiet, log=log)
    if not quiet:
        keys = ("accuracy", "ap", "box_ap50", "f1")
        click.echo(f"{output}: {config.arch.notation}, threshold {result.threshold:.3f}, "
                   f"{result.seconds:.0f} s")
        click.echo("validation " + json.dumps({k: round(result.val[k], 4) for k in keys}))
        if result.test is not None:
            click.echo("test       " + json.dumps({k: round(result.test[k], 4) for k in keys}))
