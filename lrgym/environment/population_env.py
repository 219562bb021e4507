"""PopulationEnv: N episodes of one task in lock-step, one population member each.

The batched counterpart of :class:`lrgym.environment.lr_control_env.LRControlEnv`: one
:class:`~lrgym.trainee.population.PopulationTrainee` trains every member, and each member's
episode is kept by its own :class:`~lrgym.environment.episode.EpisodeTracker`, the same
bookkeeping the single env uses, so every observation feature set, action mode and
reward of the single env works here unchanged.

Member k reset with seed s follows ``LRControlEnv.reset(seed=s)`` under the same
actions: the same trainee seed and initial rate (drawn by
:func:`lrgym.environment.lr_control_env.episode_draws` from a generator seeded as gymnasium seeds the single
env), the same rates, and observations, rewards and test metrics equal within float
rounding (``tests/test_population_env.py`` states the tolerance).

This class is the engine; :mod:`lrgym.vec_env.population_sb3` exposes it as a
Stable-Baselines3 ``VecEnv`` and as a gymnasium ``VectorEnv`` (members reset on their
own). Agents that need a hook into one trainee's optimizer (ASLR's per-layer rates,
the lookahead's trial steps) run on single envs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding

from lrgym.environment.episode import EpisodeTracker, clip_lr, start_lr
from lrgym.environment.lr_control_env import (
    action_space,
    base_best_val_loss,
    episode_draws,
    observation_space,
    resolve_device,
)
from lrgym.environment.rewards import needs_base_run
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.data import load_dataset
from lrgym.trainee.population import PopulationTrainee
from lrgym.trainee.stacked_optim import check_stackable

# (global step, nominal rate, number of groups) -> the rate of that step: a schedule agent's
# per-step sampler, as for LRControlEnv.set_lr_sampler (one rate: a member has one group).
StepRate = Callable[[int, float, int], float]


class PopulationEnv:
    """N episodes of one task trained together (see the module docstring).

    :param size: the number of members N.
    :param spec_fields: the task's fields, as for :class:`~lrgym.environment.lr_control_env.LRControlEnv`.
    :raises ValueError: for an optimizer or model a population cannot batch.

    Observations, rewards and infos are those of :class:`~lrgym.environment.lr_control_env.LRControlEnv`
    (its docstring is the specification), one per member.
    """

    def __init__(
        self,
        size: int,
        *,
        data_dir: str | None = None,
        download: bool = False,
        device: str | torch.device = "auto",
        **spec_fields: Any,
    ) -> None:
        if int(size) < 1:
            raise ValueError(f"a population needs at least one member, got {size}")
        self.size = int(size)
        self.task = TaskSpec(**spec_fields)
        check_stackable(self.task.optimizer, self.task.optimizer_kwargs)
        if self.task.validation_percent:  # members would silently use the dataset's own split
            raise ValueError("validation_percent (a validation split carved per seed) is not supported by "
                             "populations: run the task on single envs")
        self.device = resolve_device(device)
        self.dataset = load_dataset(self.task.dataset, data_dir=data_dir, download=download, device=self.device)
        self.dataset.check_sizes(self.task.batch_size, self.task.val_size)
        self.observation_space = observation_space(self.task)
        self.action_space = action_space(self.task)
        task = self.task
        # Placeholder members; every episode starts with reset_members.
        self.population = PopulationTrainee(
            self.dataset, task.model, task.optimizer, [task.lr_max] * self.size, task.batch_size,
            task.val_size, seeds=list(range(self.size)), optimizer_kwargs=task.optimizer_kwargs,
            device=self.device,
        )
        self.trackers: list[EpisodeTracker | None] = [None] * self.size
        self.seeds: list[int | None] = [None] * self.size
        self._samplers: list[StepRate | None] = [None] * self.size
        self._last_observations = np.zeros((self.size, *self.observation_space.shape), dtype=np.float32)

    # ------------------------------------------------------------------ episodes
    def reset(
        self, seeds: Sequence[int], options: Sequence[dict[str, Any] | None] | None = None
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Start every member's episode: member k with ``seeds[k]`` (and ``options[k]``)."""
        if len(seeds) != self.size:
            raise ValueError(f"need one seed per member: {self.size} members, {len(seeds)} seeds")
        observations, infos = self.reset_members(range(self.size), seeds, options)
        return np.stack(observations), infos

    def reset_members(
        self,
        members: Sequence[int],
        seeds: Sequence[int],
        options: Sequence[dict[str, Any] | None] | None = None,
    ) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Start a new episode for each of ``members`` (the others are untouched).

        :param seeds: one episode seed per member, as ``LRControlEnv.reset(seed=...)`` takes.
        :param options: per member, ``None`` or a dict; ``initial_lr`` overrides the drawn rate.
        :return: the first observation and info of each reset member, in ``members`` order.
        """
        members = [int(member) for member in members]
        options = list(options) if options is not None else [None] * len(members)
        task = self.task
        starts = []
        for member, seed, option in zip(members, seeds, options, strict=True):
            np_random, _ = seeding.np_random(int(seed))  # as gymnasium.Env.reset(seed=...) seeds
            trainee_seed, initial_lr = episode_draws(task, np_random)
            if option and "initial_lr" in option:
                initial_lr = clip_lr(task, float(option["initial_lr"]))
            lr = start_lr(task, initial_lr)
            self.population.reset_member(member, trainee_seed, lr)
            base_best = None
            if needs_base_run(task):
                base_best = base_best_val_loss(self.dataset, task, trainee_seed, self.device)
            self.trackers[member] = EpisodeTracker(task, lr, base_best)
            self.seeds[member] = int(seed)
            self._samplers[member] = None
            starts.append(initial_lr)
        observations, infos = [], []
        for member, measurement, initial_lr in zip(members, self.population.measure(members), starts, strict=True):
            observation, info = self.trackers[member].start(measurement)
            info["initial_lr"] = initial_lr
            self._last_observations[member] = observation
            observations.append(observation)
            infos.append(info)
        return observations, infos

    def done(self, member: int) -> bool:
        """Whether ``member``'s episode has ended (it sits out steps until reset)."""
        tracker = self.trackers[member]
        return tracker is None or tracker.done

    def step(self, actions: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One decision of every member whose episode is running.

        :param actions: one action per member (ignored for members whose episode has ended).
        :return: observations ``(N, features)``, rewards ``(N,)``, dones ``(N,)`` and infos.
            A member that had already ended reports its last observation, reward 0, done
            and an empty info.
        """
        if len(actions) != self.size:
            raise ValueError(f"need one action per member: {self.size} members, {len(actions)} actions")
        if all(tracker is None for tracker in self.trackers):
            raise RuntimeError("call reset() before step()")
        task, population = self.task, self.population
        running = [member for member in range(self.size) if not self.done(member)]
        counts = np.zeros(self.size, dtype=np.int64)
        schedules: dict[int, list[float]] = {}
        for member in running:
            nominal = self.trackers[member].decide(actions[member])
            sampler = self._samplers[member]
            if sampler is None:
                schedules[member] = nominal
            else:
                first = int(population.steps[member])
                schedules[member] = [float(sampler(first + index, rate, 1)) for index, rate in enumerate(nominal)]
            counts[member] = len(nominal)
            population.lrs[member] = nominal[-1]
        steps = int(counts.max(initial=0))
        rates = np.ones((steps, self.size))
        for member, schedule in schedules.items():
            rates[: len(schedule), member] = schedule
        train_losses = population.train(counts, rates)
        diverged = [
            not math.isfinite(train_losses[member]) or train_losses[member] > task.divergence_loss
            for member in running
        ]
        measurements = population.measure(running, keep_best=[not flag for flag in diverged]) if running else []
        rewards = np.zeros(self.size, dtype=np.float64)
        dones = np.ones(self.size, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.size)]
        finished = []
        for member, measurement, flag in zip(running, measurements, diverged, strict=True):
            observation, reward, done, info = self.trackers[member].record(
                float(train_losses[member]), None if flag else measurement
            )
            self._last_observations[member] = observation
            rewards[member], dones[member], infos[member] = reward, done, info
            if done:
                finished.append(member)
        for member, final_info in zip(finished, self._final_infos(finished), strict=True):
            infos[member].update(final_info)
        return self._last_observations.copy(), rewards, dones, infos

    # ------------------------------------------------------------------ agent hooks
    def set_lr_sampler(self, member: int, sampler: StepRate | None) -> None:
        """Give ``member`` a rate for every optimizer step (``None``: off), until its next reset.

        ``sampler(global_step, nominal_lr, 1)`` returns that step's rate, as for
        :meth:`lrgym.environment.lr_control_env.LRControlEnv.set_lr_sampler`; a population member has one
        parameter group, so per-group rates (ASLR) need a single env.
        """
        if self.trackers[member] is None:
            raise RuntimeError("reset the member before set_lr_sampler()")
        self._samplers[member] = sampler

    def member(self, member: int) -> PopulationMember:
        """A handle on one member that agents can use as they use an env."""
        return PopulationMember(self, member)

    def lr(self, member: int) -> float:
        """The learning rate in force for ``member``."""
        if self.trackers[member] is None:
            raise RuntimeError("reset the member first")
        return float(self.population.lrs[member])

    # ------------------------------------------------------------------ internals
    def _final_infos(self, members: list[int]) -> list[dict[str, Any]]:
        if not members:
            return []
        population, test = self.population, self.dataset.test
        finals = population.evaluate(test, "current", members)
        # The best-validation point is often the last one: then it is the same evaluation.
        elsewhere = [member for member in members if population.best_step[member] != population.steps[member]]
        at_best = dict(zip(elsewhere, population.evaluate(test, "best", elsewhere), strict=True))
        return [
            self.trackers[member].final_info(at_best.get(member, final), final, int(population.best_step[member]))
            for member, final in zip(members, finals, strict=True)
        ]


class PopulationMember:
    """One member of a :class:`PopulationEnv` seen as agents see an env (``EpisodeStart.env``).

    Offers what population-capable agents use: the task and spaces (a controller checks
    them), :meth:`set_lr_sampler` (schedules) and :attr:`lr`.
    """

    def __init__(self, env: PopulationEnv, member: int) -> None:
        self.env, self.index = env, int(member)
        self.task = env.task
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def set_lr_sampler(self, sampler: StepRate | None) -> None:
        self.env.set_lr_sampler(self.index, sampler)

    @property
    def lr(self) -> float:
        return self.env.lr(self.index)
