"""Runs as Ray tasks: joining a cluster, the resource request, errors as the run raised them.

Only :mod:`lrgym.runners.pool` calls this module (it imports Ray at the top). Ray does the
scheduling, the retries and the data movement; lrgym adds no scheduler, queue or worker
protocol of its own. What it does add:

- **one task per run** asking for one CPU, and ``gpu_fraction`` of a GPU when the run
  trains on CUDA; the task body is the local backend's (one torch thread, the same
  function and arguments), so the results are the same;
- **retries for lost workers only**: a worker process or node that dies mid-run is
  retried by Ray (``max_retries``) from the same arguments, so the sweep completes with
  the same results; an exception raised by the run itself is not retried;
- **the run's own error**: Ray wraps a failed task's exception in a ``RayTaskError``
  whose text is a traceback of Ray internals; the sweep stops (pending tasks are
  cancelled) and the original exception (a bad spec's ``ValueError``, a missing
  dataset's ``DataNotFoundError`` with its "how to get it" message) is raised here.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import RayTaskError

from lrgym.runners.backend import Backend, single_thread

MAX_RETRIES = 3  # attempts after a worker process or node is lost


def connect(backend: Backend, jobs: int | None = None) -> float:
    """Join the cluster ``backend.address`` says, or start a local instance; return the seconds it took.

    Does nothing (0 s) when this process is already connected.

    :param jobs: the CPUs of a local instance started here (default: every CPU).
    """
    if ray.is_initialized():
        return 0.0
    started = time.perf_counter()
    quiet = {"logging_level": logging.WARNING}
    address = backend.address or os.environ.get("RAY_ADDRESS")
    if address is None:  # the cluster `ray start` runs on this machine if there is one, else a local instance
        try:
            ray.init(address="auto", **quiet)
        except ConnectionError:
            address = "local"
    if address == "local":
        ray.init(address="local", num_cpus=max(1, jobs or os.cpu_count() or 1), include_dashboard=False, **quiet)
        joined = "started a local Ray instance"
    else:
        if address is not None:
            ray.init(address=address, **quiet)
        joined = f"joined the Ray cluster at {ray.get_runtime_context().gcs_address}"
    seconds = time.perf_counter() - started
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    cpus = ray.cluster_resources().get("CPU", 0)
    print(f"ray: {joined} ({nodes} node(s), {cpus:g} CPUs) in {seconds:.1f} s", file=sys.stderr, flush=True)
    return seconds


def node_name() -> str:
    """The node this process runs on: host name and the first 8 characters of the Ray node id."""
    return f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"


def gpu_request(backend: Backend, device: str | None) -> float:
    """The GPU share a run on ``device`` asks for: ``gpu_fraction`` on CUDA, 0 on CPU.

    ``auto`` means CUDA when the cluster has a GPU (a task that asks for none still
    sees every GPU of its node, so ``auto`` must ask to be placed fairly).
    """
    if device is None or device == "cpu":
        return 0.0
    if device == "auto" and ray.cluster_resources().get("GPU", 0) == 0:
        return 0.0
    return backend.gpu_fraction


def get_unwrapped(refs: Any) -> Any:
    """``ray.get(refs)``, raising a failed task's own exception rather than Ray's wrapper."""
    try:
        return ray.get(refs)
    except RayTaskError as error:
        if isinstance(error.cause, BaseException):
            raise error.cause from None
        raise


def _cancel(refs: list[Any], timeout_s: float = 10.0) -> None:
    """Cancel ``refs`` and collect their outcomes, so Ray prints no "unhandled error" for them later."""
    for ref in refs:
        ray.cancel(ref)
    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s) if refs else ([], [])
    for ref in ready:
        try:
            ray.get(ref)
        except Exception:  # noqa: BLE001, S110 - cancelled or failed: either way no longer wanted
            pass


@ray.remote
def _run_task(function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Any, str]:
    single_thread()
    return function(*args), node_name()


def run_tasks(
    function: Callable[..., Any],
    arguments: Sequence[tuple[Any, ...]],
    backend: Backend,
    jobs: int = 1,
    device: str | None = None,
    on_done: Callable[[], Any] | None = None,
) -> list[tuple[Any, str]]:
    """``[(function(*args), node) ...]``, one Ray task per ``args``, in the order of ``arguments``.

    :param on_done: called once per finished task (a progress bar's update).
    :raises Exception: the first failed run's own exception (the other runs are cancelled).
    """
    connect(backend, jobs)
    task = _run_task.options(
        num_cpus=1, num_gpus=gpu_request(backend, device), max_retries=MAX_RETRIES, retry_exceptions=False
    )
    index = {task.remote(function, args): position for position, args in enumerate(arguments)}
    results: list[Any] = [None] * len(arguments)
    pending = list(index)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[index[ref]] = get_unwrapped(ref)
                if on_done is not None:
                    on_done()
    except BaseException:  # a failed run, a lost cluster, Ctrl-C: stop the sweep
        _cancel(pending)
        raise
    return results
