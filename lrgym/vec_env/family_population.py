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
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs

from lrgym.environment.family_population_env import FamilyPopulationEnv
from lrgym.tasks.family import TaskFamily
from lrgym.vec_env.population_sb3 import PopulationVecEnv


class FamilyPopulationVecEnv(PopulationVecEnv):
    """``size`` members of a family population on its train instances (see the module docstring).

    :param family: the family (overrides included).
    :param env_options: ``device``, ``data_dir``, ``download``, ``base_members``; the other
        parameters are :class:`~lrgym.vec_env.population_sb3.PopulationVecEnv`'s.
    """

    def __init__(
        self, family: TaskFamily, size: int, first_seed: int = 0, seed_stride: int = 1, accept_seed: bool = True,
        **env_options: Any,
    ) -> None:
        self.family = family
        self._cohort: set[int] = set()  # members whose episode began with the round and is running
        self._keep(FamilyPopulationEnv(family, size, "train", **env_options), first_seed, seed_stride, accept_seed)

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

    def _after_step(self, observations: np.ndarray, dones: np.ndarray, infos: list[dict], ended: list[int]) -> None:
        self._cohort.difference_update(ended)
        if not self._cohort:  # the round is over: cut the episodes that started late, draw the next instance
            for member in range(self.num_envs):
                if member not in ended:
                    dones[member] = True
                    infos[member]["terminal_observation"] = observations[member].copy()
                    infos[member]["TimeLimit.truncated"] = True
            observations[:], self.reset_infos = self._start_round()
        elif ended:  # ended before the others: again on the same instance
            self._restart(ended, observations, self.env.restart)
