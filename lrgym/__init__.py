"""lrgym: meta-train a learning-rate controller with reinforcement learning.

``import lrgym`` registers one Gymnasium id per task spec in ``envs/``:
``gymnasium.make("lrgym/<spec-name>-v0", **overrides)``, and one per task family
(``kind = "family"``), whose env draws a training instance at every reset
(:class:`lrgym.environment.family_env.FamilyEnv`).
"""

from __future__ import annotations

import gymnasium

from lrgym.tasks.specs import family_names, load_task_spec, task_names

__version__ = "0.1.0"


def env_id(task: str) -> str:
    """The Gymnasium id of task spec ``task``."""
    return f"lrgym/{task}-v0"


def register_envs() -> list[str]:
    """Register every task and family spec in ``envs/`` (idempotent); return the ids."""
    ids = []
    for name in task_names():
        spec_id = env_id(name)
        if spec_id not in gymnasium.registry:
            gymnasium.register(
                id=spec_id,
                entry_point="lrgym.environment.lr_control_env:LRControlEnv",
                kwargs=load_task_spec(name).to_dict(),
            )
        ids.append(spec_id)
    for name in family_names():
        spec_id = env_id(name)
        if spec_id not in gymnasium.registry:
            gymnasium.register(
                id=spec_id, entry_point="lrgym.environment.family_env:FamilyEnv", kwargs={"family": name}
            )
        ids.append(spec_id)
    return ids


register_envs()
