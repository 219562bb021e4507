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

from lrgym.runners.backend import LOCAL, Backend, local_node, single_thread

Result = TypeVar("Result")


def _placed(function: Callable[..., Result], args: tuple[Any, ...]) -> tuple[Result, str]:
    return function(*args), local_node()


def run_placed(
    function: Callable[..., Result],
    arguments: Sequence[tuple[Any, ...]],
    jobs: int = 1,
    description: str = "",
    unit: str = "run",
    progress: bool = True,
    backend: Backend = LOCAL,
    device: str | None = None,
) -> list[tuple[Result, str]]:
    """``[(function(*args), node) for args in arguments]``: each result with the node it ran on.

    :param function: a module-level function (it is pickled to the workers), as are the
        arguments.
    :param jobs: local: worker processes, 1 (or less) runs everything in this process;
        ray: the CPUs of a local Ray instance started here (a cluster brings its own).
    :param description: the progress bar's label.
    :param backend: where the runs execute.
    :param device: the runs' torch device (``cpu``, ``cuda``, ``auto``): on Ray, a CUDA
        run asks for ``backend.gpu_fraction`` of a GPU.
    :return: the results, in the order of ``arguments``.
    :raises Exception: the first run's error that is not a lost worker, as the run raised it.
    """
    with tqdm(total=len(arguments), desc=description, unit=unit, disable=not progress) as bar:
        if backend.is_ray:
            from lrgym.runners.ray_tasks import run_tasks  # Ray only when asked for

            return run_tasks(function, arguments, backend, jobs=jobs, device=device, on_done=bar.update)
        results: list[Any] = [None] * len(arguments)
        if jobs <= 1 or len(arguments) <= 1:
            single_thread()
            for index, args in enumerate(arguments):
                results[index] = _placed(function, args)
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        workers = min(jobs, len(arguments))
        with ProcessPoolExecutor(workers, mp_context=context, initializer=single_thread) as pool:
            futures = {pool.submit(_placed, function, args): index for index, args in enumerate(arguments)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    return results


def run_jobs(
    function: Callable[..., Result],
    arguments: Sequence[tuple[Any, ...]],
    jobs: int = 1,
    description: str = "",
    unit: str = "run",
    progress: bool = True,
    backend: Backend = LOCAL,
    device: str | None = None,
) -> list[Result]:
    """``[function(*args) for args in arguments]`` where ``backend`` says (see :func:`run_placed`)."""
    placed = run_placed(function, arguments, jobs, description, unit, progress, backend, device)
    return [result for result, _node in placed]
