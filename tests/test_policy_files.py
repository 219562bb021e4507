"""The plain acting files (lrgym/checkpoints/policy_files.py): the normaliser, spaces and policy as JSON and
safetensors, read back exactly, and malformed input refused with its place named.

Whole checkpoints (card, hashes, tamper refusals, no pickle on any acting path) are
tests/test_checkpoint.py; here each piece is checked alone, on an untrained PPO.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from lrgym.checkpoints.policy_files import (
    ObservationNormalizer,
    build_policy,
    policy_facts,
    save_policy_weights,
    space_from_json,
    space_to_json,
)
from lrgym.environment.lr_control_env import LRControlEnv

from .conftest import TINY

NET_ARCH = {"pi": [32], "vf": [32]}  # the shipped ppo recipe's


@pytest.fixture(scope="module")
def env():
    return LRControlEnv(name="mnist1d-mlp", dataset="mnist1d", model="mlp", **TINY)


@pytest.fixture(scope="module")
def model(env):
    return PPO("MlpPolicy", DummyVecEnv([lambda: env]), policy_kwargs={"net_arch": NET_ARCH}, seed=0, device="cpu")


def a_normalizer(**fields) -> ObservationNormalizer:
    defaults = dict(mean=np.array([1.0, -1.0]), var=np.array([4.0, 0.25]), count=10.0, clip_obs=10.0, epsilon=0.0)
    return ObservationNormalizer(**{**defaults, **fields})


# ---------------------------------------------------------------------------- normaliser
def test_the_normalizer_by_hand():
    normalizer = a_normalizer()
    # (x - mean) / sqrt(var + epsilon), clipped to +-clip_obs
    np.testing.assert_array_equal(normalizer.normalize_obs(np.array([3.0, -2.0])), [1.0, -2.0])
    np.testing.assert_array_equal(normalizer.normalize_obs(np.array([[101.0, -1.0]])), [[10.0, 0.0]])
    assert normalizer.normalize_obs(np.zeros(2)).dtype == np.float32
    raw = np.array([3.0, -2.0])
    np.testing.assert_array_equal(a_normalizer(norm_obs=False).normalize_obs(raw), raw)


def test_the_normalizer_refuses_observations_of_another_length():
    with pytest.raises(ValueError, match=r"observation of shape \(3,\) given to a controller normalising \(2,\)"):
        a_normalizer().normalize_obs(np.zeros(3))


def test_the_normalizer_is_vec_normalize_frozen(env):
    vec_normalize = VecNormalize(DummyVecEnv([lambda: env]), clip_obs=5.0)
    size = env.observation_space.shape[0]
    rng = np.random.default_rng(0)
    vec_normalize.obs_rms.update(rng.normal(3.0, 2.0, size=(50, size)))
    normalizer = ObservationNormalizer.from_vec_normalize(vec_normalize)
    observations = rng.normal(3.0, 4.0, size=(7, size)).astype(np.float32)
    expected = vec_normalize.normalize_obs(observations)
    np.testing.assert_array_equal(normalizer.normalize_obs(observations), expected)
    assert normalizer.clip_obs == 5.0 and normalizer.norm_obs and normalizer.norm_reward

    vec_normalize.obs_rms.update(rng.normal(-5.0, 1.0, size=(50, size)))  # later updates stay out: a copy
    assert not np.array_equal(vec_normalize.normalize_obs(observations), expected)
    np.testing.assert_array_equal(normalizer.normalize_obs(observations), expected)


def test_the_normalizer_reads_back_exactly_from_json():
    normalizer = a_normalizer(mean=np.array([0.1 + 0.2, 1 / 3, -1e-300]), var=np.array([2 / 3, 1e300, 0.0]),
                              count=12345.678, epsilon=1e-8, norm_reward=False)
    back = ObservationNormalizer.from_json(json.loads(json.dumps(normalizer.to_json())))
    np.testing.assert_array_equal(back.mean, normalizer.mean)
    np.testing.assert_array_equal(back.var, normalizer.var)
    assert (back.count, back.clip_obs, back.epsilon, back.norm_obs, back.norm_reward) == (
        normalizer.count, normalizer.clip_obs, normalizer.epsilon, True, False)


def test_flags_missing_from_the_json_default_to_true():
    data = a_normalizer().to_json()
    del data["norm_reward"]
    assert ObservationNormalizer.from_json(data).norm_reward is True


GOOD = a_normalizer().to_json()
MALFORMED = [
    ([1, 2], "expected a JSON object, got list"),
    ({key: value for key, value in GOOD.items() if key not in ("mean", "epsilon")}, "missing epsilon, mean"),
    ({**GOOD, "mean": "1,2"}, "mean: expected a non-empty list of numbers, got str"),
    ({**GOOD, "mean": []}, "mean: expected a non-empty list"),
    ({**GOOD, "var": [1.0, float("nan")]}, "var: expected a finite number, got nan"),
    ({**GOOD, "mean": [1.0, "2"]}, "mean: expected a finite number, got '2'"),
    ({**GOOD, "count": True}, "count: expected a finite number, got True"),
    ({**GOOD, "clip_obs": float("inf")}, "clip_obs: expected a finite number"),
    ({**GOOD, "var": [1.0]}, "mean and var must have the same length"),
    ({**GOOD, "var": [1.0, -1.0]}, "var be >= 0"),
    ({**GOOD, "clip_obs": 0}, "clip_obs must be > 0"),
    ({**GOOD, "epsilon": -1e-8}, "epsilon >= 0"),
    ({**GOOD, "norm_obs": "yes"}, "norm_obs and norm_reward must be true or false"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED, ids=[message for _, message in MALFORMED])
def test_malformed_statistics_are_refused_naming_the_file(data, message):
    with pytest.raises(ValueError, match="^normalization.json: .*" + message.replace("(", r"\(")):
        ObservationNormalizer.from_json(data, "normalization.json")


# ---------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("space", [
    spaces.Box(low=np.array([-1.0, 0.0], np.float32), high=np.array([1.0, np.inf], np.float32), dtype=np.float32),
    spaces.Box(low=-np.inf, high=np.inf, shape=(2, 3), dtype=np.float64),
    spaces.Discrete(3),
    spaces.Discrete(5, start=-2),
], ids=["box", "box-2d-float64", "discrete", "discrete-start"])
def test_a_space_reads_back_equal_from_json(space):
    data = json.loads(json.dumps(space_to_json(space)))
    assert space_from_json(data) == space


@pytest.mark.parametrize("action", ["scale", "discrete", "lr"])
def test_the_env_spaces_read_back_equal(action):
    env = LRControlEnv(name="mnist1d-mlp", dataset="mnist1d", model="mlp", action=action, **TINY)
    for space in (env.observation_space, env.action_space):
        assert space_from_json(json.loads(json.dumps(space_to_json(space)))) == space


def test_other_spaces_are_refused():
    with pytest.raises(ValueError, match="MultiBinary space \\(Box or Discrete only\\)"):
        space_to_json(spaces.MultiBinary(3))
    with pytest.raises(ValueError, match="Box dtype must be float32 or float64, got 'int64'"):
        space_from_json({**space_to_json(spaces.Box(0, 1, (2,))), "dtype": "int64"})
    for data in ({"type": "Tuple"}, ["Box"], {}):
        with pytest.raises(ValueError, match="unknown space"):
            space_from_json(data)


# ---------------------------------------------------------------------------- policy
def test_policy_facts_name_the_policy_its_kwargs_and_spaces(model, env):
    facts = json.loads(json.dumps(policy_facts(model)))  # plain JSON
    assert facts["name"] == "MlpPolicy" and facts["kwargs"] == {"net_arch": NET_ARCH} and facts["use_sde"] is False
    assert space_from_json(facts["observation_space"]) == env.observation_space
    assert space_from_json(facts["action_space"]) == env.action_space


def test_a_rebuilt_policy_acts_exactly_as_the_original(model, env, tmp_path):
    save_policy_weights(model.policy, tmp_path / "policy.safetensors")
    policy = build_policy(policy_facts(model), PPO, tmp_path / "policy.safetensors")
    assert not policy.training
    observations = torch.as_tensor(np.random.default_rng(0).normal(size=(5, *env.observation_space.shape)),
                                   dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(policy.get_distribution(observations).distribution.mean,
                                   model.policy.get_distribution(observations).distribution.mean, rtol=0, atol=0)
        torch.testing.assert_close(policy.predict_values(observations), model.policy.predict_values(observations),
                                   rtol=0, atol=0)


def test_kwargs_that_are_not_plain_json_are_refused(env):
    model = PPO("MlpPolicy", DummyVecEnv([lambda: env]), policy_kwargs={"activation_fn": torch.nn.Tanh}, device="cpu")
    with pytest.raises(ValueError, match="are not plain JSON .*numbers, strings, lists and tables"):
        policy_facts(model)


def test_a_policy_class_without_an_alias_is_refused(env):
    class OwnPolicy(ActorCriticPolicy):
        pass

    with pytest.raises(ValueError, match="OwnPolicy is not one of PPO's named policies"):
        policy_facts(PPO(OwnPolicy, DummyVecEnv([lambda: env]), device="cpu"))


@pytest.mark.parametrize(("change", "message"), [
    ({"name": "CnnLstmPolicy"}, "policy 'CnnLstmPolicy' is not one of MlpPolicy, CnnPolicy, MultiInputPolicy"),
    ({"kwargs": [32, 32]}, r"policy kwargs must be a table, got \[32, 32\]"),
    ({"kwargs": {"net_arch": NET_ARCH, "no_such_option": 1}}, "do not fit MlpPolicy"),
    ({"kwargs": {"net_arch": {"pi": [16], "vf": [32]}}}, "the weights do not fit the MlpPolicy that card describes"),
])
def test_a_policy_the_files_do_not_describe_is_refused(model, tmp_path, change, message):
    save_policy_weights(model.policy, tmp_path / "policy.safetensors")
    with pytest.raises(ValueError, match=message):
        build_policy({**policy_facts(model), **change}, PPO, tmp_path / "policy.safetensors")
