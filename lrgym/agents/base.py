"""The agent interface and the one function that runs an episode of any agent on any task."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.tasks.specs import TaskSpec


@dataclass
class EpisodeStart:
    """The facts an agent gets at the start of an episode.

    ``env`` is the unwrapped environment: agents that need more than the observation
    (ASLR's per-group sampler, the lookahead's trial steps on the trainee) use it.
    """

    task: TaskSpec
    initial_lr: float
    seed: int
    env: LRControlEnv

    @property
    def steps(self) -> int:
        return self.task.steps

    @property
    def interval(self) -> int:
        return self.task.interval


@runtime_checkable
class Agent(Protocol):
    """A learning-rate policy. ``action_mode`` is the env action mode it speaks
    (``"lr"``: absolute rates, ``"scale"`` or ``"discrete"``).

    An agent may also carry ``task_overrides``, a dict of task fields it changes wherever
    it runs (an agent that is an optimizer: ``{"optimizer": "prodigy"}``);
    :func:`run_episode` builds its env with them. The env's draws for a seed (trainee
    seed, then initial rate) do not depend on them, so seeds stay paired.
    """

    action_mode: str

    def reset(self, start: EpisodeStart) -> None:
        """Called after the env's reset, before the first decision."""

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> Any:
        """The action for the next interval, given the latest observation and info."""


@dataclass
class Decision:
    """One row of an episode's trajectory (after the interval the decision governed)."""

    decision: int
    step: int
    lr: float
    train_loss: float
    val_loss: float
    val_accuracy: float
    reward: float


@dataclass
class EpisodeResult:
    """One episode: ``initial_lr`` is the env's draw for the seed (the same for every
    agent), ``first_lr`` the rate the agent ran in the first interval."""

    trajectory: list[Decision]
    final_info: dict[str, Any]
    first_observation: np.ndarray
    initial_lr: float
    first_lr: float
    wall_time: float
    episode_return: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    initial_val_loss: float = float("nan")  # the untrained network's validation loss (at reset)
    task: TaskSpec | None = None  # the task the episode ran (the agent's task overrides applied)

    @property
    def diverged(self) -> bool:
        return bool(self.final_info.get("diverged", False))


def make_env(task: TaskSpec, action_mode: str | None = None, **env_options: Any) -> LRControlEnv:
    """An unwrapped env for ``task`` (optionally with another action mode)."""
    if action_mode is not None and action_mode != task.action:
        task = task.replace(action=action_mode)
    return LRControlEnv(**task.to_dict(), **env_options)


def run_episode(
    agent: Agent,
    task: TaskSpec | LRControlEnv,
    seed: int,
    **env_options: Any,
) -> EpisodeResult:
    """Run one episode of ``agent`` on ``task`` with episode seed ``seed``.

    :param task: a task spec (an env is built in the agent's action mode, with the
        agent's ``task_overrides``) or an env already in that mode and with those
        overrides (reused, e.g. across seeds).
    :param env_options: ``device``, ``data_dir``, ``download`` for a new env.
    """
    overrides = dict(getattr(agent, "task_overrides", None) or {})
    if isinstance(task, LRControlEnv):
        env = task
        if env.task.action != agent.action_mode:
            raise ValueError(
                f"agent speaks action mode {agent.action_mode!r}, env uses {env.task.action!r}"
            )
        if env.task.replace(**overrides) != env.task:
            raise ValueError(f"agent needs task overrides {overrides}, the env's task lacks them")
    else:
        env = make_env(task.replace(**overrides), agent.action_mode, **env_options)
    started = time.perf_counter()
    observation, info = env.reset(seed=seed)
    first_observation, initial_lr = observation.copy(), info["initial_lr"]
    initial_val_loss = info["val_loss"]
    agent.reset(EpisodeStart(env.task, initial_lr, seed, env))
    trajectory: list[Decision] = []
    episode_return, done = 0.0, False
    while not done:
        action = agent.act(observation, info)
        observation, reward, terminated, truncated, info = env.step(action)
        episode_return += reward
        done = terminated or truncated
        trajectory.append(
            Decision(
                decision=len(trajectory),
                step=info["step"],
                lr=info["lr"],
                train_loss=info["train_loss"],
                val_loss=info["val_loss"],
                val_accuracy=info["val_accuracy"],
                reward=reward,
            )
        )
    return EpisodeResult(
        trajectory=trajectory,
        final_info=info,
        first_observation=first_observation,
        initial_lr=initial_lr,
        first_lr=trajectory[0].lr if trajectory else float("nan"),
        wall_time=time.perf_counter() - started,
        episode_return=episode_return,
        initial_val_loss=initial_val_loss,
        task=env.task,
    )
