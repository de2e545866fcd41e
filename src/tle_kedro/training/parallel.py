"""Where the cross-validation fits run: inline, a local Dask cluster, or a remote one.

The comparison is ~35 independent units of work (one Optuna study per outer fold, then one
fit per model × fold); the slim networks are too small for two intra-op threads to keep two
cores busy, so on CPU one single-threaded fit per core finishes the set sooner. Every fit
seeds itself (``training.loop.seed_everything``), so results do not depend on which worker ran
it or in which order.

``dask.distributed`` rather than a hand-written process pool: the same code runs the fits on
this machine (a ``LocalCluster`` of worker processes) and on many (a scheduler address, e.g.
a SLURM cluster started with ``dask-jobqueue``: docs/scaling_out.md). Its
``Client.get_executor()`` is a ``concurrent.futures`` executor, so results reach the caller
as they finish (MLflow logging, progress) and a fold's tuned fits are submitted when its
study is done; data every task reads is scattered to the workers once; results (fitted
ensembles of thousands of tensors) travel as plain pickles, and an error the worker cannot
pickle arrives as its message. Kedro's ``ParallelRunner`` parallelises nodes, not the units
inside one, refuses this project's catalog (kedro-mlflow's artifact datasets do not pickle)
and skips the hooks that open the MLflow run. With one worker (the default on CUDA: one
device) everything runs inline in this process. What each choice costs: docs/benchmarks.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from typing import Annotated, Any, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_AUTO_WORKERS = 8


class ExecutorConfig(BaseModel):
    """``modeling.executor`` in parameters_modeling.yml.

    Attributes:
        scheduler_address: a running Dask scheduler (``tcp://host:8786``, ``tls://…``) to
            submit the fits to; its workers need this project installed. None: this machine.
        workers: on this machine, fits at a time (a ``LocalCluster`` of that many
            single-threaded processes on 127.0.0.1; 1 = inline); ``auto`` = one per CPU
            core (≤ 8), 1 on a GPU. Ignored with a scheduler address (its cluster decides).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    scheduler_address: str | None = None
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"

    @field_validator("scheduler_address")
    @classmethod
    def _has_scheme(cls, address: str | None) -> str | None:
        if address is not None and "://" not in address:
            raise ValueError(
                f"scheduler_address {address!r} needs a protocol, e.g. 'tcp://{address}' "
                "(null = a local cluster on this machine)"
            )
        return address


def resolve_workers(workers: int | Literal["auto"], device: str) -> int:
    """``auto``: 1 on a GPU (one device, one stream), else one worker per CPU core (≤ 8)."""
    if workers != "auto":
        if workers < 1:
            raise ValueError(f"workers must be >= 1 or 'auto', got {workers}")
        return int(workers)
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return 1
    return max(1, min(MAX_AUTO_WORKERS, available_cores()))


def resolve_executor(config: ExecutorConfig, device: str) -> ExecutorConfig:
    """``config`` with ``workers`` a number for the training ``device``."""
    return config.model_copy(update={"workers": resolve_workers(config.workers, device)})


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class InlineExecutor(Executor):
    """Runs each task at ``submit`` in this process; returns a finished future."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # re-raised by future.result() in the caller
            future.set_exception(exc)
        return future


def one_torch_thread_plugin() -> Any:
    """A Dask worker plugin: one torch intra-op thread in every worker, present or to come.

    Dask runs ``nthreads`` tasks at once per worker, so each fit gets one core; two intra-op
    threads per fit spin-wait for the same cores (5-20x slower measured here) and make the
    sums, hence the fits, depend on the thread count. (A class built here: importing
    ``distributed`` at module level would cost every ``kedro run`` ~0.4 s.)
    """
    from distributed import WorkerPlugin

    class OneTorchThread(WorkerPlugin):
        name = "tle-kedro-one-torch-thread"

        def setup(self, worker: Any) -> None:
            torch.set_num_threads(1)

    return OneTorchThread()


MALLOC_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def local_cluster(n_workers: int) -> Any:
    """A ``distributed.LocalCluster`` of ``n_workers`` single-threaded processes on 127.0.0.1,
    no dashboard; the caller closes it."""
    import dask.config
    from distributed import LocalCluster

    # distributed starts its workers with MALLOC_TRIM_THRESHOLD_=65536, so glibc returns
    # every freed block above 64 KiB to the OS and maps it again on the next batch: a
    # 4-epoch TransEpRelap fit took 7.5 s in a worker with it, 6.5 s without, 5.9 s in a
    # forked process (two fits at once on the 2-core machine, demo cohort). Workers of the
    # run's own cluster keep glibc's default instead.
    with dask.config.set({MALLOC_TRIM_KEY: None}):
        return LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit=None,  # a fit may use what a plain process may; the OS is the limit
        )


class RunClusters:
    """Local clusters kept open for a whole ``kedro run`` (``hooks.ShareLocalCluster``).

    Each model's cross-validation is its own Kedro node; a ``LocalCluster`` started per node
    cost ~10 s each time (scheduler, two worker processes importing torch, then shutdown),
    about 50 s of the default run's five neural nodes. Between a run's ``keep()`` and
    ``close()`` the first node starts the cluster and the others connect to it; outside a
    run (tests, notebooks, the confirmation harness calling functions) ``open_executor``
    starts and closes its own. Fits seed themselves, so a reused worker gives the same result.
    """

    def __init__(self) -> None:
        self.keeping = False
        self.clusters: dict[int, Any] = {}

    def keep(self) -> None:
        self.keeping = True

    def acquire(self, n_workers: int) -> tuple[Any, bool]:
        """A cluster of ``n_workers`` and whether the caller owns (must close) it."""
        if not self.keeping:
            return local_cluster(n_workers), True
        cluster = self.clusters.get(n_workers)
        if cluster is None or cluster.status.name != "running":
            cluster = self.clusters[n_workers] = local_cluster(n_workers)
        else:
            logger.info("reusing this run's local Dask cluster of %d workers", n_workers)
        return cluster, False

    def close(self) -> None:
        self.keeping = False
        clusters, self.clusters = list(self.clusters.values()), {}
        for cluster in clusters:
            cluster.close()


RUN_CLUSTERS = RunClusters()


@contextmanager
def open_executor(config: ExecutorConfig | None, shared: T) -> Iterator[tuple[Executor, T]]:
    """An executor for the fits, and the handle of ``shared`` to pass to every task.

    ``shared`` (data every task reads) is sent to the workers once: tasks take the handle as
    an argument and receive the object itself. ``config`` None, or one worker and no
    scheduler address: inline. Otherwise a ``dask.distributed.Client`` to
    ``scheduler_address``, or to a ``LocalCluster`` started here (processes, one thread
    each, 127.0.0.1, no dashboard), or to the ``kedro run``'s cluster when one is kept
    (:class:`RunClusters`). On exit, also on an error, the client closes, so the scheduler
    drops what is left of this call, and a cluster started only for it is shut down.
    """
    # resolve_executor gives the device's count; a bare "auto" here counts CPU cores
    n_workers = 1 if config is None else resolve_workers(config.workers, "cpu")
    if config is None or (config.scheduler_address is None and n_workers == 1):
        logger.info("cross-validation fits run inline in this process")
        yield InlineExecutor(), shared
        return
    from distributed import Client  # imported only when fits leave the process

    cluster, owned = None, False
    if config.scheduler_address is None:
        cluster, owned = RUN_CLUSTERS.acquire(n_workers)
        where = f"a local Dask cluster of {n_workers} worker processes"
    else:
        where = f"the Dask scheduler at {config.scheduler_address}"
    try:
        with Client(cluster if cluster is not None else config.scheduler_address) as client:
            client.register_plugin(one_torch_thread_plugin())
            # in a list: scatter would send a dict or a list element by element
            [handle] = client.scatter([shared], broadcast=True, hash=False)
            logger.info("cross-validation fits run on %s", where)
            yield client.get_executor(pure=False), handle
    finally:
        if owned and cluster is not None:
            cluster.close()
