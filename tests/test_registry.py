"""The dataset and model registry (lrgym/trainee/registry.py, with the tables of data.py and
models.py): registered names, entry points and plug-in references resolve alike, lrgym's own
entries go through the same registry, and every mistake of a plug-in is one line that names it
and says what was expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lrgym
from lrgym.agents import make_agent, run_episode
from lrgym.runners.options import RunOptions
from lrgym.runners.pool import run_jobs
from lrgym.tasks.specs import load_task_spec
from lrgym.trainee.data import DATASET_REGISTRY, DATASETS, load_dataset, register_dataset
from lrgym.trainee.models import MODEL_REGISTRY, MODELS, build_model, register_model
from lrgym.trainee.population import population_error
from lrgym.trainee.registry import import_reference

from .user_folder import fresh_imports, write_user_folder  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("fresh_imports")  # each test's plug-ins are forgotten after it

SMALL = dict(steps=40, interval=10, batch_size=32, val_size=80, initial_lrs=[1e-3])


def blobs(examples: int = 400, seed: int = 0):
    """Ten Gaussian blobs in 16 dimensions (module level: workers receive it by reference)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(10, size=examples)
    inputs = (rng.normal(size=(10, 16))[labels] * 2 + rng.normal(size=(examples, 16))).astype(np.float32)
    train, validation = int(examples * 0.6), int(examples * 0.8)
    return ((inputs[:train], labels[:train]), (inputs[train:validation], labels[train:validation]),
            (inputs[validation:], labels[validation:]))


def small_mlp(input_shape, num_classes, hidden=(16,)):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), hidden[0]), nn.ReLU(),
                         nn.Linear(hidden[0], num_classes))


def train_size(name: str) -> int:
    return len(load_dataset(name).train)


def test_lrgyms_own_datasets_and_models_are_entries_of_the_registries():
    assert DATASET_REGISTRY.entries is DATASETS and MODEL_REGISTRY.entries is MODELS
    assert {"mnist1d", "fashion-mnist", "cifar10"} <= set(DATASET_REGISTRY.names())
    assert {"mlp", "lenet", "resnet18"} <= set(MODEL_REGISTRY.names())
    assert all(DATASET_REGISTRY.is_builtin(name) for name in DATASETS)
    assert all(MODEL_REGISTRY.is_builtin(name) for name in MODELS)


def test_a_registered_dataset_and_model_run_an_episode():
    lrgym.register_dataset("blobs", blobs)
    lrgym.register_model("small-mlp", small_mlp)
    dataset = load_dataset("blobs")
    assert (dataset.input_shape, dataset.num_classes, len(dataset.train)) == ((16,), 10, 240)
    task = load_task_spec("mnist1d-mlp", dataset="blobs", model="small-mlp", model_kwargs={"hidden": [8]}, **SMALL)
    result = run_episode(make_agent("constant", task), task, seed=0)
    assert len(result.trajectory) == 4 and not result.diverged
    assert result.trajectory[-1].val_loss < result.trajectory[0].val_loss


def test_registering_an_existing_name_needs_replace():
    with pytest.raises(ValueError, match="'mnist1d' is lrgym's own"):
        register_dataset("mnist1d", blobs)
    register_dataset("blobs", blobs)
    with pytest.raises(ValueError, match="'blobs' is already registered"):
        register_dataset("blobs", blobs)
    assert len(load_dataset("blobs").train) == 240
    register_dataset("blobs", lambda: blobs(examples=100), replace=True)
    assert len(load_dataset("blobs").train) == 60  # the cached copy of the old one is gone
    with pytest.raises(ValueError, match="without ':'"):
        register_model("my:model", small_mlp)
    with pytest.raises(ValueError, match="needs a callable, got int"):
        register_model("three", 3)


def test_a_reference_names_a_module_on_the_path_or_a_file(tmp_path, monkeypatch):
    write_user_folder(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module, by_file = import_reference("my_data:load"), import_reference(f"{tmp_path}/my_data.py:load")
    assert by_module is by_file  # one module, however it is named
    model = import_reference(f"{tmp_path}/my_model.py:build")((16,), 10)
    assert model(torch.zeros(2, 16)).shape == (2, 10)


def test_a_file_reference_needs_no_path_entry(tmp_path):
    write_user_folder(tmp_path)
    dataset = load_dataset(f"{tmp_path}/my_data.py:load")
    assert dataset.input_shape == (16,) and len(dataset.train) == 600


REFERENCE_MISTAKES = [
    ("no_such_module_xyz:load", "cannot import module 'no_such_module_xyz'"),
    ("{tmp}/missing.py:load", "no file {tmp}/missing.py"),
    ("{tmp}/my_data.py:nothing", "'{tmp}/my_data.py' has no 'nothing'"),
    ("{tmp}/broken.py:load", "failed: SyntaxError"),
    ("{tmp}/my_data.py:CONSTANT", "is not callable (got int)"),
    ("my_data:", "is not a plug-in reference: write 'package.module:function' or 'path/to/file.py:function'"),
    ("imagenet", "unknown dataset 'imagenet'; valid datasets: cifar10"),
]


@pytest.mark.parametrize(("reference", "fragment"), REFERENCE_MISTAKES, ids=[r for r, _ in REFERENCE_MISTAKES])
def test_a_reference_that_cannot_be_used_is_one_line(reference, fragment, tmp_path):
    write_user_folder(tmp_path, data="CONSTANT = 3\n\n\ndef load():\n    pass\n")
    (tmp_path / "broken.py").write_text("def load(:\n")
    reference, fragment = (text.replace("{tmp}", str(tmp_path)) for text in (reference, fragment))
    with pytest.raises(ValueError) as error:
        load_dataset(reference)
    message = str(error.value)
    assert fragment in message and "\n" not in message


def test_entry_points_of_installed_packages_join_the_registry(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "lrgym_blobs-0.1.dist-info").mkdir(parents=True)
    (site / "lrgym_blobs-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: lrgym-blobs\n"
                                                                 "Version: 0.1\n")
    (site / "lrgym_blobs-0.1.dist-info" / "entry_points.txt").write_text(
        "[lrgym.datasets]\nentry-blobs = blobs_plugin:load\nbroken-blobs = blobs_plugin_gone:load\n\n"
        "[lrgym.models]\nentry-mlp = blobs_plugin:build\n"
    )
    write_user_folder(site)
    (site / "blobs_plugin.py").write_text("from my_data import load\nfrom my_model import build\n")
    monkeypatch.syspath_prepend(str(site))
    assert {"entry-blobs", "broken-blobs"} <= set(DATASET_REGISTRY.names())
    assert load_dataset("entry-blobs").num_classes == 10
    assert build_model("entry-mlp", (16,), 10)(torch.zeros(2, 16)).shape == (2, 10)
    with pytest.raises(ValueError, match="'broken-blobs' .entry point 'blobs_plugin_gone:load' in group "
                                         "'lrgym.datasets'. cannot be loaded: ModuleNotFoundError"):
        load_dataset("broken-blobs")


def returns_a_string(input_shape, num_classes):
    return "a model"


def has_no_parameters(input_shape, num_classes):
    return nn.Flatten()


def three_classes(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def wrong_input_size(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(5, num_classes))


def raises_inside(input_shape, num_classes):
    raise RuntimeError("out of ideas")


MODEL_MISTAKES = [
    (returns_a_string, "returned a str; expected a torch.nn.Module"),
    (has_no_parameters, "has no parameters to train"),
    (three_classes, "maps inputs of shape (2, 16) to (2, 3); expected logits of shape (2, 10)"),
    (wrong_input_size, "fails on inputs of shape (2, 16) (batch, *input_shape): RuntimeError"),
    (raises_inside, "failed: RuntimeError: out of ideas"),
]


@pytest.mark.parametrize(("builder", "fragment"), MODEL_MISTAKES, ids=[b.__name__ for b, _ in MODEL_MISTAKES])
def test_a_plugin_model_that_returns_the_wrong_thing_is_named(builder, fragment):
    register_model("user-model", builder)
    with pytest.raises(ValueError) as error:
        build_model("user-model", (16,), 10)
    assert str(error.value).startswith("model 'user-model' ") and fragment in str(error.value)


def test_plugin_keywords_are_checked_against_the_signature():
    register_model("small-mlp", small_mlp)
    register_dataset("blobs", blobs)
    assert build_model("small-mlp", (16,), 10, hidden=[4])[1].out_features == 4
    with pytest.raises(ValueError, match=r"model 'small-mlp' takes no keyword\(s\) \['width'\]; valid: hidden"):
        build_model("small-mlp", (16,), 10, width=3)
    assert len(load_dataset("blobs", dataset_kwargs={"examples": 200}).train) == 120
    with pytest.raises(ValueError, match=r"takes no keyword\(s\) \['size'\]; valid: examples, seed"):
        load_dataset("blobs", dataset_kwargs={"size": 3})


def test_a_loader_that_names_data_dir_gets_the_flag(tmp_path):
    np.save(tmp_path / "inputs.npy", np.arange(60, dtype=np.float32).reshape(20, 3))

    def from_folder(data_dir=None):
        inputs = np.load(f"{data_dir}/inputs.npy")
        labels = np.arange(20) % 2
        return (inputs[:10], labels[:10]), (inputs[10:15], labels[10:15]), (inputs[15:], labels[15:])

    register_dataset("from-folder", from_folder)
    assert load_dataset("from-folder", data_dir=tmp_path).input_shape == (3,)
    with pytest.raises(ValueError, match=r"takes no keyword\(s\) \['data_dir'\]; valid: none"):
        load_dataset("from-folder", dataset_kwargs={"data_dir": "elsewhere"})  # lrgym's flag, not a spec's


def test_a_failing_loader_is_named_with_its_error():
    def failing():
        raise KeyError("column")

    register_dataset("failing", failing)
    with pytest.raises(ValueError, match="dataset 'failing' failed: KeyError: 'column'"):
        load_dataset("failing")


def test_too_few_examples_for_the_batch_size_are_named():
    register_dataset("blobs", blobs)
    task = load_task_spec("mnist1d-mlp", dataset="blobs", **{**SMALL, "batch_size": 500})
    with pytest.raises(ValueError, match=r"batch_size 500 is more than the 240 training examples of blobs"):
        run_episode(make_agent("constant", task), task, seed=0)


def test_plugin_models_run_on_single_envs():
    register_model("small-mlp", small_mlp)
    assert "plug-in" in population_error(load_task_spec("mnist1d-mlp", model="small-mlp"))
    assert population_error(load_task_spec("mnist1d-mlp")) is None


@pytest.mark.slow
def test_the_local_pool_hands_registrations_to_its_workers():
    register_dataset("blobs", blobs)
    assert run_jobs(train_size, [("blobs",), ("blobs",)], RunOptions(jobs=2, progress=False)) == [240, 240]
