"""A user's own folder, outside the repository: a data module, a model module and a task spec.

Shared by the registry, spec, family and command-line tests. The data are Gaussian
blobs (no download, no scikit-learn); the model is a small MLP from torchvision.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

DATA = '''\
"""Ten Gaussian blobs in 16 dimensions: train, validation and test arrays."""
import numpy as np


def load(examples: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, 16)) * 1.5
    labels = rng.integers(10, size=examples)
    inputs = (centres[labels] + rng.normal(size=(examples, 16))).astype(np.float32)
    train, validation = int(examples * 0.6), int(examples * 0.8)
    return ((inputs[:train], labels[:train]), (inputs[train:validation], labels[train:validation]),
            (inputs[validation:], labels[validation:]))
'''

MODEL = '''\
"""torchvision's MLP block on the flattened input."""
import math

from torch import nn
from torchvision.ops import MLP


def build(input_shape, num_classes, hidden=(32,)):
    return nn.Sequential(nn.Flatten(), MLP(math.prod(input_shape), [*hidden, num_classes]))
'''

# ``my_data:load`` is a module beside the spec; ``my_model.py:build`` names the file.
TASK = '''\
description = "Gaussian blobs, torchvision MLP"
dataset = "my_data:load"
model = "my_model.py:build"
batch_size = 50
steps = 60
interval = 20
initial_lrs = [0.001]
val_size = 200
lr_scale = 1.25
'''


def write_user_folder(folder: Path, data: str = DATA, model: str = MODEL, task: str = TASK) -> Path:
    """``folder`` with ``my_data.py``, ``my_model.py`` and ``my-task.toml``; returns the spec's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "my_data.py").write_text(data)
    (folder / "my_model.py").write_text(model)
    (folder / "my-task.toml").write_text(task)
    return folder / "my-task.toml"


@pytest.fixture
def fresh_imports():
    """Forget the modules and ``sys.path`` entries a test's plug-ins added (each test's
    ``my_data`` is another file), the names it registered and the datasets lrgym cached."""
    from lrgym.trainee import data
    from lrgym.trainee.registry import REGISTRIES

    modules, path = set(sys.modules), list(sys.path)
    yield
    temporary = Path(tempfile.gettempdir()).resolve()
    for name in set(sys.modules) - modules:  # only the user's modules (in tmp_path): lrgym's own stay
        where = getattr(sys.modules[name], "__file__", None)
        if where and Path(where).resolve().is_relative_to(temporary):
            del sys.modules[name]
    sys.path[:] = path
    for registry in REGISTRIES.values():
        for name in set(registry.entries) - registry.builtin:
            del registry.entries[name]
    data._load_cpu.cache_clear()
