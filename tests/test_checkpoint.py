"""Checkpoints (lrgym/checkpoint.py, lrgym/agents/ppo.py): the card, tamper and signature refusals."""

from __future__ import annotations

import json
import shutil

import pytest

from lrgym.agents import make_agent, run_episode
from lrgym.checkpoint import load_checkpoint, read_card, space_signature
from lrgym.specs import load_task_spec

from .conftest import TINY
from .tiny_training import train_tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny controller for the module; tests work on copies of it."""
    folder = tmp_path_factory.mktemp("trained") / "controller"
    train_tiny(folder, load_task_spec("mnist1d-mlp", **TINY), timesteps=40)
    return folder


@pytest.fixture
def checkpoint(trained, tmp_path):
    copy = tmp_path / "controller"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("periodic", "tensorboard"))
    return copy


def test_the_card_describes_the_run(checkpoint, tiny_task):
    card = read_card(checkpoint)
    assert card["signature"] == space_signature(tiny_task)
    assert card["task"]["name"] == "mnist1d-mlp" and card["agent"]["name"] == "ppo"
    assert card["algorithm"] == "stable_baselines3.PPO"
    assert card["device"] == {"trainee": "cpu", "policy": "cpu"}
    assert card["wall_time_s"] > 0 and "git_commit" in card and card["versions"]["torch"]
    assert all(len(digest) == 64 for digest in card["files"].values())


@pytest.mark.parametrize("name", ["model.zip", "vecnormalize.pkl"])
def test_a_changed_file_is_refused(checkpoint, tiny_task, name):
    with open(checkpoint / name, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match=f"{name} changed"):
        make_agent(f"ppo:{checkpoint}", tiny_task)


def test_a_missing_file_is_refused(checkpoint, tiny_task):
    (checkpoint / "vecnormalize.pkl").unlink()
    with pytest.raises(ValueError, match="vecnormalize.pkl is missing"):
        load_checkpoint(checkpoint, tiny_task)


def test_a_folder_without_a_card_is_not_a_checkpoint(tmp_path, tiny_task):
    with pytest.raises(FileNotFoundError, match="not a controller checkpoint"):
        make_agent(f"ppo:{tmp_path}", tiny_task)


def test_another_action_space_is_refused_with_the_reason(checkpoint, tiny_task):
    with pytest.raises(ValueError, match="space signature mismatch.*action='scale'.*'discrete'"):
        make_agent(f"ppo:{checkpoint}", tiny_task.replace(action="discrete"))


def test_a_card_edited_to_another_signature_is_caught_by_the_env_spaces(checkpoint, tiny_task):
    card = json.loads((checkpoint / "card.json").read_text())
    card["signature"]["action"] = "discrete"
    (checkpoint / "card.json").write_text(json.dumps(card))
    agent = make_agent(f"ppo:{checkpoint}", tiny_task.replace(action="discrete"))
    with pytest.raises(ValueError, match="action space"):
        run_episode(agent, tiny_task.replace(action="discrete"), seed=0)


def test_transfer_to_a_task_with_the_same_spaces_is_allowed(checkpoint):
    other = load_task_spec("mnist1d-lenet", **TINY)
    result = run_episode(make_agent(f"ppo:{checkpoint}", other), other, seed=0)
    assert len(result.trajectory) == 4


def test_the_shipped_controller_loads_and_acts(tiny_task):
    from lrgym.specs import project_root

    folder = project_root() / "checkpoints" / "mnist1d-mlp-ppo"
    card = read_card(folder)  # also: its files match their sha256
    assert card["task"]["name"] == "mnist1d-mlp" and card["signature"] == space_signature(tiny_task)
    result = run_episode(make_agent(f"ppo:{folder}", tiny_task), tiny_task, seed=0)
    assert len(result.trajectory) == 4 and not result.diverged
