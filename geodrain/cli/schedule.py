"""``geodrain schedule``: IOS inter-operator scheduling of a bundle's model, engine timing, manifest record."""

from __future__ import annotations

import click

from .options import device_opt, model_opt, overwrite_opt, parse_int_list, quiet_opt


def pick_bundle(bundle: str | None, model: str | None) -> str | None:
    """The BUNDLE argument or ``--model`` (the deployed bundle when neither is given)."""
    if bundle and model and bundle != model:
        raise click.UsageError("give the bundle either as BUNDLE or with --model, not both")
    return bundle or model


@click.command(name="schedule")
@click.argument("bundle", required=False, type=click.Path())
@model_opt
@device_opt
@click.option("--batch-sizes", default=None, metavar="N,N,...",
              help="Batch sizes to schedule (default: 1, 2, 4 ... to 64, then doubling while throughput rises).")
@click.option("--max-batch", type=click.IntRange(1), default=1024, show_default=True,
              help="Cap of the automatic batch sweep.")
@click.option("--cost", type=click.Choice(["auto", "cuda-graph", "cpu", "analytic"]), default="auto",
              show_default=True, help="Stage cost model: measured in CUDA graphs, measured on the CPU, or FLOP-based.")
@click.option("-r", "--group-size", type=click.IntRange(1, 16), default=3, show_default=True,
              help="IOS r: most operators in one group.")
@click.option("-s", "--max-groups", type=click.IntRange(1, 16), default=8, show_default=True,
              help="IOS s: most concurrent groups (streams) in one stage.")
@click.option("--repeats", type=click.IntRange(1, 100), default=5, show_default=True,
              help="Timed samples per measurement (median).")
@click.option("--engines/--no-engines", default=True, show_default=True,
              help="Also time the engines (fp32, fp16/bf16 channels-last, CUDA graph, ONNX Runtime).")
@click.option("--engine-batch", type=click.IntRange(1), default=None,
              help="Batch size for the engine timing (default: the sweep's fastest).")
@click.option("--record/--no-record", default=False, show_default=True,
              help="Record the fastest engine and the schedule in the bundle's manifest (rewrites its "
                   "manifest.json; never done unless asked).")
@click.option("-o", "--output", "out_dir", type=click.Path(), default=None,
              help="Report folder (JSON, Markdown, CSV).")
@overwrite_opt
@quiet_opt
def schedule(bundle, model, device, batch_sizes, max_batch, cost, group_size, max_groups, repeats, engines,
             engine_batch, record, out_dir, overwrite, quiet) -> None:
    """Find the fastest IOS schedule of a bundle's model per batch size (Ding et al. 2021).

    Traces the model into blocks, runs the IOS dynamic programme with stage latencies measured in CUDA
    graphs (or on the CPU, or from a FLOP model without CUDA), compares sequential and optimized latency,
    times the engines and records the fastest configuration under the device's entry of the manifest.
    """
    from ..schedule import ScheduleOptions, schedule_bundle

    sizes = parse_int_list(batch_sizes, "--batch-sizes")
    options = ScheduleOptions(max_group=group_size, max_groups=max_groups, cost=cost, repeats=repeats)
    report = schedule_bundle(pick_bundle(bundle, model), device=device, batch_sizes=sizes, max_batch=max_batch,
                             options=options, engines=engines, engine_batch=engine_batch, record=record,
                             out_dir=out_dir, overwrite=overwrite, progress=not quiet)
    if not quiet:
        click.echo(report.summary())
        if out_dir:
            click.echo(f"report: {out_dir}")
