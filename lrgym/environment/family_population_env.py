"""FamilyPopulationEnv: a population on a task family, one drawn instance at a time.

A *round* draws one instance of the family and runs it with N seeds in lock-step: the
members share the instance's architecture, optimizer, batch size and budget, so one
:class:`~lrgym.environment.population_env.PopulationEnv` (one vmapped program) serves
them all; the next round draws the next instance and builds a new program for it.

- **Which instance.** A round started with episode seeds ``s_0 .. s_{N-1}`` runs the
  instance ``FamilyEnv.reset(seed=s_0)`` would draw (uniformly among the split's indices,
  :func:`lrgym.environment.family_env.family_episode_draws`).
- **What member k is.** Member k of a round on instance ``i`` behaves as
  ``FamilyEnv(family).reset(seed=s_k, options={"instance": i})``: the same instance, the
  trainee seed that reset derives from ``s_k`` (its info's ``instance_seed``), hence the
  same initial weights, batches, validation subset and initial rate, and from then on the
  same observations, rewards and rates under the same actions (within the population's
  float tolerance, ``tests/test_family_population_env.py``).
- **What a member sees.** Exactly what the family env shows: the instance env's
  observation, reward and episode end (the spaces are the family's), and in its info
  ``instance`` at every step, ``instance_seed`` and ``instance_fields`` at reset.
- **Counterfactuals.** With a reward that needs the base schedule's own run
  (``relative_terminal``), each member's base run is a base member of the same program.
- **A randomised base** (``base_lr_spread > 0``, study 2's cell R) is drawn once per round,
  from member 0's trainee seed as the single env draws it (:func:`episode_task`): the
  members share one program and so one base schedule. Member 0 then equals the single env
  exactly; members 1..N-1 run the round's base rather than the one their own seed would
  draw (the spread across episodes is the same, it is shared within a round).

A member may end before the others (it diverged): :meth:`restart` starts it again on the
same instance with a new seed, in the same program; the SB3 wrapper
(:mod:`lrgym.vec_env.family_population`) decides when the round ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.utils import seeding

from lrgym.environment.episode import episode_task
from lrgym.environment.family_env import as_family, family_episode_draws
from lrgym.environment.lr_control_env import action_space, episode_draws, observation_space
from lrgym.environment.population_env import PopulationEnv
from lrgym.tasks.family import TaskFamily, instance_fields
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.population import population_error


def possible_values(family: TaskFamily, name: str) -> list[Any]:
    """Every value a family's instances can take for field ``name`` (a list: its choices; an
    override or a plain value: that one; absent: the TaskSpec default)."""
    if name in family.overrides:
        return [family.overrides[name]]
    distribution = family.distributions.get(name, getattr(TaskSpec, name, None))
    return list(distribution) if isinstance(distribution, list) else [distribution]


def family_population_error(family: TaskFamily) -> str | None:
    """Why ``family``'s instances cannot run as populations (an optimizer or model one of them
    may draw cannot be stacked), or ``None``."""
    first = family.instance(family.indices("train")[0])
    for optimizer in possible_values(family, "optimizer"):
        for model in possible_values(family, "model"):
            error = population_error(first.replace(optimizer=optimizer, model=model))
            if error is not None:
                return (
                    f"family {family.name!r} may draw optimizer {optimizer!r} with model {model!r}, which a "
                    f"population cannot run ({error}); train the family on single envs (--n-envs)"
                )
    return None


class FamilyPopulationEnv:
    """N members on one instance of a family at a time (see the module docstring).

    :param family: a family name, :class:`~lrgym.tasks.family.TaskFamily` or its ``to_dict()``.
    :param size: members per round.
    :param split: the instances drawn (``train``, ``validation`` or ``test``).
    :param base_members: base-schedule counterfactuals as members of the batch (see
        :class:`~lrgym.environment.population_env.PopulationEnv`).
    :param overrides: applied to every instance, as for :class:`~lrgym.environment.family_env.FamilyEnv`.
    :raises ValueError: for a family whose instances cannot run as populations.
    """

    def __init__(
        self,
        family: str | TaskFamily | Mapping[str, Any],
        size: int,
        split: str = "train",
        *,
        base_members: bool = True,
        data_dir: str | None = None,
        download: bool = False,
        device: str | torch.device = "auto",
        **overrides: Any,
    ) -> None:
        self.family = as_family(family, **overrides)
        error = family_population_error(self.family)
        if error is not None:
            raise ValueError(error)
        if int(size) < 1:
            raise ValueError(f"a population needs at least one member, got {size}")
        self.size, self.split = int(size), split
        self.indices = self.family.indices(split)
        self.env_options = {"data_dir": data_dir, "download": download, "device": device, "base_members": base_members}
        first = self.family.instance(self.indices[0])
        self.observation_space, self.action_space = observation_space(first), action_space(first)
        self.env: PopulationEnv | None = None
        self.index: int | None = None
        self.instance_seeds: list[int | None] = [None] * self.size

    @property
    def task(self) -> TaskSpec:
        """The current round's instance (before the first round: the split's first)."""
        return self.env.task if self.env is not None else self.family.instance(self.indices[0])

    def draw_instance(self, seed: int) -> int:
        """The instance a round started with first seed ``seed`` runs (``FamilyEnv.reset(seed=seed)``'s draw)."""
        return family_episode_draws(seeding.np_random(int(seed))[0], self.indices)[0]

    def start(self, seeds: Sequence[int], instance: int | None = None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """A new round: the instance drawn from ``seeds[0]`` (or ``instance``), a new program for
        it, and member k's episode with seed ``seeds[k]``; the first observations and infos."""
        if len(seeds) != self.size:
            raise ValueError(f"need one seed per member: {self.size} members, {len(seeds)} seeds")
        index = self.draw_instance(seeds[0]) if instance is None else int(instance)
        task = self.family.instance(index)
        if task.base_lr_spread > 0:  # one base per round (see the module docstring), member 0's draw
            _, env_seed = family_episode_draws(seeding.np_random(int(seeds[0]))[0], self.indices, index)
            trainee_seed = episode_draws(task, seeding.np_random(env_seed)[0])[0]
            task = episode_task(task, trainee_seed)
        if observation_space(task) != self.observation_space or action_space(task) != self.action_space:
            raise ValueError(f"instance {index} of {self.family.name!r} has other spaces than the family's")
        self.env, self.index = None, index  # the previous program goes before the next is built
        self.env = PopulationEnv(self.size, **task.to_dict(), **self.env_options)
        observations, infos = self._reset(None, seeds)
        return np.stack(observations), infos

    def restart(self, members: Sequence[int], seeds: Sequence[int]) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Start ``members`` again on the round's instance, member ``members[j]`` with ``seeds[j]``."""
        if self.env is None:
            raise RuntimeError("start a round before restarting members")
        return self._reset([int(member) for member in members], seeds)

    def _reset(self, members: list[int] | None, seeds: Sequence[int]) -> tuple[Any, list[dict[str, Any]]]:
        """Reset ``members`` (``None``: all, a new round) with the env seeds the family env derives from ``seeds``."""
        draws = [family_episode_draws(seeding.np_random(int(seed))[0], self.indices, self.index) for seed in seeds]
        instance_seeds = [instance_seed for _, instance_seed in draws]
        if members is None:
            members = list(range(self.size))
            observations, infos = self.env.reset(instance_seeds)
        else:
            observations, infos = self.env.reset_members(members, instance_seeds)
        fields = instance_fields(self.env.task)
        for member, instance_seed, info in zip(members, instance_seeds, infos, strict=True):
            self.instance_seeds[member] = instance_seed
            info.update(instance=self.index, instance_seed=instance_seed, instance_fields=dict(fields))
        return observations, infos

    def done(self, member: int) -> bool:
        """Whether ``member``'s episode has ended (it sits out steps until restarted)."""
        return self.env is None or self.env.done(member)

    def step(self, actions: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """One decision of every running member (:meth:`PopulationEnv.step`), ``instance`` in each info."""
        if self.env is None:
            raise RuntimeError("start a round before step()")
        observations, rewards, dones, infos = self.env.step(actions)
        for info in infos:
            if info:
                info["instance"] = self.index
        return observations, rewards, dones, infos
