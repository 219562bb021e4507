"""The trained controller as an agent: ``make_agent("ppo:PATH", task)``.

Acts deterministically (the mean of the Gaussian policy), normalises each
observation with the statistics frozen at the end of training, and for ``ppo-lstm``
carries the LSTM state from one decision to the next, resetting it at episode start.
The same class acts for the held-out evaluation during training (with the live policy
and statistics), so what training selects is what ``ppo:PATH`` runs. Loading a
checkpoint to act unpickles nothing (:func:`lrgym.checkpoints.checkpoint.load_acting_policy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lrgym.agents.base import EpisodeStart
from lrgym.checkpoints.checkpoint import check_signature, load_acting_policy
from lrgym.tasks.specs import AgentSpec, TaskSpec


class PPOAgent:
    """An SB3 actor-critic policy (MLP or LSTM) behind the :class:`~lrgym.agents.base.Agent` protocol.

    :param policy: an SB3 ``ActorCriticPolicy`` or sb3-contrib ``RecurrentActorCriticPolicy``
        (``model.policy`` of a ``PPO`` / ``RecurrentPPO``).
    :param normalizer: anything with ``normalize_obs`` (a frozen
        :class:`~lrgym.checkpoints.policy_files.ObservationNormalizer`, or the live ``VecNormalize``
        during training); only read here, never updated.
    :param action_mode: the env action mode the policy was trained in.
    :param deterministic: act with the policy's mode rather than a sample.
    """

    population_capable = True  # lrgym.agents.population_runs: needs only observations and the spaces

    def __init__(self, policy: Any, normalizer: Any, action_mode: str, deterministic: bool = True) -> None:
        self.policy = policy
        self.normalizer = normalizer
        self.action_mode = action_mode
        self.deterministic = deterministic
        self.task_overrides: dict[str, Any] = {}  # set by load_ppo_agent: see acting_overrides
        self._lstm_state: Any = None
        self._episode_start = True

    def reset(self, start: EpisodeStart) -> None:
        env = start.env
        for what, policy_space, env_space in (
            ("observation", self.policy.observation_space, env.observation_space),
            ("action", self.policy.action_space, env.action_space),
        ):
            if policy_space != env_space:
                raise ValueError(
                    f"the controller's {what} space {policy_space} does not match the env's {env_space}"
                )
        self.begin_episode()

    def begin_episode(self) -> None:
        """Forget the recurrent state: the next decision is an episode's first."""
        self._lstm_state = None
        self._episode_start = True

    def state_dict(self) -> dict[str, Any]:
        """The acting state carried between decisions (the LSTM's, for ``ppo-lstm``)."""
        return {"lstm_state": self._lstm_state, "episode_start": self._episode_start}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (a resumed training loop makes the same decisions)."""
        self._lstm_state, self._episode_start = state["lstm_state"], bool(state["episode_start"])

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        normalized = self.normalizer.normalize_obs(np.asarray(observation, dtype=np.float32)[None])
        action, self._lstm_state = self.policy.predict(
            normalized,
            state=self._lstm_state,
            episode_start=np.array([self._episode_start]),
            deterministic=self.deterministic,
        )
        self._episode_start = False
        return action[0]


def acting_overrides(card: dict[str, Any]) -> dict[str, Any]:
    """The task fields a controller brings wherever it acts: the observation it was trained on
    (``features``), its action mode, for a ``residual`` controller the base schedule it corrects,
    for absolute rates (``lr``, ``log_lr``) the bounds its action space spans, and the trainee
    optimizer when its training family imposed one on every instance (a residual over Prodigy
    scales Prodigy's multiplier: it is Prodigy plus a controller). Other fields (budget,
    interval, ``lr_scale``, reward, ``base_lr_spread``) stay the task's own."""
    trained_on = card["task"]
    overrides: dict[str, Any] = {
        "features": trained_on.get("features", "xu"), "action": card["signature"]["action"],
    }
    if trained_on.get("base_schedule") is not None:
        overrides["base_schedule"] = trained_on["base_schedule"]
    if "lr_bounds" in card["signature"]:
        overrides["lr_min"], overrides["lr_max"] = card["signature"]["lr_bounds"]
    family_overrides = card.get("family", {}).get("overrides", {})
    for name in ("optimizer", "optimizer_kwargs"):
        if name in family_overrides:
            overrides[name] = trained_on[name]
    return overrides


def load_ppo_agent(
    path: str | Path, task: TaskSpec | None = None, device: str = "cpu", deterministic: bool = True
) -> PPOAgent:
    """The controller saved in checkpoint folder ``path``, checked against ``task`` (no pickle is read).

    The agent carries :func:`acting_overrides` as its ``task_overrides``: a controller
    trained on the scale-free state (or as a residual of a base schedule) acts so on any
    task with the same spaces, and :func:`lrgym.agents.run_episode` builds its env so.
    """

    controller = load_acting_policy(path, device=device)
    overrides = acting_overrides(controller.card)
    if task is not None:
        check_signature(controller.card, task.replace(**overrides), path)
    action_mode = controller.card["signature"]["action"]
    agent = PPOAgent(controller.policy, controller.normalizer, action_mode, deterministic)
    agent.task_overrides = overrides
    return agent


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
