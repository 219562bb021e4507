"""Where independent runs execute: a local process pool, or tasks on a Ray cluster.

Evaluation, transfer and the step-decay grid run many episodes that share nothing,
and meta-training steps many envs at once; this is the one module that decides where
they run (the way SB3 chooses a VecEnv class). Commands pass a :class:`Backend`;
nothing outside this module and the Ray modules it loads (:mod:`lrgym.ray_backend`,
:mod:`lrgym.ray_vec_env`) imports Ray.

- ``local`` (the default): workers are *spawned* processes on this machine (a forked
  process that already touched torch, or CUDA, is not safe), one torch thread each, so
  J workers fill J cores. Sequential runs (``jobs <= 1``) use one thread too, so a
  result does not depend on the number of jobs.
- ``ray``: each run is one Ray task asking for one CPU (and a share of a GPU when it
  runs on CUDA); each training env is one Ray actor. Same function, same arguments,
  one torch thread: the results equal the local backend's for the same seeds.

Every run reports the node it ran on (:func:`run_placed`): the host name locally, the
host name and Ray node id on a cluster (two nodes on one host differ by their id).
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import socket
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, TypeVar

Result = TypeVar("Result")

BACKENDS = ("local", "ray")
RAY_INSTALL = "pip install 'lrgym[ray]'"
DEFAULT_GPU_FRACTION = 0.25  # small trainees are launch-bound: several share a GPU


@dataclass(frozen=True)
class Backend:
    """Where runs execute.

    :param name: ``local`` (a process pool on this machine) or ``ray`` (a Ray cluster).
    :param address: ``ray`` only: the cluster to join (its head's ``HOST:PORT``, or
        ``auto``), or ``local`` for a fresh Ray instance on this machine; ``None``: the
        running cluster if there is one (``RAY_ADDRESS``, ``ray start``), else a fresh
        local instance.
    :param gpu_fraction: ``ray`` only: the share of a GPU each run or env asks for when it
        runs on CUDA.
    :raises ValueError: an unknown name, an address without ``ray``, or ``ray`` asked for
        while Ray is not installed (the message says how to install it).
    """

    name: str = "local"
    address: str | None = None
    gpu_fraction: float = DEFAULT_GPU_FRACTION

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r}; valid backends: {', '.join(BACKENDS)}")
        if self.address is not None and self.name != "ray":
            raise ValueError(f"a Ray address ({self.address}) needs the ray backend (--backend ray)")
        if not 0 < self.gpu_fraction <= 1:
            raise ValueError(f"gpu_fraction must be in (0, 1], got {self.gpu_fraction}")
        if self.name == "ray" and not ray_installed():
            raise ValueError(f"the ray backend needs Ray, which is not installed: {RAY_INSTALL}")

    @property
    def is_ray(self) -> bool:
        return self.name == "ray"


LOCAL = Backend()


def ray_installed() -> bool:
    """Whether ``import ray`` would find Ray (without importing it)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


def single_thread() -> None:
    """One torch thread in this process (the initializer of every worker)."""
    import torch

    torch.set_num_threads(1)


def local_node() -> str:
    """The name a local run records as its node: this machine's host name."""
    return socket.gethostname()


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
    from tqdm.auto import tqdm

    with tqdm(total=len(arguments), desc=description, unit=unit, disable=not progress) as bar:
        if backend.is_ray:
            from lrgym.ray_backend import run_tasks

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


def make_vec_env(factories: Sequence[Callable[[], Any]], backend: Backend = LOCAL, device: str | None = None):
    """An SB3 ``VecEnv`` over ``factories`` (picklable callables that build one env each).

    local: in this process for one env (``DummyVecEnv``), in subprocesses for more
    (``SubprocVecEnv``); ray: each env in a Ray actor spread over the cluster
    (:class:`lrgym.ray_vec_env.RayVecEnv`), asking for a GPU share when ``device`` is CUDA.
    """
    if backend.is_ray:
        from lrgym.ray_backend import connect, gpu_request
        from lrgym.ray_vec_env import RayVecEnv

        connect(backend, jobs=len(factories))
        return RayVecEnv(factories, num_gpus=gpu_request(backend, device))
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    return SubprocVecEnv(factories) if len(factories) > 1 else DummyVecEnv(factories)
