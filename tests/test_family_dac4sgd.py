"""envs/dac4sgd-fashion-mnist.toml against the DAC4SGD generator it reproduces.

The reference samplers below are automl/DAC4SGD ``sgd_env/envs/generators.py`` at commit
5c13047 (the line numbers cited), written out with numpy: ConfigSpace's integer
hyperparameters sample a (log-)uniform real on ``[lower - 0.49999, upper + 0.49999]`` and
round it. The family's draws (SHA-256-seeded streams) are compared with theirs by
two-sample chi-square tests over a few thousand instances (fixed seeds: deterministic).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from lrgym.tasks.family import load_family
from lrgym.tasks.specs import family_names
from lrgym.trainee.models import build_model

FAMILY = "dac4sgd-fashion-mnist"
COUNT = 3000
ALPHA = 1e-3


@pytest.fixture(scope="module")
def instances():
    family = load_family(FAMILY)
    return [family.instance(index) for index in range(COUNT)]


def configspace_integer(rng: np.random.RandomState, lower: int, upper: int, log: bool) -> int:
    low, high = lower - 0.49999, upper + 0.49999
    value = np.exp(rng.uniform(np.log(low), np.log(high))) if log else rng.uniform(low, high)
    return int(np.round(value))


def reference_instance(rng: np.random.RandomState) -> dict:
    """One instance of the generator's MNIST branch (the draws only, no data, no weights)."""
    config = {
        "cutoff": configspace_integer(rng, 300, 900, log=False),  # :38
        "batch_size": 2 ** configspace_integer(rng, 2, 8, log=True),  # :39-41
        "validation_percent": configspace_integer(rng, 1, 20, log=True),  # :42-44
    }
    if rng.randint(low=0, high=2) == 0:  # :264-271
        config["channels"] = (  # :130-132
            int(np.exp(rng.uniform(low=np.log(2), high=np.log(9)))),
            int(np.exp(rng.uniform(low=np.log(6), high=np.log(24)))),
            int(np.exp(rng.uniform(low=np.log(32), high=np.log(256)))),
        )
    else:
        config["hidden"] = (  # :164-165
            2 ** (8 - int(np.exp(rng.uniform(low=np.log(1), high=np.log(3))))),
            2 ** (7 - int(np.exp(rng.uniform(low=np.log(1), high=np.log(4))))),
        )
    modify = rng.rand()  # :107-120
    config["modified"] = [modify > 0.8 and rng.rand() > 0.5 for _ in range(4)]
    return config


@pytest.fixture(scope="module")
def references():
    rng = np.random.RandomState(0)
    return [reference_instance(rng) for _ in range(COUNT)]


def assert_same_distribution(ours: list, theirs: list) -> None:
    """Two-sample chi-square on the values' frequencies."""
    keys = sorted(set(ours) | set(theirs))
    table = np.array([[Counter(sample)[key] for key in keys] for sample in (ours, theirs)])
    table = table[:, table.sum(axis=0) > 0]
    assert stats.chi2_contingency(table).pvalue > ALPHA, dict(zip(keys, table.T.tolist(), strict=True))


def optimizer_modified(task) -> list[bool]:
    kwargs = task.optimizer_kwargs
    return [kwargs["weight_decay"] != 1e-2, kwargs["eps"] != 1e-8, kwargs["betas"][0] != 0.9,
            kwargs["betas"][1] != 0.9999]


def test_the_family_is_listed_with_the_usual_instance_ranges():
    assert FAMILY in family_names()
    family = load_family(FAMILY)
    assert family.instances == {"train": (0, 100_000), "validation": (100_000, 100_200), "test": (200_000, 201_000)}
    task = family.instance(200_000)
    assert (task.dataset, task.optimizer, task.initial_lrs) == ("fashion-mnist", "adamw", (1e-3,))
    assert task.interval == math.ceil(task.steps / 20) and task.decisions <= 20


@pytest.mark.parametrize("field", ["cutoff", "batch_size", "validation_percent"])
def test_budget_batch_and_validation_share_follow_the_generator(instances, references, field):
    ours = [getattr(task, "steps" if field == "cutoff" else field) for task in instances]
    theirs = [reference[field] for reference in references]
    if field == "cutoff":  # 601 values: compare sixths of the range
        ours, theirs = ([(value - 300) // 101 for value in sample] for sample in (ours, theirs))
    assert_same_distribution(ours, theirs)


def test_half_the_instances_are_cnns_and_their_channels_follow_the_generator(instances, references):
    assert_same_distribution([task.model for task in instances],
                             ["dac-cnn" if "channels" in reference else "mlp" for reference in references])
    ours = [task.model_kwargs["channels"] for task in instances if task.model == "dac-cnn"]
    theirs = [reference["channels"] for reference in references if "channels" in reference]
    for layer, (low, high) in enumerate([(2, 8), (6, 23), (32, 255)]):
        assert {channels[layer] for channels in ours} <= set(range(low, high + 1))
        if layer < 2:
            assert_same_distribution([channels[layer] for channels in ours], [channels[layer] for channels in theirs])
        else:  # 224 values: compare octaves of the log range
            octave = [int(math.log2(channels[layer] / 32) * 3) for channels in ours]
            assert_same_distribution(octave, [int(math.log2(c[layer] / 32) * 3) for c in theirs])


def test_the_mlp_widths_follow_the_generator(instances, references):
    ours = [tuple(task.model_kwargs["hidden"]) for task in instances if task.model == "mlp"]
    theirs = [reference["hidden"] for reference in references if "hidden" in reference]
    assert set(ours) <= {(a, b) for a in (128, 64) for b in (64, 32, 16)}
    assert_same_distribution(ours, theirs)


def test_adamw_hyperparameters_are_modified_as_the_generator_does(instances, references):
    ours = [tuple(optimizer_modified(task)) for task in instances]
    theirs = [tuple(reference["modified"]) for reference in references]
    assert_same_distribution([sum(flags) for flags in ours], [sum(flags) for flags in theirs])
    assert_same_distribution(ours, theirs)  # which ones: each with probability 0.1, through one shared coin
    unmodified = sum(1 for flags in ours if not any(flags)) / len(ours)
    assert unmodified == pytest.approx(0.8 + 0.2 / 16, abs=0.025)
    for task in instances:
        kwargs = task.optimizer_kwargs
        assert 1e-4 <= kwargs["weight_decay"] <= 1 and 1e-10 <= kwargs["eps"] <= 1e-6
        assert all(0.8 <= beta <= 1 - 1e-4 for beta in kwargs["betas"])


def test_drawn_weight_decays_are_log_uniform_on_their_range(instances):
    drawn = [task.optimizer_kwargs["weight_decay"] for task in instances
             if task.optimizer_kwargs["weight_decay"] != 1e-2]
    assert len(drawn) > 150
    uniform = (np.log(drawn) - np.log(1e-4)) / (np.log(1.0) - np.log(1e-4))
    assert stats.kstest(uniform, "uniform").pvalue > ALPHA


def generator_cnn(channels: tuple[int, int, int]) -> nn.Module:
    """generators.py:128-150, as written there."""
    conv1, conv2, conv3 = channels
    features = nn.Sequential(
        nn.Conv2d(1, conv1, 3, 1), nn.MaxPool2d(2), nn.Conv2d(conv1, conv2, 3, 1), nn.MaxPool2d(2),
        nn.Conv2d(conv2, conv3, 3, 1), nn.ReLU(),
    )
    n_features = int(torch.prod(torch.tensor(features(torch.zeros((1, 1, 28, 28))).shape)).item())
    return nn.Sequential(features, nn.Flatten(1), nn.Linear(n_features, 10), nn.LogSoftmax(1))


def generator_mlp(l1: int, l2: int) -> nn.Module:
    """generators.py:162-174, as written there."""
    return nn.Sequential(nn.Flatten(1), nn.Linear(784, l1), nn.ReLU(), nn.Linear(l1, l2), nn.ReLU(),
                         nn.Linear(l2, 10), nn.LogSoftmax(1))


@pytest.mark.parametrize("model, kwargs, theirs", [
    ("dac-cnn", {"channels": [8, 23, 255]}, generator_cnn((8, 23, 255))),
    ("dac-cnn", {"channels": [2, 6, 32]}, generator_cnn((2, 6, 32))),
    ("mlp", {"hidden": [128, 64]}, generator_mlp(128, 64)),
    ("mlp", {"hidden": [64, 16]}, generator_mlp(64, 16)),
])
def test_the_models_are_the_generators_up_to_its_log_softmax(model, kwargs, theirs):
    ours = build_model(model, (1, 28, 28), 10, **kwargs)
    our_shapes = [tuple(p.shape) for p in ours.parameters()]
    assert our_shapes == [tuple(p.shape) for p in theirs.parameters()]
    with torch.no_grad():
        for mine, generators in zip(ours.parameters(), theirs.parameters(), strict=True):
            generators.copy_(mine)
        inputs = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        # lrgym's cross-entropy on logits is the generator's nll_loss on its log-softmax outputs.
        torch.testing.assert_close(torch.log_softmax(ours(inputs), 1), theirs(inputs))
