"""Independent runs (episodes) spread over worker processes, with a progress bar.

Evaluation and the step-decay grid both run many episodes that share nothing; this is
the one place that decides how. Workers are *spawned* (a forked process that already
touched torch, or CUDA, is not safe) and use one torch thread each, so J workers fill J
cores. Sequential runs (``jobs <= 1``) use one thread too, so a result does not depend
on the number of jobs.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

Result = TypeVar("Result")


def single_thread() -> None:
    """One torch thread in this process (the initializer of every worker)."""
    import torch

    torch.set_num_threads(1)


def run_jobs(
    function: Callable[..., Result],
    arguments: Sequence[tuple[Any, ...]],
    jobs: int = 1,
    description: str = "",
    unit: str = "run",
    progress: bool = True,
) -> list[Result]:
    """``[function(*args) for args in arguments]``, over ``jobs`` worker processes.

    :param function: a module-level function (it is pickled to the workers), as are the
        arguments.
    :param jobs: worker processes; 1 (or less) runs everything in this process.
    :param description: the progress bar's label.
    :return: the results, in the order of ``arguments``.
    """
    from tqdm.auto import tqdm

    results: list[Any] = [None] * len(arguments)
    with tqdm(total=len(arguments), desc=description, unit=unit, disable=not progress) as bar:
        if jobs <= 1 or len(arguments) <= 1:
            single_thread()
            for index, args in enumerate(arguments):
                results[index] = function(*args)
                bar.update()
            return results
        context = multiprocessing.get_context("spawn")
        workers = min(jobs, len(arguments))
        with ProcessPoolExecutor(workers, mp_context=context, initializer=single_thread) as pool:
            futures = {pool.submit(function, *args): index for index, args in enumerate(arguments)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    return results
