"""One episode's bookkeeping, apart from how its trainee is trained.

:class:`EpisodeTracker` turns actions into the rates of the next interval and the
numbers a trainee reports (mean training loss, a :class:`~lrgym.trainee.features.Measurement`,
test results) into observations, rewards, the episode's end and its ``info``. It does
not train anything: :class:`lrgym.environment.lr_control_env.LRControlEnv` drives one tracker with one
:class:`~lrgym.trainee.single.Trainee`, a population drives one tracker per member with its
stacked trainees, and :class:`lrgym.controller.LRController` drives one inside an
ordinary training loop. One set of rules for all of them, so they cannot disagree.

The semantics (observation features, action modes, rewards, divergence) are specified
in :class:`lrgym.environment.lr_control_env.LRControlEnv`'s docstring.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from lrgym.environment.rewards import Divergence, Outcome, reward_rule
from lrgym.tasks.optimizers import per_optimizer_key
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.features import FEATURE_SETS, Measurement, ScaleFreeFeatures, observation, optimizer_features
from lrgym.trainee.schedule_rates import SCHEDULE_KEYS, scheduler_rates
from lrgym.trainee.single import LRSampler


class DivergenceBoundWarning(UserWarning):
    """A task's ``divergence_loss`` is below the loss its trainee starts from."""


def clip_lr(task: TaskSpec, lr: float) -> float:
    """``lr`` clipped to the task's ``[lr_min, lr_max]``; a rate that is not finite is an error."""
    if not math.isfinite(lr):
        raise ValueError(f"learning rate must be finite, got {lr}")
    return float(min(max(lr, task.lr_min), task.lr_max))


def check_action(task: TaskSpec, action: Any) -> float:
    """The number ``action`` holds, refusing what ``task``'s action space does not hold.

    Accepted: one real number in any shape that holds exactly one (``0.5``, ``[0.5]``,
    ``np.array([[0.5]])``). ``scale`` and ``residual``: finite (finite values outside [-1, 1] are clipped, as
    SB3 clips a policy's actions); ``discrete``: an integer type, 0, 1 or 2; ``lr``: finite and
    >= 0 (rates below ``lr_min``, 0 included, become ``lr_min``, as a schedule decaying to 0 asks);
    ``log_lr``: finite (the rate ``10 ** value``, clipped to the bounds).

    :raises TypeError: not a real number (None, a string, a bool, an object).
    :raises ValueError: not exactly one element, or a value outside the space.
    """
    space = {"scale": "Box(-1.0, 1.0, (1,))", "residual": "Box(-1.0, 1.0, (1,))", "discrete": "Discrete(3)",
             "log_lr": f"Box(log10 {task.lr_min}, log10 {task.lr_max}, (1,))"}.get(
        task.action, f"Box({task.lr_min}, {task.lr_max}, (1,))")
    expected = f"action mode {task.action!r} expects one number of {space}"
    try:
        values = np.asarray(action)
    except (TypeError, ValueError) as error:  # a ragged list
        raise TypeError(f"{expected}, got {action!r} ({error})") from error
    if action is None or values.dtype.kind not in "iuf":
        raise TypeError(f"{expected}, got {action!r} ({type(action).__name__}, dtype {values.dtype})")
    if values.size != 1:
        raise ValueError(f"{expected}, got {values.size} elements (shape {values.shape}): {action!r}")
    value = values.reshape(-1)[0].item()  # a Python number: messages show 1.5, not np.float64(1.5)
    if task.action == "discrete":
        if values.dtype.kind not in "iu" or int(value) not in (0, 1, 2):
            raise ValueError(f"{expected}: an integer 0, 1 or 2, got {value!r} (dtype {values.dtype})")
        return float(value)
    if not math.isfinite(value) or (task.action == "lr" and value < 0):
        allowed = "finite and >= 0" if task.action == "lr" else "finite"
        raise ValueError(f"{expected}: {allowed}, got {value!r}")
    return float(value)


def next_lr(task: TaskSpec, lr: float, action: Any) -> float:
    """The rate after ``action`` in ``task``'s action mode (``scale``, ``discrete``, ``lr``, ``log_lr``), clipped.

    The one rule for the environment and for a controller driving a plain training loop.
    The ``residual`` mode depends on the step as well: see :meth:`EpisodeTracker.decide`.
    """
    return _rate_after(task, lr, check_action(task, action))


def _rate_after(task: TaskSpec, lr: float, value: float) -> float:
    """:func:`next_lr` for an action already checked by :func:`check_action`."""
    if task.action in ("scale", "residual"):
        lr = lr * task.lr_scale ** float(np.clip(value, -1.0, 1.0))
    elif task.action == "discrete":
        lr = lr * task.lr_scale ** (int(value) - 1)
    elif task.action == "log_lr":
        lr = 10.0 ** min(value, math.log10(task.lr_max))  # no overflow: clipped to lr_max below anyway
    else:
        lr = value
    return clip_lr(task, lr)


def task_base_schedule(task: TaskSpec) -> dict[str, Any]:
    """The base schedule ``task`` runs: its ``base_schedule``, or the entry of its optimizer
    when that is a per-optimizer choice (``{by_optimizer: {...}}``)."""
    base = task.base_schedule
    if base is None:
        raise ValueError(f"task {task.name!r} has no base_schedule")
    if "by_optimizer" in base:
        key = per_optimizer_key(base["by_optimizer"], task.optimizer, task.optimizer_kwargs)
        if key is None:
            raise ValueError(
                f"task {task.name!r}: the per-optimizer base_schedule has no schedule for optimizer "
                f"{task.optimizer!r}; it has: {', '.join(base['by_optimizer'])}"
            )
        base = base["by_optimizer"][key]
    return base


def base_rates(task: TaskSpec) -> list[float]:
    """The rate of every trainee step under the base schedule (:func:`task_base_schedule`, unclipped)."""
    if task.base_lr_spread > 0:
        raise ValueError(
            f"task {task.name!r} has base_lr_spread {task.base_lr_spread}: draw the episode's base first "
            "(episode_task(task, trainee_seed))"
        )
    base = task_base_schedule(task)
    schedule = {key: value for key, value in base.items() if key in SCHEDULE_KEYS}
    return scheduler_rates(schedule, task.steps, float(base["initial_lr"]))


BASE_SPREAD_STREAM = 2107  # tells the base-rate draw's generator apart from other uses of the trainee seed


def episode_task(task: TaskSpec, trainee_seed: int) -> TaskSpec:
    """The task one episode runs. With ``base_lr_spread = s > 0`` the base schedule's rate is
    multiplied by ``10**U(-s, s)``, drawn from the episode's trainee seed (so every agent and
    the base schedule's own run on that seed see the same base: runs stay paired), and the
    returned task has the drawn base and ``base_lr_spread = 0``; otherwise ``task`` itself.

    Every driver of episodes calls it once per episode before :func:`start_lr`, the base run
    and :class:`EpisodeTracker` (which refuses a task whose spread was not drawn).
    """
    if task.base_lr_spread <= 0:
        return task
    rng = np.random.default_rng([int(trainee_seed), BASE_SPREAD_STREAM])
    factor = 10.0 ** rng.uniform(-task.base_lr_spread, task.base_lr_spread)
    base = task_base_schedule(task)
    return task.replace(base_schedule={**base, "initial_lr": float(base["initial_lr"]) * factor}, base_lr_spread=0.0)


def start_lr(task: TaskSpec, drawn_lr: float) -> float:
    """The rate in force at reset: the base schedule's first in ``residual`` mode, else the draw."""
    if task.action == "residual":
        return clip_lr(task, base_rates(task)[0])
    return clip_lr(task, drawn_lr)


def observation_size(task: TaskSpec) -> int:
    return len(FEATURE_SETS[task.features])


def _finite(value: float | None) -> float | None:
    """Values that are not finite (a diverged trainee) are reported as None."""
    return value if value is not None and math.isfinite(value) else None


def has_diverged(task: TaskSpec, train_loss: float, measurement: Measurement | None) -> bool:
    """Whether an interval ends the episode as a divergence: a training loss that is not finite
    or above ``divergence_loss``, no measurement, or a measurement that is not finite or above it."""
    return (
        not math.isfinite(train_loss)
        or train_loss > task.divergence_loss
        or measurement is None
        or not measurement.finite
        or measurement.val_loss > task.divergence_loss
    )


class EpisodeTracker:
    """Per-episode state of the controller's view of one trainee.

    :param task: the task (action mode, features, reward, budget, bounds).
    :param lr: the rate in force at reset (:func:`start_lr`).
    :param base_best_val_loss: for the ``relative_terminal`` reward: the best validation
        loss of the base schedule's own run on the same instance and seed.

    Call :meth:`start` with the reset measurement, then per decision :meth:`decide`
    (the rates of the next interval's steps), train those steps, and :meth:`record`
    (the mean training loss and the measurement, ``None`` if the trainee diverged
    before it could be measured). After the last one add :meth:`final_info`.
    """

    def __init__(self, task: TaskSpec, lr: float, base_best_val_loss: float | None = None) -> None:
        self._rule = reward_rule(task)
        if self._rule.needs_base_run and base_best_val_loss is None:
            raise ValueError(f"the {task.reward} reward needs the base schedule's best validation loss")
        self.task = task
        self.lr = float(lr)
        self.base_best_val_loss = base_best_val_loss
        self.step = 0
        self.lr_trajectory: list[float] = []
        self.done = False
        self._correction = 0.0  # residual mode: the sum of actions so far
        self._base = base_rates(task) if task.action == "residual" else None
        self._reference_lr = float(lr)  # what "do nothing" would run now
        self._previous_action = 0.0
        self._pending_steps = 0
        self.best_val_loss = math.inf
        self._previous_val_loss = math.nan
        self._last_observation: np.ndarray | None = None
        self._scale_free: ScaleFreeFeatures | None = None

    # ------------------------------------------------------------------ reset
    def start(self, measurement: Measurement) -> tuple[np.ndarray, dict[str, Any]]:
        """The first observation and info, from the measurement of the untrained trainee."""
        if not measurement.finite:
            raise FloatingPointError("the untrained trainee measured a non-finite validation loss")
        if measurement.val_loss >= self.task.divergence_loss:
            warnings.warn(
                f"task {self.task.name!r}: divergence_loss {self.task.divergence_loss:g} is not above the untrained "
                f"trainee's validation loss {measurement.val_loss:.4g}: every episode will end as diverged at its "
                "first decision (raise divergence_loss; the default is 20)",
                DivergenceBoundWarning, stacklevel=2,
            )
        self._previous_val_loss = measurement.val_loss
        self.best_val_loss = measurement.val_loss
        if self.task.features == "scale-free":
            self._scale_free = ScaleFreeFeatures(measurement.val_loss)
        elif self.task.features == "scale-free-optimizer":
            identity = optimizer_features(self.task.optimizer, self.task.optimizer_kwargs)
            self._scale_free = ScaleFreeFeatures(measurement.val_loss, constant=identity)
        # At reset nothing has been trained: the training loss is the validation loss.
        self._last_observation = self._observe(measurement.val_loss, measurement)
        return self._last_observation, self._step_info(measurement.val_loss, measurement, False)

    # ------------------------------------------------------------------ one decision
    def decide(self, action: Any) -> list[float]:
        """Apply ``action``; return the rate of each trainee step of the next interval."""
        if self.done:
            raise RuntimeError(f"the episode has ended (at trainee step {self.step}): call reset() first")
        if self._last_observation is None:
            raise RuntimeError("call start() (the env's reset()) before deciding")
        task = self.task
        steps = min(task.interval, task.steps - self.step)
        value = check_action(task, action)
        if task.action == "residual":
            value = float(np.clip(value, -1.0, 1.0))
            self._correction += value
            multiplier = task.lr_scale**self._correction
            window = self._base[self.step : self.step + steps]
            rates = [clip_lr(task, rate * multiplier) for rate in window]
            self._reference_lr = clip_lr(task, window[0])
            self._previous_action = value
            self.lr = rates[0]
        else:
            self.lr = _rate_after(task, self.lr, value)
            rates = [self.lr] * steps
            self._previous_action = self._action_value(value)
        self.lr_trajectory.append(self.lr)
        self._pending_steps = steps
        self.done = True  # until record(): an exception while training leaves no episode to continue
        return rates

    def _action_value(self, value: float) -> float:
        """The checked action on the [-1, 1] scale the ``previous_action`` feature reports."""
        if self.task.action in ("lr", "log_lr"):
            return 0.0  # absolute rates: the rate features say it all
        return float(np.clip(value, -1.0, 1.0)) if self.task.action == "scale" else float(int(value) - 1)

    def record(
        self, train_loss: float, measurement: Measurement | None
    ) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        """After the interval: observation, reward, whether the episode ended, info."""
        task = self.task
        self.step += self._pending_steps
        self._pending_steps = 0
        diverged = has_diverged(task, train_loss, measurement)
        done = self.step >= task.steps or diverged
        if diverged:
            reward = self._penalty()
            obs = self._last_observation.copy()
            obs[FEATURE_SETS[task.features].index("budget_fraction")] = 1.0
        else:
            self.best_val_loss = min(self.best_val_loss, measurement.val_loss)
            reward = self._reward(measurement.val_loss, done)
            obs = self._observe(train_loss, measurement)
        self._last_observation = obs
        self.done = done
        return obs, float(reward), done, self._step_info(train_loss, measurement, diverged)

    # ------------------------------------------------------------------ the end
    def final_info(
        self, test_at_best: Any, test_final: Any, best_val_step: int
    ) -> dict[str, Any]:
        """The last step's extra info, from test results (objects with ``loss`` and ``accuracy``)."""
        info = {
            "test_loss_at_best_val": _finite(test_at_best.loss),
            "test_accuracy_at_best_val": _finite(test_at_best.accuracy),
            "best_val_step": best_val_step,
            "best_val_loss": _finite(self.best_val_loss),
            "final_test_loss": _finite(test_final.loss),
            "final_test_accuracy": _finite(test_final.accuracy),
            "lr_trajectory": list(self.lr_trajectory),
        }
        if self.base_best_val_loss is not None:
            info["base_best_val_loss"] = self.base_best_val_loss
        return info

    # ------------------------------------------------------------------ internals
    def _observe(self, train_loss: float, measurement: Measurement) -> np.ndarray:
        budget_fraction = self.step / self.task.steps
        if self._scale_free is None:
            return observation(train_loss, measurement, self.lr, budget_fraction)
        return self._scale_free.observe(
            train_loss, measurement, self.lr, self.lr / self._reference_lr, budget_fraction,
            self._previous_action,
        )

    def _reward(self, val_loss: float, done: bool) -> float:
        outcome = Outcome(val_loss, self._previous_val_loss, self.best_val_loss, self.base_best_val_loss, done)
        self._previous_val_loss = val_loss
        return self._rule.value(outcome)

    def _penalty(self) -> float:
        """A diverged episode's last reward: worse than any finite outcome (see :class:`Divergence`)."""
        remaining = self.task.decisions - len(self.lr_trajectory) + 1
        return self._rule.penalty(
            Divergence(self.task.divergence_loss, remaining, self._previous_val_loss, self.base_best_val_loss)
        )

    def _step_info(
        self, train_loss: float, measurement: Measurement | None, diverged: bool
    ) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "step": self.step,
            "train_loss": _finite(train_loss),
            "val_loss": _finite(measurement.val_loss) if measurement else None,
            "val_accuracy": _finite(measurement.val_accuracy) if measurement else None,
            "diverged": diverged,
        }



def checked_lr_sampler(sampler: LRSampler) -> LRSampler:
    """``sampler``, raising when it returns a rate that is not finite and > 0: an agent bug,
    which must not be scored as a divergence of the trainee."""

    def checked(step: int, lr: float, num_groups: int):
        rates = sampler(step, lr, num_groups)
        try:
            values = np.asarray(rates, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(f"the agent's lr sampler returned {rates!r} at trainee step {step}: not rates") from error
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(
                f"the agent's lr sampler returned {rates!r} at trainee step {step}: every rate must be finite "
                "and > 0 (a bug in the agent, not a divergence of the trainee)"
            )
        return rates

    return checked
