"""The controller outside the env (lrgym/controller.py) drives a plain PyTorch loop as the env would."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lrgym.agents import make_agent, run_episode
from lrgym.controller import LRController
from lrgym.environment.lr_control_env import LRControlEnv, next_lr

from .tiny_training import train_tiny


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppo", "ppo-lstm"])
def test_the_controller_makes_the_env_decisions_in_a_plain_training_loop(tmp_path, tiny_task, name):
    folder = tmp_path / name
    train_tiny(folder, tiny_task, name=name, timesteps=40)
    in_env = run_episode(make_agent(f"ppo:{folder}", tiny_task), tiny_task, seed=7)

    # The same trainee (weights, batches, validation subset), trained by an ordinary loop.
    env = LRControlEnv(**tiny_task.to_dict())
    env.reset(seed=7)
    trainee = env.trainee
    model, optimizer = trainee.model, trainee.optimizer
    controller = LRController.from_checkpoint(
        folder, model, optimizer, trainee.val_inputs, trainee.val_labels, total_steps=tiny_task.steps
    )
    for _ in range(tiny_task.steps):
        inputs, labels = trainee.sample_batch()
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(loss)

    assert controller.lr_history == [row.lr for row in in_env.trajectory]
    assert controller.get_last_lr() == [controller.lr] * len(optimizer.param_groups)


def test_next_lr_follows_the_env_action_rules(tiny_task):
    assert next_lr(tiny_task, 0.01, [1.0]) == pytest.approx(0.01 * tiny_task.lr_scale)
    assert next_lr(tiny_task, 0.01, [-5.0]) == pytest.approx(0.01 / tiny_task.lr_scale)  # clipped action
    assert next_lr(tiny_task.replace(action="discrete"), 0.01, 0) == pytest.approx(0.01 / tiny_task.lr_scale)
    assert next_lr(tiny_task.replace(action="lr"), 0.01, [5.0]) == tiny_task.lr_max


@pytest.mark.slow
def test_a_diverged_loop_is_reported(tmp_path, tiny_task):
    folder = tmp_path / "ppo"
    train_tiny(folder, tiny_task, timesteps=40)
    model = torch.nn.Linear(40, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = torch.randn(8, 40), torch.arange(8)
    controller = LRController.from_checkpoint(folder, model, optimizer, inputs, labels, total_steps=40)
    with pytest.raises(FloatingPointError, match="diverged"):
        for _ in range(10):
            controller.step(torch.tensor(float("nan")))


def test_a_controller_trained_on_drawn_bases_acts_on_the_base_as_given(tiny_task):
    class DoNothing:
        def begin_episode(self):
            pass

        def act(self, state, info):
            return [0.0]

    base = {"scheduler": "StepLR", "initial_lr": 0.02, "kwargs": {"step_size": 10, "gamma": 0.5}}
    trained_on = tiny_task.replace(action="residual", base_schedule=base, base_lr_spread=1.0,
                                   features="scale-free", reward="relative_terminal")
    model = torch.nn.Linear(40, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs, labels = torch.randn(8, 40), torch.arange(8)
    controller = LRController(DoNothing(), trained_on, model, optimizer, inputs, labels, total_steps=40)
    for _ in range(40):
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(loss)
    assert controller.lr_history == pytest.approx([0.02, 0.01, 0.005, 0.0025])
