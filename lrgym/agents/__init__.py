"""Agents: baseline learning-rate policies and the PPO controller, behind one interface.

An agent name is a spec file name in ``agents/`` (its ``kind`` picks the code) or
``ppo:PATH`` for a trained controller's checkpoint folder.
"""

from __future__ import annotations

import importlib
from typing import Any

from lrgym.agents.base import Agent, Decision, EpisodeResult, EpisodeStart, make_env, run_episode
from lrgym.tasks.names import unknown_name_error
from lrgym.tasks.specs import AgentSpec, TaskSpec, load_agent_spec

__all__ = [
    "Agent", "Decision", "EpisodeResult", "EpisodeStart", "make_env", "run_episode",
    "make_agent", "AGENT_KINDS",
]

# kind (in an agent spec) -> "module:factory"; a factory takes (spec: AgentSpec, task: TaskSpec).
# Imported lazily so that ``lrgym list`` does not pay for stable-baselines3.
AGENT_KINDS: dict[str, str] = {
    "schedule": "lrgym.agents.fixed_schedules:make_schedule_agent",
    "aslr": "lrgym.agents.aslr:make_aslr_agent",
    "lookahead": "lrgym.agents.lookahead:make_lookahead_agent",
    "step-grid": "lrgym.agents.step_grid:make_step_grid_agent",
    "step-grid-family": "lrgym.agents.step_grid_family:make_step_grid_family_agent",
    "step-grid-per-optimizer": "lrgym.agents.per_optimizer:make_per_optimizer_agent",
    "tuned-rate": "lrgym.agents.per_optimizer:make_tuned_rate_agent",
    "hypergradient": "lrgym.agents.hypergradient:make_hypergradient_agent",
    "dac4sgd-winner": "lrgym.agents.dac4sgd_winner:make_dac4sgd_winner_agent",
    "ppo-checkpoint": "lrgym.agents.ppo:from_checkpoint",
    "ppo": "lrgym.agents.ppo:training_recipe",
    "ppo-lstm": "lrgym.agents.ppo:training_recipe",
    "sb3": "lrgym.agents.ppo:training_recipe",
}


def make_agent(name: str, task: TaskSpec, **options: Any) -> Agent:
    """Build agent ``name`` (a spec in ``agents/`` or ``ppo:PATH``) for ``task``.

    A spec with a ``[task]`` table gives the agent ``task_overrides`` (see :class:`Agent`).
    """
    if name.startswith("ppo:"):
        spec = AgentSpec(name=name, kind="ppo-checkpoint", params={"path": name[4:]})
    else:
        spec = load_agent_spec(name)
    if spec.kind not in AGENT_KINDS:
        raise unknown_name_error("agent kind", spec.kind, list(AGENT_KINDS))
    module_name, factory_name = AGENT_KINDS[spec.kind].split(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    if not spec.task_overrides:
        return factory(spec, task, **options)
    # An agent that changes the task (another trainee optimizer) is built for the task it
    # will run, and carries the overrides so that run_episode builds its env with them.
    agent = factory(spec, task.replace(**spec.task_overrides), **options)
    agent.task_overrides = dict(spec.task_overrides)
    return agent
