"""Scale-out on Dask distributed: tasks run on a LocalCluster of processes or on an existing cluster.

* :func:`open_cluster`: ``workers=N`` starts a :class:`distributed.LocalCluster` of ``N`` worker processes
  with one task slot each; ``scheduler="tcp://host:8786"`` (or a scheduler JSON file) connects to a running
  cluster instead (``dask scheduler`` / ``dask worker``, dask-jobqueue, dask-kubernetes …).
* :class:`GeodrainWorker`, a worker plugin registered on every worker (also on workers that join or restart
  later): it gives torch and GDAL the worker's core budget (``torch.set_num_threads``,
  ``GDAL_NUM_THREADS``), so N workers on one machine do not oversubscribe its cores, picks the worker's GPU
  when a machine has several, and loads the model once (:func:`geodrain.tasks.runtime`, a per-process cache
  that every task on that worker reuses).
* :func:`run_on_cluster` submits one Dask task per :class:`~geodrain.tasks.TaskSpec` (``retries``: a task
  whose worker dies or that fails is run again elsewhere) and yields the outputs as they complete. The
  scheduler queues tasks and hands them to free workers; nothing here is a task queue of its own.

A worker's core budget is its ``nthreads`` (``dask worker --nthreads``) unless ``threads`` is given; geodrain
runs one task at a time per worker process with that many torch and GDAL threads (tasks beyond the first
wait for it). Workers must be able to read the inputs and the model bundle at the paths the driver uses (a
shared file system, or GDAL virtual file system URLs for the inputs). A worker with CUDA runs the model on its
GPU (``--device auto``) with the GPU defaults (precision, batch size) resolved there.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import GeodrainError
from .tasks import RunSpec, TaskOutput, TaskSpec, run_one, runtime


class DistributedError(GeodrainError, RuntimeError):
    """The Dask cluster cannot be reached or a task failed on every worker that tried it."""


def execute(spec: TaskSpec, run: RunSpec) -> TaskOutput:
    """What a worker runs for one task."""
    name = ""
    try:
        from distributed import get_worker

        name = str(get_worker().name)
    except (ImportError, ValueError):
        pass
    return run_one(spec, run, worker=name)


def set_threads(threads: int) -> None:
    """Give torch and GDAL ``threads`` threads in this process."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    os.environ["GDAL_NUM_THREADS"] = str(max(1, int(threads)))


try:
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover - distributed is a dependency
    _WorkerPlugin = object


class GeodrainWorker(_WorkerPlugin):
    """Worker plugin: threads, GPU choice and the model loaded once per worker (see the module docstring)."""

    name = "geodrain"

    def __init__(self, run: RunSpec, threads: int | None = None):
        self.run = run
        self.threads = threads

    def setup(self, worker) -> None:
        threads = self.threads or worker.state.nthreads
        set_threads(threads)
        try:
            import torch

            n = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if n > 1 and self.run.device in ("auto", "cuda"):
                try:
                    index = int(str(worker.name).rsplit("-", 1)[-1]) % n
                except ValueError:
                    index = abs(hash(str(worker.name))) % n
                torch.cuda.set_device(index)
        except Exception:  # noqa: BLE001 - a worker without a usable GPU runs on its CPU
            pass
        runtime(self.run)          # load and check the model now, once for this worker


def cuda_on_workers(client) -> bool:
    """Whether every worker of the cluster has a CUDA GPU (then the GPU defaults apply to the plan)."""
    def probe() -> bool:
        import torch

        return bool(torch.cuda.is_available())

    answers = client.run(probe)
    return bool(answers) and all(answers.values())


@dataclass
class ClusterInfo:
    client: object
    cluster: object | None           # the LocalCluster we started (None: an existing cluster)
    threads: int | None              # torch/GDAL threads per worker (None: each worker's nthreads)
    workers: int

    @property
    def dashboard(self) -> str | None:
        try:
            return self.client.dashboard_link
        except Exception:  # noqa: BLE001 - no dashboard (bokeh missing, or disabled)
            return None


@contextmanager
def open_cluster(workers: int | None = None, scheduler: str | None = None, threads: int | None = None,
                 dashboard_address: str = ":8787") -> Iterator[ClusterInfo]:
    """A Dask client on a new LocalCluster (``workers``) or on the cluster at ``scheduler``."""
    from distributed import Client, LocalCluster

    cluster = None
    if scheduler:
        try:
            if Path(scheduler).is_file():
                client = Client(scheduler_file=scheduler, timeout="30s")
            else:
                client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError, ValueError) as e:
            raise DistributedError(f"cannot reach the Dask scheduler at {scheduler}: "
                                   f"{str(e).splitlines()[0][:160] if str(e) else type(e).__name__}") from None
        n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    else:
        n = int(workers or 1)
        if n < 1:
            raise DistributedError(f"--workers must be at least 1, got {workers}")
        cores = os.cpu_count() or 1
        threads = threads or max(1, cores // n)
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=dashboard_address, silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        yield ClusterInfo(client, cluster, threads, n)
    finally:
        try:
            client.close()
        finally:
            if cluster is not None:
                cluster.close()


def run_on_cluster(info: ClusterInfo, specs: Sequence[TaskSpec], run: RunSpec, *, retries: int = 2,
                   on_submit: Callable[[int], None] | None = None) -> Iterator[TaskOutput]:
    """Run ``specs`` on the cluster; yield each output as it arrives (in completion order)."""
    from distributed import as_completed

    client = info.client
    try:
        client.register_plugin(GeodrainWorker(run, info.threads), name="geodrain")
    except GeodrainError:
        raise
    except Exception as e:  # noqa: BLE001 - a worker could not set up (model missing there …)
        raise DistributedError(f"a Dask worker could not load the model: {str(e).splitlines()[0][:200]}") from None
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(execute, spec, run, key=f"geodrain-{spec.key}-{token}", pure=False, retries=retries)
               for spec in specs]
    if on_submit is not None:
        on_submit(len(futures))
    try:
        for fut in as_completed(futures):
            try:
                out = fut.result()
            except GeodrainError:
                raise
            except Exception as e:  # noqa: BLE001 - KilledWorker, CommClosedError … after the retries
                name = type(e).__name__
                raise DistributedError(f"task {fut.key} failed on the cluster ({name}: "
                                       f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
            fut.release()
            yield out
    finally:
        client.cancel([f for f in futures if not f.done()])
