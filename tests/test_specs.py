"""Task specs: each field changes behaviour; overrides and errors are clear."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from lrgym.tasks.specs import load_agent_spec, load_task_spec, task_names

from .conftest import TINY


def episode(**overrides):
    env = gymnasium.make("lrgym/mnist1d-mlp-v0", **{**TINY, **overrides}).unwrapped
    env.reset(seed=0)
    infos, done = [], False
    while not done:
        _, _, done, _, info = env.step(np.zeros(1, np.float32))
        infos.append(info)
    return env, infos


def test_paper_presets_have_the_source_paper_settings():
    for name in ("fashion-mnist-lenet", "fashion-mnist-resnet18", "cifar10-lenet", "cifar10-resnet18"):
        spec = load_task_spec(name)
        assert (spec.batch_size, spec.steps, spec.interval) == (1000, 1000, 10)
        assert spec.initial_lrs == (1e-2, 1e-3, 1e-4) and spec.optimizer == "adam"


def test_quick_presets_exist():
    assert {"mnist1d-mlp", "mnist1d-lenet", "fashion-mnist-quick"} <= set(task_names())


def test_steps_and_interval_set_the_number_of_decisions():
    _, infos = episode(steps=60, interval=20)
    assert [info["step"] for info in infos] == [20, 40, 60]


def test_batch_size_changes_the_batches():
    env, _ = episode(batch_size=16)
    assert env.trainee.sample_batch()[0].shape[0] == 16


def test_validation_size_sets_the_subset():
    env, _ = episode(val_size=123)
    assert env.trainee.val_labels.shape == (123,)


def test_optimizer_changes_training():
    adam = episode(optimizer="adam", initial_lrs=[0.01])[1][-1]["val_loss"]
    sgd = episode(optimizer="sgd", initial_lrs=[0.01])[1][-1]["val_loss"]
    assert adam != sgd


def test_override_through_gymnasium_make():
    env = gymnasium.make("lrgym/mnist1d-mlp-v0", initial_lrs=[10.0], lr_max=10.0)
    assert env.reset(seed=0)[1]["initial_lr"] == 10.0


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match="valid tasks: .*mnist1d-mlp"):
        load_task_spec("no-such-task")
    with pytest.raises(ValueError, match="valid agents:"):
        load_agent_spec("no-such-agent")
    with pytest.raises(ValueError, match="valid optimizers: adam, adamw, momentum"):
        episode(optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown task field"):
        load_task_spec("mnist1d-mlp", stepz=3)


def test_invalid_values_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="action must be one of scale, discrete, lr"):
        load_task_spec("mnist1d-mlp", action="big")
    with pytest.raises(ValueError, match="lr_min <= lr_max"):
        load_task_spec("mnist1d-mlp", lr_min=1.0, lr_max=0.1)
