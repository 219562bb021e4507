"""Shared fixtures: a tiny task on the offline dataset, and CPU determinism; every ray test is slow."""

from __future__ import annotations

import pytest
import torch

import lrgym  # noqa: F401  (registers the envs)
from lrgym.tasks.specs import TaskSpec, load_task_spec

torch.set_num_threads(1)  # deterministic and fair on the 2-core CI machine


TINY = dict(steps=40, interval=10, batch_size=32, val_size=200)


@pytest.fixture
def tiny_task() -> TaskSpec:
    """MNIST-1D MLP, 4 decisions of 10 steps: a whole episode in well under a second."""
    return load_task_spec("mnist1d-mlp", **TINY)


# The winning recipe (study cell F: scale-free state, residual action over a step decay, reward
# relative to the base schedule's own run) on tiny mnist1d-family instances: 4 decisions of 5 steps.
RECIPE = dict(steps=20, decisions=4, val_size=100, dataset_kwargs={}, features="scale-free",
              reward="relative_terminal", action="residual",
              base_schedule={"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step_size": 10, "gamma": 0.5}})


@pytest.fixture
def recipe_family():
    """mnist1d-family with :data:`RECIPE`: what family populations train."""
    from lrgym.tasks.family import load_family

    return load_family("mnist1d-family", **RECIPE)


@pytest.fixture
def fresh_base_runs():
    """No base run cached in the process (the cache decides which base runs a population runs)."""
    from lrgym.environment.lr_control_env import forget_base_runs

    forget_base_runs()


@pytest.hookimpl(tryfirst=True)  # before -m deselects: a test marked ray alone is left out of "not slow" too
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("ray") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
