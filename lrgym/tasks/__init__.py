"""What a task, a family and an agent are: specs read from TOML, their value checks, the
optimizer table, and the families that draw whole tasks."""

from __future__ import annotations

from lrgym.tasks.family import TaskFamily, load_family, parse_instances
from lrgym.tasks.names import unknown_name_error
from lrgym.tasks.optimizers import OPTIMIZERS, build_optimizer
from lrgym.tasks.specs import (
    AgentSpec,
    TaskSpec,
    agent_names,
    family_names,
    load_agent_spec,
    load_task_spec,
    task_names,
)

__all__ = [
    'AgentSpec',
    'OPTIMIZERS',
    'TaskFamily',
    'TaskSpec',
    'agent_names',
    'build_optimizer',
    'family_names',
    'load_agent_spec',
    'load_family',
    'load_task_spec',
    'parse_instances',
    'task_names',
    'unknown_name_error',
]
