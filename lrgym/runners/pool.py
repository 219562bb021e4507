"""Independent runs on the chosen backend: a local process pool, or Ray tasks.

Ray is imported only when the ray backend is asked for (:mod:`lrgym.runners.ray_tasks`
imports it at its top): it is an optional extra, and heavy.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

from tqdm.auto import tqdm

from lrgym.runners.backend import local_node, pin_threads
from lrgym.runners.options import RUN_DEFAULTS, RunOptions
from lrgym.trainee.registry import registrations, restore_registrations

Result = TypeVar("Result")


def _start_worker(threads: int | None, registered: dict[str, dict[str, Callable[..., Any]]]) -> None:
    """A worker process: its pinned torch threads, and the datasets and models its parent registered."""
    pin_threads(threads)
    restore_registrations(registered)


def _placed(function: Callable[..., Result], args: tuple[Any, ...]) -> tuple[Result, str]:
    return function(*args), local_node()


def run_placed(
    function: Callable[..., Result],
    arguments: Sequence[tuple[Any, ...]],
    options: RunOptions = RUN_DEFAULTS,
    description: str = "",
    unit: str = "run",
) -> list[tuple[Result, str]]:
    """``[(function(*args), node) for args in arguments]``: each result with the node it ran on.

    :param function: a module-level function (it is pickled to the workers), as are the
        arguments.
    :param options: ``backend`` (where the runs execute), ``jobs`` (local: worker processes,
        1 or less runs everything in this process; ray: the CPUs of a local Ray instance
        started here, a cluster brings its own), ``progress`` and the runs' torch device
        (``options.device``: on Ray, a CUDA run asks for ``backend.gpu_fraction`` of a GPU).
    :param description: the progress bar's label.
    :return: the results, in the order of ``arguments``.
    :raises Exception: the first run's error that is not a lost worker, as the run raised it.
    """
    jobs, backend = options.jobs, options.backend
    if backend.is_ray:  # joined before the progress bar starts: a cluster that cannot be joined is one line
        from lrgym.runners.ray_tasks import connect

        connect(backend, jobs)
    with tqdm(total=len(arguments), desc=description, unit=unit, disable=not options.progress) as bar:
        if backend.is_ray:
            from lrgym.runners.ray_tasks import run_tasks  # Ray only when asked for

            return run_tasks(function, arguments, backend, jobs=jobs, device=options.device, on_done=bar.update)
        results: list[Any] = [None] * len(arguments)
        if jobs <= 1 or len(arguments) <= 1:
            pin_threads(backend.threads)
            for index, args in enumerate(arguments):
                results[index] = _placed(function, args)
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        workers = min(jobs, len(arguments))
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start_worker, initargs=(backend.threads, registrations())
        ) as pool:
            futures = {pool.submit(_placed, function, args): index for index, args in enumerate(arguments)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    return results


def run_jobs(
    function: Callable[..., Result],
    arguments: Sequence[tuple[Any, ...]],
    options: RunOptions = RUN_DEFAULTS,
    description: str = "",
    unit: str = "run",
) -> list[Result]:
    """``[function(*args) for args in arguments]`` where ``options.backend`` says (see :func:`run_placed`)."""
    return [result for result, _node in run_placed(function, arguments, options, description, unit)]
