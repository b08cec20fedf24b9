"""``python -m geodrain.cli``: the same as the ``geodrain`` command."""

from . import cli

cli()
