"""A Stable-Baselines3 ``VecEnv`` whose environments live in Ray actors across a cluster.

SB3 has no distributed VecEnv of its own (its issue 1345 sketches one with a Ray actor
per env); this is that sketch, kept to ``SubprocVecEnv``'s behaviour message for
message: each env is built by its factory inside one actor (one CPU, a GPU share when
its trainee trains on CUDA), ``step_async`` sends every action at once, ``step_wait``
gathers the results, an env whose episode ends is reset in its actor and the last
observation travels in ``info["terminal_observation"]``. The policy and the PPO updates
stay in the driver (on its GPU if it has one): only actions, observations, rewards and
infos cross the network.

Actors are placed with ``scheduling_strategy="SPREAD"`` (Ray's default packs them onto
as few nodes as possible, often all on the head node); :attr:`RayVecEnv.nodes` says
where each landed. A lost actor is not restarted (its trainee's state is gone): training
stops with the error and continues with ``lrgym train --resume``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import ray
from stable_baselines3.common.env_util import is_wrapped
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn
from stable_baselines3.common.vec_env.patch_gym import _patch_env
from stable_baselines3.common.vec_env.subproc_vec_env import _stack_obs

from lrgym.runners.backend import pin_threads
from lrgym.runners.ray_tasks import get_unwrapped, node_name


@ray.remote
class EnvActor:
    """One env in its own Ray worker process: ``SubprocVecEnv``'s worker loop as actor methods."""

    def __init__(self, env_factory: Callable[[], gym.Env], threads: int = 1) -> None:
        pin_threads(threads)  # the parallelism is across actors, as across subprocesses
        self.env = _patch_env(env_factory())

    def node(self) -> str:
        return node_name()

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.env.observation_space, self.env.action_space

    def step(self, action: Any) -> tuple[Any, float, bool, dict[str, Any], dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        reset_info: dict[str, Any] = {}
        if done:  # keep the last observation, then start the next episode here
            info["terminal_observation"] = observation
            observation, reset_info = self.env.reset()
        return observation, reward, done, info, reset_info

    def reset(self, seed: int | None, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return self.env.reset(seed=seed, **({"options": options} if options else {}))

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def has_attr(self, name: str) -> bool:
        try:
            self.env.get_wrapper_attr(name)
            return True
        except AttributeError:
            return False

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)

    def env_method(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def is_wrapped(self, wrapper_class: type[gym.Wrapper]) -> bool:
        return is_wrapped(self.env, wrapper_class)


class RayVecEnv(VecEnv):
    """``len(env_fns)`` envs, each in a Ray actor spread over the cluster (the driver must be connected).

    :param env_fns: picklable callables that build one env each (as for ``SubprocVecEnv``).
    :param num_cpus: CPUs each actor asks for.
    :param num_gpus: the share of a GPU each actor asks for (0 for CPU trainees).
    :param threads: torch threads in each actor (``--threads``).
    :raises ValueError: the cluster has fewer CPUs or GPUs than the actors ask for (they
        would wait forever).
    """

    def __init__(
        self, env_fns: Sequence[Callable[[], gym.Env]], num_cpus: float = 1, num_gpus: float = 0, threads: int = 1
    ) -> None:
        resources = ray.cluster_resources()
        for name, each in (("CPU", num_cpus), ("GPU", num_gpus)):
            needed = each * len(env_fns)
            if needed > resources.get(name, 0):
                raise ValueError(
                    f"{len(env_fns)} env actors need {needed:g} {name}s; the Ray cluster has "
                    f"{resources.get(name, 0):g}: lower --n-envs or add nodes"
                )
        actor = EnvActor.options(num_cpus=num_cpus, num_gpus=num_gpus, scheduling_strategy="SPREAD")
        self.actors = [actor.remote(env_fn, threads) for env_fn in env_fns]
        self.nodes: list[str] = get_unwrapped([a.node.remote() for a in self.actors])
        self.waiting = False
        self.closed = False
        self._pending: list[Any] = []
        observation_space, action_space = get_unwrapped(self.actors[0].spaces.remote())
        super().__init__(len(env_fns), observation_space, action_space)

    def placement(self) -> str:
        """Where the actors landed: ``N env actors on K node(s): node (count), ...``."""
        counts = Counter(self.nodes)
        where = ", ".join(f"{node} ({count})" for node, count in sorted(counts.items()))
        return f"{len(self.nodes)} env actors on {len(counts)} node(s): {where}"

    def step_async(self, actions: np.ndarray) -> None:
        self._pending = [actor.step.remote(action) for actor, action in zip(self.actors, actions, strict=True)]
        self.waiting = True

    def step_wait(self) -> VecEnvStepReturn:
        results = get_unwrapped(self._pending)
        self.waiting, self._pending = False, []
        observations, rewards, dones, infos, self.reset_infos = zip(*results, strict=True)  # type: ignore[assignment]
        return _stack_obs(observations, self.observation_space), np.stack(rewards), np.stack(dones), infos  # type: ignore[return-value]

    def reset(self) -> VecEnvObs:
        results = get_unwrapped([
            actor.reset.remote(self._seeds[index], self._options[index]) for index, actor in enumerate(self.actors)
        ])
        observations, self.reset_infos = zip(*results, strict=True)  # type: ignore[assignment]
        self._reset_seeds()  # seeds and options are used once, as in SubprocVecEnv
        self._reset_options()
        return _stack_obs(observations, self.observation_space)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self.waiting:
                ray.wait(self._pending, num_returns=len(self._pending))
            ray.wait([actor.close.remote() for actor in self.actors], num_returns=len(self.actors), timeout=30)
        finally:
            for actor in self.actors:
                ray.kill(actor)
            self.closed = True

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            return [None for _ in self.actors]
        return get_unwrapped([actor.render.remote() for actor in self.actors])

    def has_attr(self, attr_name: str) -> bool:
        return all(get_unwrapped([actor.has_attr.remote(attr_name) for actor in self.actors]))

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return get_unwrapped([actor.get_attr.remote(attr_name) for actor in self._targets(indices)])

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        get_unwrapped([actor.set_attr.remote(attr_name, value) for actor in self._targets(indices)])

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        return get_unwrapped([
            actor.env_method.remote(method_name, method_args, method_kwargs) for actor in self._targets(indices)
        ])

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return get_unwrapped([actor.is_wrapped.remote(wrapper_class) for actor in self._targets(indices)])

    def _targets(self, indices: VecEnvIndices) -> list[Any]:
        return [self.actors[index] for index in self._get_indices(indices)]
