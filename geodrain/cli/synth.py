"""``geodrain synth``: generate a synthetic NAIP-like watershed with drainage-crossing truth."""

from __future__ import annotations

import click

from .options import overwrite_opt, quiet_opt, seed_opt


@click.command(short_help="Generate a synthetic NAIP-like scene with crossing truth.")
@click.argument("outdir", type=click.Path(file_okay=False))
@seed_opt
@click.option("--size", type=click.IntRange(512, 16384), default=4096, show_default=True,
              help="Scene side in pixels (1 m each).")
@overwrite_opt
@quiet_opt
def synth(outdir: str, seed: int, size: int, overwrite: bool, quiet: bool) -> None:
    """Write a synthetic 4-band 1 m orthophoto (naip.tif), its DEM with road embankments (dem.tif), the
    crossings and hard negatives (truth.gpkg), roads, streams and scene.json into OUTDIR.

    The same --seed and --size always give the same scene.
    """
    from ..synth import generate_scene

    bars: list = []

    def progress(done: int, total: int) -> None:
        if quiet:
            return
        if not bars:
            from tqdm import tqdm

            bars.append(tqdm(total=total, unit="tile", desc="synth", leave=False))
        bars[0].update(done - bars[0].n)

    try:
        res = generate_scene(outdir, seed=seed, size=size, overwrite=overwrite, progress=progress)
    finally:
        for b in bars:
            b.close()
    if not quiet:
        click.echo(f"{res.outdir}: {_n(res.crossings, 'crossing')} ({_n(res.culverts, 'culvert')}, "
                   f"{_n(res.bridges, 'bridge')}), {_n(res.roads, 'road')}, {_n(res.streams, 'stream')}, "
                   f"{_n(res.hard_negatives, 'hard negative')} in {res.seconds:.1f} s")


def _n(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")
