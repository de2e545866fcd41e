"""Independent cross-validation fits in worker processes (CPU), or inline.

The comparison is ~35 independent units of work (one Optuna study per outer fold, then one
fit per model × fold); the slim networks are too small for two intra-op threads to keep two
cores busy, so on CPU one single-threaded fit per core finishes the set sooner. Every fit
seeds itself (``training.fit.seed_everything``), so results do not depend on which worker ran
it or in which order. With ``workers=1`` (the default on CUDA) everything runs in this
process through the same code path.

Hand-written over ``concurrent.futures`` rather than joblib: later tasks depend on earlier
ones (a fold's tuned fits wait for its study), and results must reach the caller as they
finish (MLflow logging, progress), which joblib's map API does not offer.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing.reduction import ForkingPickler
from typing import Any, Literal, TypeVar

import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")
_SHARED: dict[str, Any] = {}
MAX_AUTO_WORKERS = 8


def resolve_workers(workers: int | Literal["auto"], device: str) -> int:
    """``auto``: 1 on a GPU (one device, one stream), else one worker per CPU core (≤ 8)."""
    if workers != "auto":
        if workers < 1:
            raise ValueError(f"workers must be >= 1 or 'auto', got {workers}")
        return int(workers)
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return 1
    return max(1, min(MAX_AUTO_WORKERS, available_cores()))


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


def _init_worker(shared: dict[str, Any], threads: int) -> None:
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING)
    _SHARED.clear()
    _SHARED.update(shared)


def shared(name: str) -> Any:
    """An object handed to every worker once (not re-sent with each task)."""
    try:
        return _SHARED[name]
    except KeyError:
        raise RuntimeError(f"{name!r} was not shared with this worker (make_executor)") from None


def _call_to_bytes(fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> bytes:
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:
        try:  # an error holding a tensor with grad cannot cross the process boundary
            ForkingPickler.dumps(exc)  # how the pool sends it (torch's tensor reducers)
        except Exception:
            raise RuntimeError(f"{type(exc).__name__}: {exc}") from None
        raise
    return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)


class BytesProcessPool(ProcessPoolExecutor):
    """A process pool whose results come back as plain pickles.

    Why: the pool's own pickler sends torch tensors as shared-memory file descriptors, one
    per tensor; a fitted ensemble of snapshot networks holds thousands, and the transfer
    failed with "received 0 items of ancdata" (a broken pool). A plain pickle copies the
    weights into the message instead (a few MB per fit).
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        inner = super().submit(_call_to_bytes, fn, args, kwargs)
        outer: Future[T] = Future()

        def relay(done: Future[bytes]) -> None:
            try:
                outer.set_result(pickle.loads(done.result()))
            except BaseException as exc:  # the task's own error, or a broken pool
                outer.set_exception(exc)

        inner.add_done_callback(relay)
        return outer


def make_executor(workers: int, shared_objects: dict[str, Any]) -> Executor:
    """An executor whose tasks can read ``shared(name)``.

    ``workers > 1``: a pool of ``spawn``ed processes with one torch thread each (``fork``
    after torch has started its OpenMP pool can deadlock). ``workers == 1``: inline.
    """
    if workers <= 1:
        _SHARED.clear()
        _SHARED.update(shared_objects)
        return InlineExecutor()
    logger.info("running the cross-validation in %d worker processes", workers)
    return BytesProcessPool(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(shared_objects, 1),
    )
