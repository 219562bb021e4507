"""The core CLI commands end to end on a tiny task."""

from __future__ import annotations

from lrgym.cli import main


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
