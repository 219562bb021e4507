"""LRControlEnv: learning-rate control of a trainee network as a Gymnasium environment."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding

from lrgym.data import load_dataset
from lrgym.features import FEATURE_LIMIT, FEATURE_NAMES, Measurement, observation
from lrgym.specs import TaskSpec
from lrgym.trainee import LRSampler, Trainee
from lrgym.validation import positive_number


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` means the GPU when there is one; a device this machine lacks is a ``ValueError``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this machine has no CUDA GPU that torch can use; use cpu or auto")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return resolved


def _finite(value: float | None) -> float | None:
    """Values that are not finite (a diverged trainee) are reported as None."""
    return value if value is not None and math.isfinite(value) else None


def clip_lr(task: TaskSpec, lr: float) -> float:
    """``lr`` clipped to the task's ``[lr_min, lr_max]``; a rate that is not finite is an error."""
    if not math.isfinite(lr):
        raise ValueError(f"learning rate must be finite, got {lr}")
    return float(min(max(lr, task.lr_min), task.lr_max))


def check_action(task: TaskSpec, action: Any) -> float:
    """The number ``action`` holds, refusing what ``task``'s action space does not hold.

    Accepted: one real number in any shape that holds exactly one (``0.5``, ``[0.5]``,
    ``np.array([[0.5]])``). ``scale``: finite (finite values outside [-1, 1] are clipped, as
    SB3 clips a policy's actions); ``discrete``: an integer type, 0, 1 or 2; ``lr``: finite and
    >= 0 (rates below ``lr_min``, 0 included, become ``lr_min``, as a schedule decaying to 0 asks).

    :raises TypeError: not a real number (None, a string, a bool, an object).
    :raises ValueError: not exactly one element, or a value outside the space.
    """
    space = {"scale": "Box(-1.0, 1.0, (1,))", "discrete": "Discrete(3)"}.get(
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
    """The rate after ``action`` in ``task``'s action mode (see *Actions* below), clipped.

    The one rule for the environment and for a controller driving a plain training loop;
    the action is checked by :func:`check_action`.
    """
    value = check_action(task, action)
    if task.action == "scale":
        lr = lr * task.lr_scale ** float(np.clip(value, -1.0, 1.0))
    elif task.action == "discrete":
        lr = lr * task.lr_scale ** (int(value) - 1)
    else:
        lr = value
    return clip_lr(task, lr)


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


def episode_draws(task: TaskSpec, np_random: np.random.Generator) -> tuple[int, float]:
    """What ``reset`` draws from the episode's generator: the trainee seed and the initial rate."""
    trainee_seed = int(np_random.integers(2**31 - 1))
    initial_lr = float(np_random.choice(np.array(task.initial_lrs)))
    return trainee_seed, clip_lr(task, initial_lr)


def initial_lr_for_seed(task: TaskSpec, seed: int) -> float:
    """The initial rate ``reset(seed=seed)`` gives, without building a trainee."""
    np_random, _ = seeding.np_random(seed)  # what gymnasium.Env.reset(seed=...) seeds
    return episode_draws(task, np_random)[1]


class LRControlEnv(gym.Env):
    """Control the learning rate of a network while it trains.

    Each episode trains a fresh trainee (the task's dataset, model and optimizer) for
    ``steps`` optimizer steps. Every ``interval`` steps the agent sees the state and
    decides the learning rate of the next interval.

    ## Observation

    A ``Box(-1e6, 1e6, (8,), float32)``, always finite:

    | index | feature                    | meaning                                                   |
    |-------|----------------------------|-----------------------------------------------------------|
    | 0     | train_loss                 | mean training loss over the last interval                 |
    | 1     | val_loss                   | loss on the episode's fixed validation subset             |
    | 2     | prediction_variance        | variance of the softmax outputs over the subset, class mean |
    | 3     | prediction_change_variance | the same for their change since the last decision (0 at reset) |
    | 4     | final_weight_mean          | mean of the final layer's weights                         |
    | 5     | final_weight_variance      | variance of the final layer's weights                     |
    | 6     | log10_lr                   | log10 of the learning rate used in the last interval      |
    | 7     | budget_fraction            | trainee steps done / ``steps``, in [0, 1]                 |

    At reset nothing has been trained: ``train_loss`` is the validation loss.

    ## Actions (option ``action``)

    - ``scale`` (default): ``Box(-1, 1, (1,))``; ``lr <- lr * lr_scale**a``.
    - ``discrete``: ``Discrete(3)``; 0, 1, 2 multiply the rate by 1/lr_scale, 1, lr_scale.
    - ``lr``: ``Box(lr_min, lr_max, (1,))``; the absolute learning rate (heuristic agents).

    The rate is always clipped to ``[lr_min, lr_max]``; ``info["lr"]`` is the one used.
    A malformed action (not one real number, NaN or infinite, a non-integer or out-of-range
    discrete action, a negative rate) is refused with a ``TypeError`` or ``ValueError``
    (:func:`check_action`), and ``step()`` after the episode ended raises: call ``reset()``.
    An agent may also install a per-step, per-parameter-group sampler for the next
    intervals with :meth:`set_lr_sampler` (cleared at every reset).

    ## Reward (option ``reward``)

    - ``val_loss`` (default): minus the validation loss after the interval.
    - ``log_val_loss``: minus its natural log.
    - ``improvement``: previous minus current validation loss (sums to the total decrease).

    The test split never enters observation or reward.

    ## Starting state

    ``reset(seed=s)`` derives the trainee's weights, batch order, validation subset and
    the initial rate (drawn from ``initial_lrs``) from ``s``: same task + same seed gives
    the same start and the same data whichever agent acts, bit for bit on the CPU.

    ## Episode end

    Terminated after ``steps`` trainee steps (``ceil(steps / interval)`` decisions), or
    when the trainee diverges: a non-finite or above-``divergence_loss`` training
    loss, or a non-finite validation loss or final-layer weight. A diverged episode
    ends with a penalty reward, the reward of a validation loss stuck at
    ``divergence_loss`` for every remaining decision (so diverging never pays), and the
    last finite observation with its ``budget_fraction`` set to 1.

    ## Info

    Every step: ``lr``, ``step``, ``train_loss``, ``val_loss``, ``val_accuracy``,
    ``diverged`` (a loss that is not finite, at divergence, is ``None``). At reset also
    ``initial_lr``. At the last step also
    ``test_loss_at_best_val``, ``test_accuracy_at_best_val``, ``best_val_step``,
    ``final_test_loss``, ``final_test_accuracy``, ``best_val_loss``, ``lr_trajectory``
    (the rate of every decision). Losses that are not finite are reported as ``None``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        *,
        data_dir: str | None = None,
        download: bool = False,
        device: str | torch.device = "auto",
        **spec_fields: Any,
    ) -> None:
        self.task = TaskSpec(**spec_fields)
        self.device = resolve_device(device)
        self.dataset = load_dataset(
            self.task.dataset, data_dir=data_dir, download=download, device=self.device
        )
        self.observation_space = spaces.Box(
            -FEATURE_LIMIT, FEATURE_LIMIT, (len(FEATURE_NAMES),), dtype=np.float32
        )
        if self.task.action == "scale":
            self.action_space = spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        elif self.task.action == "discrete":
            self.action_space = spaces.Discrete(3)
        else:
            self.action_space = spaces.Box(
                np.float32(self.task.lr_min), np.float32(self.task.lr_max), (1,), dtype=np.float32
            )
        self.trainee: Trainee | None = None
        self._lr_sampler: LRSampler | None = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        trainee_seed, initial_lr = episode_draws(self.task, self.np_random)
        if options and "initial_lr" in options:
            initial_lr = clip_lr(self.task, positive_number("reset option initial_lr", options["initial_lr"]))
        self.trainee = Trainee(
            self.dataset,
            model=self.task.model,
            optimizer=self.task.optimizer,
            lr=initial_lr,
            batch_size=self.task.batch_size,
            val_size=self.task.val_size,
            seed=trainee_seed,
            optimizer_kwargs=self.task.optimizer_kwargs,
            device=self.device,
        )
        self._lr_sampler = None
        self._ended = False
        self._lr_trajectory: list[float] = []
        measurement = self.trainee.measure()
        self._previous_val_loss = measurement.val_loss
        self._last_observation = observation(measurement.val_loss, measurement, initial_lr, 0.0)
        info = self._step_info(measurement.val_loss, measurement, diverged=False)
        info["initial_lr"] = initial_lr
        return self._last_observation, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.trainee is None:
            raise RuntimeError("call reset() before step()")
        if self._ended:
            raise RuntimeError(f"the episode has ended (at trainee step {self.trainee.step}): call reset() first")
        trainee, task = self.trainee, self.task
        trainee.set_lr(next_lr(task, trainee.lr, action))
        self._lr_trajectory.append(trainee.lr)
        self._ended = True  # until the interval is trained: an exception inside leaves no episode to continue
        train_loss = trainee.train(min(task.interval, task.steps - trainee.step), self._lr_sampler)
        diverged = not math.isfinite(train_loss) or train_loss > task.divergence_loss
        measurement = None if diverged else trainee.measure()
        diverged = diverged or not measurement.finite
        done = trainee.step >= task.steps
        if diverged:
            remaining = task.decisions - len(self._lr_trajectory) + 1
            reward = self._penalty(remaining)
            obs = self._last_observation.copy()
            obs[FEATURE_NAMES.index("budget_fraction")] = 1.0
            info = self._step_info(train_loss, measurement, diverged=True)
        else:
            reward = self._reward(measurement.val_loss)
            obs = observation(train_loss, measurement, trainee.lr, trainee.step / task.steps)
            info = self._step_info(train_loss, measurement, diverged=False)
        self._last_observation = obs
        self._ended = done or diverged
        if done or diverged:
            info.update(self._final_info())
        return obs, float(reward), bool(done or diverged), False, info

    # ------------------------------------------------------------------ agent hooks
    def set_lr_sampler(self, sampler: LRSampler | None) -> None:
        """Draw each parameter group's rate for every optimizer step (``None``: off).

        ``sampler(global_step, nominal_lr, num_groups)`` returns one rate or one per group;
        installing one gives every parameter tensor its own group (ASLR's "per layer").
        """
        if sampler is not None:
            if self.trainee is None:
                raise RuntimeError("call reset() before set_lr_sampler()")
            self.trainee.split_param_groups()
            sampler = checked_lr_sampler(sampler)
        self._lr_sampler = sampler

    @property
    def lr(self) -> float:
        """The learning rate currently in force."""
        if self.trainee is None:
            raise RuntimeError("call reset() first")
        return self.trainee.lr

    # ------------------------------------------------------------------ internals
    def _reward(self, val_loss: float) -> float:
        if self.task.reward == "val_loss":
            reward = -val_loss
        elif self.task.reward == "log_val_loss":
            reward = -math.log(max(val_loss, 1e-12))
        else:
            reward = self._previous_val_loss - val_loss
        self._previous_val_loss = val_loss
        return reward

    def _penalty(self, remaining_decisions: int) -> float:
        """A validation loss stuck at ``divergence_loss`` for every remaining decision."""
        stuck = self.task.divergence_loss
        if self.task.reward == "improvement":
            return self._previous_val_loss - stuck
        per_decision = -stuck if self.task.reward == "val_loss" else -math.log(stuck)
        return per_decision * remaining_decisions

    def _step_info(
        self, train_loss: float, measurement: Measurement | None, diverged: bool
    ) -> dict[str, Any]:
        return {
            "lr": self.trainee.lr,
            "step": self.trainee.step,
            "train_loss": _finite(train_loss),
            "val_loss": _finite(measurement.val_loss) if measurement else None,
            "val_accuracy": _finite(measurement.val_accuracy) if measurement else None,
            "diverged": diverged,
        }

    def _final_info(self) -> dict[str, Any]:
        trainee = self.trainee
        test = self.dataset.test
        final = trainee.evaluate(test, weights="current")
        # The best-validation point is often the last one: then it is the same evaluation.
        at_best = final if trainee.best_step == trainee.step else trainee.evaluate(test, weights="best")
        return {
            "test_loss_at_best_val": _finite(at_best.loss),
            "test_accuracy_at_best_val": _finite(at_best.accuracy),
            "best_val_step": trainee.best_step,
            "best_val_loss": _finite(trainee.best_val_loss),
            "final_test_loss": _finite(final.loss),
            "final_test_accuracy": _finite(final.accuracy),
            "lr_trajectory": list(self._lr_trajectory),
        }
