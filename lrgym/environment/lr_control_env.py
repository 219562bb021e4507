"""LRControlEnv: learning-rate control of a trainee network as a Gymnasium environment."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.utils import seeding

from lrgym.environment.episode import (
    EpisodeTracker,
    check_action,
    checked_lr_sampler,
    clip_lr,
    episode_task,
    next_lr,
    start_lr,
)
from lrgym.environment.rewards import needs_base_run
from lrgym.tasks.spec_checks import positive_number
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.data import Dataset, load_dataset
from lrgym.trainee.features import FEATURE_LIMIT, FEATURE_SETS, SCALE_FREE_LIMIT
from lrgym.trainee.single import LRSampler, Trainee

__all__ = [
    "LRControlEnv", "check_action", "clip_lr", "next_lr", "episode_draws", "initial_lr_for_seed", "resolve_device",
]


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

    ## Observation (option ``features``)

    ``xu`` (default; Xu et al. 2019): a ``Box(-1e6, 1e6, (8,), float32)``, always finite:

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

    ``scale-free``: a ``Box(-10, 10, (12,), float32)`` meant to read the same on every task
    of a family (each value clipped to +-10; L0 is the validation loss at reset):

    | index | feature                  | meaning                                                      |
    |-------|--------------------------|--------------------------------------------------------------|
    | 0     | log_train_loss_ratio     | log(train loss / L0)                                         |
    | 1     | log_val_loss_ratio       | log(val loss / L0)                                           |
    | 2     | log_val_loss_change      | log(val loss / the previous decision's val loss) (0 at reset) |
    | 3     | log_val_loss_change_ema  | EMA (decay 0.7) of index 2: the recent trend                 |
    | 4     | log_val_to_best          | log(val loss / best val loss so far), >= 0                   |
    | 5     | log_generalisation_gap   | log(val loss / train loss)                                   |
    | 6     | log10_update_ratio       | log10(|parameter change over the interval| / |parameters|); -10 at reset |
    | 7     | update_cosine            | cosine between the last two interval updates (0 until there are two) |
    | 8     | log_lr_multiplier        | log(rate / do-nothing rate: the initial one, or the base schedule's) |
    | 9     | log10_lr                 | log10 of the rate in force (the interval's first step)       |
    | 10    | budget_fraction          | trainee steps done / ``steps``, in [0, 1]                    |
    | 11    | previous_action          | the last action on [-1, 1] (``discrete``: -1, 0, 1; ``lr``, ``log_lr``: 0) |

    Losses enter only as ratios, parameters only as a ratio and a cosine: multiplying
    every loss (or every weight) by a constant leaves indices 0-7 unchanged.
    At reset nothing has been trained: the training loss is the validation loss.

    ``scale-free-optimizer``: a ``Box(-10, 10, (15,), float32)``, the twelve ``scale-free``
    features followed by the trainee optimizer's identity, constant over the episode
    (:func:`lrgym.trainee.features.optimizer_features`):

    | index | feature            | meaning                                                      |
    |-------|--------------------|--------------------------------------------------------------|
    | 12    | optimizer_adam     | 1 for ``adam`` or ``adamw``, else 0                           |
    | 13    | optimizer_momentum | 1 for ``momentum`` (or ``sgd`` with a ``momentum`` > 0), else 0 |
    | 14    | optimizer_sgd      | 1 for plain ``sgd``, else 0                                  |

    Optimizers that set their own step size (``prodigy``, ``schedulefree-*``) read 0, 0, 0.

    ## Actions (option ``action``)

    - ``scale`` (default): ``Box(-1, 1, (1,))``; ``lr <- lr * lr_scale**a``.
    - ``discrete``: ``Discrete(3)``; 0, 1, 2 multiply the rate by 1/lr_scale, 1, lr_scale.
    - ``lr``: ``Box(lr_min, lr_max, (1,))``; the absolute learning rate (heuristic agents).
    - ``log_lr``: ``Box(log10(lr_min), log10(lr_max), (1,))``; ``lr <- 10**a``: the absolute rate on
      a log scale, as the DAC4SGD competition's RL baseline acted (``agents/sac-dac4sgd.toml``).
    - ``residual``: ``Box(-1, 1, (1,))``; the rate of step t is
      ``base(t) * lr_scale**(a_1 + ... + a_k)``, where ``base`` is the task's
      ``base_schedule`` (a tuned step decay, run by ``torch.optim.lr_scheduler.StepLR``)
      and ``a_1..a_k`` the actions so far: doing nothing (a = 0) runs the base schedule.
      The rate then moves at every step, not once per interval. ``base_schedule`` is a
      step-grid choice ``{scheduler, initial_lr, kwargs}`` (optionally ``budget_fractions``
      or nested ``schedulers``, sized to each task's budget: a cosine over the whole run),
      or a per-optimizer choice ``{by_optimizer: {optimizer: choice}}`` of which the task's
      optimizer's entry runs (:mod:`lrgym.agents.per_optimizer`).
      With ``optimizer = "prodigy"`` the rate is Prodigy's multiplier of its own step-size
      estimate: a base of a constant 1.0 (or a cosine from 1.0) is Prodigy as its authors
      run it, and the controller scales that multiplier (``relative_terminal`` then pays
      against Prodigy's own paired run).

    The rate is always clipped to ``[lr_min, lr_max]``; ``info["lr"]`` is the one used
    (the interval's first step in ``residual`` mode).
    A malformed action (not one real number, NaN or infinite, a non-integer or out-of-range
    discrete action, a negative rate) is refused with a ``TypeError`` or ``ValueError``
    (:func:`lrgym.environment.episode.check_action`), and ``step()`` after the episode ended raises: call ``reset()``.
    An agent may also install a per-step, per-parameter-group sampler for the next
    intervals with :meth:`set_lr_sampler` (cleared at every reset).

    ## Reward (option ``reward``)

    - ``val_loss`` (default): minus the validation loss after the interval.
    - ``log_val_loss``: minus its natural log.
    - ``improvement``: previous minus current validation loss (sums to the total decrease).
    - ``log_improvement``: log(previous) - log(current validation loss); with discount 1 the
      return is log(L0 / final validation loss).
    - ``terminal``: 0 until the last decision, then minus the log of the episode's best
      validation loss.
    - ``relative_terminal``: 0 until the last decision, then
      log(best validation loss of the ``base_schedule`` run / the episode's best), where the
      base run is the same trainee seed (weights, batches, validation subset) trained with
      the base schedule and measured at the same decision points (run once per (task, seed)
      and cached in the process). > 0 means better than the base schedule.

    Use PPO's ``gamma = 1`` (or close) with the last three. The test split never enters
    observation or reward.

    ## Starting state

    ``reset(seed=s)`` derives the trainee's weights, batch order, validation subset and
    the initial rate (drawn from ``initial_lrs``) from ``s``: same task + same seed gives
    the same start and the same data whichever agent acts, bit for bit on the CPU.

    ``base_lr_spread = d > 0`` (``residual`` only): every episode multiplies the base
    schedule's rate by ``10**U(-d, d)``, drawn from the trainee seed that ``s`` gives
    (:func:`lrgym.environment.episode.episode_task`), so the controller meets bases tuned
    too high and too low; the same seed gives the same factor, and the ``relative_terminal``
    reward's base run uses the same drawn base. ``log_lr_multiplier`` is relative to it.

    ## Episode end

    Terminated after ``steps`` trainee steps (``ceil(steps / interval)`` decisions), or
    when the trainee diverges: a non-finite or above-``divergence_loss`` training or
    validation loss, or a non-finite final-layer weight. A diverged episode ends with a
    penalty reward worse than any finite outcome: for per-decision rewards a validation
    loss stuck at ``divergence_loss`` for every remaining decision, for ``log_improvement``,
    ``terminal`` and ``relative_terminal`` ending at ``divergence_loss`` minus a margin of 1
    (every finite episode's validation losses are below ``divergence_loss``). The last
    observation is the last finite one with its ``budget_fraction`` set to 1. ``step()``
    after the end raises until ``reset()``.

    ## Info

    Every step: ``lr``, ``step``, ``train_loss``, ``val_loss``, ``val_accuracy``,
    ``diverged`` (a loss that is not finite, at divergence, is ``None``). At reset also
    ``initial_lr``. At the last step also
    ``test_loss_at_best_val``, ``test_accuracy_at_best_val``, ``best_val_step``,
    ``final_test_loss``, ``final_test_accuracy``, ``best_val_loss``, ``lr_trajectory``
    (the rate of every decision), and with ``relative_terminal`` ``base_best_val_loss``.
    Losses that are not finite are reported as ``None``.
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
            self.task.dataset, data_dir=data_dir, download=download, device=self.device,
            dataset_kwargs=self.task.dataset_kwargs,
        )
        self.dataset.check_sizes(self.task.batch_size, self.task.val_size)
        self.observation_space = observation_space(self.task)
        self.action_space = action_space(self.task)
        self.trainee: Trainee | None = None
        self.tracker: EpisodeTracker | None = None
        self._lr_sampler: LRSampler | None = None

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        trainee_seed, initial_lr = episode_draws(self.task, self.np_random)
        if options and "initial_lr" in options:
            initial_lr = clip_lr(self.task, positive_number("reset option initial_lr", options["initial_lr"]))
        task = episode_task(self.task, trainee_seed)  # with base_lr_spread: this episode's base
        lr = start_lr(task, initial_lr)
        self.trainee = self._new_trainee(lr, trainee_seed)
        base_best = None
        if needs_base_run(task):
            base_best = base_best_val_loss(self.dataset, task, trainee_seed, self.device)
        self.tracker = EpisodeTracker(task, lr, base_best)
        self._lr_sampler = None
        observation, info = self.tracker.start(self.trainee.measure())
        info["initial_lr"] = initial_lr
        return observation, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.trainee is None:
            raise RuntimeError("call reset() before step()")
        observation, reward, done, info = run_interval(self.trainee, self.tracker, action, self._lr_sampler)
        if done:
            info.update(self._final_info())
        return observation, reward, done, False, info

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
    def _new_trainee(self, lr: float, trainee_seed: int) -> Trainee:
        return new_trainee(self.dataset, self.task, lr, trainee_seed, self.device)

    def _final_info(self) -> dict[str, Any]:
        trainee = self.trainee
        test = self.dataset.test
        final = trainee.evaluate(test, weights="current")
        # The best-validation point is often the last one: then it is the same evaluation.
        at_best = final if trainee.best_step == trainee.step else trainee.evaluate(test, weights="best")
        return self.tracker.final_info(at_best, final, trainee.best_step)


def observation_space(task: TaskSpec) -> spaces.Box:
    """The observation space of ``task``'s feature set (the same for every task with that set)."""
    limit = FEATURE_LIMIT if task.features == "xu" else SCALE_FREE_LIMIT
    return spaces.Box(-limit, limit, (len(FEATURE_SETS[task.features]),), dtype=np.float32)


def action_space(task: TaskSpec) -> spaces.Space:
    """The action space of ``task``'s action mode."""
    if task.action in ("scale", "residual"):
        return spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
    if task.action == "discrete":
        return spaces.Discrete(3)
    if task.action == "log_lr":
        return spaces.Box(np.float32(math.log10(task.lr_min)), np.float32(math.log10(task.lr_max)), (1,),
                          dtype=np.float32)
    return spaces.Box(np.float32(task.lr_min), np.float32(task.lr_max), (1,), dtype=np.float32)


def new_trainee(dataset: Dataset, task: TaskSpec, lr: float, trainee_seed: int, device: torch.device) -> Trainee:
    """The trainee of one episode of ``task`` (weights, batches, validation subset from the seed)."""
    return Trainee(
        dataset,
        model=task.model,
        optimizer=task.optimizer,
        lr=lr,
        batch_size=task.batch_size,
        val_size=task.val_size,
        seed=trainee_seed,
        optimizer_kwargs=task.optimizer_kwargs,
        device=device,
        model_kwargs=task.model_kwargs,
        validation_percent=task.validation_percent,
    )


_BASE_RUNS: dict[tuple, float] = {}  # (task, trainee seed, device) -> the base run's best validation loss


def base_run_task(task: TaskSpec) -> TaskSpec:
    """The task of ``task``'s base-schedule run: the residual action mode doing nothing."""
    return task.replace(action="residual", reward="val_loss", features="xu")


def _base_run_key(task: TaskSpec, trainee_seed: int, device: torch.device | str) -> tuple:
    relevant = task.replace(action="lr", reward="val_loss", features="xu", initial_lrs=[1.0]).to_dict()
    return repr(sorted(relevant.items())), int(trainee_seed), str(device)


def cached_base_best_val_loss(task: TaskSpec, trainee_seed: int, device: torch.device | str) -> float | None:
    """The base run's best validation loss if this process has it already, else ``None``."""
    return _BASE_RUNS.get(_base_run_key(task, trainee_seed, device))


def remember_base_best_val_loss(task: TaskSpec, trainee_seed: int, device: torch.device | str, value: float) -> None:
    """Keep a base run's result (one a population ran as a member) for later episodes of this process."""
    if len(_BASE_RUNS) > 100_000:
        _BASE_RUNS.clear()
    _BASE_RUNS[_base_run_key(task, trainee_seed, device)] = float(value)


def forget_base_runs() -> None:
    """Empty this process's cache of base runs (a test compares a fresh base run with a population's)."""
    _BASE_RUNS.clear()


def base_best_val_loss(dataset: Dataset, task: TaskSpec, trainee_seed: int, device: torch.device) -> float:
    """The best validation loss of ``task.base_schedule`` run on the trainee of ``trainee_seed``.

    The counterfactual of the ``relative_terminal`` reward: the same initial weights,
    batches and validation subset, the base schedule's rates, measured at the same
    decision points. Cached per process, so a (task, seed) pair is run once.
    """
    cached = cached_base_best_val_loss(task, trainee_seed, device)
    if cached is None:
        # The base schedule is the residual action mode doing nothing: the same rates, rules and bookkeeping.
        base_task = base_run_task(task)
        lr = start_lr(base_task, base_task.initial_lrs[0])
        trainee = new_trainee(dataset, base_task, lr, trainee_seed, device)
        tracker = EpisodeTracker(base_task, lr)
        tracker.start(trainee.measure())
        while not tracker.done:
            run_interval(trainee, tracker, 0.0)
        cached = tracker.best_val_loss
        remember_base_best_val_loss(task, trainee_seed, device, cached)
    return cached


def run_interval(
    trainee: Trainee, tracker: EpisodeTracker, action: Any, lr_sampler: LRSampler | None = None
) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
    """One decision of one trainee: the interval's rates from ``action``, those steps trained,
    the trainee measured unless its training loss already diverged, and the tracker's verdict
    (observation, reward, episode end, info)."""
    rates = tracker.decide(action)
    train_loss = trainee.train(len(rates), lr_sampler, rates=rates)
    diverged = not math.isfinite(train_loss) or train_loss > tracker.task.divergence_loss
    return tracker.record(train_loss, None if diverged else trainee.measure())
