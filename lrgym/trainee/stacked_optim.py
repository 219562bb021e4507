"""Optimizers over stacked parameters: one optimizer per population member, one program for all.

A population (:mod:`lrgym.trainee.population`) holds each parameter of its N members as one
tensor with a leading member dimension. Every member has its own learning rate at every
step, and members start (and restart) at different times, so the step count behind
Adam's bias corrections is per member too.

Hand-written, because torch.optim cannot do this: an optimizer takes one rate per
parameter group, so N rates need N groups of N separate parameter tensors, which is
exactly the per-member loop that stacking removes. Its functional kernels do not help
either: the fused Adam/AdamW kernels accept a tensor ``lr`` but only a one-element one
(one rate per call, pytorch/pytorch#106916), the foreach kernels take their scale
factors as Python numbers only (pytorch/pytorch#139795), and the single-tensor path
squeezes a tensor rate to a scalar (``_to_scalar``) and on the CPU works with Python
floats. The updates below follow torch.optim's single-tensor code operation by
operation (the same bias corrections computed in double precision, the same order of
the element-wise operations), with the per-member factors broadcast along the member
dimension; ``tests/test_stacked_optim.py`` checks them against torch.optim member by
member.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lrgym.tasks.names import unknown_name_error

# The trainee optimizers of lrgym.trainee.single.OPTIMIZERS that a population can batch, with
# torch.optim's defaults (``momentum`` is SGD with momentum 0.9, as in the trainee).
STACKED_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    "momentum": {"momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
    "adam": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    "adamw": {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False},
}
# Optimizers whose state is more than per-tensor moments (Prodigy's global estimate of
# the rate, Schedule-Free's averaged iterates): they run on single envs only.
SINGLE_ENV_OPTIMIZERS = ("schedulefree-sgd", "schedulefree-adamw", "prodigy")


def check_stackable(kind: str, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full hyperparameters of stacked optimizer ``kind``; a clear error if it has none.

    :raises ValueError: for a single-env optimizer, an unknown one or an unknown keyword.
    """
    if kind in SINGLE_ENV_OPTIMIZERS:
        raise ValueError(
            f"optimizer {kind!r} runs on single envs only (no population); "
            f"populations support {', '.join(STACKED_DEFAULTS)}"
        )
    if kind not in STACKED_DEFAULTS:
        raise unknown_name_error("stacked optimizer", kind, list(STACKED_DEFAULTS))
    kwargs = dict(kwargs or {})
    unknown = set(kwargs) - set(STACKED_DEFAULTS[kind])
    if unknown:
        raise ValueError(
            f"optimizer {kind!r} in a population: unknown option(s) {sorted(unknown)}; "
            f"valid: {', '.join(STACKED_DEFAULTS[kind])}"
        )
    settings = {**STACKED_DEFAULTS[kind], **kwargs}
    if "betas" in settings:
        settings["betas"] = tuple(float(beta) for beta in settings["betas"])
    return settings


class StackedOptimizer:
    """Adam, AdamW, SGD or momentum SGD for N members whose parameters are stacked.

    :param kind: ``adam``, ``adamw``, ``sgd`` or ``momentum``.
    :param params: name -> tensor of shape ``(N, *shape)``, updated in place.
    :param kwargs: torch.optim keyword arguments (``betas``, ``eps``, ``weight_decay``,
        ``amsgrad`` for Adam(W); ``momentum``, ``dampening``, ``weight_decay``,
        ``nesterov`` for SGD).
    """

    def __init__(self, kind: str, params: Mapping[str, torch.Tensor], **kwargs: Any) -> None:
        self.kind = kind
        self.settings = check_stackable(kind, kwargs)
        self.params = dict(params)
        first = next(iter(self.params.values()))
        self.members = int(first.shape[0])
        self.device = first.device
        # Per-member step counts (float64: the bias corrections are computed in double
        # precision, as torch.optim does with Python floats).
        self.step_count = torch.zeros(self.members, dtype=torch.float64, device=self.device)
        adam = kind in ("adam", "adamw")
        self.state: dict[str, dict[str, torch.Tensor]] = {}
        for name, param in self.params.items():
            if adam:
                names = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.settings["amsgrad"] else [])
            else:
                names = ["momentum_buffer"] if self.settings["momentum"] != 0 else []
            self.state[name] = {key: torch.zeros_like(param) for key in names}

    # ------------------------------------------------------------------ members
    def reset(self, members: torch.Tensor | list[int]) -> None:
        """Forget the state of ``members`` (indices): their next step is a first step."""
        index = torch.as_tensor(members, dtype=torch.long, device=self.device)
        self.step_count[index] = 0
        for state in self.state.values():
            for tensor in state.values():
                tensor[index] = 0

    def _member_view(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``values`` (one per member) shaped to broadcast over ``like``'s member dimension."""
        return values.to(like.dtype).view((self.members,) + (1,) * (like.dim() - 1))

    # ------------------------------------------------------------------ the update
    @torch.no_grad()
    def step(
        self, grads: Mapping[str, torch.Tensor], lr: torch.Tensor, active: torch.Tensor | None = None
    ) -> None:
        """One step of every member: member k with rate ``lr[k]``.

        :param grads: name -> gradient, stacked like the parameters.
        :param lr: ``(N,)`` rates (any float dtype; used in double precision).
        :param active: optional ``(N,)`` bool mask; members outside it keep their
            parameters and state unchanged (their step is computed and discarded).
        """
        lr = torch.as_tensor(lr, dtype=torch.float64, device=self.device).reshape(self.members)
        if active is not None and bool(active.all()):
            active = None
        saved = None
        if active is not None:  # rare (members out of phase): keep the inactive ones as they were
            inactive = (~active).nonzero().flatten()
            saved = (inactive, self.step_count[inactive].clone(), {
                name: {key: tensor[inactive].clone() for key, tensor in [("param", param), *self.state[name].items()]}
                for name, param in self.params.items()
            })
        self.step_count += 1
        if self.kind in ("adam", "adamw"):
            self._adam(grads, lr)
        else:
            self._sgd(grads, lr)
        if saved is not None:
            inactive, steps, tensors = saved
            self.step_count[inactive] = steps
            for name, param in self.params.items():
                param[inactive] = tensors[name]["param"]
                for key, tensor in self.state[name].items():
                    tensor[inactive] = tensors[name][key]

    def _adam(self, grads: Mapping[str, torch.Tensor], lr: torch.Tensor) -> None:
        beta1, beta2 = self.settings["betas"]
        eps, weight_decay = self.settings["eps"], self.settings["weight_decay"]
        decoupled = self.kind == "adamw"
        bias_correction1 = 1 - beta1**self.step_count
        bias_correction2_sqrt = (1 - beta2**self.step_count).sqrt()
        negative_step_size = -(lr / bias_correction1)
        decay = 1 - lr * weight_decay
        for name, param in self.params.items():
            grad, state = grads[name], self.state[name]
            if weight_decay != 0:
                if decoupled:
                    param.mul_(self._member_view(decay, param))
                else:
                    grad = grad.add(param, alpha=weight_decay)
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            if self.settings["amsgrad"]:
                torch.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                second = state["max_exp_avg_sq"]
            else:
                second = exp_avg_sq
            denom = (second.sqrt() / self._member_view(bias_correction2_sqrt, param)).add_(eps)
            # addcdiv_ with a per-member value: (value * exp_avg) / denom, in that order.
            param.add_(self._member_view(negative_step_size, param).mul(exp_avg).div_(denom))

    def _sgd(self, grads: Mapping[str, torch.Tensor], lr: torch.Tensor) -> None:
        momentum, dampening = self.settings["momentum"], self.settings["dampening"]
        weight_decay, nesterov = self.settings["weight_decay"], self.settings["nesterov"]
        first = self.step_count == 1
        negative_lr = -lr
        for name, param in self.params.items():
            grad = grads[name]
            if weight_decay != 0:
                grad = grad.add(param, alpha=weight_decay)
            if momentum != 0:
                buffer = self.state[name]["momentum_buffer"]
                # torch.optim starts the buffer as a copy of the first gradient.
                update = buffer.mul(momentum).add_(grad, alpha=1 - dampening)
                buffer.copy_(torch.where(first.view((self.members,) + (1,) * (param.dim() - 1)), grad, update))
                grad = grad.add(buffer, alpha=momentum) if nesterov else buffer
            param.add_(self._member_view(negative_lr, param).mul(grad))
