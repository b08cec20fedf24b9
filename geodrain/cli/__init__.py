"""The ``geodrain`` command: a click group of thin commands over the library (one module each).

User errors (:class:`geodrain.errors.GeodrainError`) become one line on stderr and a non-zero exit; so do
usage errors (a bad option value, an unknown command), with click's exit status 2. The library says what is
wrong; this layer adds how to change it with the command's options (``--overwrite`` for an existing output).
Warnings of the library (:class:`geodrain.errors.GeodrainWarning`) are one line ``geodrain: warning: ...``
each; SIGTERM ends a run as Ctrl-C does.

Command modules import only click at import time and their library modules inside the command, so
``geodrain --help`` and ``--version`` stay fast and a command loads only what it uses.
"""

from __future__ import annotations

import signal
import threading
import warnings

import click

from .. import __version__
from ..errors import GeodrainError, GeodrainWarning, OutputExistsError


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """GeodrainWarnings as one line ``geodrain: warning: ...``; anything else as Python shows it."""
    if issubclass(category, GeodrainWarning):
        click.echo(f"geodrain: warning: {' '.join(str(message).split())}", err=True)
    else:
        _default(message, category, filename, lineno, file, line)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, ``kill``, a container stopping): handled as Ctrl-C is, so that the same clean-up
    runs (temporaries removed, nothing partial published) and the run ends with one line, exit 143."""


def _terminate(signum, frame):
    raise Terminated()


def _end_progress_bars() -> None:
    """Close progress bars an exception left open, so the message that follows starts on its own line (an
    interrupt can land while a bar is being set up, before the code that closes it runs)."""
    import sys

    tqdm = getattr(sys.modules.get("tqdm"), "tqdm", None)
    for bar in list(getattr(tqdm, "_instances", None) or []):
        # drawn but interrupted before its set-up ended: close() would leave its line open
        half_set_up = getattr(bar, "sp", None) is not None and not hasattr(bar, "last_print_t")
        try:
            bar.close()
            if half_set_up:
                bar.fp.write("\n")
        except Exception:  # noqa: BLE001 - nothing more to show
            pass


class GeodrainGroup(click.Group):
    """A group that reports library user errors as one line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        with warnings.catch_warnings():
            warnings.simplefilter("always", GeodrainWarning)
            warnings.showwarning = _show_warning
            previous = None
            if threading.current_thread() is threading.main_thread():
                previous = signal.signal(signal.SIGTERM, _terminate)
            try:
                return self._invoke(ctx)
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)

    def _invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GeodrainError as e:
            _end_progress_bars()
            msg = " ".join(str(e).split()) or type(e).__name__
            click.echo(f"geodrain: error: {msg}{_hint(e, ctx)}", err=True)
            ctx.exit(e.exit_code)
        except click.UsageError as e:
            msg = " ".join(e.format_message().split())
            where = e.ctx.command_path if e.ctx is not None else ctx.command_path
            click.echo(f"geodrain: error: {msg} (see {where} --help)", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt as e:
            _end_progress_bars()
            why = " (terminated by SIGTERM)" if isinstance(e, Terminated) else ""
            note = getattr(e, "geodrain_note", "")
            click.echo(f"geodrain: interrupted{why}{'; ' + note if note else ''}", err=True)
            ctx.exit(143 if isinstance(e, Terminated) else 130)


def _hint(e: GeodrainError, ctx: click.Context) -> str:
    """How to resolve a user error with the options of the command that raised it."""
    command = cli.commands.get(ctx.invoked_subcommand or "")
    options = {p.name for p in command.params} if command is not None else set()
    if isinstance(e, OutputExistsError) and "overwrite" in options:
        return " (use --overwrite to replace it)"
    hints = [text for name, text in getattr(e, "cli_hint", {}).items() if name in options]
    return f" ({'; '.join(hints)})" if hints else ""


@click.group(cls=GeodrainGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geodrain")
def cli() -> None:
    """Find drainage crossings (culverts, bridges) in NAIP orthophotos and write them for QGIS."""


def _register() -> None:
    from importlib import import_module

    for name in COMMANDS:
        cli.add_command(getattr(import_module(f".{name}", __name__), name))


COMMANDS = ("synth", "chips", "train", "calibrate", "mine", "detect", "condition", "passrate", "evaluate", "show", "nas",
            "schedule", "profile")
_register()
