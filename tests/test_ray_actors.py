"""Training envs as Ray actors (lrgym/vec_env/ray_actors.py): placement, resource refusals, seeds, options,
methods and closing, on the local loopback Ray instance of tests/test_ray_backend.py.

That module also checks that a ``RayVecEnv`` steps exactly like SB3's ``DummyVecEnv``
(across episode ends) and that ``lrgym train --backend ray`` trains on one.
"""

from __future__ import annotations

import functools
import socket

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'lrgym[ray]' to run the Ray actor tests")

from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from lrgym.environment.lr_control_env import LRControlEnv  # noqa: E402
from lrgym.tasks.specs import load_task_spec  # noqa: E402
from lrgym.vec_env.ray_actors import RayVecEnv  # noqa: E402

from .conftest import TINY  # noqa: E402
from .test_ray_backend import local_ray  # noqa: E402, F401  (the module's Ray instance: 2 CPUs, no GPU)


@pytest.fixture(scope="module")
def factories():
    """Two plain envs of the tiny task (picklable factories): seeds and options reach them as given."""
    return [functools.partial(LRControlEnv, **load_task_spec("mnist1d-mlp", **TINY).to_dict(), device="cpu")] * 2


@pytest.fixture(scope="module")
def remote(factories, local_ray):  # noqa: F811
    """One pair of actors for the module (each actor takes seconds to start: it imports torch)."""
    envs = RayVecEnv(factories)
    yield envs
    envs.close()


def test_placement_names_every_actors_node(remote):
    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
    assert remote.nodes == [node, node]
    assert remote.placement() == f"2 env actors on 1 node(s): {node} (2)"


@pytest.mark.parametrize(("count", "cpus", "gpus", "message"), [
    (3, 1, 0, "3 env actors need 3 CPUs; the Ray cluster has 2: lower --n-envs or add nodes"),
    (2, 1.5, 0, "2 env actors need 3 CPUs; the Ray cluster has 2"),
    (2, 1, 0.5, "2 env actors need 1 GPUs; the Ray cluster has 0"),
])
def test_more_than_the_cluster_has_is_refused_rather_than_waited_for(factories, count, cpus, gpus, message):
    with pytest.raises(ValueError, match=message):
        RayVecEnv([factories[0]] * count, num_cpus=cpus, num_gpus=gpus)


def test_seeds_and_options_are_used_by_the_next_reset_only(remote, factories, tiny_task):
    local = DummyVecEnv(factories)
    for envs in (remote, local):
        envs.seed(7)  # env k: seed 7 + k
        envs.set_options({"initial_lr": 0.005})
    np.testing.assert_array_equal(remote.reset(), local.reset())
    assert [info["initial_lr"] for info in remote.reset_infos] == [0.005, 0.005]
    np.testing.assert_array_equal(remote.reset(), local.reset())  # neither again: each env continues its stream
    assert all(info["initial_lr"] in tiny_task.initial_lrs for info in remote.reset_infos)
    remote.seed(7)
    np.testing.assert_array_equal(remote.reset()[0], LRControlEnv(**factories[0].keywords).reset(seed=7)[0])
    local.close()


def test_methods_and_attributes_are_reached_in_the_actors(remote, factories, tiny_task):
    remote.reset()
    (observation, info), = remote.env_method("reset", seed=3, options={"initial_lr": 0.002}, indices=[1])
    expected, _ = LRControlEnv(**factories[0].keywords).reset(seed=3, options={"initial_lr": 0.002})
    np.testing.assert_array_equal(observation, expected)
    assert info["initial_lr"] == 0.002
    assert remote.env_method("get_wrapper_attr", "task") == [tiny_task, tiny_task]  # positional arguments
    remote.set_attr("marker", 7, indices=[0])
    assert remote.get_attr("marker", indices=[0]) == [7] and not remote.has_attr("marker")
    assert remote.get_images() == [None, None]  # no render mode


def test_closing_kills_the_actors_even_with_a_step_in_flight(factories):
    envs = RayVecEnv(factories[:1], num_cpus=0)  # the module's pair of actors holds both CPUs
    envs.reset()
    actor = envs.actors[0]
    envs.step_async(np.zeros((1, 1), dtype=np.float32))  # never collected
    envs.close()
    assert envs.closed
    envs.close()  # a second close does nothing
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.node.remote(), timeout=30)
