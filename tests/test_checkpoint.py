"""Checkpoints (lrgym/checkpoints/checkpoint.py, lrgym/checkpoints/policy_files.py, lrgym/agents/ppo.py):
the card, the plain acting files, tamper and signature refusals, atomic saves, and no pickle on any acting path."""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lrgym.agents import make_agent, run_episode
from lrgym.checkpoints.checkpoint import (
    card_file,
    load_acting_policy,
    load_training_state,
    read_card,
    save_checkpoint,
    sha256,
    space_signature,
)
from lrgym.cli import main
from lrgym.controller import LRController
from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.tasks.specs import load_task_spec, project_root

from .conftest import TINY
from .tiny_training import train_tiny

SHIPPED_ACTIONS = json.loads((project_root() / "tests" / "data" / "shipped_controller_actions.json").read_text())


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


def test_the_card_describes_the_run_and_the_policy(checkpoint, tiny_task):
    card = read_card(checkpoint)
    assert card["format"] == 2 and card["signature"] == space_signature(tiny_task)
    assert card["task"]["name"] == "mnist1d-mlp" and card["agent"]["name"] == "ppo"
    assert card["algorithm"] == "stable_baselines3.PPO"
    assert card["device"] == {"trainee": "cpu", "policy": "cpu"}
    assert card["wall_time_s"] > 0 and "git_commit" in card and card["versions"]["torch"]
    assert card["policy"]["name"] == "MlpPolicy" and card["policy"]["kwargs"]["net_arch"] == {"pi": [32], "vf": [32]}
    assert "not a signature" in card["security"]
    assert all(len(entry["sha256"]) == 64 for entry in card["files"].values())
    assert card_file(checkpoint, card, "policy").suffix == ".safetensors"


def test_the_plain_files_act_exactly_as_the_live_model(trained, tiny_task):
    """The rebuilt policy and JSON statistics give the actions of SB3's own pickled model."""
    env = LRControlEnv(**tiny_task.to_dict())
    state = load_training_state(trained, tiny_task, env=_dummy_venv(env))
    controller = load_acting_policy(trained, tiny_task)
    rng = np.random.default_rng(0)
    observations = rng.normal(0, 2, size=(32, 8)).astype(np.float32)
    live = state.model.predict(state.vec_normalize.normalize_obs(observations), deterministic=True)[0]
    plain = controller.policy.predict(controller.normalizer.normalize_obs(observations), deterministic=True)[0]
    np.testing.assert_array_equal(live, plain)


def _dummy_venv(env):
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv([lambda: env])


@pytest.mark.parametrize("role", ["policy", "normalization"])
def test_a_changed_file_is_refused(checkpoint, tiny_task, role):
    path = card_file(checkpoint, read_card(checkpoint), role)
    with open(path, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ValueError, match=f"{path.name} changed"):
        make_agent(f"ppo:{checkpoint}", tiny_task)


def test_a_missing_file_is_refused(checkpoint, tiny_task):
    path = card_file(checkpoint, read_card(checkpoint), "normalization")
    path.unlink()
    with pytest.raises(ValueError, match=f"{path.name} is missing"):
        load_acting_policy(checkpoint, tiny_task)


def test_a_card_naming_a_file_outside_the_folder_is_refused(checkpoint, tiny_task):
    card = json.loads((checkpoint / "card.json").read_text())
    card["files"]["policy"]["name"] = "../policy.x.safetensors"
    (checkpoint / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="not policy.TAG.safetensors in the folder"):
        load_acting_policy(checkpoint, tiny_task)


def test_a_format_1_card_is_refused_with_the_way_to_upgrade(checkpoint, tiny_task):
    card = json.loads((checkpoint / "card.json").read_text())
    (checkpoint / "card.json").write_text(json.dumps({**card, "format": 1}))
    with pytest.raises(ValueError, match="card format 1.*upgrade_checkpoint"):
        make_agent(f"ppo:{checkpoint}", tiny_task)


def test_a_folder_without_a_card_is_not_a_checkpoint(tmp_path, tiny_task):
    with pytest.raises(FileNotFoundError, match="not a controller checkpoint"):
        make_agent(f"ppo:{tmp_path}", tiny_task)


def test_a_controller_acts_in_its_own_action_mode_on_a_task_of_another(checkpoint, tiny_task):
    other = tiny_task.replace(action="discrete")
    agent = make_agent(f"ppo:{checkpoint}", other)
    assert agent.task_overrides["action"] == "scale"  # the controller's, not the task's
    result = run_episode(agent, other, seed=0)
    assert result.task.action == "scale" and len(result.trajectory) == tiny_task.decisions


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


def test_a_save_killed_midway_leaves_the_previous_controller_loadable(checkpoint, tiny_task, monkeypatch):
    """Every file of a save is written before the card switches to it: kill it anywhere, the old one loads."""
    state = load_training_state(checkpoint, tiny_task, env=_dummy_venv(LRControlEnv(**tiny_task.to_dict())))
    before = read_card(checkpoint)
    import lrgym.checkpoints.checkpoint as checkpoint_module

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    for where in ("save_policy_weights", "sha256", "package_versions"):
        with monkeypatch.context() as patch:
            patch.setattr(checkpoint_module, where, killed)
            with pytest.raises(KeyboardInterrupt):
                save_checkpoint(checkpoint, state.model, state.vec_normalize, {**before, "timesteps": 99})
        assert read_card(checkpoint) == before
        run_episode(make_agent(f"ppo:{checkpoint}", tiny_task), tiny_task, seed=0)
    save_checkpoint(checkpoint, state.model, state.vec_normalize, {**before, "timesteps": 99})
    after = read_card(checkpoint)
    assert after["timesteps"] == 99 and after["files"] != before["files"]
    names = {path.name for path in checkpoint.iterdir()} - {"wall_time.json"}
    assert names == {"card.json", *(entry["name"] for entry in after["files"].values())}  # the old ones are gone


# ---------------------------------------------------------------------------- shipped controllers
@pytest.mark.parametrize("name", ["mnist1d-mlp-ppo", "fashion-mnist-lenet-ppo"])
def test_the_reexported_shipped_controllers_act_as_the_pickled_ones_did(name):
    controller = load_acting_policy(project_root() / "checkpoints" / name)
    from lrgym.agents.ppo import PPOAgent

    agent = PPOAgent(controller.policy, controller.normalizer, "scale")
    actions = []
    for observation in np.array(SHIPPED_ACTIONS["observations"], dtype=np.float32):
        agent.begin_episode()
        actions.append(np.asarray(agent.act(observation, {}), dtype=np.float32).tolist())
    # Equal to float32 rounding: the last bits of a matrix product differ between CPUs
    # (measured: 1 ulp on an AMD EPYC against the Intel machine that recorded them).
    np.testing.assert_allclose(actions, SHIPPED_ACTIONS["actions"][name], rtol=1e-6, atol=1e-7)


def test_the_shipped_controllers_ship_no_pickle():
    for folder in (path.parent for path in (project_root() / "checkpoints").glob("*/card.json")):
        suffixes = {path.suffix for path in folder.iterdir()}
        assert suffixes <= {".json", ".safetensors", ".md"}, folder


def test_the_shipped_controller_loads_and_acts(tiny_task):
    folder = project_root() / "checkpoints" / "mnist1d-mlp-ppo"
    card = read_card(folder)  # also: its files match their sha256
    assert card["task"]["name"] == "mnist1d-mlp" and card["signature"] == space_signature(tiny_task)
    result = run_episode(make_agent(f"ppo:{folder}", tiny_task), tiny_task, seed=0)
    assert len(result.trajectory) == 4 and not result.diverged


# ---------------------------------------------------------------------------- no pickle when acting
class WritesAFile:
    """Unpickling this writes ``path``: what a hostile checkpoint would do (with worse code)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return exec, (f"open({self.path!r}, 'w').write('pwned')",)


def _poison(folder, marker):
    """Replace the checkpoint's pickles by hostile ones, and their sha256 in the card to match."""
    card = json.loads((folder / "card.json").read_text())
    payload = pickle.dumps(WritesAFile(marker))
    card_file(folder, card, "vecnormalize").write_bytes(payload)
    model = card_file(folder, card, "model")
    with zipfile.ZipFile(model) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(members["data"])
    data["policy_class"][":serialized:"] = base64.b64encode(payload).decode()  # a cloudpickled data item
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(model, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    for role in ("model", "vecnormalize"):
        card["files"][role]["sha256"] = sha256(card_file(folder, card, role))
    (folder / "card.json").write_text(json.dumps(card))


def test_no_acting_path_unpickles_a_hostile_checkpoint(checkpoint, tiny_task, tmp_path, capsys):
    marker = tmp_path / "pwned"
    _poison(checkpoint, marker)
    tiny = [item for key, value in TINY.items() for item in ("--set", f"{key}={value}")]
    choice = tmp_path / "choice.json"
    choice.write_text(json.dumps({"initial_lr": 0.01, "scheduler": "StepLR", "kwargs": {"step_size": 10}}))

    # ppo:PATH through the library, LRController, and the three commands that take ppo:PATH
    run_episode(make_agent(f"ppo:{checkpoint}", tiny_task), tiny_task, seed=0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(40, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, labels = torch.randn(16, 40), torch.arange(16) % 10
    controller = LRController.from_checkpoint(checkpoint, model, optimizer, inputs, labels, total_steps=20)
    for _ in range(20):
        loss = F.cross_entropy(model(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        controller.step(loss)
    assert main(["episode", "mnist1d-mlp", "--agent", f"ppo:{checkpoint}", "--device", "cpu", *tiny]) == 0
    assert main(["evaluate", "mnist1d-mlp", "--agents", f"ppo:{checkpoint}", "--seeds", "1", "--jobs", "1",
                 "--device", "cpu", "--out", str(tmp_path / "evaluate"), *tiny]) == 0
    assert main(["transfer", str(checkpoint), "mnist1d-lenet", "--baseline-config", str(choice),
                 "--target-baselines", "constant", "--seeds", "1", "--jobs", "1", "--device", "cpu",
                 "--out", str(tmp_path / "transfer"), *tiny]) == 0
    assert not marker.exists()

    # The poison is real: resuming (which does unpickle, on your own runs only) runs it.
    with pytest.raises(Exception):  # noqa: B017  (whatever SB3 makes of the payload's return value)
        load_training_state(checkpoint, tiny_task, env=_dummy_venv(LRControlEnv(**tiny_task.to_dict())))
    assert marker.read_text() == "pwned"


def test_a_controller_saved_without_training_state_acts_but_cannot_resume(tiny_task):
    folder = project_root() / "checkpoints" / "mnist1d-mlp-ppo"
    with pytest.raises(ValueError, match="names no model file .*it can act, not resume"):
        load_training_state(folder, tiny_task, env=None)


def test_a_trusted_format_1_checkpoint_is_upgraded_to_act_without_pickle(trained, checkpoint, tiny_task):
    from lrgym.checkpoints.upgrade import upgrade_checkpoint

    card = read_card(checkpoint)
    legacy = {"model": "model.zip", "vecnormalize": "vecnormalize.pkl"}
    for role, name in legacy.items():
        card_file(checkpoint, card, role).rename(checkpoint / name)
    for role in ("policy", "normalization"):
        card_file(checkpoint, card, role).unlink()
    old_card = {key: value for key, value in card.items() if key not in ("policy", "security")}
    old_card.update(format=1, files={name: sha256(checkpoint / name) for name in legacy.values()})
    (checkpoint / "card.json").write_text(json.dumps(old_card))

    new_card = upgrade_checkpoint(checkpoint)
    assert new_card["format"] == 2 and set(new_card["files"]) == {"policy", "normalization"}
    assert new_card["upgraded"]["from_format"] == 1 and new_card["timesteps"] == card["timesteps"]
    assert not (checkpoint / "model.zip").exists() and not (checkpoint / "vecnormalize.pkl").exists()
    upgraded, original = (run_episode(make_agent(f"ppo:{folder}", tiny_task), tiny_task, seed=2).trajectory
                          for folder in (checkpoint, trained))
    assert [row.lr for row in upgraded] == [row.lr for row in original] and len(upgraded) == 4


def test_an_exported_controller_holds_no_pickle_and_acts_the_same(checkpoint, tiny_task, tmp_path):
    from lrgym.checkpoints.checkpoint import export_for_acting

    out = export_for_acting(checkpoint, tmp_path / "shipped")
    assert not list(out.glob("*.pkl")) and not list(out.glob("*.zip"))
    original = run_episode(make_agent(f"ppo:{checkpoint}", tiny_task), tiny_task, seed=2)
    exported = run_episode(make_agent(f"ppo:{out}", tiny_task), tiny_task, seed=2)
    assert [d.lr for d in exported.trajectory] == [d.lr for d in original.trajectory]
    with pytest.raises(ValueError, match="exists"):
        export_for_acting(checkpoint, out)
