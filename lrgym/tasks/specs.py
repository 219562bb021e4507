"""Task and agent specs: the TOML files in ``envs/`` and ``agents/`` as dataclasses.

Specs say *what* (dataset, model, budget; an agent's hyperparameters); the code in
``lrgym/`` says *how*. The folders are found beside the package (an editable or
source install) or wherever ``LRGYM_HOME`` points.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from lrgym.tasks.names import unknown_name_error
from lrgym.tasks.spec_checks import task_fields

ACTION_MODES = ("scale", "discrete", "lr", "residual")
REWARDS = ("val_loss", "log_val_loss", "improvement", "log_improvement", "terminal", "relative_terminal")
FEATURES = ("xu", "scale-free", "scale-free-optimizer")
# Task fields added after the first release (see TaskSpec.identity).
LATER_FIELDS = ("model_kwargs", "dataset_kwargs", "features", "base_schedule", "base_lr_spread")
# Rewards and actions that need the task's ``base_schedule`` (a step-grid choice).
NEEDS_BASE_SCHEDULE = {"action": ("residual",), "reward": ("relative_terminal",)}


def project_root() -> Path:
    """The folder holding ``envs/``, ``agents/`` and ``checkpoints/``."""
    if os.environ.get("LRGYM_HOME"):
        return Path(os.environ["LRGYM_HOME"])
    return Path(__file__).resolve().parents[2]


def envs_dir() -> Path:
    return project_root() / "envs"


def agents_dir() -> Path:
    return project_root() / "agents"


@dataclass(frozen=True)
class TaskSpec:
    """One task: dataset x model x optimizer x budget, and how the controller acts.

    Every field can be overridden by a keyword of the same name in
    ``gymnasium.make("lrgym/<name>-v0", **overrides)``.
    """

    name: str
    dataset: str
    model: str
    description: str = ""
    optimizer: str = "adam"
    optimizer_kwargs: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # the model's size, e.g. hidden=[64, 64]
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)  # generation arguments (mnist1d)
    batch_size: int = 1000
    steps: int = 1000  # T: trainee optimizer steps per episode
    interval: int = 10  # K: trainee steps between two controller decisions
    initial_lrs: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
    lr_min: float = 1e-6
    lr_max: float = 1.0
    val_size: int = 1000  # fixed validation subset drawn once per episode
    action: str = "scale"
    lr_scale: float = 1.05  # m: scale action lr <- lr * m^a, discrete {1/m, 1, m}
    reward: str = "val_loss"
    divergence_loss: float = 20.0  # a training loss above this ends the episode
    features: str = "xu"  # the observation: "xu" (Xu et al.), "scale-free" or "scale-free-optimizer"
    # A step-grid choice {scheduler, initial_lr, kwargs}, or one per optimizer {by_optimizer: ...}:
    # the schedule the ``residual`` action scales and the ``relative_terminal`` reward compares against.
    base_schedule: dict[str, Any] | None = None
    # Decades: each episode multiplies the base schedule's rate by 10**U(-spread, spread), drawn
    # from the episode's seed (0: the base as it is). Meta-training against mis-tuned bases.
    base_lr_spread: float = 0.0

    def __post_init__(self) -> None:
        # Every field is checked here, so that no bad value fails later deep inside (lrgym.tasks.spec_checks).
        values, problems = task_fields(self, ACTION_MODES, REWARDS, FEATURES, NEEDS_BASE_SCHEDULE)
        if problems:
            raise ValueError(f"task {self.name!r}: " + "; ".join(problems))
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def decisions(self) -> int:
        """Controller decisions per episode (the last interval may be shorter)."""
        return -(-self.steps // self.interval)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["initial_lrs"] = list(self.initial_lrs)
        return data

    def identity(self) -> dict[str, Any]:
        """:meth:`to_dict` without the fields added after the first release while they hold
        their defaults: what names caches (a step-grid choice), so that adding a field to
        the spec does not orphan the caches of tasks that do not use it."""
        defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(self) if f.name in LATER_FIELDS}
        return {key: value for key, value in self.to_dict().items()
                if key not in LATER_FIELDS or value != defaults[key]}

    def replace(self, **overrides: Any) -> TaskSpec:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"unknown task field(s) {sorted(unknown)}; valid: {sorted(task_field_names())}"
            )
        return dataclasses.replace(self, **overrides)


def task_field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TaskSpec)]


@dataclass(frozen=True)
class AgentSpec:
    """One agent: its ``kind`` (which code runs it) and that code's parameters.

    ``task_overrides`` (the spec's ``[task]`` table) are task fields the agent changes in
    every task it runs on, e.g. ``optimizer = "prodigy"`` for an agent that *is* an
    optimizer: :func:`lrgym.agents.run_episode` builds the env with them.
    """

    name: str
    kind: str
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    task_overrides: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if not data["task_overrides"]:
            # Left out when empty: a spec's dict (and the step-grid cache names hashed from
            # it, such as the choices shipped in checkpoints/) is what it was before the field.
            del data["task_overrides"]
        return data


def _read_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


FAMILY_KIND = "family"  # ``kind = "family"`` at the top of an envs/ file: a task family (lrgym.tasks.family)


def _is_family(path: Path) -> bool:
    return _read_toml(path).get("kind") == FAMILY_KIND


def task_names() -> list[str]:
    """The single tasks in ``envs/`` (files without ``kind = "family"``)."""
    return sorted(path.stem for path in envs_dir().glob("*.toml") if not _is_family(path))


def family_names() -> list[str]:
    """The task families in ``envs/`` (files with ``kind = "family"``)."""
    return sorted(path.stem for path in envs_dir().glob("*.toml") if _is_family(path))


def agent_names() -> list[str]:
    return sorted(path.stem for path in agents_dir().glob("*.toml"))


def load_task_spec(name: str, **overrides: Any) -> TaskSpec:
    """Read ``envs/<name>.toml``; keyword overrides replace fields of the same name."""
    path = envs_dir() / f"{name}.toml"
    if not path.is_file():
        raise unknown_name_error("task", name, task_names() + family_names())
    data = _read_toml(path)
    if data.get("kind") == FAMILY_KIND:
        raise ValueError(f"{name!r} is a task family, not a single task; load it with lrgym.tasks.family.load_family")
    data.setdefault("name", name)
    try:
        spec = TaskSpec(**data)
    except TypeError as error:
        raise ValueError(f"{path}: {error}; valid fields: {', '.join(task_field_names())}") from error
    return spec.replace(**overrides) if overrides else spec


def load_agent_spec(name: str) -> AgentSpec:
    """Read ``agents/<name>.toml``: top-level ``kind`` and ``description``, an optional
    ``[task]`` table of task-field overrides, the rest are params."""
    path = agents_dir() / f"{name}.toml"
    if not path.is_file():
        raise unknown_name_error("agent", name, agent_names() + ["ppo:PATH"])
    data = _read_toml(path)
    if "kind" not in data:
        raise ValueError(f"{path}: an agent spec needs a top-level 'kind'")
    kind = data.pop("kind")
    description = data.pop("description", "")
    task_overrides = data.pop("task", {})
    if not isinstance(task_overrides, dict):
        raise ValueError(f"{path}: 'task' must be a table of task fields, got {task_overrides!r}")
    allowed = [field_name for field_name in task_field_names() if field_name != "name"]
    unknown = set(task_overrides) - set(allowed)
    if unknown:
        raise ValueError(f"{path}: unknown task field(s) {sorted(unknown)} in [task]; valid: {', '.join(allowed)}")
    return AgentSpec(
        name=name, kind=kind, description=description, params=data, task_overrides=task_overrides
    )
