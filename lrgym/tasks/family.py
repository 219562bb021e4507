"""Task families: distributions over whole tasks (the env that draws one per episode is
:class:`lrgym.environment.family_env.FamilyEnv`).

A family (learned_optimization's ``TaskFamily``) is a spec file in ``envs/`` with
``kind = "family"`` at the top. It yields :class:`~lrgym.tasks.specs.TaskSpec` *instances*;
everything downstream (the env, the agents, evaluation) keeps taking one TaskSpec.

Each key of the file is a TaskSpec field (or one of the family keys below), and its
value is a *distribution*:

- a plain value (number, string, table that is not a range): fixed for every instance;
- a list: one element chosen uniformly (a list-valued field is written as a choice of
  one, ``initial_lrs = [[1e-3, 1e-2]]``);
- a range table ``{low, high, log = false, integer = false}``: uniform, or log-uniform
  with ``log = true``; ``integer = true`` draws whole numbers in ``[low, high]``;
- a list table ``{length = <distribution>, each = <distribution>}``: a list of ``length``
  independent draws of ``each`` (an MLP's hidden widths);
- compound tables (:mod:`lrgym.tasks.compound_draws`): ``{probability, then, else}`` (a draw
  made with a probability; plain-table branches are drawn key by key), ``{items}`` (a
  different distribution per position), ``{one_minus}``, ``{base, exponent}``,
  ``{choose, weights}`` (a weighted choice), and ``rounding = "nearest"`` on an integer
  range (ConfigSpace's integer sampling).

``model_kwargs`` and ``dataset_kwargs`` are keyed by the model / dataset name:
``[model_kwargs.mlp]`` is drawn only for instances whose model is ``mlp`` (each of its
keys a distribution), ``dataset_kwargs.mnist1d = [{...}, {...}]`` chooses one variant
of the generated dataset. Plug-ins are drawn like built-ins: ``model = ["mlp", "my_model:build"]``
with ``[model_kwargs."my_model:build"]`` (:mod:`lrgym.tasks.plugins`). Family keys that are not TaskSpec fields:

- ``decisions``: controller decisions per episode; ``interval = ceil(steps / decisions)``;
- ``initial_lr``: the instance's one initial rate (``initial_lrs = [initial_lr]``);
- ``[instances]``: ``train``, ``validation`` and ``test`` as half-open index ranges
  ``[start, stop)``, disjoint (checked on loading).

Instance ``i`` is a pure function of (family name, ``i``): every field is drawn from
its own ``numpy.random.default_rng`` seeded with the SHA-256 of ``"<family>/<i>/<field>"``
(never Python's salted ``hash``), and drawn floats are rounded to 4 significant digits,
so an instance is the same on every machine and Python version, and adding a field to
a family leaves the other fields' draws unchanged.

Overrides (``load_family(name, steps=8)``, ``--set steps=8``) apply to every instance,
after drawing: they replace drawn values of any TaskSpec field or family key (an
``interval`` override wins over ``decisions``). The model- and dataset-dependent
sub-tables are drawn for the final model and dataset (an overridden ``model`` gets
its own sub-table's draw).

A single task is a family of one (:meth:`TaskFamily.of_task`): its one instance, index
0, is in every split, and train / selection / test stay apart by their seeds as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lrgym.tasks.compound_draws import (
    check_compound,
    check_rounding,
    compound_kind,
    describe_compound,
    draw_compound,
    nearest_integer,
)
from lrgym.tasks.family_checks import check_range, instance_positions, instance_ranges
from lrgym.tasks.family_checks import decisions as check_decisions
from lrgym.tasks.names import unknown_name_error
from lrgym.tasks.specs import (
    FAMILY_KIND,
    TaskSpec,
    _read_toml,
    envs_dir,
    family_names,
    is_spec_path,
    load_task_spec,
    read_spec_file,
    spec_kind,
    task_field_names,
    task_names,
    unknown_task_error,
)

SPLITS = ("train", "validation", "test")
FAMILY_KEYS = ("decisions", "initial_lr")  # drawn like fields, then turned into fields
CONDITIONAL = {"model_kwargs": "model", "dataset_kwargs": "dataset"}  # sub-table -> keyed by
RANGE_KEYS = {"low", "high", "log", "integer", "rounding"}
LIST_KEYS = {"length", "each"}
SIGNIFICANT_DIGITS = 4
# Columns that describe an instance in results.csv and in the env's info.
INSTANCE_FIELDS = (
    "dataset", "dataset_kwargs", "model", "model_kwargs", "optimizer", "batch_size", "steps", "interval",
)


# ----------------------------------------------------------------------------- distributions
def is_range(value: Any) -> bool:
    return isinstance(value, Mapping) and ("low" in value or "high" in value)


def is_list_distribution(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == LIST_KEYS


def check_distribution(value: Any, where: str) -> None:
    """Refuse a malformed distribution early, with the file and key in the message."""
    if isinstance(value, list):
        if not value:
            raise ValueError(f"{where}: an empty list has nothing to choose from")
        return
    if is_range(value):
        unknown = set(value) - RANGE_KEYS
        if unknown or "low" not in value or "high" not in value:
            raise ValueError(
                f"{where}: a range needs low and high (optional log, integer), got keys {sorted(value)}"
            )
        check_range(value, where)
        check_rounding(value, where)
        return
    if is_list_distribution(value):
        check_distribution(value["length"], f"{where}.length")
        check_distribution(value["each"], f"{where}.each")
    elif compound_kind(value) is not None:
        check_compound(value, where, check_distribution, is_distribution)


def is_distribution(value: Any) -> bool:
    """Whether ``value`` is a range, a list table or a compound table (not a plain value or table)."""
    return is_range(value) or is_list_distribution(value) or compound_kind(value) is not None


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def draw(distribution: Any, rng: np.random.Generator) -> Any:
    """One value of ``distribution`` (see the module docstring) from ``rng``."""
    if isinstance(distribution, list):
        return _copy(distribution[int(rng.integers(len(distribution)))])
    if is_range(distribution):
        low, high = distribution["low"], distribution["high"]
        log, integer = bool(distribution.get("log", False)), bool(distribution.get("integer", False))
        if integer:
            if distribution.get("rounding") == "nearest":
                return nearest_integer(low, high, log, rng)
            if not log:
                return int(rng.integers(int(low), int(high) + 1))
            value = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
            return int(min(max(math.floor(value), low), high))
        if log:
            return _round(math.exp(rng.uniform(math.log(low), math.log(high))))
        return _round(rng.uniform(low, high))
    if is_list_distribution(distribution):
        return [draw(distribution["each"], rng) for _ in range(int(draw(distribution["length"], rng)))]
    if compound_kind(distribution) is not None:
        return draw_compound(distribution, rng, draw, is_distribution)
    return _copy(distribution)


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))  # a deep copy of TOML data: instances share nothing


def describe(distribution: Any) -> str:
    """A distribution in one short line (``lrgym list``)."""
    if isinstance(distribution, list):
        return " | ".join(describe(item) if not isinstance(item, Mapping) else _inline(item)
                          for item in distribution)
    if is_range(distribution):
        kind = ("log-" if distribution.get("log") else "") + "uniform" + (
            " int" if distribution.get("integer") else "") + (" rounded" * (distribution.get("rounding") == "nearest"))
        return f"{distribution['low']:g}..{distribution['high']:g} {kind}"
    if is_list_distribution(distribution):
        return f"[{describe(distribution['length'])}] x ({describe(distribution['each'])})"
    if compound_kind(distribution) is not None:
        return describe_compound(distribution, describe)
    if isinstance(distribution, Mapping):
        return _inline(distribution)
    return f"{distribution:g}" if isinstance(distribution, float) else str(distribution)


def _inline(table: Mapping[str, Any]) -> str:
    return "{" + ", ".join(f"{key}: {describe(value)}" for key, value in table.items()) + "}"


def field_stream(family: str, index: int, name: str) -> np.random.Generator:
    """The generator that draws field ``name`` of instance ``index``: seeded by SHA-256, stable everywhere."""
    digest = hashlib.sha256(f"{family}/{index}/{name}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


# ----------------------------------------------------------------------------- the family
@dataclass(frozen=True)
class TaskFamily:
    """A distribution over tasks with disjoint train / validation / test instance index ranges.

    :param distributions: field (or family key) -> distribution, as in the spec file.
    :param instances: split -> ``(start, stop)``, half-open.
    :param overrides: applied to every instance after drawing.
    :param single: a family of one (:meth:`of_task`): instance 0 in every split.
    """

    name: str
    distributions: dict[str, Any]
    instances: dict[str, tuple[int, int]]
    description: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)
    single: bool = False

    def __post_init__(self) -> None:
        valid = (set(task_field_names()) - {"name"}) | set(FAMILY_KEYS)
        for what, keys in (("field", self.distributions), ("override", self.overrides)):
            unknown = sorted(set(keys) - valid)
            if unknown:
                raise ValueError(
                    f"family {self.name!r}: unknown {what}(s) {unknown} (instances are named by the family); "
                    f"valid: {', '.join(sorted(valid))}"
                )
        for key, value in self.distributions.items():
            if key in CONDITIONAL and isinstance(value, Mapping) and not self.single:
                for option, entry in value.items():
                    check_distribution(entry, f"family {self.name!r} {key}.{option}")
                    if isinstance(entry, Mapping) and not is_distribution(entry):
                        for name, sub in entry.items():
                            check_distribution(sub, f"family {self.name!r} {key}.{option}.{name}")
            elif not self.single:
                check_distribution(value, f"family {self.name!r} {key}")
        if "initial_lr" in self.distributions and "initial_lrs" in self.distributions:
            raise ValueError(f"family {self.name!r}: give initial_lr (drawn) or initial_lrs, not both")
        self._check_instances()

    def _check_instances(self) -> None:
        if not isinstance(self.instances, Mapping):
            raise ValueError(f"family {self.name!r}: [instances] must be a table of {', '.join(SPLITS)} ranges")
        ranges = instance_ranges(self.name, self.instances, SPLITS)
        object.__setattr__(self, "instances", ranges)
        if self.single:
            return
        ordered = sorted(ranges.items(), key=lambda item: item[1])
        for (first, (_, stop)), (second, (start, _)) in zip(ordered, ordered[1:]):
            if start < stop:
                raise ValueError(f"family {self.name!r}: instances.{first} and instances.{second} overlap")

    # ------------------------------------------------------------------ construction
    @classmethod
    def of_task(cls, task: TaskSpec) -> TaskFamily:
        """A single task as a family of one: instance 0, in every split, is ``task``."""
        fields = task.to_dict()
        name = fields.pop("name")
        return cls(name=name, distributions=fields, instances={split: (0, 1) for split in SPLITS},
                   description=task.description, single=True)

    def with_overrides(self, **overrides: Any) -> TaskFamily:
        """The same family with ``overrides`` added (later ones win)."""
        if self.single:
            task = TaskSpec(name=self.name, **self.distributions).replace(**overrides)
            return TaskFamily.of_task(task)
        return dataclasses.replace(self, overrides={**self.overrides, **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: :meth:`from_dict` rebuilds the same family (checkpoint cards record it)."""
        data = dataclasses.asdict(self)
        data["instances"] = {split: list(bounds) for split, bounds in self.instances.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskFamily:
        return cls(**{**data, "instances": {k: tuple(v) for k, v in data["instances"].items()}})

    # ------------------------------------------------------------------ instances
    def indices(self, split: str) -> range:
        """Every instance index of ``split``."""
        if split not in SPLITS:
            raise unknown_name_error("split", split, SPLITS)
        return range(*self.instances[split])

    def split_of(self, index: int) -> str | None:
        """The split holding instance ``index`` (``None``: in none of them)."""
        for split in SPLITS:
            if index in self.indices(split):
                return split
        return None

    def instance(self, index: int) -> TaskSpec:
        """Instance ``index``: every field drawn from its own stream, then the overrides applied."""
        index = int(index)
        if self.single:
            if index != 0:
                raise ValueError(f"{self.name!r} is a single task: its only instance is 0, got {index}")
            return TaskSpec(name=self.name, **self.distributions).replace(**self.overrides)
        if self.split_of(index) is None:
            bounds = ", ".join(f"{split} {start}..{stop - 1}" for split, (start, stop) in self.instances.items())
            raise ValueError(f"family {self.name!r} has no instance {index}; its instances: {bounds}")
        values = {
            key: draw(distribution, field_stream(self.name, index, key))
            for key, distribution in self.distributions.items()
            if key not in CONDITIONAL
        }
        values.update(_copy(self.overrides))
        for key, keyed_by in CONDITIONAL.items():
            if key in self.overrides or key not in self.distributions:
                continue
            option = values.get(keyed_by, "")
            entry = self.distributions[key].get(option, {})
            stream = field_stream(self.name, index, f"{key}.{option}")
            if isinstance(entry, Mapping) and not is_distribution(entry):
                values[key] = {name: draw(sub, stream) for name, sub in entry.items()}
            else:
                values[key] = draw(entry, stream)
        initial_lr = values.pop("initial_lr", None)
        if initial_lr is not None and "initial_lrs" not in self.overrides:
            values["initial_lrs"] = [initial_lr]
        decisions = values.pop("decisions", None)
        if decisions is not None and "interval" not in self.overrides:
            steps = values.get("steps", TaskSpec.steps)
            if isinstance(steps, int):  # any other steps is refused by TaskSpec, naming the field
                values["interval"] = -(-steps // check_decisions(self.name, decisions))
        values.setdefault("description", f"instance {index} of {self.name}")
        try:
            return TaskSpec(name=instance_name(self.name, index), **values)
        except TypeError as error:
            raise ValueError(f"family {self.name!r} instance {index}: {error}") from error

    def table(self) -> list[tuple[str, str]]:
        """(key, distribution in words) for every key, overrides shown as fixed values."""
        rows = [(key, describe(value)) for key, value in self.distributions.items() if key not in self.overrides]
        rows += [(key, f"{describe(value)} (override)") for key, value in self.overrides.items()]
        rows.append(("instances", ", ".join(
            f"{split} {start}..{stop - 1}" for split, (start, stop) in self.instances.items())))
        return rows


def instance_name(family: str, index: int) -> str:
    """The TaskSpec name of an instance: ``<family>#<index>``."""
    return f"{family}#{index}"


def instance_fields(task: TaskSpec) -> dict[str, Any]:
    """The fields that tell instances apart (:data:`INSTANCE_FIELDS`) and the initial rate."""
    fields = {name: _copy(getattr(task, name)) for name in INSTANCE_FIELDS}  # new objects every call
    fields["initial_lr"] = task.initial_lrs[0] if len(task.initial_lrs) == 1 else list(task.initial_lrs)
    return fields


def load_family(name: str, **overrides: Any) -> TaskFamily:
    """Read family ``name`` (``envs/<name>.toml`` or a path to a family spec file), or a single
    task (a name or a path) as a family of one; add ``overrides``.

    A family read from a path is named by the file's stem: its instances are the same
    wherever the file lies.
    """
    if is_spec_path(name):
        family_name, data = read_spec_file(name, ("task", "family"))
        if spec_kind(data) == "task":
            return TaskFamily.of_task(load_task_spec(name, **overrides))
        where: Path | str = name
    elif name in task_names():
        return TaskFamily.of_task(load_task_spec(name, **overrides))
    elif name not in family_names():
        raise unknown_task_error(name)  # a broken spec's own error, else the unknown name
    else:
        family_name, where = name, envs_dir() / f"{name}.toml"
        data = _read_toml(where)
    data.pop("kind", FAMILY_KIND)
    description = data.pop("description", "")
    instances = data.pop("instances", None)
    if not isinstance(instances, Mapping):
        raise ValueError(f"{where}: a family needs an [instances] table with {', '.join(SPLITS)} ranges")
    family = TaskFamily(name=family_name, distributions=data, instances=dict(instances), description=description)
    family = family.with_overrides(**overrides) if overrides else family
    for split in SPLITS:  # a bad spec or override fails on loading, not in the middle of a run
        family.instance(family.indices(split)[0])
    return family


def parse_instances(text: str, family: TaskFamily) -> list[int]:
    """``test:20`` (the first 20 test instances), ``test:5-24`` (the 6th to the 25th: positions
    within the split, inclusive) or ``validation:N`` -> instance indices."""
    split, _, amount = text.partition(":")
    if split not in SPLITS or not amount:
        raise ValueError(
            f"--instances needs SPLIT:N or SPLIT:FIRST-LAST with SPLIT one of {', '.join(SPLITS)}, got {text!r}"
        )
    indices = family.indices(split)
    first, last = instance_positions(text, amount, len(indices), f"the {split} split of {family.name!r}")
    return [indices[position] for position in range(first, last + 1)]
