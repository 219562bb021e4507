"""lrgym: meta-train a learning-rate controller with reinforcement learning.

``import lrgym`` registers one Gymnasium id per task spec in ``envs/``:
``gymnasium.make("lrgym/<spec-name>-v0", **overrides)``, and one per task family
(``kind = "family"``), whose env draws a training instance at every reset
(:class:`lrgym.environment.family_env.FamilyEnv`).

What a user imports is here: ``lrgym.LRControlEnv``, ``lrgym.LRController``, the spec
loaders (a name or a path to a TOML file), ``lrgym.register_dataset`` and
``lrgym.register_model`` (a user's own data and model under a name, see
:mod:`lrgym.trainee.registry`). The env, the controller and the registering functions are
loaded on first use (PEP 562), so that
``import lrgym`` (which registers the envs) stays light; docs/architecture.md shows where
everything else lives.
"""

from __future__ import annotations

import importlib

import gymnasium

from lrgym.tasks.family import TaskFamily, load_family
from lrgym.tasks.specs import (
    AgentSpec,
    TaskSpec,
    broken_specs,
    family_names,
    load_agent_spec,
    load_task_spec,
    task_names,
)

__version__ = "0.1.0"
__all__ = [
    "AgentSpec", "FamilyEnv", "LRControlEnv", "LRController", "TaskFamily", "TaskSpec", "env_id",
    "load_agent_spec", "load_family", "load_task_spec", "register_dataset", "register_envs", "register_model",
]
_LOADED_ON_FIRST_USE = {
    "LRControlEnv": "lrgym.environment.lr_control_env",
    "FamilyEnv": "lrgym.environment.family_env",
    "LRController": "lrgym.controller",
    "register_dataset": "lrgym.trainee.data",
    "register_model": "lrgym.trainee.models",
}


def __getattr__(name: str):
    if name in _LOADED_ON_FIRST_USE:
        return getattr(importlib.import_module(_LOADED_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'lrgym' has no attribute {name!r}")


def env_id(task: str) -> str:
    """The Gymnasium id of task spec ``task``."""
    return f"lrgym/{task}-v0"


def register_envs() -> list[str]:
    """Register every task and family spec in ``envs/`` (idempotent); return the ids.

    A spec that does not load (invalid TOML, an unknown ``kind``, a bad field value) breaks
    only itself: it is registered too, and ``gymnasium.make`` of its id raises its error
    (:func:`broken_spec_env`); every other spec registers as usual.
    """
    ids = []
    for name in task_names():
        try:
            kwargs, entry_point = load_task_spec(name).to_dict(), "lrgym.environment.lr_control_env:LRControlEnv"
        except ValueError as error:
            kwargs, entry_point = {"error": str(error)}, "lrgym:broken_spec_env"
        ids.append(_register(name, entry_point, kwargs))
    for name in family_names():
        ids.append(_register(name, "lrgym.environment.family_env:FamilyEnv", {"family": name}))
    for name, error in broken_specs().items():
        ids.append(_register(name, "lrgym:broken_spec_env", {"error": error}))
    return ids


def _register(name: str, entry_point: str, kwargs: dict) -> str:
    spec_id = env_id(name)
    if spec_id not in gymnasium.registry:
        gymnasium.register(id=spec_id, entry_point=entry_point, kwargs=kwargs)
    return spec_id


def broken_spec_env(error: str, **overrides) -> gymnasium.Env:
    """The entry point of a spec that does not load: making its env raises the spec's error."""
    raise ValueError(error)


register_envs()
