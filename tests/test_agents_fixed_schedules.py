"""Fixed schedules (lrgym/agents/fixed_schedules.py):
the trainee receives the torch scheduler's own rate at every step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

from lrgym.agents import EpisodeStart, make_agent, run_episode
from lrgym.agents.fixed_schedules import PlateauAgent, scheduler_kwargs

INITIAL_LR = 0.01


def record_optimizer_rates(agent, task, seed=0):
    """Run an episode; return the rates of every parameter group at every trainee optimizer step."""
    rates: list[list[float]] = []

    class Recorder:
        action_mode = agent.action_mode

        def reset(self, start):
            agent.reset(start)
            start.env.trainee.optimizer.register_step_pre_hook(
                lambda optimizer, args, kwargs: rates.append([g["lr"] for g in optimizer.param_groups])
            )

        def act(self, observation, info):
            return agent.act(observation, info)

    result = run_episode(Recorder(), task, seed)
    return np.array(rates), result


def torch_sequence(build, steps, initial_lr=INITIAL_LR):
    """The rates a torch scheduler gives an ordinary training loop of ``steps`` steps."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=initial_lr, momentum=0.9)
    scheduler = build(optimizer)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if len(rates) < steps:
            scheduler.step()
    return np.array(rates)


# Each shipped spec on a 40-step budget, next to the torch scheduler it should be.
EXPECTED = {
    "constant": lambda o: lr_scheduler.ConstantLR(o, factor=1.0, total_iters=0),
    "step": lambda o: lr_scheduler.StepLR(o, step_size=16, gamma=0.1),
    "multistep": lambda o: lr_scheduler.MultiStepLR(o, milestones=[20, 30], gamma=0.1),
    "exponential": lambda o: lr_scheduler.ExponentialLR(o, gamma=0.01 ** (1 / 40)),
    "linear": lambda o: lr_scheduler.LinearLR(o, start_factor=1.0, end_factor=0.01, total_iters=40),
    "cosine": lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=40),
    "warmup-cosine": lambda o: lr_scheduler.SequentialLR(
        o,
        [lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=2), lr_scheduler.CosineAnnealingLR(o, T_max=38)],
        milestones=[2],
    ),
    "onecycle": lambda o: lr_scheduler.OneCycleLR(o, max_lr=INITIAL_LR, total_steps=40),
    "cyclic": lambda o: lr_scheduler.CyclicLR(
        o, base_lr=INITIAL_LR / 10, max_lr=INITIAL_LR, step_size_up=5, mode="triangular2"
    ),
    "cosine-restarts": lambda o: lr_scheduler.CosineAnnealingWarmRestarts(o, T_0=10),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trainee_gets_the_torch_schedulers_rate_at_every_step(name, tiny_task):
    task = tiny_task.replace(initial_lrs=[INITIAL_LR])
    rates, result = record_optimizer_rates(make_agent(name, task), task)
    expected = np.clip(torch_sequence(EXPECTED[name], task.steps), task.lr_min, task.lr_max)
    assert rates.shape == (task.steps, rates.shape[1])
    np.testing.assert_allclose(rates, np.repeat(expected[:, None], rates.shape[1], axis=1), rtol=1e-12)
    # Each decision reports the rate of its interval's first step.
    decision_steps = [row.step - task.interval for row in result.trajectory]
    np.testing.assert_allclose([row.lr for row in result.trajectory], expected[decision_steps], rtol=1e-12)


def test_schedule_is_sized_to_the_budget():
    schedule = {"scheduler": "MultiStepLR", "budget_fractions": {"milestones": [0.5, 0.75]},
                "lr_multiples": {"unused": 2.0}, "budget_total_factors": {"gamma": 0.01}}
    kwargs = scheduler_kwargs(schedule, budget=600, initial_lr=0.003)
    assert kwargs["milestones"] == [300, 450]
    assert kwargs["unused"] == pytest.approx(0.006)
    assert kwargs["gamma"] ** 600 == pytest.approx(0.01)


def test_spec_initial_lr_overrides_the_envs(tiny_task):
    task = tiny_task.replace(initial_lrs=[INITIAL_LR])
    rates, _ = record_optimizer_rates(make_agent("constant", task, initial_lr=0.002), task)
    np.testing.assert_allclose(rates, 0.002)


def test_rates_are_clipped_to_the_task_bounds(tiny_task):
    task = tiny_task.replace(initial_lrs=[INITIAL_LR], lr_min=1e-3)
    rates, _ = record_optimizer_rates(make_agent("cosine", task), task)
    assert rates.min() == pytest.approx(1e-3) and rates.max() == pytest.approx(INITIAL_LR)


def test_bad_scheduler_name_fails_when_the_agent_is_made(tiny_task):
    with pytest.raises(ValueError, match="torch.optim.lr_scheduler"):
        make_agent("constant", tiny_task, scheduler="NoSuchLR")


def test_plateau_follows_reduce_lr_on_plateau_fed_the_validation_losses(tiny_task):
    agent = PlateauAgent({"scheduler": "ReduceLROnPlateau", "kwargs": {"patience": 1, "factor": 0.5}})
    agent.reset(EpisodeStart(tiny_task, INITIAL_LR, 0, env=None))
    losses = [2.0, 1.5, 1.6, 1.7, 1.2, 1.3, 1.4, 1.5, None]
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=INITIAL_LR)
    scheduler = lr_scheduler.ReduceLROnPlateau(reference, patience=1, factor=0.5)
    for loss in losses:
        action = agent.act(np.zeros(8, np.float32), {"val_loss": loss})
        if loss is not None:
            scheduler.step(loss)
        assert action[0] == pytest.approx(reference.param_groups[0]["lr"])
    assert reference.param_groups[0]["lr"] == pytest.approx(INITIAL_LR / 4)  # it did reduce, twice
