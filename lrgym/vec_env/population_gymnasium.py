"""A population through the gymnasium vector API (for users who do not use Stable-Baselines3).

:class:`PopulationVectorEnv` is a ``gymnasium.vector.VectorEnv`` whose sub-envs are the
members of one :class:`~lrgym.environment.population_env.PopulationEnv`.

Autoreset mode: ``AutoresetMode.SAME_STEP`` (``metadata["autoreset_mode"]``). A member
whose episode ends (budget spent or diverged) is reset within the same ``step``: the
returned observation is its new episode's first, ``terminations[k]`` is true, and
``infos["final_obs"][k]`` / ``infos["final_info"]`` hold the ended episode's last
observation and info (with the test results). The other members are untouched.
Episodes never truncate. Seeds: ``reset(seed=s)`` starts member k with ``s + k`` (or
``seed[k]`` for a list) and later episodes continue ``s + N, s + N + 1, ...``; with no
seed the sequence continues from where it stands (0 at construction).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from lrgym.environment.population_env import PopulationEnv


class PopulationVectorEnv(VectorEnv):
    """``num_envs`` members of one task (``spec_fields``) as a gymnasium ``VectorEnv``.

    :param num_envs: the number of members.
    :param spec_fields: task fields and env options (``device``, ``data_dir``, ``download``),
        as for :class:`~lrgym.environment.lr_control_env.LRControlEnv`.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, num_envs: int, **spec_fields: Any) -> None:
        self.env = PopulationEnv(num_envs, **spec_fields)
        self.num_envs = int(num_envs)
        self.single_observation_space = self.env.observation_space
        self.single_action_space = self.env.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.next_seed = 0

    def _take_seeds(self, count: int) -> list[int]:
        seeds = list(range(self.next_seed, self.next_seed + count))
        self.next_seed += count
        return seeds

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs:
                raise ValueError(f"need one seed per member: {self.num_envs} members, {len(seed)} seeds")
            seeds = [self._take_seeds(1)[0] if value is None else int(value) for value in seed]
        else:
            if seed is not None:
                self.next_seed = int(seed)
            seeds = self._take_seeds(self.num_envs)
        member_options = [options] * self.num_envs if options else None
        observations, member_infos = self.env.reset(seeds, member_options)
        infos: dict[str, Any] = {}
        for member, info in enumerate(member_infos):
            infos = self._add_info(infos, info, member)
        return observations, infos

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        observations, rewards, terminations, member_infos = self.env.step(list(actions))
        infos: dict[str, Any] = {}
        ended = [int(member) for member in np.flatnonzero(terminations)]
        for member in ended:
            infos = self._add_info(
                infos, {"final_obs": observations[member].copy(), "final_info": member_infos[member]}, member
            )
        if ended:
            first, reset_infos = self.env.reset_members(ended, self._take_seeds(len(ended)))
            for member, observation, info in zip(ended, first, reset_infos, strict=True):
                observations[member] = observation
                member_infos[member] = info
        for member, info in enumerate(member_infos):
            infos = self._add_info(infos, info, member)
        truncations = np.zeros(self.num_envs, dtype=bool)
        return observations, rewards, terminations, truncations, infos
