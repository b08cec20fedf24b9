"""``geodrain profile``: torch.profiler over batch sizes; records the best batch size in the bundle."""

from __future__ import annotations

import click

from .options import POSITIVE, PROBABILITY, device_opt, model_opt, overwrite_opt, parse_int_list, quiet_opt
from .schedule import pick_bundle


@click.command(name="profile")
@click.argument("bundle", required=False, type=click.Path())
@model_opt
@device_opt
@click.option("--batch-sizes", default="1,2,4,8,16,32,64", show_default=True, metavar="N,N,...",
              help="Batch sizes to profile.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None,
              help="Override the engine's precision (default: the tuned engine's, else fp16 on CUDA, fp32 on CPU).")
@click.option("--channels-last/--no-channels-last", default=None, help="Override the memory format.")
@click.option("--cuda-graph/--no-cuda-graph", default=None, help="Override CUDA-graph replay.")
@click.option("--memory-cap-gb", type=POSITIVE, default=None,
              help="Largest peak memory a chosen batch size may need (default: 80 % of the device's memory).")
@click.option("--tolerance", type=PROBABILITY, default=0.05, show_default=True,
              help="Pick the smallest batch within this fraction of the best throughput.")
@click.option("--iters", type=click.IntRange(1), default=20, show_default=True, help="Timed calls per batch size.")
@click.option("--profile-iters", type=click.IntRange(1), default=10, show_default=True,
              help="Profiled calls per batch size.")
@click.option("--record/--no-record", default=False, show_default=True,
              help="Record the chosen batch size in the bundle's manifest (rewrites its manifest.json; never "
                   "done unless asked).")
@click.option("--plots/--no-plots", default=True, show_default=True, help="Write PNG plots.")
@click.option("-o", "--output", "out_dir", type=click.Path(), default=None,
              help="Report folder (JSON, CSV, Markdown, PNG).")
@overwrite_opt
@quiet_opt
def profile(bundle, model, device, batch_sizes, precision, channels_last, cuda_graph, memory_cap_gb, tolerance,
            iters, profile_iters, record, plots, out_dir, overwrite, quiet) -> None:
    """Profile inference per batch size and pick the batch size (Zhang et al. 2023, §7).

    Reports GPU kernel time by class (convolution, matrix multiplication, pooling, other), CUDA API time by
    call (launches, synchronizations, library loads, graph launches), peak device memory, per-chip latency
    and throughput; on a CPU-only machine, CPU operator times instead. The smallest batch size within
    --tolerance of the best throughput under the memory cap is recorded for `geodrain detect`.
    """
    from ..profiling import profile_bundle

    sizes = parse_int_list(batch_sizes, "--batch-sizes")
    report = profile_bundle(pick_bundle(bundle, model), sizes, device=device, precision=precision,
                            channels_last=channels_last, cuda_graph=cuda_graph, memory_cap_gb=memory_cap_gb,
                            tolerance=tolerance, iters=iters, profile_iters=profile_iters, record=record,
                            out_dir=out_dir, overwrite=overwrite, plots=plots, progress=not quiet)
    if not quiet:
        click.echo(report.summary())
        if out_dir:
            click.echo(f"report: {out_dir}")
