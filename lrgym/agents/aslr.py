"""ASLR: an Adaptive Scheduler for Learning Rate (Khodamoradi et al.), in the environment.

ASLR has one hyperparameter, the initial rate ``c``. At the end of every epoch it
looks at a validation cost; while the cost does not beat the best so far it walks
``c`` up and down in growing runs, and during every epoch it draws each layer's rate
for each mini-batch from ``U(c - s/2, c + s/2)`` with ``s = 10**floor(log10 c)``
(the paper's Algorithm 1 and Equation 10).

What the paper leaves open is taken from the authors' reference code
(Xilinx/AdaptiveSchedulers, ``aslr.py``):

- the rate is kept as a leading digit times a power of ten: an initial 0.15 becomes
  0.1, and one search step moves the digit (0.1 -> 0.2 up; 0.1 -> 0.09 down, which is
  the paper's ``c <- 0.9 c`` when ``c - s`` would be 0);
- the first cost only initialises the best cost; each later epoch without improvement
  moves one step, in runs that grow by one at every reversal: up 1, down 2, up 3, ...
  (from 0.1: 0.2, 0.1, 0.09, 0.1, 0.2, 0.3, 0.2, ...); an improvement records the new
  best, keeps ``c`` and restarts the pattern; a tie changes nothing;
- the default cost is the top-1 validation *error* (``1 - info["val_accuracy"]``);
  option ``cost = "val_loss"`` uses the validation loss;
- "per layer" is per parameter tensor (the trainee has one parameter group each) and
  a fresh draw is made before every optimizer step;
- the walk is bounded: a step that leaves ``[lr_min, lr_max]`` (the task's bounds here)
  lands on the bound's leading-digit form.

How it meets the environment:

- the draws go through the env's per-step sampler
  (:meth:`~lrgym.environment.lr_control_env.LRControlEnv.set_lr_sampler`), from the agent's own generator
  (:func:`~lrgym.agents.seeding.agent_generator`), so the trainee's batch stream, and
  with it the pairing of seeds, is untouched; draws are clipped to ``[lr_min, lr_max]``;
- an "epoch" is ``epoch_steps`` trainee steps (spec field; default one pass over the
  training split, ``len(train) // batch_size`` steps, the length of the trainee's
  permutation epochs), capped at the budget. The env measures the validation set only at
  decisions, so the cost of an epoch is read at the first decision at or after its end
  (exactly at its end when ``interval`` divides ``epoch_steps``; if an interval spans
  several epoch ends, they count as one);
- the action is the centre ``c`` as an absolute ``lr``: ``info["lr"]`` and the
  observation's ``log10_lr`` show ``c``, the optimizer steps use the draws around it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from lrgym.agents.base import EpisodeStart
from lrgym.agents.fixed_schedules import split_options
from lrgym.agents.seeding import agent_generator
from lrgym.tasks.specs import AgentSpec, TaskSpec

COSTS = ("val_error", "val_loss")


def leading_digit(value: float) -> tuple[int, int]:
    """``value`` truncated to one significant digit, as ``(digit, exponent)``: 0.15 -> (1, -1)."""
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"ASLR needs a positive finite rate, got {value}")
    exponent = math.floor(math.log10(value))
    # The tolerance absorbs float error (0.3 / 0.1 is 2.9999999999999996).
    digit = math.floor(value / 10.0**exponent + 1e-9)
    if digit >= 10:
        digit, exponent = 1, exponent + 1
    elif digit < 1:
        digit, exponent = 9, exponent - 1
    return digit, exponent


def _value(digit: int, exponent: int) -> float:
    # Division by an exact power of ten gives the nearest double (0.09, not 0.09000000000000001).
    return digit * 10.0**exponent if exponent >= 0 else digit / 10.0 ** (-exponent)


class ASLRSearch:
    """The search of ASLR's Algorithm 1: the centre ``c`` and the spread ``s`` of the draws.

    :param initial_lr: the one hyperparameter, truncated to its leading digit.
    :param lr_min: lower bound of the walk (``None``: unbounded).
    :param lr_max: upper bound of the walk (``None``: unbounded).
    """

    def __init__(
        self, initial_lr: float, lr_min: float | None = None, lr_max: float | None = None
    ) -> None:
        self.digit, self.exponent = leading_digit(initial_lr)
        self.lr_min, self.lr_max = lr_min, lr_max
        self.best_cost: float | None = None
        self.direction = 1  # +1 up, -1 down
        self.run_length: int | None = None  # steps allowed in the current direction; None: no search yet
        self.walked = 0  # steps taken in the current direction

    @property
    def centre(self) -> float:
        """``c``, the centre of the draws and the rate the agent reports."""
        return _value(self.digit, self.exponent)

    @property
    def spread(self) -> float:
        """``s = 10**floor(log10 c)``, the width of the uniform draws."""
        return _value(1, self.exponent)

    def update(self, cost: float) -> None:
        """Take the validation cost of the epoch that just ended."""
        if self.best_cost is None:
            self.best_cost = cost
        elif cost < self.best_cost:
            self.best_cost = cost
            self.run_length = None  # keep c, restart the pattern at the next failure
        elif cost > self.best_cost:
            self._turn_if_run_done()
            self._walk()
            self.walked += 1

    def _turn_if_run_done(self) -> None:
        if self.run_length is None:
            self.run_length, self.walked, self.direction = 1, 0, 1
        elif self.walked >= self.run_length:
            self.run_length += 1
            self.direction = -self.direction
            self.walked = 0

    def _walk(self) -> None:
        if self.direction > 0:
            if self.digit == 9:
                self.digit, self.exponent = 1, self.exponent + 1
            else:
                self.digit += 1
            if self.lr_max is not None and self.centre > self.lr_max:
                self.digit, self.exponent = leading_digit(self.lr_max)
        else:
            # c - s would be 0 at digit 1: the paper's c <- 0.9 c.
            if self.digit == 1:
                self.digit, self.exponent = 9, self.exponent - 1
            else:
                self.digit -= 1
            if self.lr_min is not None and self.centre < self.lr_min:
                self.digit, self.exponent = leading_digit(self.lr_min)


class ASLRAgent:
    """ASLR in the environment (see the module docstring).

    :param initial_lr: ASLR's hyperparameter ``c``; ``None``: the env's initial rate of
        the episode (the same start every other agent gets on that seed).
    :param cost: ``"val_error"`` (top-1 validation error, the reference code) or ``"val_loss"``.
    :param epoch_steps: trainee steps per ASLR epoch; ``None``: one pass over the training split.
    """

    action_mode = "lr"

    def __init__(
        self, initial_lr: float | None = None, cost: str = "val_error", epoch_steps: int | None = None
    ) -> None:
        if cost not in COSTS:
            raise ValueError(f"ASLR cost must be one of {', '.join(COSTS)}, got {cost!r}")
        if epoch_steps is not None and int(epoch_steps) < 1:
            raise ValueError(f"epoch_steps must be a positive integer, got {epoch_steps!r}")
        self.initial_lr = None if initial_lr is None else float(initial_lr)
        self.cost = cost
        self.epoch_steps = None if epoch_steps is None else int(epoch_steps)

    def reset(self, start: EpisodeStart) -> None:
        task, trainee = start.task, start.env.trainee
        self.lr_min, self.lr_max = task.lr_min, task.lr_max
        self.search = ASLRSearch(self.initial_lr or start.initial_lr, task.lr_min, task.lr_max)
        one_pass = max(1, len(trainee.dataset.train) // trainee.batch_size)
        self.epoch_length = min(self.epoch_steps or one_pass, task.steps)
        self.epochs_seen = 0
        self.generator = agent_generator(start.seed, "aslr-draws")
        start.env.set_lr_sampler(self.draw_rates)

    def draw_rates(self, step: int, nominal_lr: float, num_groups: int) -> list[float]:
        """One rate per parameter group from ``U(c - s/2, c + s/2)``, clipped to the task's bounds."""
        centre, spread = self.search.centre, self.search.spread
        uniform = torch.rand(num_groups, generator=self.generator, dtype=torch.float64)
        rates = (centre - spread / 2 + spread * uniform).clamp(self.lr_min, self.lr_max)
        return rates.tolist()

    def epoch_cost(self, info: dict[str, Any]) -> float | None:
        """The cost ASLR minimises, from the env's info (``None`` if not finite)."""
        if self.cost == "val_loss":
            return info["val_loss"]
        return None if info["val_accuracy"] is None else 1.0 - info["val_accuracy"]

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        epochs_done = info["step"] // self.epoch_length
        if epochs_done > self.epochs_seen:
            self.epochs_seen = epochs_done
            cost = self.epoch_cost(info)
            if cost is not None:
                self.search.update(cost)
        return np.array([self.search.centre])


def make_aslr_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> ASLRAgent:
    """Factory of kind ``aslr``: params ``initial_lr``, ``cost``, ``epoch_steps``; ``options`` override them."""
    params = split_options(spec.params, options)
    unknown = set(params) - {"initial_lr", "cost", "epoch_steps"}
    if unknown:
        raise ValueError(f"agent {spec.name!r}: unknown ASLR param(s) {sorted(unknown)}")
    return ASLRAgent(**params)
