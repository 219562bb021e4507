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


@pytest.hookimpl(tryfirst=True)  # before -m deselects: a test marked ray alone is left out of "not slow" too
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("ray") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
