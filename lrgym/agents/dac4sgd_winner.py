"""The rule that won the DAC4SGD competition (AutoML-Conf 2022, SGD track): ``dac4sgd-winner``.

thetourney/DAC4SGD ``solution.py`` (lines 5-30): the rate of update ``t`` is

    lr(t) = LR * (1 - t / cutoff) * RF ** k,    LR = 0.005, RF = 0.05,

where ``cutoff`` is the budget in updates and ``k`` counts the epoch ends whose
validation loss was higher than the previous epoch end's (the first epoch end only
records its loss: the previous one starts at ``sys.float_info.max``). It learned
nothing: a linear decay with a multiplicative brake.

In lrgym's terms:

- the linear decay is applied at every trainee step (a per-step sampler,
  :meth:`~lrgym.environment.lr_control_env.LRControlEnv.set_lr_sampler`), not once per decision;
- an *epoch end* is every ``floor(N / batch_size)`` steps, ``N`` the trainee's training
  split (lrgym's batches are epoch-wise permutations that drop the remainder);
- the competition measures the whole validation split right after the update that ends
  an epoch; lrgym measures its fixed validation subset (``val_size``) at decision points,
  so the rule reads the **first measurement after each epoch end**, and the brake acts
  from that decision on (at most ``interval - 1`` steps later than in the competition).
  Two epoch ends within one interval count as one.

Rates are clipped to the task's ``[lr_min, lr_max]`` like any action.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lrgym.agents.base import EpisodeStart
from lrgym.environment.lr_control_env import clip_lr
from lrgym.tasks.spec_checks import positive_number
from lrgym.tasks.specs import AgentSpec, TaskSpec


class DAC4SGDWinnerAgent:
    """Linear decay from ``lr``, times ``reduction_factor`` whenever an epoch's validation loss rose.

    :param lr: the rate at step 0 (the solution's ``LR = .005``).
    :param reduction_factor: the brake (the solution's ``RF = .05``).
    """

    action_mode = "lr"

    def __init__(self, lr: float = 0.005, reduction_factor: float = 0.05) -> None:
        self.lr = positive_number("lr", lr)
        self.reduction_factor = positive_number("reduction_factor", reduction_factor)
        self.task: TaskSpec | None = None
        self.steps_per_epoch = 1
        self.factor = 1.0  # the product of the brakes applied so far
        self.epochs_read = 0
        self.last_val_loss = math.inf

    def reset(self, start: EpisodeStart) -> None:
        self.task = start.task
        training_examples = len(start.env.trainee.dataset.train)
        self.steps_per_epoch = max(1, training_examples // start.task.batch_size)
        self.factor, self.epochs_read, self.last_val_loss = 1.0, 0, math.inf
        start.env.set_lr_sampler(self.rate_at)

    def rate_at(self, step: int, nominal_lr: float = math.nan, num_groups: int = 1) -> float:
        """The rate of trainee step ``step`` (the env's per-step sampler)."""
        return clip_lr(self.task, self.lr * (1 - step / self.task.steps) * self.factor)

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        epochs = info["step"] // self.steps_per_epoch
        if epochs > self.epochs_read and info["val_loss"] is not None:
            self.epochs_read = epochs
            if info["val_loss"] > self.last_val_loss:
                self.factor *= self.reduction_factor
            self.last_val_loss = info["val_loss"]
        return np.array([self.rate_at(info["step"])])


def make_dac4sgd_winner_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> DAC4SGDWinnerAgent:
    """Factory of kind ``dac4sgd-winner``: the spec's ``lr`` and ``reduction_factor`` (options override)."""
    params = {key: value for key, value in {**spec.params, **options}.items() if key in ("lr", "reduction_factor")}
    unknown = sorted(set(spec.params) - {"lr", "reduction_factor"})
    if unknown:
        raise ValueError(f"agent {spec.name!r}: unknown parameter(s) {unknown}; valid: lr, reduction_factor")
    return DAC4SGDWinnerAgent(**params)
