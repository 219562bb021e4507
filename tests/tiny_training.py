"""Tiny meta-training runs shared by the train, checkpoint and controller tests (a few seconds each)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

from lrgym.tasks.specs import AgentSpec, TaskSpec, load_agent_spec
from lrgym.train import TrainResult, train


def tiny_agent(name: str = "ppo", **settings: Any) -> AgentSpec:
    """The shipped recipe ``name`` with rollouts of 40 decisions (10 tiny episodes) and no evaluation."""
    spec = load_agent_spec(name)
    params = copy.deepcopy(spec.params)
    params["algorithm"].update(n_steps=40, batch_size=20, n_epochs=2)
    params.update({"eval_every_episodes": 0, "eval_episodes": 2, **settings})
    return dataclasses.replace(spec, params=params)


def train_tiny(
    out: Path, task: TaskSpec, name: str = "ppo", timesteps: int = 80, agent: AgentSpec | None = None,
    **options: Any,
) -> TrainResult:
    return train(
        task, agent or tiny_agent(name), out, timesteps=timesteps, device="cpu", progress_bar=False, **options
    )
