"""One exception hierarchy for everything a user can get wrong.

Every error a user can cause (a bad file, wrong bands, an existing output, a broken model bundle ...) is a
:class:`GeodrainError`. The CLI turns these into a one-line message and a non-zero exit; anything else is a
bug and keeps its traceback. Members also subclass the builtin they refine, as rasterio's errors do, so
``except FileExistsError`` still works for callers of the library.
"""

from __future__ import annotations


class GeodrainError(Exception):
    """Base class of user-facing errors: the message is one line that names the problem."""

    exit_code = 1


class RasterError(GeodrainError, ValueError):
    """An input raster cannot be used (missing, corrupt, too few bands, no CRS, too small ...)."""


class VectorError(GeodrainError, ValueError):
    """An input vector file (truth, AOI, predictions) cannot be used."""


class BundleError(GeodrainError, ValueError):
    """A model bundle is missing, unreadable, corrupt or does not match the input."""


class OutputError(GeodrainError, OSError):
    """An output cannot be written (folder missing or not writable, unsupported format)."""


class OutputExistsError(OutputError, FileExistsError):
    """The output exists and ``overwrite`` was not given."""


class DatasetError(GeodrainError, ValueError):
    """A chip dataset folder is empty or malformed."""


class ArchitectureError(GeodrainError, ValueError):
    """An architecture name or notation is not in the search space."""


class SearchError(GeodrainError, RuntimeError):
    """An architecture search found no feasible architecture or cannot continue."""


class DeviceError(GeodrainError, RuntimeError):
    """The requested device or engine is not available here."""


class DependencyError(GeodrainError, ImportError):
    """An optional dependency (a package extra) that this use needs is not installed."""


def import_optional(module: str, extra: str, purpose: str):
    """Import ``module``, or say in one line which extra of the package provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DependencyError(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                              f"pip install 'geodrain[{extra}]'") from None
