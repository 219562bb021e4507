"""Specs given as a path (lrgym/tasks/specs.py, lrgym/tasks/family.py): a task, a family or an agent
read from any TOML file, named by the file, its plug-ins found beside it from any current folder."""

from __future__ import annotations

import shutil

import pytest

from lrgym.agents import make_agent, run_episode
from lrgym.evaluation.evaluate import agent_entries
from lrgym.tasks.family import load_family
from lrgym.tasks.specs import agents_dir, envs_dir, is_spec_path, load_agent_spec, load_task_spec

from .user_folder import TASK, fresh_imports, write_user_folder  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("fresh_imports")  # each test's plug-ins are forgotten after it


def test_a_path_is_told_apart_from_a_name():
    assert is_spec_path("./my-task.toml") and is_spec_path("my-task.toml") and is_spec_path("specs/my-task")
    assert not is_spec_path("mnist1d-mlp") and not is_spec_path("cosine")


def test_a_task_file_is_named_by_its_stem_and_found_from_any_folder(tmp_path, monkeypatch):
    spec_path = write_user_folder(tmp_path / "mine")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    task = load_task_spec("../mine/my-task.toml", steps=40)
    folder = (tmp_path / "mine").resolve()
    assert (task.name, task.steps, task.batch_size) == ("my-task", 40, 50)
    assert task.dataset == f"{folder}/my_data.py:load" and task.model == f"{folder}/my_model.py:build"
    result = run_episode(make_agent("constant", task), task, seed=0)  # its code runs from here
    assert len(result.trajectory) == 2 and not result.diverged
    assert load_task_spec(str(spec_path)) == load_task_spec("../mine/my-task.toml")


def test_a_name_in_the_file_wins_over_the_stem(tmp_path):
    (tmp_path / "file.toml").write_text('name = "chosen"\ndataset = "mnist1d"\nmodel = "mlp"\n')
    assert load_task_spec(str(tmp_path / "file.toml")).name == "chosen"


def test_a_shipped_spec_copied_elsewhere_is_the_same_task(tmp_path):
    copy = shutil.copy(envs_dir() / "mnist1d-mlp.toml", tmp_path / "mnist1d-mlp.toml")
    assert load_task_spec(str(copy)) == load_task_spec("mnist1d-mlp")


def test_a_family_file_draws_the_same_instances_wherever_it_lies(tmp_path):
    first = shutil.copy(envs_dir() / "mnist1d-family.toml", tmp_path / "mnist1d-family.toml")
    (tmp_path / "other").mkdir()
    second = shutil.copy(first, tmp_path / "other" / "mnist1d-family.toml")
    shipped = load_family("mnist1d-family")
    index = shipped.indices("test")[0]
    assert load_family(str(first), steps=30).instance(index) == load_family("mnist1d-family", steps=30).instance(index)
    assert load_family(str(second)).instance(index) == shipped.instance(index)


def test_a_single_task_file_is_a_family_of_one(tmp_path):
    family = load_family(str(write_user_folder(tmp_path)))
    assert family.single and family.instance(0).name == "my-task"


def test_an_agent_file_runs_and_is_labelled_by_its_stem(tmp_path, monkeypatch, tiny_task):
    shutil.copy(agents_dir() / "cosine.toml", tmp_path / "my-cosine.toml")
    monkeypatch.chdir(tmp_path)
    spec = load_agent_spec("./my-cosine.toml")
    assert (spec.name, spec.kind, spec.params) == ("my-cosine", "schedule", load_agent_spec("cosine").params)
    (entry,) = agent_entries(["./my-cosine.toml"])
    assert entry.label == "my-cosine" and entry.name == str((tmp_path / "my-cosine.toml").resolve())
    from_file = run_episode(make_agent(entry.name, tiny_task), tiny_task, seed=0)
    shipped = run_episode(make_agent("cosine", tiny_task), tiny_task, seed=0)
    assert [row.lr for row in from_file.trajectory] == [row.lr for row in shipped.trajectory]


def test_a_plugin_family_draws_among_plugins_and_builtins(tmp_path):
    write_user_folder(tmp_path)
    (tmp_path / "my-family.toml").write_text(
        'kind = "family"\ndataset = "my_data:load"\nmodel = ["my_model.py:build", "mlp"]\n'
        'batch_size = 50\nsteps = 40\ninterval = 20\ninitial_lr = {low = 1e-3, high = 1e-2, log = true}\n'
        'val_size = 100\n[model_kwargs."my_model.py:build"]\nhidden = {length = 1, each = [8, 16]}\n'
        '[model_kwargs.mlp]\nhidden = [[12]]\n[instances]\ntrain = [0, 20]\nvalidation = [20, 25]\ntest = [25, 30]\n'
    )
    family = load_family(str(tmp_path / "my-family.toml"))
    plugin = f"{tmp_path.resolve()}/my_model.py:build"
    instances = [family.instance(index) for index in family.indices("train")]
    assert {task.model for task in instances} == {plugin, "mlp"}
    for task in instances:
        assert task.model_kwargs["hidden"] in ([8], [16]) if task.model == plugin else task.model_kwargs == {
            "hidden": [12]}
    drawn = next(task for task in instances if task.model == plugin)
    assert not run_episode(make_agent("constant", drawn), drawn, seed=0).diverged


@pytest.mark.parametrize(("write", "load", "fragment"), [
    (None, load_task_spec, "no spec file"),
    ("dataset = [", load_task_spec, "not valid TOML"),
    ('kind = "family"\n', load_task_spec, "is a task family, not a single task"),
    ('kind = "schedule"\n', load_task_spec, "is an agent spec; expected a task or family spec"),
    (TASK, load_agent_spec, "is a task spec; expected an agent spec"),
    ('kind = "schedule"\n', load_family, "is an agent spec; expected a task or family spec"),
])
def test_a_wrong_file_is_one_line(write, load, fragment, tmp_path):
    path = tmp_path / "spec.toml"
    if write is not None:
        path.write_text(write)
    with pytest.raises(ValueError) as error:
        load(str(path))
    assert fragment in str(error.value) and "\n" not in str(error.value)
