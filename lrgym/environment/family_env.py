"""The env of a task family: a task drawn from the family at every reset."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.tasks.family import TaskFamily, instance_fields, load_family
from lrgym.tasks.specs import TaskSpec


def as_family(family: str | TaskFamily | Mapping[str, Any], **overrides: Any) -> TaskFamily:
    """A family given by name, as a :class:`TaskFamily` or as its ``to_dict()``, with ``overrides`` added."""
    if isinstance(family, str):
        family = load_family(family)
    elif isinstance(family, Mapping):
        family = TaskFamily.from_dict(family)
    return family.with_overrides(**overrides) if overrides else family


def family_episode_draws(
    np_random: np.random.Generator, indices: range, instance: int | None = None
) -> tuple[int, int]:
    """What :meth:`FamilyEnv.reset` draws from the episode's generator: the instance
    (uniformly among ``indices``, unless ``instance`` is given) and the seed its env is reset with."""
    index = int(instance) if instance is not None else int(indices[int(np_random.integers(len(indices)))])
    return index, int(np_random.integers(2**31 - 1))


class FamilyEnv(gym.Env):
    """Learning-rate control on a task drawn from a family at every reset.

    ``gymnasium.make("lrgym/<family>-v0", **overrides)`` builds one on the *train*
    instances. It delegates every episode to an :class:`~lrgym.environment.lr_control_env.LRControlEnv` of the
    drawn instance: observation, action, reward and episode end are that env's (see its
    docstring), and they are the same spaces for every instance (checked at each reset).

    ## Starting state

    ``reset(seed=s)`` draws, from ``s`` only, the instance (uniformly among the split's
    indices) and the trainee seed, then resets the instance's env with that seed: the
    same ``s`` gives the same instance and the same start. ``options={"instance": i}``
    runs instance ``i`` (of any split) instead of drawing one; other options go to the
    instance's env.

    ## Info

    The instance env's info, plus at every step ``instance`` (the index) and at reset
    ``instance_seed`` (the trainee seed) and ``instance_fields``
    (:func:`instance_fields`: dataset, model and their kwargs, optimizer, batch size,
    steps, interval, initial rate).

    Envs are built once per instance and kept (the ``cache_size`` most recent), with
    their datasets, which :mod:`lrgym.trainee.data` caches per process.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        family: str | TaskFamily | Mapping[str, Any],
        split: str = "train",
        *,
        data_dir: str | None = None,
        download: bool = False,
        device: str = "auto",
        cache_size: int = 16,
        **overrides: Any,
    ) -> None:
        self.family = as_family(family, **overrides)
        self.split = split
        self.indices = self.family.indices(split)
        self.env_options = {"data_dir": data_dir, "download": download, "device": device}
        self.cache_size = max(1, int(cache_size))
        self._envs: OrderedDict[int, Any] = OrderedDict()
        first = self.instance_env(self.indices[0])
        self.observation_space, self.action_space = first.observation_space, first.action_space
        self.current = None
        self.index: int | None = None

    @property
    def task(self) -> TaskSpec:
        """The current instance (before the first reset: the split's first)."""
        return (self.current or self.instance_env(self.indices[0])).task

    def instance_env(self, index: int):
        """The env of instance ``index``, built on first use and kept (least recently used goes)."""
        if index in self._envs:
            self._envs.move_to_end(index)
            return self._envs[index]
        env = LRControlEnv(**self.family.instance(index).to_dict(), **self.env_options)
        self._envs[index] = env
        while len(self._envs) > self.cache_size:
            self._envs.popitem(last=False)
        return env

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        index, trainee_seed = family_episode_draws(self.np_random, self.indices, options.pop("instance", None))
        env = self.instance_env(index)
        if env.observation_space != self.observation_space or env.action_space != self.action_space:
            raise ValueError(
                f"instance {index} of {self.family.name!r} has other spaces ({env.observation_space}, "
                f"{env.action_space}) than the family's ({self.observation_space}, {self.action_space})"
            )
        self.current, self.index = env, index
        observation, info = env.reset(seed=trainee_seed, options=options or None)
        info.update(instance=index, instance_seed=trainee_seed, instance_fields=instance_fields(env.task))
        return observation, info

    def step(self, action: Any):
        if self.current is None:
            raise RuntimeError("call reset() before step()")
        observation, reward, terminated, truncated, info = self.current.step(action)
        info["instance"] = self.index
        return observation, reward, terminated, truncated, info
