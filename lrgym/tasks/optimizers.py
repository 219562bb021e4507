"""The trainee optimizers a task spec may name, and how each is built.

The optional optimizers (Schedule-Free, Prodigy) are imported when one is built, not at
the top: they come with the ``optimizers`` extra, and a user without it can still run
every other optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from lrgym.tasks.names import unknown_name_error


def _schedule_free(kind: str):
    def build(groups, lr, **kwargs):
        try:
            import schedulefree
        except ImportError as error:  # pragma: no cover - optional extra
            raise ImportError("schedule-free optimizers need: pip install 'lrgym[optimizers]'") from error
        cls = {"sgd": schedulefree.SGDScheduleFree, "adamw": schedulefree.AdamWScheduleFree}[kind]
        return cls(groups, lr=lr, **kwargs)

    return build


def _prodigy(groups, lr, **kwargs):
    try:
        from prodigyopt import Prodigy
    except ImportError as error:  # pragma: no cover - optional extra
        raise ImportError("prodigy needs: pip install 'lrgym[optimizers]'") from error
    return Prodigy(groups, lr=lr, **kwargs)


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda groups, lr, **kw: torch.optim.SGD(groups, lr=lr, **kw),
    "momentum": lambda groups, lr, **kw: torch.optim.SGD(groups, lr=lr, **{"momentum": 0.9, **kw}),
    "adam": lambda groups, lr, **kw: torch.optim.Adam(groups, lr=lr, **kw),
    "adamw": lambda groups, lr, **kw: torch.optim.AdamW(groups, lr=lr, **kw),
    "schedulefree-sgd": _schedule_free("sgd"),
    "schedulefree-adamw": _schedule_free("adamw"),
    "prodigy": _prodigy,
}


def build_optimizer(name: str, model: nn.Module, lr: float, **kwargs) -> torch.optim.Optimizer:
    """Optimizer ``name`` over all of ``model``'s parameters, in one parameter group."""
    if name not in OPTIMIZERS:
        raise unknown_name_error("optimizer", name, list(OPTIMIZERS))
    return OPTIMIZERS[name](list(model.parameters()), lr, **kwargs)


def optimizer_kind(optimizer: str, optimizer_kwargs: Mapping[str, Any] | None = None) -> str | None:
    """The kind of a trainee optimizer, as far as its learning rate goes: ``"adam"`` (Adam,
    AdamW), ``"momentum"`` (``momentum``, or ``sgd`` with ``momentum > 0``) or ``"sgd"``;
    ``None`` for optimizers that set their own step size (Prodigy, Schedule-Free). Good rates
    differ by decades between kinds and little within one (AdamW is Adam with decoupled
    weight decay)."""
    if optimizer == "sgd":
        return "momentum" if float((optimizer_kwargs or {}).get("momentum", 0.0)) > 0 else "sgd"
    return {"adam": "adam", "adamw": "adam", "momentum": "momentum"}.get(optimizer)


def per_optimizer_key(
    table: Mapping[str, Any], optimizer: str, optimizer_kwargs: Mapping[str, Any] | None = None
) -> str | None:
    """The entry of a per-optimizer table (``{by_optimizer: ...}`` of a tuned choice) that
    serves ``optimizer``: its own, else its kind's (AdamW takes Adam's), else ``None``."""
    if optimizer in table:
        return optimizer
    kind = optimizer_kind(optimizer, optimizer_kwargs)
    return kind if kind in table else None
