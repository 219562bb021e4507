"""Loss-scored lookahead: try several step sizes on a batch, move the rate toward the best.

From a student report building on Takase et al. (2018). At every decision (the first
included), for each factor ``f`` of a list of powers of two (``factor_5`` =
[4, 2, 1, 0.5, 0.25], ``factor_7`` = [8 .. 0.125]):

1. one gradient ``g`` of the loss at the current weights ``w`` on a scoring batch
   drawn with the agent's own generator (the trainee's batch stream is untouched);
2. the trial weights ``w - f * lr * g`` and their loss on *that same* batch, measured
   *after* the trial step (the report's code measured each factor's loss before its
   step, on a different batch per factor, which turns the scores into noise);
3. the losses normalised, ``z = (L - mean L) / max(std L, spread_floor)`` (the floor
   makes equal losses give equal weights, never NaN), scored ``exp(-z / temperature)``;
4. ``lr <- lr * exp(sum(w_i log f_i) / sum(w_i))``, the weighted geometric mean of the
   factors with the scores as weights, clipped to the task's bounds.

A trial loss that is not finite (a factor that blows the weights up) gets weight 0;
if no trial loss is finite the rate takes the smallest factor.

**What the trial step is.** The trial is always the raw gradient step ``w - f*lr*g``,
whatever the trainee's optimizer. For plain SGD it is exactly the step the optimizer
would take; for SGD with momentum, Adam(W), Schedule-Free or Prodigy it is not (no
momentum, no per-coordinate scaling by Adam's second moments, no weight decay, no
Prodigy step-size estimate): the lookahead then scores how the loss responds to the
rate along the gradient, a proxy for the optimizer's own step. The report used it the
same way with AdamW.

**Cost.** The gradient is the same for every factor, so the batched version takes
one forward and one backward pass, then evaluates all the trial weights in a single
vmapped functional forward pass (:func:`torch.func.functional_call` under
:func:`torch.vmap`), instead of the report's deep copy of the model, its own forward
and backward pass and optimizer per factor (kept here as :func:`naive_trial_losses`,
the reference the tests compare against). The trial weights are one stacked tensor per
parameter (``len(factors)`` x the parameter's size); ``chunk_size`` bounds how many are
materialised at once. Buffers (batch-norm statistics) are copied, so scoring never
changes the trainee.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import softmax
from torch import nn
from torch.func import functional_call

from lrgym.agents.base import EpisodeStart
from lrgym.agents.fixed_schedules import split_options
from lrgym.agents.seeding import agent_generator
from lrgym.environment.lr_control_env import clip_lr
from lrgym.tasks.specs import AgentSpec, TaskSpec

FACTOR_LISTS: dict[str, tuple[float, ...]] = {
    "factor_5": tuple(2.0**k for k in range(2, -3, -1)),  # 4 .. 0.25
    "factor_7": tuple(2.0**k for k in range(3, -4, -1)),  # 8 .. 0.125
}


def trial_losses(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    lr: float,
    factors: Sequence[float],
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Each factor's loss on ``(inputs, labels)`` after a trial step ``w - f*lr*g``, batched.

    One gradient at the current weights, then every trial's forward pass in one vmapped
    :func:`~torch.func.functional_call`; no copy of the model. The model and its buffers
    are left as they were.

    :param lr: the current learning rate.
    :param factors: the step-size factors ``f``.
    :param chunk_size: trials evaluated at once (``None``: all), to bound memory.
    :returns: a tensor of ``len(factors)`` losses, on the model's device.
    """
    params = {name: param.detach() for name, param in model.named_parameters()}
    buffers = {name: buffer.detach() for name, buffer in model.named_buffers()}

    def loss_at(weights: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(functional_call(model, (weights, state), (inputs,)), labels)

    copied_buffers = {name: buffer.clone() for name, buffer in buffers.items()}
    gradient = torch.func.grad(loss_at)(params, copied_buffers)
    step_sizes = torch.tensor([float(f) * lr for f in factors], dtype=torch.float64)
    reference = next(iter(params.values()))
    step_sizes = step_sizes.to(device=reference.device, dtype=reference.dtype)

    def trial_loss(step_size: torch.Tensor, state: dict[str, torch.Tensor]) -> torch.Tensor:
        trial = {name: params[name] - step_size * gradient[name] for name in params}
        return loss_at(trial, state)

    # Batch-norm updates its running statistics in place: one copy per trial under vmap.
    trial_buffers = {
        name: buffer.unsqueeze(0).expand(len(factors), *buffer.shape).clone()
        for name, buffer in buffers.items()
    }
    with torch.no_grad():
        return torch.vmap(trial_loss, chunk_size=chunk_size)(step_sizes, trial_buffers)


def naive_trial_losses(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    lr: float,
    factors: Sequence[float],
) -> torch.Tensor:
    """The report's structure: a deep copy of the model per factor (all held at once, as in
    its code), then per copy a forward and backward pass, an SGD step of ``f*lr`` and the
    loss after it, on the same batch.

    Kept as the reference :func:`trial_losses` must equal, and as the benchmark's baseline.
    """
    trial_models = [copy.deepcopy(model) for _ in factors]
    losses = []
    for trial_model, factor in zip(trial_models, factors, strict=True):
        optimizer = torch.optim.SGD(trial_model.parameters(), lr=float(factor) * lr)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(trial_model(inputs), labels).backward()
        optimizer.step()
        with torch.no_grad():
            losses.append(F.cross_entropy(trial_model(inputs), labels))
    return torch.stack(losses)


def lookahead_factor(
    losses: Sequence[float],
    factors: Sequence[float],
    temperature: float = 1.0,
    spread_floor: float = 1e-6,
) -> float:
    """The weighted geometric mean of ``factors``, weighted by the exponential scores of ``losses``.

    :param temperature: scores are ``exp(-z / temperature)``; lower: the best factor dominates more.
    :param spread_floor: the least standard deviation the losses are divided by.
    """
    losses = np.asarray(losses, dtype=np.float64)
    log_factors = np.log(np.asarray(factors, dtype=np.float64))
    finite = np.isfinite(losses)
    if not finite.any():
        return float(np.min(factors))
    losses, log_factors = losses[finite], log_factors[finite]
    spread = losses.std(ddof=1) if len(losses) > 1 else 0.0  # ddof=1: torch.std, as in the report
    normalised = (losses - losses.mean()) / max(spread, spread_floor)
    weights = softmax(-normalised / temperature)  # = exp scores / their sum, without overflow
    return float(math.exp(np.dot(weights, log_factors)))


class LookaheadAgent:
    """The loss-scored lookahead in the environment (see the module docstring).

    :param factors: the step-size factors, a list or a name in :data:`FACTOR_LISTS`.
    :param temperature: of the exponential scores.
    :param scoring_batch_size: examples in the scoring batch (``None``: the task's batch size).
    :param spread_floor: the least spread the losses are normalised by.
    :param chunk_size: trial forward passes evaluated at once (``None``: all).
    """

    action_mode = "lr"

    def __init__(
        self,
        factors: str | Sequence[float] = "factor_5",
        temperature: float = 1.0,
        scoring_batch_size: int | None = None,
        spread_floor: float = 1e-6,
        chunk_size: int | None = None,
    ) -> None:
        if isinstance(factors, str):
            if factors not in FACTOR_LISTS:
                raise ValueError(f"unknown factor list {factors!r}; valid: {', '.join(FACTOR_LISTS)}")
            factors = FACTOR_LISTS[factors]
        self.factors = tuple(float(f) for f in factors)
        if not self.factors or min(self.factors) <= 0:
            raise ValueError(f"factors must be positive, got {list(self.factors)}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.scoring_batch_size = None if scoring_batch_size is None else int(scoring_batch_size)
        self.spread_floor = float(spread_floor)
        self.chunk_size = chunk_size
        self.last_losses: list[float] = []

    def reset(self, start: EpisodeStart) -> None:
        self.env = start.env
        self.task = start.task
        self.generator = agent_generator(start.seed, "lookahead-scoring")

    def scoring_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A random training batch from the agent's own generator."""
        return self.env.trainee.sample_batch(generator=self.generator, size=self.scoring_batch_size)

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        lr = info["lr"]
        inputs, labels = self.scoring_batch()
        losses = trial_losses(self.env.trainee.model, inputs, labels, lr, self.factors, self.chunk_size)
        self.last_losses = losses.tolist()
        factor = lookahead_factor(self.last_losses, self.factors, self.temperature, self.spread_floor)
        return np.array([clip_lr(self.task, lr * factor)])


def make_lookahead_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> LookaheadAgent:
    """Factory of kind ``lookahead``: the params of :class:`LookaheadAgent`; ``options`` override them."""
    params = split_options(spec.params, options)
    try:
        return LookaheadAgent(**params)
    except TypeError as error:
        raise ValueError(f"agent {spec.name!r}: {error}") from error
