"""Hypergradient descent (Baydin et al. 2018, HD-SGD / HD-Adam) as an agent.

Hypergradient descent moves the learning rate at *every* optimizer step by gradient
descent on the rate itself. With ``theta_t = theta_{t-1} - alpha_{t-1} u_{t-1}`` (``u`` the
optimizer's update direction), the loss's derivative with respect to the previous rate
is ``-g_t . u_{t-1}``, so

    additive (the paper's HD-SGD / HD-Adam):  alpha_t = alpha_{t-1} + beta * g_t . u_{t-1}
    multiplicative (the paper's normalised variant, the default here):
        alpha_t = alpha_{t-1} * (1 + beta * cos(g_t, u_{t-1}))

and the step ``t`` runs at ``alpha_t``: the rate rises while successive steps agree and
falls when the new gradient points back (the last step overshot).

## The update direction, measured from the parameters

``u_{t-1} = (theta_{t-1} - theta_t) / alpha_{t-1}``, the step the optimizer actually took
divided by the rate it took it with. For SGD this is ``g_{t-1}``; for SGD with momentum the
momentum buffer (what the authors' ``SGDHD`` stores); for Adam ``m_hat / (sqrt(v_hat) + eps)``
(what their ``AdamHD`` computes from its moments); for AdamW it also holds the decoupled
decay term, which is what ``theta_t`` really depends on. One formula therefore serves every
trainee optimizer without reading its state. Measured in float32 it is the update the
weights really received; at rates so small that the step is below the weights' float
resolution it is noise, and the rate barely moves (both rules are bounded).

## Why multiplicative by default

``g . u`` has units that depend on the optimizer (Adam's ``u`` is of order 1 per weight,
SGD's the gradient) and on the model's size (it sums over every weight): the paper uses
``beta = 1e-3`` for SGD and ``1e-7`` (``1e-8`` for VGG) for Adam (the authors' ``run.sh``),
and a family of tasks with several optimizers and widths would need a ``beta`` per
instance. The multiplicative rule normalises the hypergradient by ``|g_t| |u_{t-1}|``: each
step multiplies the rate by a factor in ``[1 - beta, 1 + beta]`` whatever the optimizer,
model or loss scale, so one ``beta`` serves Adam and SGD trainees alike (see
``agents/hypergradient.toml`` for the value and how it was chosen). ``rule = "additive"``
with ``beta`` a table per optimizer is the paper's form (``agents/hypergradient-additive.toml``).

## How it meets the environment

The rate is set by a ``torch.optim.Optimizer`` step pre-hook on the trainee's optimizer,
registered at every reset (the trainee, and its optimizer, are new each episode). The
hook runs inside ``optimizer.step()``, after the backward pass, so the current gradient
``g_t`` is there: the rate of step ``t`` uses ``g_t`` exactly as in the paper's Algorithms
4-6. The env's per-step sampler (:meth:`~lrgym.environment.lr_control_env.LRControlEnv.set_lr_sampler`) is called
*before* the step's backward pass, when ``param.grad`` still holds ``g_{t-1}``: driven from
there the rule would lag one step behind the paper, which is why it is not used.

The first step of an episode has no previous update and runs at the starting rate (the
env's drawn initial rate, or the spec's ``initial_lr``). Every rate is clipped to the
task's ``[lr_min, lr_max]``; a hypergradient that is not finite (a diverging trainee)
leaves the rate as it was. At each decision the agent sends the rate of the last step it
ran as the absolute ``lr`` action, so ``info["lr"]`` is the rate in force at the decision;
:attr:`HypergradientAgent.rates` holds the rate of every optimizer step of the episode.
The agent draws nothing at random: the trainee's batch stream, and the pairing of seeds,
is untouched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lrgym.agents.base import EpisodeStart
from lrgym.agents.fixed_schedules import split_options
from lrgym.environment.lr_control_env import clip_lr
from lrgym.tasks.specs import AgentSpec, TaskSpec

RULES = ("multiplicative", "additive")
PARAMS = ("beta", "rule", "initial_lr")


def hypergradient_rate(
    lr: float,
    gradient: torch.Tensor,
    previous_step: torch.Tensor,
    previous_lr: float,
    beta: float,
    rule: str = "multiplicative",
) -> float:
    """The rate after one hypergradient step (not clipped).

    :param lr: ``alpha_{t-1}``, the rate before this update (the previous step's).
    :param gradient: ``g_t``, the current gradient, flattened.
    :param previous_step: ``theta_{t-1} - theta_t``, the previous step the weights took,
        flattened; the update direction is ``u_{t-1} = previous_step / previous_lr``.
    :param previous_lr: the rate the previous step was taken with (> 0).
    :param beta: the hypergradient learning rate.
    :param rule: ``"multiplicative"`` (``lr * (1 + beta * cos(g, u))``) or ``"additive"``
        (``lr + beta * g . u``).
    :return: the new rate; ``lr`` unchanged when the hypergradient is not finite.
    """
    # In the tensors' own dtype: a float64 copy of every weight per step would cost more
    # than the rest of the rule, and float32 is ample for a dot product that scales a rate.
    # The direction u is never formed: dividing the scalars by previous_lr is cheaper.
    dot = float(torch.dot(gradient, previous_step))
    if rule == "additive":
        new_lr = lr + beta * dot / previous_lr
    elif rule == "multiplicative":
        norms = float(torch.linalg.vector_norm(gradient)) * float(torch.linalg.vector_norm(previous_step))
        cosine = dot / norms if norms > 0 else 0.0  # cos(g, u) = cos(g, previous_step)
        new_lr = lr * (1.0 + beta * cosine)
    else:
        raise ValueError(f"hypergradient rule must be one of {', '.join(RULES)}, got {rule!r}")
    return new_lr if math.isfinite(new_lr) else lr


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([tensor.reshape(-1) for tensor in tensors])


class HypergradientAgent:
    """Hypergradient descent on the trainee's learning rate (see the module docstring).

    :param beta: the hypergradient learning rate: a number, or a table of numbers keyed by
        the trainee's optimizer name (e.g. ``{"adam": 1e-7, "sgd": 1e-3}``).
    :param rule: ``"multiplicative"`` (normalised, the default) or ``"additive"``.
    :param initial_lr: a fixed starting rate; ``None``: the env's initial rate of the episode.
    """

    action_mode = "lr"

    def __init__(
        self, beta: float | Mapping[str, float], rule: str = "multiplicative", initial_lr: float | None = None
    ) -> None:
        if rule not in RULES:
            raise ValueError(f"hypergradient rule must be one of {', '.join(RULES)}, got {rule!r}")
        betas = beta.values() if isinstance(beta, Mapping) else [beta]
        if not all(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0 for value in betas):
            raise ValueError(f"hypergradient beta must be a number >= 0 or a table of them, got {beta!r}")
        self.beta_setting = dict(beta) if isinstance(beta, Mapping) else float(beta)
        self.rule = rule
        self.initial_lr = None if initial_lr is None else float(initial_lr)
        self.rates: list[float] = []

    def beta_for(self, optimizer: str) -> float:
        """The ``beta`` for a trainee optimizer (a table must name it)."""
        if not isinstance(self.beta_setting, dict):
            return self.beta_setting
        if optimizer not in self.beta_setting:
            raise ValueError(
                f"hypergradient beta has no value for optimizer {optimizer!r}; "
                f"it has: {', '.join(sorted(self.beta_setting))}"
            )
        return float(self.beta_setting[optimizer])

    def reset(self, start: EpisodeStart) -> None:
        self.task = start.task
        self.beta = self.beta_for(start.task.optimizer)
        self.lr = clip_lr(start.task, self.initial_lr if self.initial_lr is not None else start.initial_lr)
        self.rates = []
        self._previous_weights: torch.Tensor | None = None
        start.env.trainee.optimizer.register_step_pre_hook(self._before_step)

    @torch.no_grad()
    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """Set the rate of the step about to run: ``g_t`` is in ``param.grad``."""
        params = [param for group in optimizer.param_groups for param in group["params"]]
        weights = _flat([param.detach() for param in params])
        if self._previous_weights is not None:
            gradient = _flat([
                param.grad if param.grad is not None else torch.zeros_like(param) for param in params
            ])
            previous_step = self._previous_weights - weights
            new_lr = hypergradient_rate(self.lr, gradient, previous_step, self.rates[-1], self.beta, self.rule)
            self.lr = clip_lr(self.task, new_lr)
        for group in optimizer.param_groups:
            group["lr"] = self.lr
        self._previous_weights = weights  # torch.cat made a copy: the step does not change it
        self.rates.append(self.lr)

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        return np.array([self.lr])


def make_hypergradient_agent(spec: AgentSpec, task: TaskSpec, **options: Any) -> HypergradientAgent:
    """Factory of kind ``hypergradient``: params ``beta``, ``rule``, ``initial_lr``; ``options`` override them."""
    params = split_options(spec.params, options)
    unknown = set(params) - set(PARAMS)
    if unknown:
        raise ValueError(
            f"agent {spec.name!r}: unknown hypergradient param(s) {sorted(unknown)}; valid: {', '.join(PARAMS)}"
        )
    if "beta" not in params:
        raise ValueError(f"agent {spec.name!r}: a hypergradient spec needs 'beta'")
    agent = HypergradientAgent(**params)
    agent.beta_for(task.optimizer)  # a table without the task's optimizer fails now, not mid-evaluation
    return agent
