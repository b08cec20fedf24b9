"""The ``geodrain`` command: a click group of thin commands over the library (one module each).

User errors (:class:`geodrain.errors.GeodrainError`) become one line on stderr and a non-zero exit; so do
usage errors (a bad option value, an unknown command), with click's exit status 2. The library says what is
wrong; this layer adds how to change it with the command's options (``--overwrite`` for an existing output).

Command modules import only click at import time and their library modules inside the command, so
``geodrain --help`` and ``--version`` stay fast and a command loads only what it uses.
"""

from __future__ import annotations

import click

from .. import __version__
from ..errors import GeodrainError, OutputExistsError


class GeodrainGroup(click.Group):
    """A group that reports library user errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GeodrainError as e:
            msg = " ".join(str(e).split()) or type(e).__name__
            click.echo(f"geodrain: error: {msg}{_hint(e, ctx)}", err=True)
            ctx.exit(e.exit_code)
        except click.UsageError as e:
            msg = " ".join(e.format_message().split())
            where = e.ctx.command_path if e.ctx is not None else ctx.command_path
            click.echo(f"geodrain: error: {msg} (see {where} --help)", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("geodrain: interrupted", err=True)
            ctx.exit(130)


def _hint(e: GeodrainError, ctx: click.Context) -> str:
    """How to resolve a user error with the options of the command that raised it."""
    command = cli.commands.get(ctx.invoked_subcommand or "")
    options = {p.name for p in command.params} if command is not None else set()
    if isinstance(e, OutputExistsError) and "overwrite" in options:
        return " (use --overwrite to replace it)"
    return ""


@click.group(cls=GeodrainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geodrain")
def cli() -> None:
    """Find drainage crossings (culverts, bridges) in NAIP orthophotos and write them for QGIS."""


def _register() -> None:
    from importlib import import_module

    for name in COMMANDS:
        cli.add_command(getattr(import_module(f".{name}", __name__), name))


COMMANDS = ("synth", "chips", "train", "calibrate", "mine", "detect", "evaluate", "show", "nas", "schedule", "profile")
_register()
