"""Run state: the work folder that makes a long run resumable.

A run keeps, in its work folder (``--work-dir``; by default ``<output>.work`` beside the output):

* ``manifest.json``: what the run is: its inputs (path, size and modification time of local files, and the
  raster's shape and georeferencing), the model bundle's id, the detection settings, the digest of its task
  plan and the run's creation time (written into the output, so that a resumed run writes the same bytes);
* ``tasks/<key>.parquet``: one GeoParquet file per finished task: its window candidates (points in the
  task's CRS group, score, box size, window centre), written to a temporary name, flushed to disk and renamed,
  so a file that exists is complete whatever happens to the process or the machine;
* ``log.jsonl``: one line per start and end of the run (how many tasks were reused and computed);
* ``lock``: locked while a run uses the folder, so that two runs never share it (the lock dies with the
  process, so a killed run leaves no stale lock).

Starting a run whose work folder exists is refused unless ``resume`` (skip the finished tasks; the folder must
belong to the same run: same inputs, model, settings and plan, else a one-line refusal that says what
changed) or ``restart`` (discard it). After the output is written the folder is removed, unless the run keeps
it (``--keep-work``), which lets ``--resume --overwrite`` rewrite the output without computing anything.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import __version__
from .errors import GeodrainError, OutputError
from .merge import Candidates
from .output import fsync_path, space_problem
from .tasks import TaskOutput

FORMAT = "geodrain-run/1"
MANIFEST = "manifest.json"
TASKS = "tasks"
LOG = "log.jsonl"
LOCK = "lock"


class RunStateError(GeodrainError):
    """A work folder cannot be used (another run's, in use, changed inputs or settings ...)."""


def default_work_dir(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".work")


def creation_time() -> str:
    """Now in UTC (ISO 8601, seconds), or ``SOURCE_DATE_EPOCH`` when set (reproducible outputs)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            t = datetime.fromtimestamp(int(epoch), timezone.utc)
        except (ValueError, OverflowError, OSError):
            raise RunStateError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix time in seconds") from None
    else:
        t = datetime.now(timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def input_record(path: str, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """How an input is recognised on resume: size and modification time (local files) and ``info``."""
    rec: dict[str, Any] = {"path": path}
    if not path.startswith("/vsi"):
        try:
            st = os.stat(path)
            rec.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
        except OSError:
            rec.update(size=None, mtime_ns=None)
    if info:
        rec.update(info)
    return rec


def write_durable(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably: temporary name, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as e:
        why = space_problem(tmp, e) or e.strerror or str(e)
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {why}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def describe_change(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """What differs between two manifests, in a few words (None: the same run)."""
    if old.get("format") != new.get("format"):
        return f"it was written in another format ({old.get('format')})"
    if old.get("geodrain_version") != new.get("geodrain_version"):
        return f"it was made by geodrain {old.get('geodrain_version')}, this is {new.get('geodrain_version')}"
    if old.get("model_id") != new.get("model_id"):
        return f"the model changed ({old.get('model_id')} -> {new.get('model_id')})"
    oi, ni = old.get("inputs", []), new.get("inputs", [])
    opaths, npaths = [r["path"] for r in oi], [r["path"] for r in ni]
    if opaths != npaths:
        added = [p for p in npaths if p not in opaths]
        gone = [p for p in opaths if p not in npaths]
        if added:
            return f"input {added[0]} was added" + (f" (and {len(added) - 1} more)" if len(added) > 1 else "")
        if gone:
            return f"input {gone[0]} was removed" + (f" (and {len(gone) - 1} more)" if len(gone) > 1 else "")
        return "the inputs are in another order"
    for o, n in zip(oi, ni):
        if o != n:
            what = "size or modification time" if (o.get("size"), o.get("mtime_ns")) != \
                (n.get("size"), n.get("mtime_ns")) else "georeferencing or bands"
            return f"input {n['path']} changed ({what})"
    os_, ns = old.get("settings", {}), new.get("settings", {})
    for k in sorted(set(os_) | set(ns)):
        if os_.get(k) != ns.get(k):
            return f"setting {k} changed ({os_.get(k)!r} -> {ns.get(k)!r})"
    if old.get("plan") != new.get("plan") or old.get("tasks") != new.get("tasks"):
        return "its task plan differs"
    return None


class WorkDir:
    """A run's work folder (see the module docstring). Use :meth:`open`."""

    def __init__(self, path: Path, manifest: dict[str, Any], lock_fd: int, run_id: str, created: bool):
        self.path = path
        self.manifest = manifest
        self._lock_fd = lock_fd
        self.run_id = run_id
        self.created = created          # the folder did not exist before this run

    # -- opening ---------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, manifest: dict[str, Any], *, resume: bool = False,
             restart: bool = False) -> "WorkDir":
        """Create the work folder for ``manifest``, or reuse an existing one (``resume``) or discard it
        (``restart``). ``manifest`` holds everything but ``format``, ``geodrain_version`` and ``created_utc``."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunStateError(f"work folder {path} exists and is not a folder")
        created = not path.exists()
        if created:
            if not path.parent.is_dir():
                raise RunStateError(f"cannot create the work folder {path}: {path.parent} does not exist")
            try:
                path.mkdir()
            except OSError as e:
                raise RunStateError(f"cannot create the work folder {path}: {e.strerror or e}") from None
        elif any(path.iterdir()) and not (path / MANIFEST).is_file():
            raise RunStateError(f"{path} exists and is not a geodrain work folder; choose another --work-dir")
        lock_fd = cls._lock(path)
        try:
            new = {"format": FORMAT, "geodrain_version": __version__, **manifest}
            old = cls._read_manifest(path)
            if old is not None:
                if restart:
                    cls._clear(path)
                    old = None
                elif not resume:
                    done = len(list((path / TASKS).glob("*.parquet"))) if (path / TASKS).is_dir() else 0
                    raise RunStateError(f"work folder {path} holds an unfinished run ({done} of "
                                        f"{old.get('tasks', '?')} tasks done); continue it with --resume or "
                                        "discard it with --restart")
                else:
                    change = describe_change(old, new)
                    if change is not None:
                        raise RunStateError(f"cannot resume from {path}: {change}; use --restart to discard "
                                            "its work (or another --work-dir)")
            if old is None:
                new["created_utc"] = creation_time()
                (path / TASKS).mkdir(exist_ok=True)
                write_durable(path / MANIFEST, (json.dumps(new, indent=1) + "\n").encode())
                manifest_now = new
            else:
                manifest_now = old
            for tmp in list(path.glob(".*.tmp")) + list((path / TASKS).glob(".*.tmp")):
                tmp.unlink(missing_ok=True)   # left by a run killed while writing
            return cls(path, manifest_now, lock_fd, uuid.uuid4().hex[:12], created)
        except BaseException:
            os.close(lock_fd)
            raise

    @staticmethod
    def peek(path: str | Path | None) -> dict[str, Any] | None:
        """The manifest of the run in ``path`` (without taking the folder), None if there is none."""
        if path is None or not (Path(path) / MANIFEST).is_file():
            return None
        try:
            return json.loads((Path(path) / MANIFEST).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None

    @staticmethod
    def _lock(path: Path) -> int:
        try:
            fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunStateError(f"cannot use the work folder {path}: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunStateError(f"work folder {path} is in use by another geodrain run") from None
        return fd

    @staticmethod
    def _read_manifest(path: Path) -> dict[str, Any] | None:
        p = path / MANIFEST
        if not p.is_file():
            return None
        try:
            return json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise RunStateError(f"the manifest of work folder {path} is unreadable; use --restart") from None

    @staticmethod
    def _clear(path: Path) -> None:
        shutil.rmtree(path / TASKS, ignore_errors=True)
        for name in (MANIFEST, LOG):
            (path / name).unlink(missing_ok=True)

    # -- tasks -----------------------------------------------------------------------------------------
    @property
    def created_utc(self) -> str:
        return self.manifest["created_utc"]

    def task_path(self, key: str) -> Path:
        return self.path / TASKS / f"{key}.parquet"

    def finished(self, keys: Iterable[str]) -> set[str]:
        """The keys among ``keys`` whose result is in the folder."""
        return {k for k in keys if self.task_path(k).is_file()}

    def save(self, out: TaskOutput, crs) -> Path:
        """Write one task's result (atomic and durable)."""
        path = self.task_path(out.key)
        write_durable(path, task_bytes(out, crs, self.run_id))
        return path

    def load(self, key: str) -> TaskOutput:
        return read_task(self.task_path(key))

    def log(self, **event: Any) -> None:
        event = {"time_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "run": self.run_id, **event}
        try:
            with open(self.path / LOG, "a") as f:
                f.write(json.dumps(event) + "\n")
        except OSError:
            pass   # the log is informative only

    # -- closing ---------------------------------------------------------------------------------------
    def close(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def remove(self) -> None:
        """Delete the run's files (and the folder, if nothing else is in it)."""
        shutil.rmtree(self.path / TASKS, ignore_errors=True)
        for name in (MANIFEST, LOG, LOCK):
            (self.path / name).unlink(missing_ok=True)
        self.close()
        try:
            self.path.rmdir()
        except OSError:
            pass

    def __enter__(self) -> "WorkDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------------
# task results as GeoParquet
# --------------------------------------------------------------------------------------------------------
def task_bytes(out: TaskOutput, crs, run_id: str = "") -> bytes:
    """A task's candidates as GeoParquet bytes (points in ``crs``), its counts and provenance as metadata."""
    import geopandas as gpd
    import pyarrow.parquet as pq

    c = out.candidates
    xy = np.asarray(c.xy, np.float64).reshape(-1, 2)
    centre = np.asarray(c.centre, np.float64).reshape(-1, 2)
    size = np.asarray(c.size, np.float32).reshape(-1, 2)
    gdf = gpd.GeoDataFrame({"score": np.asarray(c.score, np.float32), "width_m": size[:, 0],
                            "height_m": size[:, 1], "centre_x": centre[:, 0], "centre_y": centre[:, 1]},
                           geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=crs)
    buf = io.BytesIO()
    gdf.to_parquet(buf, index=False)
    table = pq.read_table(io.BytesIO(buf.getvalue()))
    meta = dict(table.schema.metadata or {})
    meta[b"geodrain_task"] = json.dumps({"key": out.key, "windows": out.windows, "evaluated": out.evaluated,
                                         "crossings": out.crossings, "seconds": round(out.seconds, 3),
                                         "floor": float(out.candidates.floor),
                                         "run": run_id, "info": out.info}).encode()
    result = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), result)
    return result.getvalue()


def read_task(path: Path) -> TaskOutput:
    import pyarrow.parquet as pq
    import shapely

    try:
        table = pq.read_table(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for damaged files
        raise RunStateError(f"task result {path} is unreadable ({str(e).splitlines()[0][:120]}); "
                            "use --restart") from None
    meta = json.loads((table.schema.metadata or {}).get(b"geodrain_task", b"{}"))
    geom = shapely.from_wkb(table.column("geometry").to_numpy(zero_copy_only=False))
    xy = shapely.get_coordinates(geom).reshape(-1, 2) if len(geom) else np.zeros((0, 2))
    cand = Candidates(xy, table.column("score").to_numpy().astype(np.float32),
                      np.column_stack([table.column("width_m").to_numpy(), table.column("height_m").to_numpy()])
                      .astype(np.float32).reshape(-1, 2),
                      np.column_stack([table.column("centre_x").to_numpy(), table.column("centre_y").to_numpy()])
                      .reshape(-1, 2), float(meta.get("floor", 0.0)))
    out = TaskOutput(meta.get("key", path.stem), cand, int(meta.get("windows", 0)), int(meta.get("evaluated", 0)),
                     int(meta.get("crossings", 0)), float(meta.get("seconds", 0.0)), dict(meta.get("info", {})))
    out.info.setdefault("run", meta.get("run", ""))
    return out

