"""Which SB3 class trains, and loads, a controller: by its recipe's kind, or the class its
recipe (and then its card) names."""

from __future__ import annotations

import importlib
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

# agent spec kind (a training recipe) -> the SB3 class that trains it unless the spec names
# another in ``algorithm`` (module, class name)
ALGORITHMS = {
    "ppo": ("stable_baselines3", "PPO"),
    "ppo-lstm": ("sb3_contrib", "RecurrentPPO"),
    "sb3": ("stable_baselines3", "PPO"),
}
ALGORITHM_MODULES = ("stable_baselines3", "sb3_contrib")  # where an ``algorithm`` name is looked up


def algorithm_class(kind: str, name: str | None = None) -> type:
    """The SB3 class that trains agent kind ``kind`` (a key of :data:`ALGORITHMS`).

    :param name: an algorithm class of stable_baselines3 or sb3_contrib (``SAC``,
        ``sb3_contrib.TQC``, as a card records it: ``stable_baselines3.SAC``); ``None``: the kind's default.
    """
    if kind not in ALGORITHMS:
        raise ValueError(f"no training algorithm for agent kind {kind!r}; known: {', '.join(ALGORITHMS)}")
    module_name, _, class_name = (".".join(ALGORITHMS[kind]) if name is None else str(name)).rpartition(".")
    if module_name and module_name not in ALGORITHM_MODULES:
        raise ValueError(f"algorithm {name!r}: lrgym trains with {' or '.join(ALGORITHM_MODULES)} classes only")
    for module in [module_name] if module_name else ALGORITHM_MODULES:
        found = getattr(importlib.import_module(module), class_name, None)
        if isinstance(found, type) and issubclass(found, BaseAlgorithm):
            return found
    raise ValueError(f"unknown algorithm {name!r}: name an SB3 algorithm class, e.g. PPO, A2C, SAC, TD3 "
                     "(stable_baselines3) or RecurrentPPO, TQC (sb3_contrib)")


def card_algorithm(card: dict[str, Any]) -> type:
    """The SB3 class that trained the controller of ``card`` (its ``algorithm``, else its agent kind's default)."""
    return algorithm_class(card["agent"]["kind"], card.get("algorithm"))
