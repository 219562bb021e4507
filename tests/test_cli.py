"""The core CLI commands end to end on a tiny task."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from lrgym.cli import main
from lrgym.tasks.specs import project_root


def test_list_prints_every_task_id(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "lrgym/mnist1d-mlp-v0" in out and "lrgym/fashion-mnist-lenet-v0" in out


def test_episode_prints_the_learning_rate_trajectory(capsys):
    code = main(["episode", "mnist1d-mlp", "--seed", "1", "--device", "cpu",
                 "--set", "steps=30", "--set", "interval=10", "--set", "initial_lrs=[0.002]"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("2.000e-03") == 3  # three decisions at the held rate
    assert "test loss" in out


def test_unknown_task_is_a_clean_error(capsys):
    assert main(["episode", "nope"]) == 2
    assert "valid tasks:" in capsys.readouterr().err


def test_bad_override_is_a_clean_error(capsys):
    assert main(["episode", "mnist1d-mlp", "--set", "stepz=3"]) == 2
    assert "unknown task field" in capsys.readouterr().err


# ---------------------------------------------------------------------------- user mistakes
TINY_SET = ["--set", "steps=4", "--set", "interval=2", "--set", "batch_size=16", "--set", "val_size=50"]
MISTAKES = [
    # (argv, fragment of the one error line); {file} is an existing file, {bad_json} a file of bad JSON
    (["episode", "mnist1d-mlp", "--set", 'steps="40"'], "steps must be an integer >= 1, got '40' (str)"),
    (["episode", "mnist1d-mlp", "--set", "steps=40.5"], "steps must be an integer >= 1, got 40.5 (float)"),
    (["episode", "mnist1d-mlp", "--set", "initial_lrs=0.01"], "initial_lrs must be a list of learning rates"),
    (["episode", "mnist1d-mlp", "--set", "optimizer_kwargs={nonsense=1}"], "do not fit optimizer 'adam'"),
    (["episode", "mnist1d-mlp", "--set", "divergence_loss=-1"], "divergence_loss must be > 0"),
    (["evaluate", "mnist1d-mlp", "--agents", ""], "--agents needs at least one name"),
    (["evaluate", "mnist1d-mlp", "--agents", ","], "--agents needs at least one name"),
    (["evaluate", "mnist1d-mlp", "--agents", "constant", "--out", "{file}"], "is a file, not a folder"),
    (["evaluate", "mnist1d-mlp", "--agents", "constant", "--out", "{file}/sub"], "cannot be written"),
    (["train", "mnist1d-mlp", "--out", "{file}"], "is a file, not a folder"),
    (["train", "mnist1d-mlp", "--out", "{file}/sub"], "cannot be written"),
    (["episode", "mnist1d-mlp", "--device", "nonsense"], "unknown device 'nonsense': use auto, cpu, cuda"),
    (["episode", "mnist1d-mlp", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["train", "mnist1d-mlp", "--timesteps", "0"], "--timesteps: expected an integer >= 1, got 0"),
    (["train", "mnist1d-mlp", "--timesteps", "-5"], "--timesteps: expected an integer >= 1, got -5"),
    (["train", "mnist1d-mlp", "--n-envs", "0"], "--n-envs: expected an integer >= 1"),
    (["evaluate", "mnist1d-mlp", "--agents", "constant", "--jobs", "-3"],
     "--jobs/-j: expected an integer >= 1, got -3"),
    (["evaluate", "mnist1d-mlp", "--agents", "constant", "--seeds", "0"], "--seeds: expected an integer >= 1"),
    (["evaluate", "mnist1d-mlp", "--agents", "constant", "--seeds", "ten"], "expected an integer >= 1, got 'ten'"),
    (["transfer", "checkpoints/mnist1d-mlp-ppo", "mnist1d-lenet", "--baseline-config", "{bad_json}"],
     "{bad_json} is not a step-grid choice: it is not valid JSON"),
    (["transfer", "checkpoints/mnist1d-mlp-ppo", "mnist1d-lenet", "--baseline-config", "{file}"],
     "{file} is not a step-grid choice"),
    (["evaluate", "mnist1d-mlp", "--agents", "ppo:{file}"], "not a controller checkpoint"),
    (["experiment", "mnist1d-mlp", "--timesteps", "0"], "--timesteps: expected an integer >= 1"),
    (["nonsense"], "invalid choice: 'nonsense'"),
    # values that used to be truncated, capped or crash deep inside (issue 20)
    (["episode", "mnist1d-family", "--instance", "200000", "--set", "decisions=1.5"],
     "family 'mnist1d-family': decisions must be an integer >= 1, got 1.5 (float)"),
    (["evaluate", "mnist1d-family", "--agents", "constant", "--instances", "test:-3"],
     "--instances 'test:-3': give N (how many instances, >= 1) or FIRST-LAST"),
    (["episode", "mnist1d-mlp", "--set", "val_size=1000000000"],
     "val_size 1000000000 is more than the 2000 validation examples of mnist1d (valid: 1..2000)"),
    (["episode", "mnist1d-mlp", "--set", "batch_size=10000000"],
     "batch_size 10000000 is more than the 7600 training examples of mnist1d (valid: 1..7600)"),
    (["episode", "mnist1d-mlp", "--set", "base_schedule={scheduler='StepLR',initial_lr=0.01,kwargs={step_size=0}}"],
     "base_schedule: StepLR with kwargs {'step_size': 0} does not give learning rates: ZeroDivisionError"),
    (["episode", "mnist1d-mlp", "--set", "base_schedule={scheduler='StepLR',initial_lr=0.01,kwargs={gamma='nan'}}"],
     "base_schedule.kwargs.gamma must be a number, got 'nan' (str)"),
    (["episode", "mnist1d-mlp", "--set", "model_kwargs={hidden=[0]}"], "model_kwargs.hidden must be integers >= 1"),
    (["evaluate", "mnist1d-mlp", "--agents", "constant", "--backend", "ray", "--ray-address", "256.1.1.1:99999"],
     "--ray-address '256.1.1.1:99999': port '99999' is not a number from 1 to 65535"),
    (["evaluate", "mnist1d-mlp", "--agents", "constant", "--ray-timeout", "5"],
     "--ray-timeout needs the ray backend (--backend ray)"),
    (["evaluate", "mnist1d-mlp", "--agents", "constant", "--ray-timeout", "0"],
     "--ray-timeout: expected a number of seconds > 0, got '0'"),
    (["episode", "mnist1d-mlp", "--threads", "0"], "--threads: expected an integer >= 1, got 0"),
    (["episode", "mnist1d-mlp", "--set", "base_schedule=@{bad_json}"],
     "--set base_schedule=@FILE: {bad_json}: not JSON"),
]


@pytest.mark.parametrize(("argv", "fragment"), MISTAKES, ids=[" ".join(argv) for argv, _ in MISTAKES])
def test_a_user_mistake_is_one_line_and_exit_2(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(project_root())
    paths = {"file": tmp_path / "a-file", "bad_json": tmp_path / "bad.json"}
    paths["file"].write_text("[1, 2]")
    paths["bad_json"].write_text("{initial_lr: 0.1,")
    argv = [arg.replace("{file}", str(paths["file"])).replace("{bad_json}", str(paths["bad_json"])) for arg in argv]
    try:
        code = main(argv + (TINY_SET if argv[0] == "evaluate" else []))
    except SystemExit as exit:  # argparse's own mistakes
        code = exit.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    fragment = fragment.replace("{file}", str(paths["file"])).replace("{bad_json}", str(paths["bad_json"]))
    assert fragment in lines[0] and "Traceback" not in err


def test_a_divergence_bound_below_the_initial_loss_is_warned_and_the_episode_runs(capsys):
    from lrgym.environment.episode import DivergenceBoundWarning

    with pytest.warns(DivergenceBoundWarning, match="divergence_loss 0.001 is not above the untrained trainee's "
                      r"validation loss 2\.\d+: every episode will end as diverged at its first decision"):
        assert main(["episode", "mnist1d-mlp", *TINY_SET, "--set", "divergence_loss=1e-3"]) == 0
    assert "DIVERGED" in capsys.readouterr().out


def test_the_cuda_device_without_a_gpu_is_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as exit:
        main(["episode", "mnist1d-mlp", "--device", "cuda"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_the_installed_command_prints_one_line_and_no_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "lrgym.cli", "episode", "mnist1d-mlp", "--set", "steps=40.5"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_real_bug_keeps_its_traceback(monkeypatch):
    import lrgym.commands.episode_command as episode_command

    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr(episode_command, "run", broken)
    with pytest.raises(KeyError):
        main(["episode", "mnist1d-mlp"])


def test_set_reads_a_json_value_from_a_file(tmp_path):
    import json

    from lrgym.commands.common import parse_overrides

    choice = {"scheduler": "StepLR", "initial_lr": 0.1, "kwargs": {"step_size": 50, "gamma": 0.7}, "score": 1.0}
    (tmp_path / "choice.json").write_text(json.dumps(choice))
    assert parse_overrides([f"base_schedule=@{tmp_path / 'choice.json'}"]) == {"base_schedule": choice}
    with pytest.raises(ValueError, match="no file"):
        parse_overrides([f"base_schedule=@{tmp_path / 'missing.json'}"])
