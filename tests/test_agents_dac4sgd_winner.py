"""The DAC4SGD winner's rule (lrgym/agents/dac4sgd_winner.py) against a hand-worked case and in the env."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from lrgym.agents import EpisodeStart, make_agent, run_episode
from lrgym.agents.dac4sgd_winner import DAC4SGDWinnerAgent
from lrgym.tasks.specs import TaskSpec, load_task_spec


class FakeEnv:
    """What the agent reads of an env: the trainee's training split and the sampler hook."""

    def __init__(self, training_examples: int) -> None:
        self.trainee = SimpleNamespace(dataset=SimpleNamespace(train=range(training_examples)))
        self.sampler = None

    def set_lr_sampler(self, sampler) -> None:
        self.sampler = sampler


def test_the_hand_worked_case():
    # 100 steps of batch 10 on 200 examples: an epoch is 20 steps; a decision every 10 steps.
    task = TaskSpec(name="hand", dataset="mnist1d", model="mlp", steps=100, interval=10, batch_size=10,
                    lr_min=1e-8)
    env = FakeEnv(training_examples=200)
    agent = DAC4SGDWinnerAgent()
    agent.reset(EpisodeStart(task, 1e-3, 0, env))
    assert env.sampler == agent.rate_at
    # (step, validation loss read there) -> the rate the agent sets, worked out by hand:
    # lr(t) = 0.005 (1 - t/100) * 0.05^k, k = epoch ends whose loss rose over the previous epoch end's.
    worked = [
        (0, 2.30, 0.005),               # reset: no epoch has ended
        (10, 1.50, 0.0045),             # mid-epoch: the loss is not read
        (20, 1.00, 0.004),              # end of epoch 1: recorded (the previous is "infinite"), no brake
        (30, 0.90, 0.0035),             # mid-epoch
        (40, 1.20, 0.005 * 0.6 * 0.05),  # end of epoch 2: 1.20 > 1.00, brake once
        (50, 0.50, 0.005 * 0.5 * 0.05),
        (60, 1.10, 0.005 * 0.4 * 0.05),  # end of epoch 3: 1.10 < 1.20, no brake; 1.10 recorded
        (80, 1.15, 0.005 * 0.2 * 0.05**2),  # end of epoch 4 (read late, at step 80): 1.15 > 1.10, brake again
    ]
    for step, val_loss, rate in worked:
        action = agent.act(np.zeros(8), {"step": step, "val_loss": val_loss})
        assert action == pytest.approx([rate], rel=1e-12), step
    assert agent.rate_at(85) == pytest.approx(0.005 * 0.15 * 0.05**2)  # every step in between decays too
    assert agent.rate_at(99) == pytest.approx(0.005 * 0.01 * 0.05**2)


def test_a_diverged_measurement_is_not_read_as_an_epoch_loss():
    task = TaskSpec(name="hand", dataset="mnist1d", model="mlp", steps=100, interval=10, batch_size=10)
    agent = DAC4SGDWinnerAgent()
    agent.reset(EpisodeStart(task, 1e-3, 0, FakeEnv(200)))
    agent.act(np.zeros(8), {"step": 20, "val_loss": None})
    assert agent.act(np.zeros(8), {"step": 30, "val_loss": 5.0}) == pytest.approx([0.005 * 0.7])  # no brake


def test_in_the_env_the_rate_decays_linearly_at_every_step_from_0_005():
    task = load_task_spec("mnist1d-mlp", steps=40, interval=10, batch_size=32, val_size=100)
    agent = make_agent("dac4sgd-winner", task)
    result = run_episode(agent, task, seed=0)
    # 40 steps of 32 of 7600 examples: no epoch ends, no brake; info["lr"] is each interval's first step.
    assert [row.lr for row in result.trajectory] == pytest.approx([0.005 * (1 - step / 40) for step in (0, 10, 20, 30)])
    assert agent.steps_per_epoch == 7600 // 32


def test_epochs_are_counted_on_the_carved_training_split():
    # validation_percent = 50: the 9600 MNIST-1D training examples split 4800 / 4800.
    task = load_task_spec("mnist1d-mlp", steps=30, interval=10, batch_size=480, val_size=100, validation_percent=50)
    agent = make_agent("dac4sgd-winner", task)
    run_episode(agent, task, seed=0)
    assert agent.steps_per_epoch == 10


def test_the_spec_holds_the_solutions_constants_and_refuses_unknown_parameters():
    task = load_task_spec("mnist1d-mlp")
    agent = make_agent("dac4sgd-winner", task)
    assert (agent.lr, agent.reduction_factor, agent.action_mode) == (0.005, 0.05, "lr")
    assert make_agent("dac4sgd-winner", task, lr=0.01).lr == 0.01
    with pytest.raises(ValueError, match="lr must be > 0"):
        DAC4SGDWinnerAgent(lr=0.0)
