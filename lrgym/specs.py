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

from lrgym.data import unknown_name_error

ACTION_MODES = ("scale", "discrete", "lr", "residual")
REWARDS = ("val_loss", "log_val_loss", "improvement", "log_improvement", "terminal", "relative_terminal")
FEATURES = ("xu", "scale-free")
# Rewards and actions that need the task's ``base_schedule`` (a step-grid choice).
NEEDS_BASE_SCHEDULE = {"action": ("residual",), "reward": ("relative_terminal",)}


def project_root() -> Path:
    """The folder holding ``envs/``, ``agents/`` and ``checkpoints/``."""
    if os.environ.get("LRGYM_HOME"):
        return Path(os.environ["LRGYM_HOME"])
    return Path(__file__).resolve().parent.parent


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
    features: str = "xu"  # the observation: "xu" (Xu et al.) or "scale-free"
    # A step-grid choice {scheduler, initial_lr, kwargs}: the schedule the ``residual``
    # action scales and the ``relative_terminal`` reward compares against.
    base_schedule: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "initial_lrs", tuple(float(lr) for lr in self.initial_lrs))
        for name in ("optimizer_kwargs", "model_kwargs", "dataset_kwargs"):
            object.__setattr__(self, name, dict(getattr(self, name)))
        if isinstance(self.base_schedule, dict) and {"scheduler", "initial_lr"} <= set(self.base_schedule):
            # Only what runs the schedule: a full step-grid choice also carries its grid rows.
            base = {
                "scheduler": str(self.base_schedule["scheduler"]),
                "initial_lr": float(self.base_schedule["initial_lr"]),
                "kwargs": dict(self.base_schedule.get("kwargs", {})),
            }
            object.__setattr__(self, "base_schedule", base)
        problems = []
        if self.action not in ACTION_MODES:
            problems.append(f"action must be one of {', '.join(ACTION_MODES)}, got {self.action!r}")
        if self.reward not in REWARDS:
            problems.append(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        if self.features not in FEATURES:
            problems.append(f"features must be one of {', '.join(FEATURES)}, got {self.features!r}")
        for what, values in NEEDS_BASE_SCHEDULE.items():
            if getattr(self, what) in values and self.base_schedule is None:
                problems.append(
                    f"{what} {getattr(self, what)!r} needs base_schedule (a step-grid choice: "
                    "{scheduler, initial_lr, kwargs})"
                )
        if self.base_schedule is not None:
            if not isinstance(self.base_schedule, dict) or not {"scheduler", "initial_lr"} <= set(
                self.base_schedule
            ):
                problems.append(
                    f"base_schedule must be a table with scheduler, initial_lr and kwargs, got {self.base_schedule!r}"
                )
        for name in ("batch_size", "steps", "interval", "val_size"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0 < self.lr_min <= self.lr_max:
            problems.append(f"need 0 < lr_min <= lr_max, got {self.lr_min} and {self.lr_max}")
        if not self.initial_lrs:
            problems.append("initial_lrs must hold at least one learning rate")
        if self.lr_scale <= 1:
            problems.append(f"lr_scale must be > 1, got {self.lr_scale}")
        if problems:
            raise ValueError(f"task {self.name!r}: " + "; ".join(problems))

    @property
    def decisions(self) -> int:
        """Controller decisions per episode (the last interval may be shorter)."""
        return -(-self.steps // self.interval)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["initial_lrs"] = list(self.initial_lrs)
        return data

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
    """One agent: its ``kind`` (which code runs it) and that code's parameters."""

    name: str
    kind: str
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _read_toml(path: Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        return tomllib.load(handle)


FAMILY_KIND = "family"  # ``kind = "family"`` at the top of an envs/ file: a task family (lrgym.family)


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
        raise ValueError(f"{name!r} is a task family, not a single task; load it with lrgym.family.load_family")
    data.setdefault("name", name)
    try:
        spec = TaskSpec(**data)
    except TypeError as error:
        raise ValueError(f"{path}: {error}; valid fields: {', '.join(task_field_names())}") from error
    return spec.replace(**overrides) if overrides else spec


def load_agent_spec(name: str) -> AgentSpec:
    """Read ``agents/<name>.toml``: top-level ``kind`` and ``description``, the rest are params."""
    path = agents_dir() / f"{name}.toml"
    if not path.is_file():
        raise unknown_name_error("agent", name, agent_names() + ["ppo:PATH"])
    data = _read_toml(path)
    if "kind" not in data:
        raise ValueError(f"{path}: an agent spec needs a top-level 'kind'")
    kind = data.pop("kind")
    description = data.pop("description", "")
    return AgentSpec(name=name, kind=kind, description=description, params=data)
