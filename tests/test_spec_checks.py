"""Task spec fields are checked when a spec is built (lrgym/tasks/spec_checks.py via TaskSpec): the error
names the field, the value and what is allowed; whatever passes runs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.tasks.specs import TaskSpec, load_task_spec

TINIEST = dict(steps=4, interval=2, batch_size=16, val_size=50)

BAD_FIELDS = [
    # (field, value, message fragment)
    ("divergence_loss", -1.0, "divergence_loss must be > 0, got -1.0"),
    ("divergence_loss", 0, "divergence_loss must be > 0"),
    ("divergence_loss", math.nan, "divergence_loss must be finite, got nan"),
    ("divergence_loss", math.inf, "divergence_loss must be finite"),
    ("divergence_loss", 1e300, "divergence_loss must be <= 1e\\+06"),
    ("initial_lrs", [-1.0], r"initial_lrs\[0\] must be > 0, got -1.0"),
    ("initial_lrs", [0.01, 0], r"initial_lrs\[1\] must be > 0, got 0"),
    ("initial_lrs", [], "initial_lrs must hold at least one learning rate"),
    ("initial_lrs", 0.01, r"initial_lrs must be a list of learning rates, e.g. \[0.01\], got 0.01 \(float\)"),
    ("initial_lrs", "0.01", "initial_lrs must be a list of learning rates"),
    ("initial_lrs", [math.nan], r"initial_lrs\[0\] must be finite"),
    ("initial_lrs", ["0.01"], r"initial_lrs\[0\] must be a number, got '0.01' \(str\)"),
    ("lr_min", 0.0, "lr_min must be > 0"),
    ("lr_min", math.nan, "lr_min must be finite"),
    ("lr_max", math.inf, "lr_max must be finite"),
    ("lr_min", 2.0, "need 0 < lr_min <= lr_max, got lr_min=2.0 and lr_max=1.0"),
    ("lr_scale", 1.0, "lr_scale must be > 1"),
    ("lr_scale", math.inf, "lr_scale must be finite"),
    ("lr_scale", "1.05", "lr_scale must be a number, got '1.05'"),
    ("steps", "40", r"steps must be an integer >= 1, got '40' \(str\)"),
    ("steps", 40.5, r"steps must be an integer >= 1, got 40.5 \(float\)"),
    ("steps", 40.0, r"steps must be an integer >= 1, got 40.0 \(float\)"),
    ("steps", True, r"steps must be an integer >= 1, got True \(bool\)"),
    ("steps", 0, "steps must be an integer >= 1, got 0"),
    ("interval", -2, "interval must be an integer >= 1, got -2"),
    ("batch_size", None, "batch_size must be an integer >= 1, got None"),
    ("val_size", "100", "val_size must be an integer >= 1, got '100'"),
    ("optimizer_kwargs", [1], r"optimizer_kwargs must be a table of keyword arguments"),
    ("optimizer_kwargs", {"nonsense": 1}, "optimizer_kwargs {'nonsense': 1} do not fit optimizer 'adam'.*nonsense"),
    ("optimizer_kwargs", {"betas": [2.0, 0.9]}, "do not fit optimizer 'adam'.*beta"),
    ("optimizer", "rmsprop", "valid optimizers: adam, adamw, momentum"),
    ("action", "big", "action must be one of scale, discrete, lr, residual, log_lr, got 'big'"),
    ("validation_percent", 100, r"validation_percent must be an integer from 0 \(off\) to 99, got 100 \(int\)"),
    ("validation_percent", 10.0, r"validation_percent must be an integer from 0 \(off\) to 99, got 10.0 \(float\)"),
    ("validation_percent", -1, "validation_percent must be an integer from 0"),
    ("reward", 1, "reward must be one of val_loss, log_val_loss, improvement"),
    ("dataset", 3, r"dataset must be a string, got 3 \(int\)"),
    ("base_schedule", {"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step_size": 0, "gamma": 0.9}},
     "base_schedule: StepLR with kwargs .* does not give learning rates: ZeroDivisionError"),
    ("base_schedule", {"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step_size": 10, "gamma": "nan"}},
     r"base_schedule.kwargs.gamma must be a number, got 'nan' \(str\)"),
    ("base_schedule", {"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step_size": 10, "gamma": math.nan}},
     "base_schedule.kwargs.gamma must be finite, got nan"),
    ("base_schedule", {"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step_size": 2.5, "gamma": 0.9}},
     r"base_schedule.kwargs.step_size must be an integer, got 2.5 \(float\)"),
    ("base_schedule", {"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step_size": 1, "gamma": 1e300}},
     "does not give learning rates: ValueError: a rate became inf"),
    ("base_schedule", {"scheduler": "os.system", "initial_lr": 0.01}, "must name a class of torch.optim.lr_scheduler"),
    ("base_schedule", {"scheduler": "StepLR", "initial_lr": 0.01, "kwargs": {"step": 3}},
     "unexpected keyword argument 'step'"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_FIELDS)
def test_a_bad_field_is_refused_when_the_spec_is_built(field, value, message):
    with pytest.raises(ValueError, match=f"task 'mnist1d-mlp': .*{message}"):
        load_task_spec("mnist1d-mlp", **{field: value})


def test_every_problem_is_reported_at_once():
    with pytest.raises(ValueError, match="steps must be .*; interval must be .*; lr_scale must be"):
        load_task_spec("mnist1d-mlp", steps="4", interval=0.5, lr_scale=0.9)


def test_values_are_stored_in_their_canonical_types():
    spec = load_task_spec("mnist1d-mlp", initial_lrs=[1, 0.5], lr_max=2, steps=np.int64(8), divergence_loss=10)
    assert spec.initial_lrs == (1.0, 0.5) and all(isinstance(lr, float) for lr in spec.initial_lrs)
    assert isinstance(spec.lr_max, float) and type(spec.steps) is int and isinstance(spec.divergence_loss, float)


def test_specs_from_cards_and_presets_still_load():
    spec = load_task_spec("mnist1d-mlp")
    assert TaskSpec(**spec.to_dict()) == spec


# ---------------------------------------------------------------------------- properties
ANY_VALUE = st.one_of(
    st.integers(-3, 60), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e-300, 1e300, 1.0001]),
    st.none(), st.booleans(), st.text(max_size=4), st.lists(st.floats(-1e-2, 1.0), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers()),
)
FIELDS = ["steps", "interval", "batch_size", "val_size", "initial_lrs", "lr_min", "lr_max", "lr_scale",
          "divergence_loss", "optimizer_kwargs"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=ANY_VALUE)
def test_any_field_value_is_refused_naming_the_field_or_runs_with_finite_output(field, value):
    try:
        task = load_task_spec("mnist1d-mlp", **{**TINIEST, field: value})
    except ValueError as error:
        assert field in str(error) or "lr_max" in str(error)
        return
    # Keep the run tiny whatever was drawn (a drawn steps=60 or val_size=60 is still fast).
    env = LRControlEnv(**task.to_dict(), device="cpu")
    observation, _ = env.reset(seed=0)
    assert np.isfinite(observation).all() and env.observation_space.contains(observation)
    observation, reward, *_ = env.step(np.zeros(1, np.float32))
    assert np.isfinite(observation).all() and env.observation_space.contains(observation)
    assert math.isfinite(reward)
