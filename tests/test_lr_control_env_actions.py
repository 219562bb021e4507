"""LRControlEnv refuses malformed actions, stepping past the end, and bad rates from agents
(lrgym.environment.lr_control_env.check_action, step, reset, set_lr_sampler), with messages
naming the space and the input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrgym.environment.lr_control_env import LRControlEnv, check_action, next_lr
from lrgym.tasks.specs import load_task_spec

# The smallest real episode: 4 trainee steps, a decision every 2, 50 validation examples.
TINIEST = dict(steps=4, interval=2, batch_size=16, val_size=50)
ENVS: dict[str, LRControlEnv] = {}


def env_for(mode: str) -> LRControlEnv:
    """One env per action mode for the whole module (building one loads the dataset)."""
    if mode not in ENVS:
        ENVS[mode] = LRControlEnv(**load_task_spec("mnist1d-mlp", **TINIEST, action=mode).to_dict(), device="cpu")
    return ENVS[mode]


BAD_ACTIONS = [
    # (mode, action, exception, message fragment)
    ("scale", np.zeros(0, np.float32), ValueError, "got 0 elements"),
    ("scale", [], ValueError, "got 0 elements"),
    ("scale", np.zeros(2, np.float32), ValueError, "got 2 elements"),
    ("scale", np.zeros((3, 1), np.float32), ValueError, r"shape \(3, 1\)"),
    ("scale", "0.5", TypeError, "got '0.5'"),
    ("scale", ["0.5"], TypeError, r"got \['0.5'\]"),
    ("scale", None, TypeError, "got None"),
    ("scale", True, TypeError, "got True"),
    ("scale", [[0.1], [0.2, 0.3]], TypeError, "got"),
    ("scale", np.array([np.inf], np.float32), ValueError, "finite, got inf"),
    ("scale", -np.inf, ValueError, "finite, got -inf"),
    ("scale", math.nan, ValueError, "finite, got nan"),
    ("discrete", 1.5, ValueError, "an integer 0, 1 or 2, got 1.5"),
    ("discrete", 0.99, ValueError, "an integer 0, 1 or 2, got 0.99"),
    ("discrete", np.array(1.0), ValueError, "dtype float64"),
    ("discrete", 3, ValueError, "an integer 0, 1 or 2, got 3"),
    ("discrete", -1, ValueError, "got -1"),
    ("discrete", [0, 1], ValueError, "got 2 elements"),
    ("lr", -0.01, ValueError, "finite and >= 0, got -0.01"),
    ("lr", math.inf, ValueError, "finite and >= 0, got inf"),
    ("lr", None, TypeError, "got None"),
    ("log_lr", math.nan, ValueError, "finite, got nan"),
    ("log_lr", "-3", TypeError, "got '-3'"),
]


@pytest.mark.parametrize(("mode", "action", "error", "message"), BAD_ACTIONS)
def test_a_malformed_action_is_refused_naming_the_space_and_the_input(mode, action, error, message):
    env = env_for(mode)
    env.reset(seed=0)
    space = {"scale": r"Box\(-1.0, 1.0, \(1,\)\)", "discrete": r"Discrete\(3\)", "lr": r"Box\(1e-06, 1.0, \(1,\)\)",
             "log_lr": r"Box\(log10 1e-06, log10 1.0, \(1,\)\)"}
    with pytest.raises(error, match=rf"action mode '{mode}' expects one number of {space[mode]}.*{message}"):
        env.step(action)
    env.step({"scale": np.zeros(1, np.float32), "discrete": 1, "lr": 0.001, "log_lr": -3.0}[mode])  # still usable


@pytest.mark.parametrize(("mode", "action"), [
    ("scale", 0.5), ("scale", [0.5]), ("scale", np.array([[0.5]], np.float32)), ("scale", 3.0),
    ("discrete", 2), ("discrete", np.int64(0)), ("discrete", np.array([1])),
    ("lr", 0.01), ("lr", [0.0]), ("lr", 50.0),
    ("log_lr", -3.0), ("log_lr", [-9.0]), ("log_lr", 400.0),
])
def test_well_formed_actions_of_any_single_element_shape_are_accepted(mode, action):
    task = env_for(mode).task
    rate = next_lr(task, 0.01, action)
    assert task.lr_min <= rate <= task.lr_max
    assert check_action(task, action) == float(np.asarray(action).reshape(-1)[0])


@pytest.mark.parametrize("mode", ["scale", "discrete", "lr", "log_lr"])
def test_step_after_the_episode_ended_tells_to_reset(mode):
    env = env_for(mode)
    env.reset(seed=0)
    action = {"scale": [0.0], "discrete": 1, "lr": [0.001], "log_lr": [-3.0]}[mode]
    done = False
    while not done:
        _, _, done, _, _ = env.step(action)
    for _ in range(2):
        with pytest.raises(RuntimeError, match=r"episode has ended.*call reset\(\)"):
            env.step(action)
    env.reset(seed=1)
    env.step(action)  # a new episode runs


def test_step_after_a_divergence_tells_to_reset():
    env = env_for("lr")
    env.reset(seed=0, options={"initial_lr": 1.0})
    _, _, done, _, info = env.step([1.0])
    assert done and info["diverged"]
    with pytest.raises(RuntimeError, match="call reset"):
        env.step([1.0])


@pytest.mark.parametrize("rates", [math.nan, 0.0, -1e-3, math.inf, [0.001, math.nan]])
def test_an_lr_sampler_returning_a_bad_rate_is_an_agent_bug_not_a_divergence(rates):
    env = env_for("lr")
    env.reset(seed=0)
    groups = None

    def sampler(step, lr, num_groups):
        nonlocal groups
        groups = num_groups
        return rates if isinstance(rates, float) else [rates[0]] * (num_groups - 1) + [rates[1]]

    env.set_lr_sampler(sampler)
    with pytest.raises(ValueError, match="lr sampler returned .* finite and > 0 .*bug in the agent"):
        env.step([0.001])
    with pytest.raises(RuntimeError, match="call reset"):  # the interrupted interval ended the episode
        env.step([0.001])


@pytest.mark.parametrize(("initial_lr", "message"), [
    (0.0, "must be > 0, got 0.0"), (-0.1, "must be > 0"), (math.nan, "must be finite, got nan"),
    ("0.01", r"must be a number, got '0.01' \(str\)"), (None, "must be a number, got None"),
    ([0.01], "must be a number, got"),
])
def test_reset_initial_lr_option_follows_the_spec_rules(initial_lr, message):
    with pytest.raises(ValueError, match=f"reset option initial_lr {message}"):
        env_for("scale").reset(seed=0, options={"initial_lr": initial_lr})


# ---------------------------------------------------------------------------- properties
ANY_ACTION = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(-5, 5),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.lists(st.floats(-2, 2, width=32), max_size=3),
    st.lists(st.integers(-1, 3), max_size=3),
    st.builds(lambda value, shape: np.full(shape, value, np.float32),
              st.floats(allow_nan=True, allow_infinity=True, width=32),
              st.sampled_from([(), (1,), (1, 1), (2,), (0,)])),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(["scale", "discrete", "lr", "log_lr"]), action=ANY_ACTION)
def test_any_action_is_refused_clearly_or_gives_a_finite_observation_in_the_space(mode, action):
    env = env_for(mode)
    env.reset(seed=0)
    try:
        observation, reward, _, _, info = env.step(action)
    except (TypeError, ValueError) as error:
        assert f"action mode '{mode}' expects one number of" in str(error)
        return
    assert np.isfinite(observation).all() and env.observation_space.contains(observation)
    assert math.isfinite(reward) and env.task.lr_min <= info["lr"] <= env.task.lr_max


def test_log_lr_actions_are_the_log10_of_the_rate_within_the_bounds():
    env = LRControlEnv(**load_task_spec("mnist1d-mlp", **TINIEST, action="log_lr", lr_min=1e-5).to_dict(),
                       device="cpu")
    assert (env.action_space.low[0], env.action_space.high[0]) == (-5.0, 0.0)
    env.reset(seed=0)
    _, _, _, _, info = env.step([-2.5])
    assert info["lr"] == pytest.approx(10**-2.5)
    assert next_lr(env.task, 0.01, -7.0) == 1e-5 and next_lr(env.task, 0.01, 3.0) == 1.0  # clipped
