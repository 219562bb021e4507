"""Upgrading a format-1 checkpoint (lrgym/checkpoints/upgrade.py): SB3 pickles in, plain acting files out.

The format-1 folders here are built from an untrained PPO (or RecurrentPPO) as lrgym
before card format 2 saved them: ``model.zip``, ``vecnormalize.pkl`` and a card listing
their sha256. The upgraded controller must act exactly as those pickles did. The upgrade
of a trained run's copy is tests/test_checkpoint.py.
"""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from lrgym.agents import make_agent, run_episode
from lrgym.agents.ppo import PPOAgent
from lrgym.checkpoints.checkpoint import (
    SECURITY_NOTE,
    algorithm_class,
    load_training_state,
    read_card,
    sha256,
    space_signature,
)
from lrgym.checkpoints.upgrade import upgrade_checkpoint
from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.tasks.specs import load_agent_spec, project_root

LEGACY = ("model.zip", "vecnormalize.pkl")


def format_1_folder(folder, task, kind="ppo"):
    """A format-1 checkpoint of an untrained controller whose statistics have seen some observations;
    returns the folder, the live model and its VecNormalize (what acting used to unpickle)."""
    env = VecNormalize(DummyVecEnv([lambda: LRControlEnv(**task.to_dict(), device="cpu")]))
    env.obs_rms.update(np.random.default_rng(0).normal(1.0, 3.0, size=(20, env.observation_space.shape[0])))
    policy = "MlpLstmPolicy" if kind == "ppo-lstm" else "MlpPolicy"
    model = algorithm_class(kind)(policy, env, policy_kwargs={"net_arch": {"pi": [32], "vf": [32]}}, seed=0,
                                  device="cpu")
    model.num_timesteps = 80
    folder.mkdir()
    model.save(folder / "model.zip")
    env.save(str(folder / "vecnormalize.pkl"))
    card = {
        "format": 1, "task": task.to_dict(), "agent": load_agent_spec(kind).to_dict(),
        "signature": space_signature(task), "timesteps": 80, "wall_time_s": 12.5, "note": "kept as it is",
        "files": {name: sha256(folder / name) for name in LEGACY},
    }
    (folder / "card.json").write_text(json.dumps(card))
    return folder, model, env


def lrs(agent, task) -> list[float]:
    return [row.lr for row in run_episode(agent, task, seed=5, device="cpu").trajectory]


@pytest.mark.parametrize("kind", ["ppo", "ppo-lstm"])
def test_the_upgraded_controller_acts_exactly_as_its_pickles_did(tmp_path, tiny_task, kind):
    folder, model, vec_normalize = format_1_folder(tmp_path / "old", tiny_task, kind)
    expected = lrs(PPOAgent(model.policy, vec_normalize, "scale"), tiny_task)
    upgrade_checkpoint(folder)
    assert lrs(make_agent(f"ppo:{folder}", tiny_task), tiny_task) == expected and len(expected) == 4


def test_the_new_card_keeps_the_old_one_and_names_only_plain_files(tmp_path, tiny_task):
    folder, _, _ = format_1_folder(tmp_path / "old", tiny_task)
    old_card = json.loads((folder / "card.json").read_text())
    new_card = upgrade_checkpoint(folder)
    assert new_card == read_card(folder)  # written, and every file matches its sha256
    assert new_card["format"] == 2 and set(new_card["files"]) == {"policy", "normalization"}
    for key in ("task", "agent", "signature", "timesteps", "wall_time_s", "note"):
        assert new_card[key] == old_card[key]
    assert new_card["upgraded"]["from_format"] == 1 and new_card["upgraded"]["files"] == old_card["files"]
    assert new_card["upgraded"]["by"]["stable-baselines3"] and new_card["security"] == SECURITY_NOTE
    assert new_card["policy"]["name"] == "MlpPolicy" and new_card["policy"]["kwargs"]["net_arch"]["pi"] == [32]
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(["card.json", *(entry["name"] for entry in new_card["files"].values())])
    assert all(entry["name"].split(".")[1].startswith("000000080-") for entry in new_card["files"].values())


def test_the_training_state_can_be_kept_to_resume_from(tmp_path, tiny_task):
    folder, _, _ = format_1_folder(tmp_path / "old", tiny_task)
    old_files = json.loads((folder / "card.json").read_text())["files"]
    new_card = upgrade_checkpoint(folder, keep_training_state=True)
    assert set(new_card["files"]) == {"policy", "normalization", "model", "vecnormalize"}
    # SB3's own files, copied byte for byte under the new names
    assert new_card["files"]["model"]["sha256"] == old_files["model.zip"]
    assert new_card["files"]["vecnormalize"]["sha256"] == old_files["vecnormalize.pkl"]
    env = DummyVecEnv([lambda: LRControlEnv(**tiny_task.to_dict(), device="cpu")])
    state = load_training_state(folder, tiny_task, env=env)
    assert isinstance(state.model, PPO) and state.model.num_timesteps == 80


def test_a_checkpoint_of_another_format_is_refused_and_left_alone(tmp_path, tiny_task):
    shipped = shutil.copytree(project_root() / "checkpoints" / "mnist1d-mlp-ppo", tmp_path / "shipped")
    before = {path.name: path.read_bytes() for path in shipped.iterdir()}
    with pytest.raises(ValueError, match="card format 2; only format 1 is upgraded"):
        upgrade_checkpoint(shipped)
    assert {path.name: path.read_bytes() for path in shipped.iterdir()} == before


class WritesAFile:
    """Unpickling this writes ``path``: what a swapped-in hostile file would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("name", LEGACY)
def test_a_file_changed_since_the_save_is_refused_before_anything_is_unpickled(tmp_path, tiny_task, name):
    folder, _, _ = format_1_folder(tmp_path / "old", tiny_task)
    marker = tmp_path / "pwned"
    (folder / name).write_bytes(pickle.dumps(WritesAFile(marker)))  # the card's sha256 left as it was
    before = sorted(path.name for path in folder.iterdir())
    with pytest.raises(ValueError, match=f"{name} changed since the checkpoint was saved; refusing to upgrade it"):
        upgrade_checkpoint(folder)
    assert not marker.exists() and sorted(path.name for path in folder.iterdir()) == before
    assert json.loads((folder / "card.json").read_text())["format"] == 1
