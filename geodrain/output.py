"""Outputs of every command: checked before any work, published atomically, with normal permissions.

:func:`check_output` and :func:`check_output_folder` run before the work, so that a bad output path fails in a
second, not after an hour. :func:`atomic_file` and :func:`atomic_folder` give the writer a hidden temporary
name beside the destination and rename it into place only when it is complete (flushed to disk first), so an
interrupted run never leaves an output that looks complete; on failure the temporary is removed. The temporary
is created as any file or folder is (``open``, ``mkdir``, or the writing library itself), so the process's
umask applies; a replaced file keeps the permissions it had, as after an ordinary overwrite.

Publishing is exclusive unless replacing was asked for (``exclusive=True``): the temporary is hard-linked to
the destination name, which fails if the name exists, so of two runs writing the same output at once the
second fails with "output exists" instead of silently replacing the first one's. A temporary carries the
host and process that made it; one whose process is gone (a run killed with SIGKILL) is removed by the next
check or write of the same output. A full disk (or a file size limit) is said as such.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
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
    if path.is_dir():
        raise OutputError(f"output is a folder: {path}")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"output exists: {path}")
    remove_stale_temporaries(path)
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
    remove_stale_temporaries(dest)
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


_HOST = "".join(c if c.isalnum() else "-" for c in socket.gethostname())[:32] or "host"


def temporary_sibling(path: Path, suffix: str | None = None, pid: int | None = None) -> Path:
    """A hidden, unused name beside ``path`` ending like it (writers choose the format by extension), naming
    the host and process that writes it: ``.<stem>.<host>-<pid>-<random>.tmp<suffix>``."""
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    pid = os.getpid() if pid is None else pid
    return path.with_name(f".{path.stem}.{_HOST}-{pid}-{uuid.uuid4().hex[:8]}.tmp{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:       # someone else's process
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries of ``path`` (files or folders, and the journals a writer keeps beside them) that
    a process of this host left when it died; a running process's are kept. Returns what was removed."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    removed = []
    for prefix in {f".{path.stem}.{_HOST}-", f".{path.name}.{_HOST}-"}:   # files: stem; folders: name
        try:
            candidates = list(parent.glob(f"{prefix}*-*.tmp*"))
        except OSError:
            continue
        for tmp in candidates:
            pid = tmp.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)) and tmp.exists():
                _remove(tmp)
                removed.append(tmp)
    return removed


def space_problem(path: Path, error: BaseException | None = None) -> str | None:
    """'disk full (...)' when writing ``path`` failed for want of space: no space left on its file system,
    a disk quota, or the process's file size limit (``ulimit -f``) reached; None otherwise."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"disk full ({error.strerror})"
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        sizes = [p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file()]
        if sizes and max(sizes) >= limit - 65536:
            return f"disk full (the file size limit of {limit / 1024:g} KiB was reached)"
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return None
    if free < 16 << 20:
        return f"disk full ({free / 2 ** 20:.1f} MiB free in {path.parent})"
    return None


@contextmanager
def atomic_file(path: str | Path, *, exclusive: bool = False) -> Iterator[Path]:
    """``with atomic_file(dest) as tmp:`` write ``tmp`` (any writer, same extension as ``dest``); on success
    it is flushed to disk and takes the name ``dest`` (replacing it, with its permissions, unless
    ``exclusive``: then an existing ``dest``, e.g. one another run published meanwhile, is an
    :class:`~geodrain.errors.OutputExistsError`); on failure it is removed. A failure of the file system
    becomes an :class:`~geodrain.errors.OutputError` ("disk full" when it is one)."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written to {path}")
        fsync_path(tmp)
        if exclusive:
            publish_exclusive(tmp, path)
        else:
            _keep_mode(path, tmp)
            os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as e:
        _remove(tmp)
        _remove_journals(tmp)
        if isinstance(e, OutputError):
            raise
        why = space_problem(tmp, e)
        raise OutputError(f"cannot write {path}: {why or e.strerror or e}") from None
    except BaseException:
        _remove(tmp)
        _remove_journals(tmp)
        raise


def publish_exclusive(tmp: Path, path: Path) -> None:
    """Give the complete file ``tmp`` the name ``path`` only if no file has it (atomically: a hard link fails
    on an existing name); ``tmp`` goes. Where hard links are not supported, the name is reserved with an
    exclusive create first."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExistsError(f"output exists: {path} (written by another run meanwhile)") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            raise OutputExistsError(f"output exists: {path} (written by another run meanwhile)") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk; not every file system allows it on folders."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise
    finally:
        os.close(fd)


def _remove_journals(tmp: Path) -> None:
    for j in tmp.parent.glob(tmp.name + "-*"):       # SQLite's -journal / -wal / -shm beside a GeoPackage
        _remove(j)


@contextmanager
def atomic_folder(dest: str | Path) -> Iterator[Path]:
    """``with atomic_folder(dest) as tmp:`` fill the new folder ``tmp``; on success it takes the place of
    ``dest`` (an existing ``dest`` is replaced only once the new one is complete), on failure it is removed."""
    dest = Path(dest)
    remove_stale_temporaries(dest)
    tmp = dest.with_name(f".{dest.name}.{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
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
