"""A user's own folder outside the repository (my_data.py, my_model.py, my-task.toml) through the
command line: every command takes the spec's path, `lrgym list --path` lists the folder, and a
plug-in's mistake is one line with exit 2. Nothing in lrgym changes for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import lrgym
from lrgym.cli import main
from lrgym.tasks.specs import project_root

from .user_folder import fresh_imports, write_user_folder  # noqa: F401  (a fixture)

pytestmark = pytest.mark.usefixtures("fresh_imports")  # each test's plug-ins are forgotten after it
SHIPPED_CHECKPOINT = project_root() / "checkpoints" / "mnist1d-mlp-ppo"


def lrgym_command(tmp_path: Path) -> list[str]:
    """The `lrgym` command as installed: a script elsewhere, so the current folder is not on sys.path."""
    script = tmp_path / "bin" / "lrgym"
    script.parent.mkdir(exist_ok=True)
    script.write_text("import sys\n\nfrom lrgym.cli import main\n\nif __name__ == '__main__':\n    sys.exit(main())\n")
    return [sys.executable, str(script)]


@pytest.mark.slow
def test_episode_evaluate_train_and_transfer_run_on_the_users_own_folder(tmp_path):
    folder = tmp_path / "my-project"
    write_user_folder(folder)
    env = {**os.environ, "PYTHONPATH": str(Path(lrgym.__file__).parents[1])}  # lrgym as installed, nothing else

    def lrgym_run(*argv: str) -> str:
        result = subprocess.run([*lrgym_command(tmp_path), *argv], cwd=folder, env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        return result.stdout

    episode = lrgym_run("episode", "./my-task.toml", "--agent", "cosine")
    assert "my-task seed 0 agent cosine" in episode and "ok: test loss" in episode
    evaluate = lrgym_run("evaluate", "./my-task.toml", "--agents", "constant,cosine", "--seeds", "2", "--jobs", "2")
    assert f"{folder.resolve()}/my_data.py:load" in evaluate
    assert (folder / "runs" / "evaluate-my-task" / "results.csv").is_file()
    train = lrgym_run("train", "./my-task.toml", "--timesteps", "240", "--no-progress")
    assert "trained my-task with ppo: 240 timesteps" in train
    assert (folder / "checkpoints" / "my-task-ppo" / "card.json").is_file()  # here, not in lrgym's folder
    transfer = lrgym_run("transfer", str(SHIPPED_CHECKPOINT), "./my-task.toml", "--seeds", "2",
                         "--target-baselines", "constant", "--jobs", "2")
    assert "ppo:mnist1d-mlp-ppo (transferred)" in transfer and "constant (target)" in transfer
    own = lrgym_run("evaluate", "./my-task.toml", "--agents", "ppo:checkpoints/my-task-ppo,constant", "--seeds", "2")
    assert "ppo:my-task-ppo" in own


def test_list_path_lists_a_folder_of_specs_and_its_broken_ones(tmp_path, capsys):
    write_user_folder(tmp_path)
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "slow-cosine.toml").write_text(
        'kind = "schedule"\ndescription = "cosine to a tenth"\nscheduler = "CosineAnnealingLR"\n')
    (tmp_path / "typo.toml").write_text('dataset = "my_data:load"\nmodel = "mlp"\nstepz = 3\n')
    assert main(["list", "--path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    task_row = next(line for line in out.splitlines() if line.startswith(str(tmp_path / "my-task.toml")))
    assert f"{tmp_path.resolve()}/my_data.py:load" in task_row and "50" in task_row  # dataset, batch
    assert "slow-cosine.toml  schedule  cosine to a tenth" in out
    assert "typo.toml" in out and "unexpected keyword argument 'stepz'" in out  # shown with its error


def test_list_names_the_folder_of_the_names(capsys):
    assert main(["list"]) == 0
    assert f"from {project_root() / 'envs'} and {project_root() / 'agents'} ($LRGYM_HOME" in capsys.readouterr().out


BROKEN_DATA = "def load():\n    return [1, 2, 3]\n"
MISTAKES = [
    ("cannot be imported", {"task": 'dataset = "my_dta:load"\nmodel = "mlp"\n'}, [],
     "dataset 'my_dta:load': cannot import module 'my_dta'"),
    ("wrong types", {"data": BROKEN_DATA}, [], "the train split is a value of type int; expected an (inputs"),
    ("too few examples", {}, ["--set", "batch_size=5000"],
     "batch_size 5000 is more than the 600 training examples of"),
    ("unknown model keyword", {}, ["--set", "model_kwargs={width=3}"],
     "takes no keyword(s) ['width']; valid: hidden"),
    ("no such spec file", {}, ["--agent", "./no-agent.toml"], "no spec file no-agent.toml"),
]


@pytest.mark.parametrize(("files", "flags", "fragment"), [case[1:] for case in MISTAKES], ids=[c[0] for c in MISTAKES])
def test_a_plugin_mistake_is_one_line_and_exit_2(files, flags, fragment, tmp_path, monkeypatch, capsys):
    write_user_folder(tmp_path, **files)
    monkeypatch.chdir(tmp_path)
    assert main(["episode", "./my-task.toml", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err
