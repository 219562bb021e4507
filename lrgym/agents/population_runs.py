"""Episodes of many agents run as one population (:class:`~lrgym.environment.population_env.PopulationEnv`).

An agent can act in a population when all it needs from its env is the observation, the
info, the spaces and a per-step rate sampler: fixed schedules, the plateau rule, tuned
step decay and trained PPO controllers. They say so with a class attribute
``population_capable = True``. Agents with hooks into one trainee (ASLR's per-layer
rates, the lookahead's trial steps) run on single envs (:func:`lrgym.agents.run_episode`).

Member k's episode equals ``run_episode(agents[k], task, seeds[k])`` within the tolerance
of :mod:`lrgym.environment.population_env`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

from lrgym.agents.base import Agent, Decision, EpisodeResult, EpisodeStart, run_episode
from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.environment.population_env import PopulationEnv
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.population import population_error


def population_capable(agent: Any) -> bool:
    """Whether ``agent`` can act as a member of a population."""
    return bool(getattr(agent, "population_capable", False))


def can_run_as_population(agent: Any, task: TaskSpec) -> bool:
    """Whether episodes of ``agent`` on ``task`` can run as a population: the agent allows it,
    and so does the task it runs (with the agent's ``task_overrides``, e.g. another optimizer)."""
    if not population_capable(agent):
        return False
    overrides = dict(getattr(agent, "task_overrides", None) or {})
    task = task.replace(**overrides)
    return population_error(task) is None and not task.validation_percent  # see PopulationEnv


def run_population_episodes(
    agents: Sequence[Agent], task: TaskSpec, seeds: Sequence[int], **env_options: Any
) -> list[EpisodeResult]:
    """Run ``agents[k]`` with episode seed ``seeds[k]`` for every k, as one population.

    :param agents: one agent object per member (each keeps its own episode state), all
        speaking the same action mode, with the same ``task_overrides``, and population-capable.
    :param env_options: ``device``, ``data_dir``, ``download``.
    :return: one result per member; ``wall_time`` is the population's time shared equally.
    """
    if len(agents) != len(seeds) or not seeds:
        raise ValueError(f"need one agent per seed and at least one seed, got {len(agents)} and {len(seeds)}")
    modes = {agent.action_mode for agent in agents}
    if len(modes) != 1:
        raise ValueError(f"a population's agents must speak one action mode, got {sorted(modes)}")
    refused = [type(agent).__name__ for agent in agents if not population_capable(agent)]
    if refused:
        raise ValueError(f"{', '.join(sorted(set(refused)))} cannot act in a population: run it on single envs")
    overrides = [dict(getattr(agent, "task_overrides", None) or {}) for agent in agents]
    if any(override != overrides[0] for override in overrides):
        raise ValueError("a population's agents must share their task overrides (features, action, base schedule)")
    # The env run_episode would build: the agents' task overrides, then their action mode.
    task = task.replace(**{**overrides[0], "action": modes.pop()})
    started = time.perf_counter()
    env = PopulationEnv(len(seeds), **task.to_dict(), **env_options)
    observations, infos = env.reset(list(seeds))
    firsts = [
        (observation.copy(), info["initial_lr"], info["val_loss"])
        for observation, info in zip(observations, infos, strict=True)
    ]
    for member, (agent, seed) in enumerate(zip(agents, seeds, strict=True)):
        agent.reset(EpisodeStart(env.task, infos[member]["initial_lr"], int(seed), env.member(member)))
    trajectories: list[list[Decision]] = [[] for _ in seeds]
    returns = [0.0] * len(seeds)
    finals: list[dict[str, Any]] = [{} for _ in seeds]
    running = set(range(len(seeds)))
    while running:
        actions = [agent.act(observations[k], infos[k]) if k in running else None for k, agent in enumerate(agents)]
        observations, rewards, dones, infos = env.step(actions)
        for member in sorted(running):
            info = infos[member]
            returns[member] += float(rewards[member])
            trajectories[member].append(Decision(
                decision=len(trajectories[member]), step=info["step"], lr=info["lr"],
                train_loss=info["train_loss"], val_loss=info["val_loss"], val_accuracy=info["val_accuracy"],
                reward=float(rewards[member]),
            ))
            if dones[member]:
                finals[member] = info
                running.discard(member)
    share = (time.perf_counter() - started) / len(seeds)
    return [
        EpisodeResult(
            trajectory=trajectory, final_info=final, first_observation=first[0], initial_lr=first[1],
            first_lr=trajectory[0].lr if trajectory else float("nan"), wall_time=share,
            episode_return=episode_return, initial_val_loss=first[2], task=env.task,
        )
        for trajectory, final, first, episode_return in zip(trajectories, finals, firsts, returns, strict=True)
    ]


def run_agent_jobs(
    jobs: list[tuple[TaskSpec, list[int]]], agent: Agent, env_options: dict[str, Any], population: bool = True,
    envs: dict[str, LRControlEnv] | None = None,
) -> list[list[EpisodeResult]]:
    """For each (task, seeds) job, ``agent``'s episodes on those seeds: as one population when
    ``population`` allows it, the agent and task can and there are several seeds (a population
    of one is slower than the single env), else one by one on a single env kept in ``envs``
    (default: this process's, kept between calls). The held-out evaluation during training
    runs it, also in the training's worker processes."""
    envs = _KEPT_ENVS if envs is None else envs
    results = []
    for task, seeds in jobs:
        if population and len(seeds) > 1 and can_run_as_population(agent, task):
            members = [copy.copy(agent) for _ in seeds]  # own episode state, shared policy
            results.append(run_population_episodes(members, task, seeds, **env_options))
            continue
        env = kept_env(envs, task, env_options)
        results.append([run_episode(agent, env, seed) for seed in seeds])
    return results


def kept_env(envs: dict[str, LRControlEnv], task: TaskSpec, env_options: dict[str, Any]) -> LRControlEnv:
    """The single env of ``task`` in ``envs``, built on first use (a family has one per instance)."""
    key = repr(task)
    if key not in envs:
        envs[key] = LRControlEnv(**task.to_dict(), **env_options)
    return envs[key]


_KEPT_ENVS: dict[str, LRControlEnv] = {}  # single envs kept between calls (held-out evaluations)
