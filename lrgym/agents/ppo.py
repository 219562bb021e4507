"""The trained controller as an agent: ``make_agent("ppo:PATH", task)``.

Acts deterministically (the mean of the Gaussian policy), normalises each
observation with the statistics frozen at the end of training, and for ``ppo-lstm``
carries the LSTM state from one decision to the next, resetting it at episode start.
The same class acts for the held-out evaluation during training (with the live model
and statistics), so what training selects is what ``ppo:PATH`` runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lrgym.agents.base import EpisodeStart
from lrgym.checkpoint import load_checkpoint
from lrgym.specs import AgentSpec, TaskSpec


class PPOAgent:
    """A PPO or RecurrentPPO policy behind the :class:`~lrgym.agents.base.Agent` protocol.

    :param model: an SB3 ``PPO`` or sb3-contrib ``RecurrentPPO``.
    :param vec_normalize: the ``VecNormalize`` whose ``normalize_obs`` the policy was
        trained behind (only read here, never updated).
    :param action_mode: the env action mode the policy was trained in.
    :param deterministic: act with the policy's mode rather than a sample.
    """

    population_capable = True  # lrgym.agents.population: needs only observations and the spaces

    def __init__(
        self, model: Any, vec_normalize: Any, action_mode: str, deterministic: bool = True
    ) -> None:
        self.model = model
        self.vec_normalize = vec_normalize
        self.action_mode = action_mode
        self.deterministic = deterministic
        self._lstm_state: Any = None
        self._episode_start = True

    def reset(self, start: EpisodeStart) -> None:
        env = start.env
        for what, model_space, env_space in (
            ("observation", self.model.observation_space, env.observation_space),
            ("action", self.model.action_space, env.action_space),
        ):
            if model_space != env_space:
                raise ValueError(
                    f"the controller's {what} space {model_space} does not match the env's {env_space}"
                )
        self.begin_episode()

    def begin_episode(self) -> None:
        """Forget the recurrent state: the next decision is an episode's first."""
        self._lstm_state = None
        self._episode_start = True

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        normalized = self.vec_normalize.normalize_obs(np.asarray(observation, dtype=np.float32)[None])
        action, self._lstm_state = self.model.predict(
            normalized,
            state=self._lstm_state,
            episode_start=np.array([self._episode_start]),
            deterministic=self.deterministic,
        )
        self._episode_start = False
        return action[0]


def load_ppo_agent(
    path: str | Path, task: TaskSpec | None = None, device: str = "cpu", deterministic: bool = True
) -> PPOAgent:
    """The controller saved in checkpoint folder ``path``, checked against ``task``."""
    checkpoint = load_checkpoint(path, task=task, device=device)
    action_mode = checkpoint.card["signature"]["action"]
    return PPOAgent(checkpoint.model, checkpoint.vec_normalize, action_mode, deterministic)


def from_checkpoint(spec: AgentSpec, task: TaskSpec, device: str = "cpu", **options: Any) -> PPOAgent:
    """Factory of kind ``ppo-checkpoint`` (``ppo:PATH``): ``spec.params["path"]``.

    The policy runs on ``device`` (the CPU by default: a 32-unit network is fastest
    there); other options are for other agent kinds and are ignored.
    """
    return load_ppo_agent(spec.params["path"], task, device=device)


def training_recipe(spec: AgentSpec, task: TaskSpec, **options: Any) -> PPOAgent:
    """Factory of kinds ``ppo`` / ``ppo-lstm``: these specs say how to *train* a controller."""
    raise ValueError(
        f"agent {spec.name!r} (kind {spec.kind!r}) is a training recipe, not a policy: train it with "
        f"`lrgym train {task.name} --agent {spec.name} --out DIR`, then use ppo:DIR"
    )
