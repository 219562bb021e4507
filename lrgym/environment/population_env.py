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

**The counterfactual in the same batch.** A reward that needs the base schedule's own run
(``relative_terminal``, :func:`lrgym.environment.rewards.needs_base_run`) gets it from a
*base member*: slot ``size + k`` of the same :class:`~lrgym.trainee.population.PopulationTrainee`
is reset with member k's trainee seed and driven by the base schedule (the residual mode
doing nothing, :func:`lrgym.environment.lr_control_env.base_run_task`), in the same vmapped
steps as the members; when it ends, its best validation loss is member k's
``base_best_val_loss`` (and is kept in the process's cache of base runs, so a later
episode of the same task and seed needs no base member). A base run this process already
has is taken from that cache; a population whose seeds are all cached at ``reset`` has no
base slots. One case runs the base serially as the single env does
(:func:`~lrgym.environment.lr_control_env.base_best_val_loss`): a member that diverges
before its base member has finished (its penalty needs the base's result now).

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

from lrgym.environment.episode import EpisodeTracker, clip_lr, has_diverged, start_lr
from lrgym.environment.lr_control_env import (
    action_space,
    base_best_val_loss,
    base_run_task,
    cached_base_best_val_loss,
    episode_draws,
    observation_space,
    remember_base_best_val_loss,
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
    :param base_members: run the base schedule's counterfactual as members of the batch
        (see the module docstring; only for rewards that need it); ``False``: serially.
    :param spec_fields: the task's fields, as for :class:`~lrgym.environment.lr_control_env.LRControlEnv`.
    :raises ValueError: for an optimizer or model a population cannot batch.

    Observations, rewards and infos are those of :class:`~lrgym.environment.lr_control_env.LRControlEnv`
    (its docstring is the specification), one per member.
    """

    def __init__(
        self,
        size: int,
        *,
        base_members: bool = True,
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
        self.dataset = load_dataset(
            self.task.dataset, data_dir=data_dir, download=download, device=self.device,
            dataset_kwargs=self.task.dataset_kwargs,
        )
        self.dataset.check_sizes(self.task.batch_size, self.task.val_size)
        self.observation_space = observation_space(self.task)
        self.action_space = action_space(self.task)
        self.base_task = base_run_task(self.task) if needs_base_run(self.task) else None
        self.base_members = bool(base_members) and self.base_task is not None
        self.population = self._new_population(2 * self.size if self.base_members else self.size)
        self.trackers: list[EpisodeTracker | None] = [None] * self.size
        # Member k's base member (slot size + k) while it runs; None: none, or finished.
        self.base_trackers: list[EpisodeTracker | None] = [None] * self.size
        self.trainee_seeds: list[int | None] = [None] * self.size
        self.seeds: list[int | None] = [None] * self.size
        self._samplers: list[StepRate | None] = [None] * self.size
        self._last_observations = np.zeros((self.size, *self.observation_space.shape), dtype=np.float32)

    def _new_population(self, slots: int) -> PopulationTrainee:
        """``slots`` placeholder trainees; every episode starts with :meth:`reset_members`."""
        task = self.task
        return PopulationTrainee(
            self.dataset, task.model, task.optimizer, [task.lr_max] * slots, task.batch_size,
            task.val_size, seeds=list(range(slots)), optimizer_kwargs=task.optimizer_kwargs,
            device=self.device, model_kwargs=task.model_kwargs,
        )

    # ------------------------------------------------------------------ episodes
    def reset(
        self, seeds: Sequence[int], options: Sequence[dict[str, Any] | None] | None = None
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Start every member's episode: member k with ``seeds[k]`` (and ``options[k]``).

        Base slots are kept only when a seed's base run is not in the process's cache yet.
        """
        if len(seeds) != self.size:
            raise ValueError(f"need one seed per member: {self.size} members, {len(seeds)} seeds")
        if self.base_members:
            trainee_seeds = [episode_draws(self.task, seeding.np_random(int(seed))[0])[0] for seed in seeds]
            uncached = any(cached_base_best_val_loss(self.task, s, self.device) is None for s in trainee_seeds)
            slots = 2 * self.size if uncached else self.size
            if slots != self.population.size:
                self.population = self._new_population(slots)
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
        starts, bases = [], []
        for member, seed, option in zip(members, seeds, options, strict=True):
            np_random, _ = seeding.np_random(int(seed))  # as gymnasium.Env.reset(seed=...) seeds
            trainee_seed, initial_lr = episode_draws(task, np_random)
            if option and "initial_lr" in option:
                initial_lr = clip_lr(task, float(option["initial_lr"]))
            lr = start_lr(task, initial_lr)
            self.population.reset_member(member, trainee_seed, lr)
            self.trainee_seeds[member] = trainee_seed
            base_best = self._start_base(member, trainee_seed)
            if self.base_trackers[member] is not None:
                bases.append(member)
            self.trackers[member] = EpisodeTracker(task, lr, base_best)
            self.seeds[member] = int(seed)
            self._samplers[member] = None
            starts.append(initial_lr)
        measurements = self.population.measure(members + [self.size + member for member in bases])
        for member, measurement in zip(bases, measurements[len(members):], strict=True):
            self.base_trackers[member].start(measurement)
        observations, infos = [], []
        for member, measurement, initial_lr in zip(members, measurements[: len(members)], starts, strict=True):
            observation, info = self.trackers[member].start(measurement)
            info["initial_lr"] = initial_lr
            self._last_observations[member] = observation
            observations.append(observation)
            infos.append(info)
        return observations, infos

    def _start_base(self, member: int, trainee_seed: int) -> float | None:
        """Member ``member``'s base run: from the cache, as a base member (NaN until it ends), or serially."""
        self.base_trackers[member] = None
        if self.base_task is None:
            return None
        cached = cached_base_best_val_loss(self.task, trainee_seed, self.device)
        if cached is not None:
            return cached
        if self.population.size == self.size:  # no base slots
            return base_best_val_loss(self.dataset, self.task, trainee_seed, self.device)
        lr = start_lr(self.base_task, self.base_task.initial_lrs[0])
        self.population.reset_member(self.size + member, trainee_seed, lr)
        self.base_trackers[member] = EpisodeTracker(self.base_task, lr)
        return math.nan

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
        bases = [member for member in range(self.size) if self._base_running(member)]
        slots = running + [self.size + member for member in bases]
        counts = np.zeros(population.size, dtype=np.int64)
        schedules: dict[int, list[float]] = {}
        for member in running:
            nominal = self.trackers[member].decide(actions[member])
            sampler = self._samplers[member]
            if sampler is None:
                schedules[member] = nominal
            else:
                first = int(population.steps[member])
                schedules[member] = [float(sampler(first + index, rate, 1)) for index, rate in enumerate(nominal)]
            population.lrs[member] = nominal[-1]
        for member in bases:
            schedules[self.size + member] = self.base_trackers[member].decide(0.0)
        rates = np.ones((max((len(schedule) for schedule in schedules.values()), default=0), population.size))
        for slot, schedule in schedules.items():
            counts[slot] = len(schedule)
            rates[: len(schedule), slot] = schedule
        train_losses = population.train(counts, rates)
        diverged = [
            not math.isfinite(train_losses[slot]) or train_losses[slot] > task.divergence_loss for slot in slots
        ]
        measured = population.measure(slots, keep_best=[not flag for flag in diverged]) if slots else []
        measurements = {slot: None if flag else m for slot, m, flag in zip(slots, measured, diverged, strict=True)}
        for member in bases:  # first: a member ending now needs its base's result
            slot = self.size + member
            self.base_trackers[member].record(float(train_losses[slot]), measurements[slot])
            self._settle_base(member)
        rewards = np.zeros(self.size, dtype=np.float64)
        dones = np.ones(self.size, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.size)]
        finished = []
        for member in running:
            train_loss, measurement = float(train_losses[member]), measurements[member]
            if self._base_running(member) and has_diverged(task, train_loss, measurement):
                self._settle_base(member, serially=True)  # the penalty needs the base's result now
            observation, reward, done, info = self.trackers[member].record(train_loss, measurement)
            self._last_observations[member] = observation
            rewards[member], dones[member], infos[member] = reward, done, info
            if done:
                finished.append(member)
        for member, final_info in zip(finished, self._final_infos(finished), strict=True):
            infos[member].update(final_info)
        return self._last_observations.copy(), rewards, dones, infos

    def _base_running(self, member: int) -> bool:
        tracker = self.base_trackers[member]
        return tracker is not None and not tracker.done

    def _settle_base(self, member: int, serially: bool = False) -> None:
        """Give member ``member`` its base run's best validation loss once its base member has ended
        (or, ``serially``, by running the base as the single env does) and free the base slot."""
        tracker = self.base_trackers[member]
        if tracker is None or not (tracker.done or serially):
            return
        seed = self.trainee_seeds[member]
        if serially:
            value = base_best_val_loss(self.dataset, self.task, seed, self.device)
        else:
            value = tracker.best_val_loss
            remember_base_best_val_loss(self.task, seed, self.device, value)
        self.trackers[member].base_best_val_loss = value
        self.base_trackers[member] = None

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
