"""The one place that chooses how meta-training envs run: in this process, in subprocesses,
as populations of stacked trainees, or as Ray actors.

The way SB3's ``make_vec_env`` hides ``DummyVecEnv`` / ``SubprocVecEnv``: callers pass a
task (or family), how many envs, the population size and a backend, and get one SB3
``VecEnv``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from lrgym.environment.family_env import FamilyEnv
from lrgym.environment.family_population_env import family_population_error
from lrgym.environment.lr_control_env import LRControlEnv, resolve_device
from lrgym.environment.rewards import needs_base_run
from lrgym.runners.backend import LOCAL, Backend, pin_threads
from lrgym.tasks.family import TaskFamily
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.data import load_dataset
from lrgym.trainee.population import population_error
from lrgym.trainee.population_memory import population_memory_error
from lrgym.vec_env.family_population import FamilyPopulationVecEnv
from lrgym.vec_env.population_sb3 import PopulationVecEnv
from lrgym.vec_env.subproc_population import SubprocPopulationVecEnv

# Family instances whose memory the population check estimates (the largest decides).
MEMORY_SAMPLE = 64


def make_vec_env(factories: Sequence[Callable[[], Any]], backend: Backend = LOCAL, device: str | None = None):
    """An SB3 ``VecEnv`` over ``factories`` (picklable callables that build one env each).

    local: in this process for one env (``DummyVecEnv``), in subprocesses for more
    (``SubprocVecEnv``); ray: each env in a Ray actor spread over the cluster
    (:class:`lrgym.vec_env.ray_actors.RayVecEnv`), asking for a GPU share when ``device`` is CUDA.
    """
    if backend.is_ray:
        # Ray only when asked for: an optional extra, and heavy.
        from lrgym.runners.ray_tasks import connect, gpu_request
        from lrgym.vec_env.ray_actors import RayVecEnv

        connect(backend, jobs=len(factories))
        return RayVecEnv(factories, num_gpus=gpu_request(backend, device), threads=backend.threads)
    return SubprocVecEnv(factories) if len(factories) > 1 else DummyVecEnv(factories)


class TrainingSeeds(gym.Wrapper):
    """Resets the wrapped env with seeds ``first, first + stride, first + 2 stride, ...``.

    A seed passed to ``reset`` is ignored on purpose (SB3 seeds every env with the
    algorithm's seed): training episodes must stay out of the evaluation seed ranges.
    """

    def __init__(self, env: gym.Env, first: int, stride: int) -> None:
        super().__init__(env)
        self.next_seed, self.stride = int(first), int(stride)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed, self.next_seed = self.next_seed, self.next_seed + self.stride
        return self.env.reset(seed=seed, options=options)


def _training_env(
    task: dict[str, Any], env_options: dict[str, Any], first_seed: int, stride: int, in_subprocess: bool
) -> gym.Env:
    if in_subprocess:
        # The count the command pinned (lrgym.runners.backend.pin_threads; 1 by default): the
        # parallelism is across envs, and several threads per small trainee on shared cores
        # are many times slower, not faster (measured).
        pin_threads()
    if "instances" in task:  # a family's to_dict(): a new train instance every episode
        env: gym.Env = FamilyEnv(task, "train", **env_options)
    else:
        env = LRControlEnv(**task, **env_options)
    return Monitor(TrainingSeeds(env, first_seed, stride))


def make_training_env(
    task: TaskSpec | TaskFamily,
    n_envs: int,
    first_seed: int,
    env_options: dict[str, Any],
    population: int = 1,
    backend: Backend = LOCAL,
    threads: int = 1,
) -> VecEnv:
    """``n_envs`` training envs: in this process for 1, in subprocesses (``SubprocVecEnv``) for
    more; in Ray actors spread over the cluster with the ray backend (:func:`lrgym.runners.pool.make_vec_env`).
    Each env loads its dataset where it runs (``env_options`` carry ``data_dir``).

    :param task: a task, or a family (family envs on its train instances).
    :param population: with more than 1, each of the ``n_envs`` processes (this one for 1)
        hosts a population of that many trainees trained in lock-step: of ``task``
        (:mod:`lrgym.vec_env.population_sb3`), or of one drawn train instance of the family
        at a time (:mod:`lrgym.vec_env.family_population`), base-schedule counterfactuals
        as extra members of the batch.
    :param threads: torch threads of each subprocess (this process keeps its own setting).
    :raises ValueError: for a population that cannot run (:func:`population_refusal`).
    """
    if population > 1:
        refusal = population_refusal(task, n_envs, population, backend, env_options)
        if refusal is not None:
            raise ValueError(refusal)
        if n_envs > 1:
            return VecMonitor(SubprocPopulationVecEnv(task, population, n_envs, first_seed, threads=threads,
                                                      **env_options))
        if isinstance(task, TaskFamily):
            return VecMonitor(FamilyPopulationVecEnv(task, population, first_seed, accept_seed=False, **env_options))
        return VecMonitor(PopulationVecEnv(task, population, first_seed, accept_seed=False, **env_options))
    factories = [
        functools.partial(
            _training_env, task.to_dict(), env_options, first_seed + index, n_envs, n_envs > 1 or backend.is_ray
        )
        for index in range(n_envs)
    ]
    return make_vec_env(factories, backend, device=env_options["device"])


def population_refusal(
    task: TaskSpec | TaskFamily, n_envs: int, population: int, backend: Backend, env_options: dict[str, Any]
) -> str | None:
    """Why ``n_envs`` processes of ``population`` stacked trainees of ``task`` cannot run, or ``None``:
    the ray backend, an optimizer or model a population cannot batch (for a family: one its
    instances may draw), or more trainees than the device's memory holds.

    Checked before anything is built or written; the memory estimate is
    :func:`lrgym.trainee.population_memory.population_memory_error` on the task, or on the
    first :data:`MEMORY_SAMPLE` train instances of a family.
    """
    if population <= 1:
        return None
    if backend.is_ray:
        return "--population with --backend ray is not supported yet: use one or the other"
    family = task if isinstance(task, TaskFamily) and not task.single else None
    if family is not None:
        error = family_population_error(family)
        tasks = [family.instance(index) for index in family.indices("train")[:MEMORY_SAMPLE]]
    else:
        task = task.instance(0) if isinstance(task, TaskFamily) else task
        error, tasks = population_error(task), [task]
    if error is not None:
        return f"--population {population}: {error}"
    shaped = []
    for each in tasks:
        dataset = load_dataset(each.dataset, data_dir=env_options.get("data_dir"), download=env_options.get(
            "download", False), device="cpu", dataset_kwargs=each.dataset_kwargs)
        shaped.append((each, dataset.input_shape, dataset.num_classes))
    what = f"--n-envs {n_envs} --population {population}"
    device = resolve_device(env_options.get("device", "auto"))
    return population_memory_error(shaped, population, n_envs, device, what, 2 if needs_base_run(tasks[0]) else 1)
