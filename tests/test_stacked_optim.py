"""The stacked optimizers against torch.optim, member by member."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrgym.trainee.stacked_optim import STACKED_DEFAULTS, StackedOptimizer, check_stackable

SHAPES = {"weight": (3, 4), "bias": (3,)}
MEMBERS = 3
STEPS = 6

rates = st.floats(1e-4, 0.5)
kwargs_by_kind = {
    "adam": st.fixed_dictionaries({
        "betas": st.tuples(st.floats(0.5, 0.99), st.floats(0.9, 0.9999)),
        "eps": st.sampled_from([1e-8, 1e-6]),
        "weight_decay": st.sampled_from([0.0, 0.1]),
        "amsgrad": st.booleans(),
    }),
    "adamw": st.fixed_dictionaries({
        "betas": st.tuples(st.floats(0.5, 0.99), st.floats(0.9, 0.9999)),
        "weight_decay": st.sampled_from([0.0, 0.01, 0.1]),
        "amsgrad": st.booleans(),
    }),
    "sgd": st.fixed_dictionaries({"weight_decay": st.sampled_from([0.0, 0.1])}),
    "momentum": st.fixed_dictionaries({
        "momentum": st.floats(0.1, 0.99),
        "dampening": st.sampled_from([0.0, 0.3]),
        "weight_decay": st.sampled_from([0.0, 0.1]),
        "nesterov": st.booleans(),
    }).filter(lambda kw: not (kw["nesterov"] and kw["dampening"] != 0)),
}


def torch_optimizer(kind: str, params: list[torch.Tensor], lr: float, **kwargs) -> torch.optim.Optimizer:
    if kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, foreach=False, **kwargs)
    return torch.optim.SGD(params, lr=lr, foreach=False, **{**({"momentum": 0.9} if kind == "momentum" else {}),
                                                             **kwargs})


def run_both(kind: str, kwargs: dict, lrs: list[list[float]], seed: int, active: list[list[bool]] | None = None):
    generator = torch.Generator().manual_seed(seed)
    stacked = {name: torch.randn(MEMBERS, *shape, generator=generator) for name, shape in SHAPES.items()}
    grads = [{name: torch.randn(MEMBERS, *shape, generator=generator) for name, shape in SHAPES.items()}
             for _ in lrs]
    singles = [{name: stacked[name][k].clone().requires_grad_() for name in SHAPES} for k in range(MEMBERS)]
    optimizers = [torch_optimizer(kind, list(single.values()), lrs[0][k], **kwargs)
                  for k, single in enumerate(singles)]
    batched = StackedOptimizer(kind, stacked, **kwargs)
    for step, step_lrs in enumerate(lrs):
        mask = active[step] if active else [True] * MEMBERS
        batched.step(grads[step], torch.tensor(step_lrs), active=torch.tensor(mask))
        for k, (single, optimizer) in enumerate(zip(singles, optimizers, strict=True)):
            if not mask[k]:
                continue
            optimizer.param_groups[0]["lr"] = step_lrs[k]
            for name, param in single.items():
                param.grad = grads[step][name][k].clone()
            optimizer.step()
    return stacked, singles


@pytest.mark.parametrize("kind", list(STACKED_DEFAULTS))
@settings(max_examples=15, deadline=None)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_each_member_follows_torch_optim_with_its_own_rate_at_every_step(kind, data, seed):
    kwargs = data.draw(kwargs_by_kind[kind])
    lrs = data.draw(st.lists(st.lists(rates, min_size=MEMBERS, max_size=MEMBERS), min_size=STEPS, max_size=STEPS))
    stacked, singles = run_both(kind, kwargs, lrs, seed)
    for k, single in enumerate(singles):
        for name, param in single.items():
            torch.testing.assert_close(stacked[name][k], param.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", list(STACKED_DEFAULTS))
def test_inactive_members_keep_parameters_and_state(kind):
    lrs = [[0.1, 0.2, 0.3]] * 4
    active = [[True, True, True], [True, False, True], [False, False, True], [True, True, True]]
    stacked, singles = run_both(kind, {}, lrs, seed=1, active=active)
    for k, single in enumerate(singles):
        for name, param in single.items():
            torch.testing.assert_close(stacked[name][k], param.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", list(STACKED_DEFAULTS))
def test_a_reset_member_starts_over_and_nan_in_one_member_stays_there(kind):
    params = {"w": torch.ones(2, 3)}
    optimizer = StackedOptimizer(kind, params)
    grads = {"w": torch.tensor([[1.0, 1.0, 1.0], [float("nan"), 1.0, 1.0]])}
    optimizer.step(grads, torch.tensor([0.1, 0.1]))
    assert torch.isfinite(params["w"][0]).all() and torch.isnan(params["w"][1]).any()
    params["w"][1] = 1.0
    optimizer.reset([1])
    optimizer.step({"w": torch.ones(2, 3)}, torch.tensor([0.1, 0.1]))
    fresh = {"w": torch.ones(1, 3)}
    StackedOptimizer(kind, fresh).step({"w": torch.ones(1, 3)}, torch.tensor([0.1]))
    torch.testing.assert_close(params["w"][1], fresh["w"][0])


@pytest.mark.parametrize("kind", ["prodigy", "schedulefree-adamw", "schedulefree-sgd"])
def test_single_env_optimizers_are_refused_with_the_supported_list(kind):
    with pytest.raises(ValueError, match="single envs only.*adam, adamw"):
        check_stackable(kind)


def test_unknown_options_are_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match="valid: betas, eps"):
        check_stackable("adam", {"foreach": True})
