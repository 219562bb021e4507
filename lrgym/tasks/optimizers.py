"""The trainee optimizers a task spec may name, and how each is built.

The optional optimizers (Schedule-Free, Prodigy) are imported when one is built, not at
the top: they come with the ``optimizers`` extra, and a user without it can still run
every other optimizer.
"""

from __future__ import annotations

from collections.abc import Callable

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
