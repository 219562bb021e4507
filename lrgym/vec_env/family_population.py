"""A family population as a Stable-Baselines3 ``VecEnv``: N members on one drawn instance at a time.

Each sub-env is one member of a :class:`~lrgym.environment.family_population_env.FamilyPopulationEnv`,
its own env for PPO (its own observation, reward and done). A *round* runs one train
instance with N seeds; when every episode that began with the round has ended, the next
round draws the next instance (a new vmapped program) and every member starts again in
the same ``step_wait``, its last observation in ``infos[k]["terminal_observation"]``.

A member that ends before the others (it diverged) starts again at once on the same
instance with the next seed. If that episode is still running when the round ends, it is
cut there: ``done`` with ``infos[k]["TimeLimit.truncated"] = True`` and its last
observation, which SB3's PPO bootstraps with the value function, as for a time limit.

Seeds: every episode takes the next seed of ``first_seed, first_seed + seed_stride, ...``
(a round takes N, in member order; its instance is the one ``FamilyEnv.reset(seed=...)``
draws from its first seed), as :class:`~lrgym.vec_env.population_sb3.PopulationVecEnv` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvObs, VecEnvStepReturn

from lrgym.environment.family_population_env import FamilyPopulationEnv
from lrgym.tasks.family import TaskFamily
from lrgym.vec_env.population_sb3 import PopulationVecEnv


class FamilyPopulationVecEnv(PopulationVecEnv):
    """``size`` members of a family population on its train instances (see the module docstring).

    :param family: the family (overrides included).
    :param size: members per round (sub-envs).
    :param first_seed: the seed of the first episode.
    :param seed_stride: the step between consecutive episode seeds.
    :param accept_seed: whether :meth:`seed` restarts the seed sequence.
    :param env_options: ``device``, ``data_dir``, ``download``, ``base_members``.
    """

    def __init__(
        self,
        family: TaskFamily,
        size: int,
        first_seed: int = 0,
        seed_stride: int = 1,
        accept_seed: bool = True,
        **env_options: Any,
    ) -> None:
        self.env = FamilyPopulationEnv(family, size, "train", **env_options)
        self.family = family
        self.next_seed, self.seed_stride, self.accept_seed = int(first_seed), int(seed_stride), accept_seed
        self._actions: np.ndarray | None = None
        self._cohort: set[int] = set()  # members whose episode began with the round and is running
        VecEnv.__init__(self, int(size), self.env.observation_space, self.env.action_space)

    @property
    def task(self):
        """The current round's instance."""
        return self.env.task

    def reset(self) -> VecEnvObs:
        observations, self.reset_infos = self._start_round()
        self._reset_seeds()
        self._reset_options()
        return observations

    def _start_round(self) -> tuple[np.ndarray, list[dict[str, Any]]]:
        observations, infos = self.env.start(self._take_seeds(self.num_envs))
        self._cohort = set(range(self.num_envs))
        return observations, infos

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_async() must come before step_wait()")
        observations, rewards, dones, infos = self.env.step(list(self._actions))
        self._actions = None
        ended = [int(member) for member in np.flatnonzero(dones)]
        for member in ended:
            infos[member]["terminal_observation"] = observations[member].copy()
            infos[member]["TimeLimit.truncated"] = False
        self._cohort.difference_update(ended)
        if not self._cohort:  # the round is over: cut the episodes that started late, draw the next instance
            for member in range(self.num_envs):
                if member not in ended:
                    dones[member] = True
                    infos[member]["terminal_observation"] = observations[member].copy()
                    infos[member]["TimeLimit.truncated"] = True
            observations, self.reset_infos = self._start_round()
        elif ended:  # ended before the others: again on the same instance
            first, reset_infos = self.env.restart(ended, self._take_seeds(len(ended)))
            for member, observation, info in zip(ended, first, reset_infos, strict=True):
                observations[member] = observation
                self.reset_infos[member] = info
        return observations, rewards.astype(np.float32), dones, infos
