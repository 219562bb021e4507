"""The controller outside the env (lrgym/controller.py) drives a plain PyTorch loop as the env would, and
follows torch's scheduler conventions: get_last_lr, state_dict round trips, several parameter groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.optim.lr_scheduler import LRScheduler

from lrgym.agents import make_agent, run_episode
from lrgym.controller import LRController, validation_batch
from lrgym.environment.lr_control_env import LRControlEnv, next_lr
from lrgym.tasks.specs import load_task_spec
from lrgym.trainee.data import load_dataset
from lrgym.trainee.models import build_model

from .conftest import TINY
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



# ----------------------------------------------------------------------------- a torch scheduler
SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"


def mnist1d_batches():
    """MNIST-1D training inputs and labels, and a fixed validation batch drawn by validation_batch."""
    dataset = load_dataset("mnist1d")
    validation = validation_batch((dataset.validation.inputs(), dataset.validation.labels()), size=500)
    return dataset.train.inputs(), dataset.train.labels(), validation


def training_step(model, optimizer, controller, inputs, labels, generator) -> list[float]:
    """One step of a plain loop on a random batch of 32; the rates the controller set after it."""
    index = torch.randint(len(labels), (32,), generator=generator)
    loss = F.cross_entropy(model(inputs[index]), labels[index])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    controller.step(loss)
    return controller.get_last_lr()


def train_with_controller(
    checkpoint: Path, steps: int, save_at: int | None = None, save_to: Path | None = None,
    resume: Path | None = None, model_seed: int = 0,
) -> tuple[list[list[float]], LRController]:
    """A plain loop of ``steps`` steps and the rates after each; with ``save_at`` it saves
    everything to ``save_to`` there and stops, with ``resume`` it loads such a save into freshly
    built objects and continues."""
    inputs, labels, (val_inputs, val_labels) = mnist1d_batches()
    torch.manual_seed(model_seed)
    model = build_model("mlp", (1, 40), 10, hidden=[32])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    controller = LRController.from_checkpoint(checkpoint, model, optimizer, val_inputs, val_labels, total_steps=steps)
    generator, first = torch.Generator().manual_seed(1), 0
    if resume is not None:
        saved = torch.load(resume, weights_only=True)  # tensors, numbers and lists: nothing unpickled
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        controller.load_state_dict(saved["controller"])
        generator.set_state(saved["generator"])
        first = controller.last_epoch
    rates = []
    for step in range(first, steps):
        rates.append(training_step(model, optimizer, controller, inputs, labels, generator))
        if step + 1 == save_at:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "controller": controller.state_dict(), "generator": generator.get_state()}, save_to)
            break
    return rates, controller


@pytest.fixture(scope="module")
def lstm_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lstm") / "ppo-lstm"
    train_tiny(folder, load_task_spec("mnist1d-mlp", **TINY), name="ppo-lstm", timesteps=40)
    return folder


@pytest.mark.parametrize("checkpoint", [
    "mnist1d-mlp-ppo",  # the paper's state, scale actions
    "mnist1d-family-ppo",  # the scale-free state, a residual of a base schedule
    pytest.param("ppo-lstm", marks=pytest.mark.slow),  # a recurrent policy: its LSTM state is saved too
])
def test_a_run_resumed_from_state_dicts_makes_the_same_decisions(checkpoint, tmp_path, request):
    path = request.getfixturevalue("lstm_checkpoint") if checkpoint == "ppo-lstm" else SHIPPED / checkpoint
    whole, uninterrupted = train_with_controller(path, steps=100)
    first, _ = train_with_controller(path, steps=100, save_at=37, save_to=tmp_path / "run.pt")  # mid-interval
    rest, resumed = train_with_controller(path, steps=100, resume=tmp_path / "run.pt", model_seed=99)
    assert first + rest == whole
    assert resumed.lr_history == uninterrupted.lr_history and len(set(uninterrupted.lr_history)) > 1


def test_the_controller_is_a_torch_scheduler(tiny_task):
    inputs, labels, (val_inputs, val_labels) = mnist1d_batches()
    model = build_model("mlp", (1, 40), 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    controller = LRController.from_checkpoint(SHIPPED / "mnist1d-mlp-ppo", model, optimizer, val_inputs,
                                              val_labels, total_steps=60)
    assert isinstance(controller, LRScheduler) and controller.optimizer is optimizer
    assert controller.base_lrs == [0.05] and controller.last_epoch == 0
    assert controller.get_last_lr() == [optimizer.param_groups[0]["lr"]] == [controller.lr_history[0]]
    with pytest.raises(ValueError, match="this LRController state was saved for .*'total_steps': 60"):
        LRController.from_checkpoint(SHIPPED / "mnist1d-mlp-ppo", model, optimizer, val_inputs, val_labels,
                                     total_steps=80).load_state_dict(controller.state_dict())
    with pytest.raises(ValueError, match="not an LRController state"):
        controller.load_state_dict({"last_epoch": 3})


def test_two_parameter_groups_keep_their_ratio_in_a_plain_loop():
    inputs, labels, (val_inputs, val_labels) = mnist1d_batches()
    torch.manual_seed(0)
    body, head, frozen = torch.nn.Linear(40, 32), torch.nn.Linear(32, 10), torch.nn.Linear(40, 40)
    model = torch.nn.Sequential(torch.nn.Flatten(), frozen, body, torch.nn.ReLU(), head)
    optimizer = torch.optim.Adam([
        {"params": head.parameters(), "lr": 1e-3},  # the first group: the rate the controller decides
        {"params": body.parameters(), "lr": 1e-4},  # a tenth of it, always
        {"params": frozen.parameters(), "lr": 0.0},  # stays frozen
    ])
    before = frozen.weight.detach().clone()
    controller = LRController.from_checkpoint(SHIPPED / "mnist1d-mlp-ppo", model, optimizer, val_inputs,
                                              val_labels, total_steps=120, final_layer=head)
    generator = torch.Generator().manual_seed(0)
    seen = [training_step(model, optimizer, controller, inputs, labels, generator) for _ in range(120)]
    assert all(rates[1] == pytest.approx(rates[0] / 10) and rates[2] == 0.0 for rates in seen)
    assert sorted({rates[0] for rates in seen}) == sorted(set(controller.lr_history))
    assert len(set(controller.lr_history)) > 1 and torch.equal(frozen.weight, before)


def test_a_validation_batch_is_drawn_once_from_a_dataset_or_tensors():
    inputs, labels = torch.randn(50, 1, 40), torch.arange(50) % 10
    items = torch.utils.data.TensorDataset(inputs, labels)
    from_tensors, from_items = validation_batch((inputs, labels), size=20), validation_batch(items, size=20)
    assert from_tensors[0].shape == (20, 1, 40) and torch.equal(from_tensors[0], from_items[0])
    assert torch.equal(from_tensors[1], from_items[1])
    assert not torch.equal(validation_batch(items, 20, seed=1)[0], from_items[0])
    assert len(validation_batch(items, size=1000)[1]) == 50  # all of them when there are fewer
    with pytest.raises(ValueError, match="needs a fixed validation batch"):
        LRController.from_checkpoint(SHIPPED / "mnist1d-mlp-ppo", build_model("mlp", (1, 40), 10),
                                     torch.optim.SGD(build_model("mlp", (1, 40), 10).parameters(), lr=0.1),
                                     None, None, total_steps=10)


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
