"""Several populations, one per worker process, as one Stable-Baselines3 ``VecEnv``.

SB3 cannot nest a ``VecEnv`` in a ``SubprocVecEnv``, so :class:`SubprocPopulationVecEnv`
runs one :class:`~lrgym.vec_env.population_sb3.PopulationVecEnv` (a task) or one
:class:`~lrgym.vec_env.family_population.FamilyPopulationVecEnv` (a family: each process
draws its own instances, from its own seeds) per spawned worker and concatenates them.
The pipe protocol is minimal: ``reset``, ``step``, ``close``, and ``call`` (run a
module-level function in the worker: the held-out evaluation uses the workers, idle
between rollouts, as a process pool that keeps its datasets and base-run cache).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from lrgym.environment.lr_control_env import action_space, observation_space
from lrgym.tasks.family import TaskFamily
from lrgym.tasks.specs import TaskSpec
from lrgym.vec_env.family_population import FamilyPopulationVecEnv
from lrgym.vec_env.population_sb3 import PopulationVecEnv


def _population(spec: dict[str, Any], size: int, first_seed: int, seed_stride: int, env_options) -> VecEnv:
    if "instances" in spec:  # a family's to_dict()
        return FamilyPopulationVecEnv(TaskFamily.from_dict(spec), size, first_seed, seed_stride, False, **env_options)
    return PopulationVecEnv(TaskSpec(**spec), size, first_seed, seed_stride, accept_seed=False, **env_options)


def _worker(
    connection, spec: dict[str, Any], size: int, first_seed: int, seed_stride: int, threads: int, env_options
) -> None:
    import torch

    torch.set_num_threads(threads)  # default one per process: parallelism is across processes
    venv = _population(spec, size, first_seed, seed_stride, env_options)
    try:
        while True:
            command, data = connection.recv()
            if command == "step":
                venv.step_async(data)
                connection.send(venv.step_wait())
            elif command == "reset":
                observations = venv.reset()
                connection.send((observations, venv.reset_infos))
            elif command == "call":
                function, arguments = data
                connection.send(function(*arguments))
            elif command == "close":
                break
            else:
                raise ValueError(f"unknown command {command!r}")
    finally:
        connection.close()


def balanced_shares(costs: Sequence[float], workers: int) -> list[list[int]]:
    """Indices of ``costs`` in ``workers`` shares of similar total cost: the costliest first, each to
    the least loaded share (greedy longest-processing-time; at most 4/3 of the best makespan)."""
    loads, shares = [0.0] * workers, [[] for _ in range(workers)]
    for index in sorted(range(len(costs)), key=lambda position: -costs[position]):
        worker = loads.index(min(loads))
        shares[worker].append(index)
        loads[worker] += costs[index]
    return shares


class SubprocPopulationVecEnv(VecEnv):
    """``processes`` populations of ``size`` members each, one per spawned worker process.

    Sub-env ``p * size + k`` is member k of worker p. Worker p's episodes take seeds
    ``first_seed + p, first_seed + p + processes * seed_stride, ...`` so workers never
    share a seed (and, on a family, draw their own instances). ``seed()`` is ignored
    (training keeps its own seed range).

    :param task: a task, or a family (each worker a family population on its train instances).
    :param threads: torch threads in each worker.
    """

    def __init__(
        self, task: TaskSpec | TaskFamily, size: int, processes: int, first_seed: int = 0, seed_stride: int = 1,
        threads: int = 1, **env_options: Any,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.size, self.processes = int(size), int(processes)
        self._connections, self._workers = [], []
        for worker in range(self.processes):
            parent, child = context.Pipe()
            arguments = (child, task.to_dict(), self.size, first_seed + worker * seed_stride,
                         self.processes * seed_stride, int(threads), env_options)
            process = context.Process(target=_worker, args=arguments, daemon=True)
            process.start()
            child.close()
            self._connections.append(parent)
            self._workers.append(process)
        self.task = task.instance(task.indices("train")[0]) if isinstance(task, TaskFamily) else task
        self._closed = False
        super().__init__(self.size * self.processes, observation_space(self.task), action_space(self.task))

    def reset(self) -> VecEnvObs:
        for connection in self._connections:
            connection.send(("reset", None))
        results = [connection.recv() for connection in self._connections]
        self.reset_infos = [info for _, infos in results for info in infos]
        self._reset_seeds()
        self._reset_options()
        return np.concatenate([observations for observations, _ in results])

    def step_async(self, actions: np.ndarray) -> None:
        for worker, connection in enumerate(self._connections):
            connection.send(("step", actions[worker * self.size : (worker + 1) * self.size]))

    def step_wait(self) -> VecEnvStepReturn:
        results = [connection.recv() for connection in self._connections]
        observations = np.concatenate([result[0] for result in results])
        rewards = np.concatenate([result[1] for result in results])
        dones = np.concatenate([result[2] for result in results])
        infos = [info for result in results for info in result[3]]
        return observations, rewards, dones, infos

    def call_in_workers(self, function: Callable[..., Any], arguments: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``[function(*arguments[p]) in worker p]``, all workers at once (between steps only).

        :param function: a module-level function (pickled by name); it runs beside the worker's
            population, with the worker's thread count and caches.
        """
        if len(arguments) != self.processes:
            raise ValueError(f"need one argument tuple per worker: {self.processes} workers, {len(arguments)} given")
        for connection, args in zip(self._connections, arguments, strict=True):
            connection.send(("call", (function, tuple(args))))
        return [connection.recv() for connection in self._connections]

    def map_in_workers(
        self, function: Callable[..., list], items: Sequence[Any], costs: Sequence[float], *arguments: Any
    ) -> list[Any]:
        """``function(share, *arguments)`` in every worker at once, each ``share`` a part of ``items``
        balanced by ``costs`` (the costliest first, each to the least loaded worker); ``function``
        returns one result per item of its share. The results, in the order of ``items``."""
        shares = balanced_shares(costs, self.processes)
        answers = self.call_in_workers(function, [([items[i] for i in share], *arguments) for share in shares])
        results: list[Any] = [None] * len(items)
        for share, answer in zip(shares, answers, strict=True):
            for index, result in zip(share, answer, strict=True):
                results[index] = result
        return results

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        return [None] * self.num_envs

    def close(self) -> None:
        if self._closed:
            return
        for connection in self._connections:
            connection.send(("close", None))
        for process in self._workers:
            process.join(timeout=30)
        self._closed = True

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        count = len(list(self._get_indices(indices)))
        if attr_name == "render_mode":
            return [None] * count
        if attr_name == "task":
            return [self.task] * count
        raise AttributeError(f"SubprocPopulationVecEnv does not forward {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError("SubprocPopulationVecEnv does not set attributes in its workers")

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        raise AttributeError("SubprocPopulationVecEnv does not call methods in its workers")

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs
