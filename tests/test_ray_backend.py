"""The Ray backend (lrgym/runners/pool.py, lrgym/runners/ray_tasks.py) on a local Ray instance bound to loopback.

One Ray instance (2 CPUs) serves the whole module; every test stays on tiny tasks so the
module takes seconds after Ray's start-up. The multi-node check with a killed worker is
tests/test_ray_cluster.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'lrgym[ray]' to run the Ray backend tests")

from lrgym.agents.step_grid import tune_step_grid  # noqa: E402
from lrgym.cli import main  # noqa: E402
from lrgym.evaluation.evaluate import read_results  # noqa: E402
from lrgym.runners.backend import Backend  # noqa: E402
from lrgym.runners.options import RunOptions  # noqa: E402
from lrgym.runners.pool import run_jobs  # noqa: E402
from lrgym.tasks.specs import load_agent_spec  # noqa: E402
from lrgym.trainee.data import DataNotFoundError, load_dataset  # noqa: E402
from tests.conftest import TINY  # noqa: E402
from tests.tiny_training import tiny_agent  # noqa: E402

TINY_FLAGS = [flag for key, value in TINY.items() for flag in ("--set", f"{key}={value}")]
# Columns that say where and how fast a run went; every other column must match.
PLACEMENT_COLUMNS = ("node", "wall_time")


# Ray resolves a loopback node address to the host's address unless multi-node clusters
# are off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0); a single node needs none.
LOOPBACK_ENVIRONMENT = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """A local Ray instance (2 CPUs, no GPU) whose every process listens on 127.0.0.1 only,
    with no usage reporting; the environment is restored afterwards."""
    saved = {key: os.environ.get(key) for key in LOOPBACK_ENVIRONMENT}
    os.environ.update(LOOPBACK_ENVIRONMENT)
    try:
        ray.init(
            address="local", num_cpus=2, num_gpus=0, include_dashboard=False, _node_ip_address="127.0.0.1",
            logging_level="WARNING",
        )
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def result_columns(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in PLACEMENT_COLUMNS} for row in rows]


def test_ray_evaluation_equals_the_local_one_row_for_row(tmp_path):
    common = ["evaluate", "mnist1d-mlp", "--agents", "constant,cosine", "--seeds", "3", *TINY_FLAGS]
    assert main([*common, "--jobs", "1", "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--backend", "ray", "--out", str(tmp_path / "ray")]) == 0
    local, on_ray = (read_results(tmp_path / name / "results.csv") for name in ("local", "ray"))
    assert len(local) == 6
    assert result_columns(on_ray) == result_columns(local)
    node_id = ray.get_runtime_context().get_node_id()
    assert {row["node"] for row in local} == {socket.gethostname()}
    assert {row["node"] for row in on_ray} == {f"{socket.gethostname()}/{node_id[:8]}"}


def test_step_grid_tuning_on_ray_makes_the_same_choice(tiny_task):
    grid = load_agent_spec("step-grid")
    small = dataclasses.replace(grid, params={  # 4 configurations x 2 tuning seeds
        **grid.params, "initial_lrs": [0.1, 0.001], "grid": {"step_size": [10], "gamma": [0.5, 0.9]},
        "tuning_seeds": [1000, 1001],
    })
    options = RunOptions(jobs=1, progress=False, env_options={"device": "cpu"})
    local = tune_step_grid(tiny_task, small, options=options)
    on_ray = tune_step_grid(tiny_task, small, options=options.replace(backend=Backend("ray")))
    assert on_ray == local


def fail_for(seed: int) -> int:
    if seed == 2:
        raise ValueError(f"seed {seed}: a bad spec, say")
    return seed


def test_a_failing_run_raises_its_own_error_not_a_ray_wrapper():
    with pytest.raises(ValueError) as raised:
        run_jobs(fail_for, [(seed,) for seed in range(4)], RunOptions(progress=False, backend=Backend("ray")))
    assert type(raised.value) is ValueError and str(raised.value) == "seed 2: a bad spec, say"


def test_a_worker_without_the_data_fails_with_the_how_to_get_it_message(tmp_path, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    with pytest.raises(DataNotFoundError):  # the premise: nowhere on this machine
        load_dataset("cifar10", data_dir=empty)
    code = main([
        "evaluate", "cifar10-lenet", "--agents", "constant", "--seeds", "2", "--backend", "ray",
        "--data-dir", str(empty), "--out", str(tmp_path / "out"),
    ])
    error = capsys.readouterr().err
    assert code == 2
    assert "lrgym evaluate: error: dataset 'cifar10' was not found. Searched: " + str(empty) in error
    assert "--data-dir DIR" in error and "Traceback" not in error and "RayTaskError" not in error


def test_train_on_ray_actors_writes_a_checkpoint_that_evaluates(tmp_path, capsys, monkeypatch):
    # The shipped recipe with one rollout of 8 decisions per env, so the run takes seconds.
    recipe = tiny_agent(eval_every_episodes=0)
    recipe.params["algorithm"].update(n_steps=8, batch_size=8, n_epochs=1)
    monkeypatch.setattr("lrgym.tasks.specs.load_agent_spec", lambda name: recipe)
    out = tmp_path / "controller"
    code = main([
        "train", "mnist1d-mlp", "--backend", "ray", "--n-envs", "2", "--timesteps", "16", "--device", "cpu",
        "--no-progress", "--out", str(out), *TINY_FLAGS, "--set", "steps=20",
    ])
    printed = capsys.readouterr().out
    assert code == 0
    assert "ray: 2 env actors on 1 node(s)" in printed
    card = json.loads((out / "card.json").read_text())
    assert card["n_envs"] == 2 and card["workers"]["backend"] == "ray" and len(card["workers"]["nodes"]) == 1
    assert main([
        "evaluate", "mnist1d-mlp", "--agents", f"ppo:{out},constant", "--seeds", "2", "--jobs", "1",
        "--out", str(tmp_path / "eval"), *TINY_FLAGS, "--set", "steps=20",
    ]) == 0
    rows = read_results(tmp_path / "eval" / "results.csv")
    assert [row["decisions"] for row in rows] == [2, 2, 2, 2]


def test_a_run_asks_for_a_gpu_share_only_when_it_trains_on_cuda():
    from lrgym.runners.ray_tasks import gpu_request

    backend = Backend("ray", gpu_fraction=0.25)
    assert gpu_request(backend, "cpu") == 0 and gpu_request(backend, None) == 0
    assert gpu_request(backend, "cuda") == 0.25 and gpu_request(backend, "cuda:0") == 0.25
    assert ray.cluster_resources().get("GPU", 0) == 0  # the test instance has none (num_gpus=0):
    assert gpu_request(backend, "auto") == 0  # auto trains on the CPU, asking for no GPU


def test_ray_vec_env_steps_exactly_like_sb3s_dummy_vec_env(tiny_task):
    import functools

    import numpy as np
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    from lrgym.vec_env.ray_actors import RayVecEnv
    from lrgym.vec_env.training import _training_env

    options = {"device": "cpu", "data_dir": None, "download": False}
    factories = [functools.partial(_training_env, tiny_task.to_dict(), options, 100 + i, 2, True) for i in range(2)]
    local, remote = DummyVecEnv(factories), RayVecEnv(factories)
    try:
        assert remote.num_envs == 2 and remote.observation_space == local.observation_space
        assert remote.env_is_wrapped(Monitor) == local.env_is_wrapped(Monitor) == [True, True]
        assert remote.get_attr("task") == local.get_attr("task")
        remote.set_attr("marker", 7, indices=[1])
        assert remote.get_attr("marker", indices=1) == [7] and not remote.has_attr("marker")
        np.testing.assert_array_equal(remote.reset(), local.reset())
        actions = np.random.default_rng(0).uniform(-1, 1, size=(2 * tiny_task.decisions + 1, 2, 1))
        for action in actions.astype(np.float32):  # crosses the end of two episodes per env
            observation, reward, done, info = remote.step(action)
            expected = local.step(action)
            np.testing.assert_array_equal(observation, expected[0])
            np.testing.assert_array_equal(reward, expected[1])
            np.testing.assert_array_equal(done, expected[2])
            for got, want in zip(info, expected[3]):
                assert got.keys() == want.keys()
                if "terminal_observation" in want:
                    np.testing.assert_array_equal(got["terminal_observation"], want["terminal_observation"])
        assert remote.env_method("get_episode_rewards") == local.env_method("get_episode_rewards")  # Monitor's
    finally:
        remote.close()
        local.close()
