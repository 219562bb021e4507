"""Compound distributions of family specs (lrgym/tasks/compound_draws.py), through lrgym.tasks.family.draw."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from lrgym.tasks.family import TaskFamily, check_distribution, describe, draw

DRAWS = 4000


def draws(distribution, count: int = DRAWS, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [draw(distribution, rng) for _ in range(count)]


def assert_frequencies(values: list, probabilities: dict, alpha: float = 1e-3) -> None:
    """Chi-square goodness of fit of ``values`` to ``probabilities`` (fixed seeds: deterministic)."""
    keys = sorted(probabilities)
    observed = [sum(1 for value in values if value == key) for key in keys]
    assert sum(observed) == len(values), f"values outside {keys}: {sorted(set(values) - set(keys))}"
    expected = [probabilities[key] * len(values) for key in keys]
    assert stats.chisquare(observed, expected).pvalue > alpha, (observed, expected)


@settings(max_examples=15, deadline=None)
@given(probability=st.sampled_from([0.0, 0.1, 0.2, 0.5, 0.9, 1.0]))
def test_a_probability_draw_takes_then_with_its_probability(probability):
    values = draws({"probability": probability, "then": "a", "else": "b"}, count=2000)
    share = values.count("a") / len(values)
    assert share == pytest.approx(probability, abs=4 * math.sqrt(0.25 / len(values)))


def test_plain_table_branches_are_drawn_key_by_key_with_one_shared_coin():
    distribution = {
        "probability": 0.5,
        "then": {"x": {"low": 1.0, "high": 2.0}, "y": "changed"},
        "else": {"x": 0.0, "y": "default"},
    }
    for value in draws(distribution, count=200):
        assert (value["y"] == "changed") == (1.0 <= value["x"] <= 2.0)  # both keys follow the same coin
        assert value["y"] == "changed" or value == {"x": 0.0, "y": "default"}


def test_items_draw_each_position_from_its_own_distribution():
    distribution = {"items": [{"low": 0, "high": 1, "integer": True}, ["a", "b"], 7]}
    values = draws(distribution, count=300)
    assert all(len(value) == 3 and value[0] in (0, 1) and value[1] in ("a", "b") and value[2] == 7
               for value in values)
    assert {value[0] for value in values} == {0, 1} and {value[1] for value in values} == {"a", "b"}


def test_one_minus_and_power_transform_the_inner_draw():
    assert draws({"one_minus": 0.25}, count=1) == [0.75]
    values = draws({"one_minus": {"low": 1e-4, "high": 0.2, "log": True}}, count=500)
    assert all(0.8 <= value <= 1 - 1e-4 for value in values)
    powers = draws({"base": 2, "exponent": {"low": 2, "high": 8, "integer": True}}, count=300)
    assert set(powers) == {4, 8, 16, 32, 64, 128, 256} and all(isinstance(value, int) for value in powers)


def test_a_weighted_choice_follows_its_weights():
    values = draws({"choose": ["x", "y", "z"], "weights": [2, 1, 1]})
    assert_frequencies(values, {"x": 0.5, "y": 0.25, "z": 0.25})


@pytest.mark.parametrize("low, high, log", [(1, 20, True), (2, 8, True), (300, 305, False)])
def test_nearest_rounding_is_configspace_integer_sampling(low, high, log):
    # ConfigSpace's UniformIntegerHyperparameter: a (log-)uniform real on [lower - 0.49999,
    # upper + 0.49999], rounded; so integer k has the probability of [k - 1/2, k + 1/2].
    values = draws({"low": low, "high": high, "log": log, "integer": True, "rounding": "nearest"})
    transform = np.log if log else (lambda x: x)
    width = transform(high + 0.5) - transform(low - 0.5)
    expected = {k: (transform(k + 0.5) - transform(k - 0.5)) / width for k in range(low, high + 1)}
    assert_frequencies(values, expected)


def test_floor_rounding_stays_the_default_integer_draw():
    # int(exp(uniform(log 2, log 9))), as hand-written generators draw: k with probability log((k + 1) / k) / log(4.5).
    values = draws({"low": 2, "high": 8, "log": True, "integer": True})
    assert_frequencies(values, {k: math.log((k + 1) / k) / math.log(9 / 2) for k in range(2, 9)})


@pytest.mark.parametrize("distribution, message", [
    ({"probability": 1.5, "then": 1, "else": 2}, "probability must be a number in"),
    ({"probability": 0.5, "then": {"low": 2, "high": 1}, "else": 0}, r"then: a range needs low <= high"),
    ({"choose": [1, 2], "weights": [1]}, "weights must be a list of 2 numbers"),
    ({"choose": [1, 2], "weights": [0, 0]}, "at least one weight must be > 0"),
    ({"base": -2, "exponent": 3}, "base must be a number > 0"),
    ({"items": 3}, "items must be a list"),
    ({"low": 1, "high": 3, "integer": True, "rounding": "up"}, "rounding must be one of floor, nearest"),
    ({"low": 1.0, "high": 3.0, "rounding": "nearest"}, "rounding applies to integer ranges only"),
])
def test_malformed_compound_tables_are_refused_with_the_key(distribution, message):
    with pytest.raises(ValueError, match=message):
        check_distribution(distribution, "spec key")
    with pytest.raises(ValueError, match=message):
        TaskFamily("bad", {"dataset": "mnist1d", "model": "mlp", "batch_size": distribution},
                   {"train": (0, 1), "validation": (1, 2), "test": (2, 3)})


def test_compound_tables_are_described_in_one_line():
    text = describe({"probability": 0.2, "then": {"eps": {"low": 1e-10, "high": 1e-6, "log": True}},
                     "else": {"eps": 1e-8}})
    assert text == "p=0.2: {eps: 1e-10..1e-06 log-uniform} else {eps: 1e-08}"
    assert describe({"base": 2, "exponent": {"low": 2, "high": 8, "integer": True, "rounding": "nearest"}}) == (
        "2^(2..8 uniform int rounded)")
