"""Task and agent specs: the TOML files in ``envs/`` and ``agents/`` as dataclasses.

Specs say *what* (dataset, model, budget; an agent's hyperparameters); the code in
``lrgym/`` says *how*. A *name* (``mnist1d-mlp``, ``cosine``) is a file of the project
folder's ``envs/`` or ``agents/``: the folder beside the package (an editable or source
install), or ``$LRGYM_HOME`` when set (a folder with ``envs/``, ``agents/`` and
``checkpoints/`` of its own). A *path* to a TOML file (anything ending in ``.toml`` or
holding a ``/``) works wherever a name does: ``load_task_spec("./my-task.toml")``; the
spec's name is the file's stem unless the file says ``name = ...``, and its plug-in
references are read relative to the file (:mod:`lrgym.tasks.plugins`).
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
from lrgym.tasks.plugins import anchor_references
from lrgym.tasks.spec_checks import task_fields

ACTION_MODES = ("scale", "discrete", "lr", "residual", "log_lr")
REWARDS = ("val_loss", "log_val_loss", "improvement", "log_improvement", "terminal", "relative_terminal")
FEATURES = ("xu", "scale-free", "scale-free-optimizer")
# Task fields added after the first release (see TaskSpec.identity).
LATER_FIELDS = (
    "model_kwargs", "dataset_kwargs", "features", "base_schedule", "validation_percent", "base_lr_spread",
)
# Rewards and actions that need the task's ``base_schedule`` (a step-grid choice).
NEEDS_BASE_SCHEDULE = {"action": ("residual",), "reward": ("relative_terminal",)}


HOME_VARIABLE = "LRGYM_HOME"


def project_root() -> Path:
    """The folder holding ``envs/``, ``agents/`` and ``checkpoints/``: ``$LRGYM_HOME``, else the
    folder beside the package."""
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE])
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
    # 0: the dataset's own validation split. 1..99: that percentage of the official
    # training set (train and validation pooled) is held out for validation instead,
    # carved anew from each episode's seed (the DAC4SGD generator's validation share).
    validation_percent: int = 0
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
        return without_later_defaults(self.to_dict())

    def replace(self, **overrides: Any) -> TaskSpec:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"unknown task field(s) {sorted(unknown)}; valid: {sorted(task_field_names())}"
            )
        return dataclasses.replace(self, **overrides)


def without_later_defaults(task: dict[str, Any]) -> dict[str, Any]:
    """A task's dict (:meth:`TaskSpec.to_dict`, or one saved in a card) without the fields of
    :data:`LATER_FIELDS` that hold their defaults: the same for a task saved before such a
    field existed and for that task now."""
    defaults = {f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
                for f in dataclasses.fields(TaskSpec) if f.name in LATER_FIELDS}
    return {key: value for key, value in task.items() if key not in LATER_FIELDS or value != defaults[key]}


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
    """The TOML file ``path``; a syntax error or a file that is not text names the file."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not valid TOML (not UTF-8 text)") from None


FAMILY_KIND = "family"  # ``kind = "family"`` at the top of an envs/ file: a task family (lrgym.tasks.family)
SPEC_KINDS = ("task", "family", "agent")


def is_spec_path(name: str) -> bool:
    """Whether ``name`` is a path to a spec file rather than a name in ``envs/`` or ``agents/``
    (names never end in ``.toml`` nor hold a path separator)."""
    return name.endswith(".toml") or "/" in name or os.sep in name


def spec_kind(data: dict[str, Any]) -> str:
    """What a spec file's table is: ``family`` (``kind = "family"``), ``agent`` (any other
    ``kind``) or ``task`` (no ``kind``)."""
    if "kind" not in data:
        return "task"
    return "family" if data["kind"] == FAMILY_KIND else "agent"


def read_spec_file(path: str | Path, expected: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """(name, table) of the spec file ``path``, its plug-in references anchored to its folder.

    :param expected: the kinds the caller takes (:data:`SPEC_KINDS`); another kind is an error.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"no spec file {path} (a path to a .toml file, or a name: see `lrgym list`)")
    data = _read_toml(path)  # a file that is not TOML: one line naming it
    kind = spec_kind(data)
    if kind not in expected:
        raise ValueError(f"{path} is {_a(kind)} spec; expected {_a(' or '.join(expected))} spec")
    name = data.get("name", path.stem) if kind == "task" else path.stem  # families and agents: the file's name
    if kind != "agent":
        data = anchor_references(data, path.resolve().parent, keyed=kind == "family")
    return str(name), data


def _a(words: str) -> str:
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words}"


def envs_file_kind(path: Path) -> str:
    """``"task"`` or ``"family"``: what the envs/ file ``path`` holds (a ``ValueError`` naming it
    when it is not valid TOML or its ``kind`` is neither)."""
    kind = _read_toml(path).get("kind")
    if kind is None:
        return "task"
    if kind != FAMILY_KIND:
        raise ValueError(
            f"{path}: kind must be {FAMILY_KIND!r} (a task family) or absent (a single task), got {kind!r:.40}"
        )
    return FAMILY_KIND


def _kinds() -> dict[str, str]:
    """Every envs/ spec name -> its kind, or the error that says why it is neither (a broken spec)."""
    kinds = {}
    for path in sorted(envs_dir().glob("*.toml")):
        try:
            kinds[path.stem] = envs_file_kind(path)
        except ValueError as error:
            kinds[path.stem] = f"error: {error}"
    return kinds


def task_names() -> list[str]:
    """The single tasks in ``envs/`` (files without ``kind = "family"``; broken files are in neither list)."""
    return [name for name, kind in _kinds().items() if kind == "task"]


def family_names() -> list[str]:
    """The task families in ``envs/`` (files with ``kind = "family"``)."""
    return [name for name, kind in _kinds().items() if kind == FAMILY_KIND]


def broken_specs() -> dict[str, str]:
    """The envs/ files that are neither a task nor a family -> why (invalid TOML, an unknown ``kind``).

    A broken spec breaks only itself: the others still list, register and run, and asking
    for it by name raises its error (:func:`unknown_task_error`).
    """
    return {name: kind.removeprefix("error: ") for name, kind in _kinds().items() if kind.startswith("error: ")}


def unknown_task_error(name: str) -> ValueError:
    """Why task ``name`` cannot be loaded: its file's own error when it is broken, else the
    unknown-name message listing the tasks and families."""
    problem = broken_specs().get(name)
    return ValueError(problem) if problem else unknown_name_error(
        "task", name, task_names() + family_names() + ["PATH.toml"]
    )


def agent_names() -> list[str]:
    return sorted(path.stem for path in agents_dir().glob("*.toml"))


def _task_table(name: str) -> tuple[Path | str, dict[str, Any]]:
    """(where it came from, the spec's table) of task ``name``: a name in ``envs/`` or a path."""
    if is_spec_path(name):
        spec_name, data = read_spec_file(name, ("task", "family"))
        if spec_kind(data) == "family":
            raise ValueError(f"{name} is a task family, not a single task; load it with lrgym.tasks.family.load_family")
        data["name"] = spec_name
        return name, data
    path = envs_dir() / f"{name}.toml"
    if not path.is_file():
        raise unknown_task_error(name)  # a broken spec's own error, else the unknown name
    if envs_file_kind(path) == FAMILY_KIND:
        raise ValueError(f"{name!r} is a task family, not a single task; load it with lrgym.tasks.family.load_family")
    data = _read_toml(path)
    data.setdefault("name", name)
    return path, data


def load_task_spec(name: str, **overrides: Any) -> TaskSpec:
    """Read task ``name`` (``envs/<name>.toml``, or a path to a task spec file); keyword
    overrides replace fields of the same name."""
    where, data = _task_table(name)
    try:
        spec = TaskSpec(**data)
    except TypeError as error:
        raise ValueError(f"{where}: {error}; valid fields: {', '.join(task_field_names())}") from error
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    return spec.replace(**overrides) if overrides else spec


def load_agent_spec(name: str) -> AgentSpec:
    """Read agent ``name`` (``agents/<name>.toml``, or a path to an agent spec file): top-level
    ``kind`` and ``description``, an optional ``[task]`` table of task-field overrides, the
    rest are params."""
    if is_spec_path(name):
        path: Path | str = name
        name, data = read_spec_file(name, ("agent",))
    else:
        path = agents_dir() / f"{name}.toml"
        if not path.is_file():
            raise unknown_name_error("agent", name, agent_names() + ["ppo:PATH", "PATH.toml"])
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
