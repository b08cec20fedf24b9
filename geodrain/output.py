"""Outputs of every command: checked before any work, published atomically, with normal permissions.

:func:`check_output` and :func:`check_output_folder` run before the work, so that a bad output path fails in a
second, not after an hour. :func:`atomic_file` and :func:`atomic_folder` give the writer a hidden temporary
name beside the destination and rename it into place only when it is complete, so an interrupted run never
leaves an output that looks complete; on failure the temporary is removed. The temporary is created as any
file or folder is (``open``, ``mkdir``, or the writing library itself), so the process's umask applies; a
replaced file keeps the permissions it had, as after an ordinary overwrite.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import OutputError, OutputExistsError


def check_output(path: str | Path, overwrite: bool = False, formats: Iterable[str] | None = None) -> Path:
    """Refuse an unsupported extension (when ``formats`` lists the allowed ones), a missing or unwritable
    folder, an existing file (unless ``overwrite``) or a folder in the file's place."""
    path = Path(path)
    if formats is not None and path.suffix.lower() not in set(formats):
        raise OutputError(f"unsupported output format '{path.suffix}' for {path}: use "
                          + ", ".join(sorted(set(formats))))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not writable(parent):
        raise OutputError(f"output folder is not writable: {parent}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {path}")
    if path.is_dir():
        raise OutputError(f"output is a folder: {path}")
    return path


def check_output_folder(dest: str | Path, overwrite: bool = False) -> Path:
    """For outputs that are folders (bundles, chip sets, reports): refuse an existing one unless
    ``overwrite``, a file in its place, and a missing or unwritable parent."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise OutputError(f"output is a file, not a folder: {dest}")
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {dest}")
    parent = dest.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not writable(parent):
        raise OutputError(f"output folder is not writable: {parent}")
    return dest


def writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried for real: permission bits do not stop root,
    read-only file systems do)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".geodrain-probe-"):
            return True
    except OSError:
        return False


def temporary_sibling(path: Path, suffix: str | None = None) -> Path:
    """A hidden, unused name beside ``path`` ending like it (writers choose the format by extension)."""
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{suffix}")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """``with atomic_file(dest) as tmp:`` write ``tmp`` (any writer, same extension as ``dest``); on success
    it replaces ``dest`` (keeping a replaced file's permissions), on failure it is removed. A failure of the
    file system becomes an :class:`~geodrain.errors.OutputError`."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written to {path}")
        _keep_mode(path, tmp)
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        if isinstance(e, OutputError):
            raise
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        raise


@contextmanager
def atomic_folder(dest: str | Path) -> Iterator[Path]:
    """``with atomic_folder(dest) as tmp:`` fill the new folder ``tmp``; on success it takes the place of
    ``dest`` (an existing ``dest`` is replaced only once the new one is complete), on failure it is removed."""
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.mkdir()      # mode 0o777 less the umask, like any new folder
        yield tmp
        publish_folder(tmp, dest)
    except BaseException:
        _remove(tmp)
        raise


def publish_folder(tmp: Path, dest: Path) -> None:
    """Rename the complete folder ``tmp`` to ``dest``, replacing an existing ``dest`` (file or folder)."""
    old = None
    if dest.exists() or dest.is_symlink():
        old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.old")
        os.rename(dest, old)
    os.rename(tmp, dest)
    if old is not None:
        _remove(old)


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (UTF-8)."""
    path = Path(path)
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: str | Path, obj: Any, **dumps: Any) -> Path:
    """Write ``obj`` as indented JSON (one trailing newline) atomically; ``dumps`` go to :func:`json.dumps`."""
    return write_text(path, json.dumps(obj, **{"indent": 2, **dumps}) + "\n")


def _keep_mode(dest: Path, tmp: Path) -> None:
    try:
        mode = stat.S_IMODE(os.stat(dest).st_mode)
    except FileNotFoundError:
        return
    os.chmod(tmp, mode)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
