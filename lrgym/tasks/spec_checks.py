"""Checks of user-given values: task spec fields, and rates given at reset.

Each checker takes the field's name and value, returns the value in its canonical
type (``int``, ``float``, ``tuple`` of floats, ``dict``) and raises a ``ValueError``
that names the field, shows the value and its type, and says what is allowed. The
type checks are strict on purpose: a string ``"40"``, a float ``40.5`` or a bool where
an integer is due is a mistake to report, not a value to coerce (TOML, JSON and
``--set`` give real numbers for numbers).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from lrgym.tasks.optimizers import OPTIMIZERS, build_optimizer, per_optimizer_key

MAX_DIVERGENCE_LOSS = 1e6  # a loss threshold above this is none (and its penalty could overflow)


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def positive_int(name: str, value: Any) -> int:
    """An integer >= 1 (``bool`` and floats such as ``40.0`` are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= 1, got {_shown(value)}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def percent(name: str, value: Any) -> int:
    """A whole percentage 0..99 (0: off)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= 99:
        raise ValueError(f"{name} must be an integer from 0 (off) to 99, got {_shown(value)}")
    return int(value)


def finite_number(name: str, value: Any) -> float:
    """A finite real number (int or float; ``bool`` and strings are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {_shown(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def positive_number(name: str, value: Any) -> float:
    """A finite number > 0 (a learning rate, a loss threshold)."""
    number = finite_number(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return number


def rate_list(name: str, value: Any) -> tuple[float, ...]:
    """A non-empty list of finite rates > 0 (a bare number is refused: write ``[0.01]``)."""
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list of learning rates, e.g. [0.01], got {_shown(value)}")
    rates = tuple(positive_number(f"{name}[{index}]", rate) for index, rate in enumerate(value))
    if not rates:
        raise ValueError(f"{name} must hold at least one learning rate, got an empty list")
    return rates


def table(name: str, value: Any) -> dict[str, Any]:
    """A table (dict) with string keys."""
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{name} must be a table of keyword arguments, e.g. {{weight_decay = 0.01}}, "
                         f"got {_shown(value)}")
    return dict(value)


def one_of(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {_shown(value)}")
    return value


def optimizer_arguments(name: str, optimizer: str, kwargs: dict[str, Any]) -> None:
    """Refuse keyword arguments that optimizer ``optimizer`` does not take (or takes other values of).

    Tried on one dummy parameter; an optimizer whose optional package is missing is
    checked when it is built instead.
    """
    import torch


    if optimizer not in OPTIMIZERS:
        build_optimizer(optimizer, torch.nn.Linear(1, 1), 1e-3)  # raises the unknown-name error
    try:
        OPTIMIZERS[optimizer]([torch.zeros(1, requires_grad=True)], 1e-3, **kwargs)
    except ImportError:
        return
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} {kwargs!r} do not fit optimizer {optimizer!r}: {error}") from error


def base_schedule(name: str, value: Any) -> dict[str, Any] | None:
    """``None``, a step-grid choice reduced to what runs it ({scheduler, initial_lr, kwargs}, and
    ``budget_fractions`` or nested ``schedulers`` when it has them), or a per-optimizer choice
    reduced to ``{by_optimizer: {optimizer: such a schedule}}``."""
    if value is None:
        return None
    if isinstance(value, dict) and "by_optimizer" in value:
        table = value["by_optimizer"]
        if not isinstance(table, dict) or not table:
            raise ValueError(f"{name}.by_optimizer must be a table optimizer -> schedule, got {_shown(table)}")
        return {"by_optimizer": {str(optimizer): _one_schedule(f"{name}.by_optimizer.{optimizer}", entry)
                                 for optimizer, entry in table.items()}}
    return _one_schedule(name, value)


def _one_schedule(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not {"scheduler", "initial_lr"} <= set(value):
        raise ValueError(
            f"{name} must be a table with scheduler, initial_lr and kwargs (a step-grid choice), got {_shown(value)}"
        )
    # Only what runs the schedule: a full step-grid choice also carries its grid rows.
    checked = {
        "scheduler": text(f"{name}.scheduler", value["scheduler"]),
        "initial_lr": positive_number(f"{name}.initial_lr", value["initial_lr"]),
        "kwargs": table(f"{name}.kwargs", value.get("kwargs", {})),
    }
    if "budget_fractions" in value:  # sizes that follow each task's budget (a cosine over the whole run)
        checked["budget_fractions"] = table(f"{name}.budget_fractions", value["budget_fractions"])
    if "schedulers" in value:  # a composition (SequentialLR): its parts as schedule specs
        parts = value["schedulers"]
        if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
            raise ValueError(f"{name}.schedulers must be a list of schedule tables, got {_shown(parts)}")
        checked["schedulers"] = [dict(part) for part in parts]
    if "schedulers" not in checked and "budget_fractions" not in checked:  # those complete the kwargs per task
        scheduler_arguments(name, checked["scheduler"], checked["kwargs"])
    return checked


SCHEDULE_TRIAL_STEPS = 8  # enough for a zero step size or a bad factor to show, cheap on every spec


def scheduler_arguments(name: str, scheduler: str, kwargs: dict[str, Any]) -> None:
    """Refuse a ``torch.optim.lr_scheduler`` class name, or keyword arguments, that do not give rates.

    A keyword typed ``int`` or ``float`` in the scheduler's signature must be a number of
    that kind (``gamma = "nan"`` and ``gamma = nan`` are refused, not run); then the scheduler
    is built on a dummy optimizer and stepped :data:`SCHEDULE_TRIAL_STEPS` times, so that a
    ``step_size`` of 0 is a ``ValueError`` naming ``name`` here rather than a
    ``ZeroDivisionError`` in the middle of a run.
    """
    import inspect

    import torch
    from torch.optim import lr_scheduler

    cls = getattr(lr_scheduler, scheduler, None)
    if not (isinstance(cls, type) and issubclass(cls, lr_scheduler.LRScheduler)) or scheduler.startswith("_"):
        raise ValueError(f"{name}.scheduler must name a class of torch.optim.lr_scheduler (e.g. StepLR), "
                         f"got {scheduler!r}")
    parameters = inspect.signature(cls).parameters
    for key, value in kwargs.items():
        annotation = str(parameters[key].annotation) if key in parameters else ""
        if annotation in ("int", "<class 'int'>"):
            _integer(f"{name}.kwargs.{key}", value)
        elif annotation in ("float", "<class 'float'>"):
            finite_number(f"{name}.kwargs.{key}", value)
    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=1.0, momentum=0.9)  # momentum: for schedulers that cycle it
    try:
        schedule = cls(optimizer, **kwargs)
        for _ in range(SCHEDULE_TRIAL_STEPS):
            optimizer.step()  # no gradient: changes nothing, keeps torch's step-order check quiet
            schedule.step()
            if not math.isfinite(optimizer.param_groups[0]["lr"]):
                raise ValueError(f"a rate became {optimizer.param_groups[0]['lr']}")
    except (ArithmeticError, TypeError, ValueError, KeyError) as error:
        raise ValueError(f"{name}: {scheduler} with kwargs {kwargs} does not give learning rates: "
                         f"{type(error).__name__}: {error}") from None


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {_shown(value)}")
    return int(value)


def non_negative_number(name: str, value: Any) -> float:
    """A finite number >= 0."""
    number = finite_number(name, value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return number


def _base_problems(values: dict[str, Any], spec: Any, needs_base_schedule: dict[str, tuple[str, ...]]) -> list[str]:
    """What is wrong with the base schedule for the fields that use it."""
    base = values.get("base_schedule", spec.base_schedule)
    using = [f"{field_name} {values[field_name]!r}" for field_name, needing in needs_base_schedule.items()
             if values.get(field_name) in needing]
    if values.get("base_lr_spread", 0.0) > 0 and values.get("action") != "residual":
        return [f"base_lr_spread {values['base_lr_spread']} draws the rate of the residual action's base schedule: "
                f"it needs action 'residual', got {values.get('action')!r}"]
    if using and base is None:
        return [f"{using[0]} needs base_schedule (a step-grid choice: {{scheduler, initial_lr, kwargs}}), "
                "e.g. from `lrgym tune`"]
    optimizer = values.get("optimizer")
    if (using and base is not None and "by_optimizer" in base
            and per_optimizer_key(base["by_optimizer"], optimizer, values.get("optimizer_kwargs")) is None):
        return [f"{using[0]}: the per-optimizer base_schedule has no schedule for optimizer {optimizer!r}; "
                f"it has: {', '.join(base['by_optimizer'])}"]
    return []


def task_fields(
    spec: Any,
    actions: tuple[str, ...],
    rewards: tuple[str, ...],
    features: tuple[str, ...] = ("xu",),
    needs_base_schedule: dict[str, tuple[str, ...]] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Check the fields of a task spec: (canonical values to store, problems found).

    :param spec: a :class:`lrgym.tasks.specs.TaskSpec` (read by field name).
    :param needs_base_schedule: field -> the values of it that need ``base_schedule``.
    """
    checks = {
        "name": text, "dataset": text, "model": text, "description": text, "optimizer": text,
        "optimizer_kwargs": table, "model_kwargs": table, "dataset_kwargs": table,
        "features": lambda name, value: one_of(name, value, features),
        "base_schedule": base_schedule, "base_lr_spread": non_negative_number,
        "batch_size": positive_int, "steps": positive_int, "interval": positive_int, "val_size": positive_int,
        "validation_percent": percent,
        "initial_lrs": rate_list,
        "lr_min": positive_number, "lr_max": positive_number, "lr_scale": finite_number,
        "divergence_loss": positive_number,
        "action": lambda name, value: one_of(name, value, actions),
        "reward": lambda name, value: one_of(name, value, rewards),
    }
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, check in checks.items():
        try:
            values[name] = check(name, getattr(spec, name))
        except ValueError as error:
            problems.append(str(error))
    if {"lr_min", "lr_max"} <= set(values) and values["lr_min"] > values["lr_max"]:
        problems.append(f"need 0 < lr_min <= lr_max, got lr_min={values['lr_min']} and lr_max={values['lr_max']}")
    if values.get("divergence_loss", 0) > MAX_DIVERGENCE_LOSS:  # its penalty, times the decisions, must stay finite
        problems.append(f"divergence_loss must be <= {MAX_DIVERGENCE_LOSS:g}, got {values['divergence_loss']}")
    if "lr_scale" in values and values["lr_scale"] <= 1:
        problems.append(f"lr_scale must be > 1 (the factor of one scale action), got {values['lr_scale']}")
    problems += _base_problems(values, spec, needs_base_schedule or {})
    if not problems:
        try:
            optimizer_arguments("optimizer_kwargs", values["optimizer"], values["optimizer_kwargs"])
        except ValueError as error:
            problems.append(str(error))
    return values, problems
