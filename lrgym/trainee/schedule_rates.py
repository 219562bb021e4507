"""Learning-rate schedules as rate lists, computed by the real ``torch.optim.lr_scheduler`` objects.

No formula is re-derived here: a one-parameter dummy optimizer carries a rate, the torch
scheduler steps it, and the rate it holds before trainee step ``t`` is the rate of step
``t``. Used by the schedule agents (:mod:`lrgym.agents.fixed_schedules`) and by the env's
``residual`` action mode, whose base schedule is a tuned step decay.

A schedule spec: ``scheduler`` (a class name in ``torch.optim.lr_scheduler``), ``kwargs``,
and optionally ``budget_fractions``, ``lr_multiples``, ``budget_total_factors``,
``schedulers`` (see :mod:`lrgym.agents.fixed_schedules`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch.optim import lr_scheduler

SCHEDULE_KEYS = (
    "scheduler", "kwargs", "budget_fractions", "lr_multiples", "budget_total_factors", "schedulers",
)


def dummy_optimizer(initial_lr: float) -> torch.optim.Optimizer:
    """A one-parameter optimizer that only carries a rate for a torch scheduler.

    SGD with momentum, so schedulers that cycle momentum have one to cycle.
    """
    parameter = torch.zeros(1, requires_grad=True)
    return torch.optim.SGD([parameter], lr=initial_lr, momentum=0.9)


def _resolve(value: Any, convert) -> Any:
    return [convert(item) for item in value] if isinstance(value, (list, tuple)) else convert(value)


def scheduler_kwargs(schedule: Mapping[str, Any], budget: int, initial_lr: float) -> dict[str, Any]:
    """The keyword arguments of ``schedule``'s scheduler, sized to ``budget`` and ``initial_lr``.

    :param schedule: a schedule spec (see the module docstring).
    :param budget: scheduler steps in an episode (trainee steps, or decisions for a
        metric-driven scheduler).
    :param initial_lr: the rate the schedule starts from.
    """
    unknown = set(schedule) - set(SCHEDULE_KEYS) - {"initial_lr"}
    if unknown:
        raise ValueError(f"unknown schedule key(s) {sorted(unknown)}; valid: {', '.join(SCHEDULE_KEYS)}")
    kwargs = dict(schedule.get("kwargs", {}))
    for name, fraction in schedule.get("budget_fractions", {}).items():
        kwargs[name] = _resolve(fraction, lambda f: max(1, round(float(f) * budget)))
    for name, multiple in schedule.get("lr_multiples", {}).items():
        kwargs[name] = _resolve(multiple, lambda m: float(m) * initial_lr)
    for name, total in schedule.get("budget_total_factors", {}).items():
        kwargs[name] = _resolve(total, lambda t: float(t) ** (1.0 / budget))
    return kwargs


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Mapping[str, Any], budget: int, initial_lr: float
) -> lr_scheduler.LRScheduler:
    """The torch scheduler ``schedule`` describes, on ``optimizer`` (nested ones included)."""
    name = schedule.get("scheduler")
    cls = getattr(lr_scheduler, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, lr_scheduler.LRScheduler)):
        raise ValueError(
            f"schedule needs 'scheduler' = a class of torch.optim.lr_scheduler, got {name!r}"
        )
    kwargs = scheduler_kwargs(schedule, budget, initial_lr)
    if "schedulers" in schedule:
        kwargs["schedulers"] = [
            build_scheduler(optimizer, child, budget, initial_lr) for child in schedule["schedulers"]
        ]
    try:
        return cls(optimizer=optimizer, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot build {name} with {kwargs}: {error}") from error


def scheduler_rates(schedule: Mapping[str, Any], steps: int, initial_lr: float) -> list[float]:
    """The rate ``schedule``'s torch scheduler gives each of ``steps`` trainee steps.

    The dummy optimizer and its scheduler are stepped once per trainee step, in the
    order of an ordinary training loop (``optimizer.step()`` then ``scheduler.step()``).
    Kept per process (a residual episode asks for its base schedule's rates several times:
    30 ms each for 500 steps, measured, a tenth of a family population's time).
    """
    return list(_cached_rates(json.dumps(schedule, sort_keys=True), int(steps), float(initial_lr)))


@functools.lru_cache(maxsize=256)
def _cached_rates(schedule_json: str, steps: int, initial_lr: float) -> tuple[float, ...]:
    return _rates(json.loads(schedule_json), steps, initial_lr)


def _rates(schedule: Mapping[str, Any], steps: int, initial_lr: float) -> tuple[float, ...]:
    optimizer = dummy_optimizer(initial_lr)
    scheduler = build_scheduler(optimizer, schedule, steps, initial_lr)
    rates = []
    for step in range(steps):
        rates.append(float(optimizer.param_groups[0]["lr"]))
        if step < steps - 1:  # OneCycleLR refuses a step beyond its total_steps
            optimizer.step()  # no gradient: changes nothing, keeps torch's step-order check happy
            scheduler.step()
    return tuple(rates)
