"""Schedules as rate lists (lrgym/trainee/schedule_rates.py): each step's rate against the closed form worked by hand.

Step ``t`` gets the rate the scheduler holds before its ``t``-th ``step()``, as in an
ordinary training loop. How the shipped agent specs map onto torch schedulers is
tests/test_agents_fixed_schedules.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim import lr_scheduler

from lrgym.trainee.schedule_rates import build_scheduler, dummy_optimizer, scheduler_rates


def test_step_decay_halves_the_rate_every_step_size_steps():
    # lr_t = 0.1 * 0.5 ** floor(t / 3)
    rates = scheduler_rates({"scheduler": "StepLR", "kwargs": {"step_size": 3, "gamma": 0.5}}, 8, 0.1)
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025], rel=1e-12)


def test_cosine_annealing_follows_half_a_cosine_over_t_max():
    # lr_t = eta_min + (lr - eta_min) * (1 + cos(pi t / T_max)) / 2 with lr = 1, eta_min = 0, T_max = 4
    rates = scheduler_rates({"scheduler": "CosineAnnealingLR", "kwargs": {"T_max": 4}}, 5, 1.0)
    half_root = math.sqrt(2) / 4  # cos(pi / 4) / 2
    assert rates == pytest.approx([1.0, 0.5 + half_root, 0.5, 0.5 - half_root, 0.0], abs=1e-12)


def test_cosine_with_a_floor_ends_at_eta_min():
    schedule = {"scheduler": "CosineAnnealingLR", "kwargs": {"T_max": 2, "eta_min": 0.2}}
    assert scheduler_rates(schedule, 3, 1.0) == pytest.approx([1.0, 0.6, 0.2], abs=1e-12)  # 0.2 + 0.8 * (1 + 0) / 2


def test_budget_fractions_size_a_step_count_to_the_episode():
    # T_max = 1.0 * 4 steps: the same rates as T_max=4, cut to the 4 steps of the episode.
    schedule = {"scheduler": "CosineAnnealingLR", "budget_fractions": {"T_max": 1.0}}
    half_root = math.sqrt(2) / 4
    assert scheduler_rates(schedule, 4, 1.0) == pytest.approx([1.0, 0.5 + half_root, 0.5, 0.5 - half_root], abs=1e-12)


def test_a_budget_fraction_is_at_least_one_step():
    # 0.01 of 3 steps rounds to 0: it becomes step_size=1, a decay at every step.
    schedule = {"scheduler": "StepLR", "kwargs": {"gamma": 0.5}, "budget_fractions": {"step_size": 0.01}}
    assert scheduler_rates(schedule, 3, 1.0) == pytest.approx([1.0, 0.5, 0.25], rel=1e-12)


def test_budget_total_factors_spread_a_total_decay_over_the_budget():
    # gamma = 0.01 ** (1 / 4): lr_t = 0.01 ** (t / 4)
    schedule = {"scheduler": "ExponentialLR", "budget_total_factors": {"gamma": 0.01}}
    assert scheduler_rates(schedule, 4, 1.0) == pytest.approx([1.0, 0.1 ** 0.5, 0.1, 0.1 ** 1.5], rel=1e-12)


def test_lr_multiples_scale_with_the_initial_rate_and_momentum_can_cycle():
    # CyclicLR cycles momentum by default: the dummy optimizer has some to cycle.
    # base 0.1 * 0.01, max 1.0 * 0.01, two steps up and two down (triangular).
    schedule = {"scheduler": "CyclicLR", "kwargs": {"step_size_up": 2},
                "lr_multiples": {"base_lr": 0.1, "max_lr": 1.0}}
    assert scheduler_rates(schedule, 5, 0.01) == pytest.approx([0.001, 0.0055, 0.01, 0.0055, 0.001], rel=1e-9)


def test_one_cycle_runs_its_whole_budget_without_stepping_past_it():
    # max_lr = 0.01, total_steps = 10: starts at max_lr / 25, peaks at step 0.3 * 10 - 1 = 2
    # (cosine in between), ends at max_lr / 25 / 1e4 on the last step.
    schedule = {"scheduler": "OneCycleLR", "lr_multiples": {"max_lr": 1.0}, "budget_fractions": {"total_steps": 1.0}}
    rates = scheduler_rates(schedule, 10, 0.01)
    assert len(rates) == 10
    assert rates[:3] == pytest.approx([0.0004, 0.0052, 0.01], rel=1e-9)  # 0.01 + (0.0004 - 0.01) * (1 + cos(pi/2)) / 2
    assert rates[-1] == pytest.approx(4e-8, rel=1e-9)


def test_nested_schedulers_are_built_on_the_same_optimizer():
    # Two steps of linear warm-up from half the rate, then the rate itself.
    schedule = {
        "scheduler": "SequentialLR",
        "kwargs": {"milestones": [2]},
        "schedulers": [
            {"scheduler": "LinearLR", "kwargs": {"start_factor": 0.5, "total_iters": 2}},
            {"scheduler": "ConstantLR", "kwargs": {"factor": 1.0, "total_iters": 0}},
        ],
    }
    assert scheduler_rates(schedule, 5, 1.0) == pytest.approx([0.5, 0.75, 1.0, 1.0, 1.0], rel=1e-12)
    optimizer = dummy_optimizer(1.0)
    scheduler = build_scheduler(optimizer, schedule, 5, 1.0)
    assert isinstance(scheduler, lr_scheduler.SequentialLR) and optimizer.param_groups[0]["lr"] == 0.5


def test_the_dummy_optimizer_carries_only_a_rate():
    optimizer = dummy_optimizer(0.3)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.param_groups[0]["lr"] == 0.3
    assert optimizer.param_groups[0]["momentum"] == 0.9 and len(optimizer.param_groups[0]["params"]) == 1


def test_an_unknown_schedule_key_is_refused_with_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown schedule key\(s\) \['step_size'\]; valid: scheduler, kwargs"):
        scheduler_rates({"scheduler": "StepLR", "step_size": 3}, 4, 0.1)


@pytest.mark.parametrize("name", ["NoSuchLR", "Optimizer", None])
def test_a_scheduler_that_is_not_a_torch_lr_scheduler_class_is_refused(name):
    with pytest.raises(ValueError, match="a class of torch.optim.lr_scheduler"):
        scheduler_rates({"scheduler": name}, 4, 0.1)


def test_keyword_arguments_the_scheduler_refuses_name_the_scheduler():
    with pytest.raises(ValueError, match="cannot build StepLR with {'gamma': 0.5}"):
        scheduler_rates({"scheduler": "StepLR", "kwargs": {"gamma": 0.5}}, 4, 0.1)  # no step_size


def test_rates_are_computed_once_per_schedule_and_every_caller_gets_its_own_list():
    schedule = {"scheduler": "StepLR", "kwargs": {"step_size": 3, "gamma": 0.5}}
    first = scheduler_rates(schedule, 7, 0.1)
    first[0] = -1.0  # a caller's change stays its own
    again = scheduler_rates(schedule, 7, 0.1)
    assert again == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]) and again is not first
