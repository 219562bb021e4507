"""Fixed learning-rate schedules, driven by the real ``torch.optim.lr_scheduler`` objects.

A schedule agent never re-derives a schedule's formula. It owns a one-parameter dummy
optimizer, builds the torch scheduler on it and steps the pair once per trainee step;
the rate the dummy optimizer holds before trainee step ``t`` is the rate the trainee
uses at step ``t``. Two hooks of :class:`~lrgym.environment.lr_control_env.LRControlEnv` carry it across:

- at each decision the agent sends the rate of the interval's first step as an
  absolute ``lr`` action (so ``info["lr"]`` and the observation's ``log10_lr`` show the
  schedule, and the scheduler never compounds with the env's own writes);
- a per-step sampler (:meth:`~lrgym.environment.lr_control_env.LRControlEnv.set_lr_sampler`) gives the
  trainee the scheduler's rate at *every* optimizer step, not once per decision.

Every rate is clipped to the task's ``[lr_min, lr_max]``, like any action.

``ReduceLROnPlateau`` is the exception: it needs a metric, so it is stepped once per
decision with the validation loss the env reports (``info["val_loss"]``, including the
one measured at reset), and its counts (``patience``, ``cooldown``) are in decisions.

Only the learning rate reaches the trainee. Schedulers that also cycle momentum
(``OneCycleLR``, ``CyclicLR`` with ``cycle_momentum``) cycle the dummy optimizer's
momentum, which is *not* carried to the trainee's optimizer: its momentum/betas stay
those of the task spec.

## The schedule spec (the ``params`` of an ``agents/*.toml`` of kind ``schedule``)

- ``scheduler``: a class name in ``torch.optim.lr_scheduler`` (``StepLR``, ``OneCycleLR`` ...);
- ``kwargs``: its keyword arguments, as they are;
- ``budget_fractions``: keyword -> fraction (or list of fractions) of the budget, rounded
  to a whole number of steps, at least 1 (``step_size = 0.4`` is 240 of 600 steps). The
  budget is the task's ``steps``; for ``ReduceLROnPlateau`` it is its number of decisions;
- ``lr_multiples``: keyword -> multiple (or list) of the initial rate (``max_lr = 1.0``);
- ``budget_total_factors``: keyword -> the total change over the budget, turned into the
  per-step factor (``gamma = 0.01`` for ``ExponentialLR`` is ``0.01 ** (1 / steps)``);
- ``schedulers``: nested schedule specs, for ``SequentialLR`` and ``ChainedScheduler``;
- ``initial_lr`` (optional): a fixed starting rate. Without it the schedule starts from
  the env's initial rate (drawn from the task's ``initial_lrs`` by the episode seed), the
  same rate every agent starts from on that seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lrgym.agents.base import EpisodeStart
from lrgym.environment.lr_control_env import clip_lr
from lrgym.tasks.specs import AgentSpec, TaskSpec
from lrgym.trainee.schedule_rates import (  # noqa: F401  (re-exported: the agents' public names)
    SCHEDULE_KEYS,
    build_scheduler,
    dummy_optimizer,
    scheduler_kwargs,
    scheduler_rates,
)

# Options every agent factory of this package accepts and a schedule does not need:
# the env options, used by agents that run episodes of their own (step-grid tuning).
ENV_OPTION_KEYS = ("device", "data_dir", "download")
METRIC_SCHEDULERS = ("ReduceLROnPlateau",)


class _SchedulerAgent:
    """An agent that runs a torch scheduler from a schedule spec, from a fixed or the env's initial rate."""

    action_mode = "lr"
    population_capable = True  # lrgym.agents.population_runs: needs only observations and a sampler

    def __init__(self, schedule: Mapping[str, Any], initial_lr: float | None = None) -> None:
        self.schedule = dict(schedule)
        self.initial_lr = None if initial_lr is None else float(initial_lr)


class ScheduleAgent(_SchedulerAgent):
    """A fixed schedule: the torch scheduler's rate at every trainee step.

    :param schedule: a schedule spec (module docstring) whose scheduler is not metric-driven.
    :param initial_lr: a fixed starting rate; ``None``: the env's initial rate.
    """

    def __init__(self, schedule: Mapping[str, Any], initial_lr: float | None = None) -> None:
        super().__init__(schedule, initial_lr)
        self.rates: list[float] = []

    def reset(self, start: EpisodeStart) -> None:
        task = start.task
        initial_lr = self.initial_lr if self.initial_lr is not None else start.initial_lr
        rates = scheduler_rates(self.schedule, task.steps, initial_lr)
        self.rates = np.clip(rates, task.lr_min, task.lr_max).tolist()
        start.env.set_lr_sampler(self.rate_at)

    def rate_at(self, step: int, nominal_lr: float = math.nan, num_groups: int = 1) -> float:
        """The scheduled rate of trainee step ``step`` (the env's per-step sampler)."""
        return self.rates[min(step, len(self.rates) - 1)]

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.array([self.rate_at(info["step"])])


class PlateauAgent(_SchedulerAgent):
    """``ReduceLROnPlateau`` stepped at every decision with the validation loss.

    :param schedule: a schedule spec whose scheduler is ``ReduceLROnPlateau``; its budget
        fractions (e.g. ``patience``) are fractions of the number of decisions.
    :param initial_lr: a fixed starting rate; ``None``: the env's initial rate.
    """

    def reset(self, start: EpisodeStart) -> None:
        initial_lr = self.initial_lr if self.initial_lr is not None else start.initial_lr
        self.task = start.task
        self.optimizer = dummy_optimizer(initial_lr)
        self.scheduler = build_scheduler(
            self.optimizer, self.schedule, start.task.decisions, initial_lr
        )

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if info["val_loss"] is not None:
            self.optimizer.step()
            self.scheduler.step(info["val_loss"])
        rate = self.optimizer.param_groups[0]["lr"]
        return np.array([clip_lr(self.task, rate)])


def split_options(params: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """Spec params overridden by ``options``, without the env options (device ...)."""
    merged = {**params, **options}
    return {key: value for key, value in merged.items() if key not in ENV_OPTION_KEYS}


def make_schedule_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> ScheduleAgent | PlateauAgent:
    """Factory of kind ``schedule``: ``options`` override the spec's params."""
    schedule = split_options(spec.params, options)
    initial_lr = schedule.pop("initial_lr", None)
    if "scheduler" not in schedule:
        raise ValueError(f"agent {spec.name!r}: a schedule spec needs 'scheduler'")
    agent_class = PlateauAgent if schedule["scheduler"] in METRIC_SCHEDULERS else ScheduleAgent
    agent = agent_class(schedule, initial_lr)
    # Build once now so a bad spec fails when the agent is made, not mid-evaluation.
    budget = task.decisions if agent_class is PlateauAgent else task.steps
    build_scheduler(dummy_optimizer(1e-3), schedule, budget, 1e-3)
    return agent
