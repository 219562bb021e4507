"""A population as a Stable-Baselines3 ``VecEnv``: N training episodes from one process.

Each sub-env of the ``VecEnv`` is one member of a :class:`~lrgym.environment.population_env.PopulationEnv`.
As in SB3's own ``VecEnv`` classes, a member whose episode ends (its budget is spent or it
diverged) is reset in the same ``step_wait`` with the next seed: its observation is the new
episode's first, ``infos[k]["terminal_observation"]`` holds the last one. The others are
untouched: a diverged member never changes another member's numbers.

Seeds: every reset takes the next seed of ``first_seed, first_seed + seed_stride, ...``,
in member order. ``seed(s)`` (which SB3 algorithms call with their own seed) restarts that
sequence at ``s`` when ``accept_seed`` is true; training passes ``accept_seed=False`` to
keep its episodes in their own seed range (see :class:`lrgym.train.TrainingSeeds`).

``--n-envs`` processes each hosting a population: :class:`lrgym.vec_env.subproc_population.SubprocPopulationVecEnv`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from lrgym.environment.population_env import PopulationEnv
from lrgym.tasks.specs import TaskSpec


class PopulationVecEnv(VecEnv):
    """``size`` members of one task as an SB3 ``VecEnv`` (see the module docstring).

    :param task: the task every member runs.
    :param size: the number of members (sub-envs).
    :param first_seed: the seed of the first episode.
    :param seed_stride: the step between consecutive episode seeds.
    :param accept_seed: whether :meth:`seed` restarts the seed sequence.
    :param env_options: ``device``, ``data_dir``, ``download``.
    """

    def __init__(
        self,
        task: TaskSpec,
        size: int,
        first_seed: int = 0,
        seed_stride: int = 1,
        accept_seed: bool = True,
        **env_options: Any,
    ) -> None:
        self.task = task
        self._keep(PopulationEnv(size, **task.to_dict(), **env_options), first_seed, seed_stride, accept_seed)

    def _keep(self, env: Any, first_seed: int, seed_stride: int, accept_seed: bool) -> None:
        """Keep ``env`` (the population engine, one sub-env per member) and start the seed sequence."""
        self.env = env
        self.next_seed, self.seed_stride, self.accept_seed = int(first_seed), int(seed_stride), accept_seed
        self._actions: np.ndarray | None = None
        VecEnv.__init__(self, env.size, env.observation_space, env.action_space)

    def _take_seeds(self, count: int) -> list[int]:
        seeds = [self.next_seed + index * self.seed_stride for index in range(count)]
        self.next_seed += count * self.seed_stride
        return seeds

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> VecEnvObs:
        options = [option or None for option in self._options]
        observations, self.reset_infos = self.env.reset(self._take_seeds(self.num_envs), options)
        self._reset_seeds()
        self._reset_options()
        return observations

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_async() must come before step_wait()")
        observations, rewards, dones, infos = self.env.step(list(self._actions))
        self._actions = None
        ended = [int(member) for member in np.flatnonzero(dones)]
        for member in ended:
            infos[member]["terminal_observation"] = observations[member].copy()
            infos[member]["TimeLimit.truncated"] = False
        self._after_step(observations, dones, infos, ended)
        return observations, rewards.astype(np.float32), dones, infos

    def _after_step(self, observations: np.ndarray, dones: np.ndarray, infos: list[dict], ended: list[int]) -> None:
        """Start the next episode of every member whose episode ``ended`` (in place)."""
        if ended:
            self._restart(ended, observations, self.env.reset_members)

    def _restart(self, members: list[int], observations: np.ndarray, reset: Any) -> None:
        """``reset(members, seeds)`` with the next seeds; their first observations replace the last ones."""
        first, reset_infos = reset(members, self._take_seeds(len(members)))
        for member, observation, info in zip(members, first, reset_infos, strict=True):
            observations[member] = observation
            self.reset_infos[member] = info

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Restart the seed sequence at ``seed`` (ignored when ``accept_seed`` is false)."""
        if seed is None or not self.accept_seed:
            return [None] * self.num_envs
        self.next_seed = int(seed)
        return [int(seed) + index * self.seed_stride for index in range(self.num_envs)]

    def close(self) -> None:
        pass

    # Members share one task: an attribute of "each env" is the population env's.
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        count = len(list(self._get_indices(indices)))
        if attr_name == "render_mode":
            return [None] * count
        return [getattr(self.env, attr_name)] * count

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call ``PopulationEnv.method_name(member, *args)`` for each member in ``indices``."""
        method = getattr(self.env, method_name)
        return [method(member, *method_args, **method_kwargs) for member in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(list(self._get_indices(indices)))

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs
