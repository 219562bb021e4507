"""Runs as Ray tasks: joining a cluster, the resource request, errors as the run raised them.

Only :mod:`lrgym.runners.pool` calls this module (it imports Ray at the top). Ray does the
scheduling, the retries and the data movement; lrgym adds no scheduler, queue or worker
protocol of its own. What it does add:

- **one task per run** asking for one CPU, and ``gpu_fraction`` of a GPU when the run
  trains on CUDA; the task body is the local backend's (``--threads`` torch threads, the same
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
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import RayTaskError

from lrgym.runners.backend import Backend, check_ray_address, pin_threads

MAX_RETRIES = 3  # attempts after a worker process or node is lost


# Set when a join was given up while Ray's thread still tries: that thread's C++ client
# aborts the interpreter's normal shutdown (exit status -6), so the CLI ends the process at
# once instead (lrgym.cli.main).
ABANDONED_CONNECT = False


def connect(backend: Backend, jobs: int | None = None) -> float:
    """Join the cluster ``backend.address`` says, or start a local instance; return the seconds it took.

    Does nothing (0 s) when this process is already connected. An address (or
    ``RAY_ADDRESS``) of the wrong form is refused before anything is tried; a host that
    does not answer on its port is refused at once; a cluster that is not joined within
    ``backend.connect_timeout_s`` (``--ray-timeout``) is refused then, naming the address.

    :param jobs: the CPUs of a local instance started here (default: every CPU).
    :raises ValueError: an address of the wrong form.
    :raises ConnectionError: a cluster that cannot be joined (one line, the address in it).
    """
    if ray.is_initialized():
        return 0.0
    started = time.perf_counter()
    quiet = {"logging_level": logging.WARNING}
    address = backend.address or os.environ.get("RAY_ADDRESS")
    if backend.address is None and address is not None:
        check_ray_address(address, "RAY_ADDRESS")
    if address is None:  # the cluster `ray start` runs on this machine if there is one, else a local instance
        try:
            _init_within(backend.connect_timeout_s, "auto", **quiet)
        except _NoClusterHere:
            address = "local"
    if address == "local":
        ray.init(address="local", num_cpus=max(1, jobs or os.cpu_count() or 1), include_dashboard=False, **quiet)
        joined = "started a local Ray instance"
    else:
        if address is not None:
            _init_within(backend.connect_timeout_s, address, **quiet)
        joined = f"joined the Ray cluster at {ray.get_runtime_context().gcs_address}"
    seconds = time.perf_counter() - started
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    cpus = ray.cluster_resources().get("CPU", 0)
    print(f"ray: {joined} ({nodes} node(s), {cpus:g} CPUs) in {seconds:.1f} s", file=sys.stderr, flush=True)
    return seconds


class _NoClusterHere(ConnectionError):
    """``address="auto"`` found no cluster running on this machine (then a local instance starts)."""


def _reachable(address: str, timeout_s: float) -> None:
    """Refuse at once a host that does not resolve or does not accept connections on its port.

    Ray itself retries such an address for minutes (printing warnings about its node's
    own address every 40 s); one TCP connection says in milliseconds that nothing listens.
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=min(timeout_s, 10.0)):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ConnectionError(f"cannot reach the Ray cluster at {address}: {reason} (is its head running? "
                              "`ray status --address HOST:PORT` on the head shows it)") from None


def _init_within(timeout_s: float, address: str, **options: Any) -> None:
    """``ray.init(address=address)``, given up after ``timeout_s`` with a one-line ``ConnectionError``.

    Ray has no overall timeout for joining: the attempt runs in a daemon thread (Ray allows
    ``init`` off the main thread; a thread still trying when we give up does not keep the
    process alive).
    """
    if address != "auto":
        _reachable(address, timeout_s)
    outcome: dict[str, BaseException] = {}

    def attempt() -> None:
        try:
            ray.init(address=address, **options)
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread below
            outcome["error"] = error

    worker_logger = logging.getLogger("ray._private.worker")
    level = worker_logger.level
    worker_logger.setLevel(logging.ERROR)  # its "SIGTERM handler is not set" note: the thread is ours on purpose
    try:
        thread = threading.Thread(target=attempt, name="ray-connect", daemon=True)
        thread.start()
        thread.join(timeout_s)
    finally:
        worker_logger.setLevel(level)
    if thread.is_alive():
        global ABANDONED_CONNECT  # noqa: PLW0603 - read by the CLI at exit
        ABANDONED_CONNECT = True
        raise ConnectionError(f"could not join the Ray cluster at {address} within {timeout_s:g} s "
                              "(--ray-timeout sets how long to wait)")
    error = outcome.get("error")
    if error is None:
        return
    if address == "auto" and isinstance(error, ConnectionError):
        raise _NoClusterHere(str(error)) from None
    if isinstance(error, (ConnectionError, RuntimeError, TimeoutError, ValueError)):
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConnectionError(f"could not join the Ray cluster at {address}: {first_line:.300}") from None
    raise error


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
def _run_task(function: Callable[..., Any], args: tuple[Any, ...], threads: int = 1) -> tuple[Any, str]:
    pin_threads(threads)
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
    index = {task.remote(function, args, backend.threads): position for position, args in enumerate(arguments)}
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
