"""Aggregation across instances (lrgym.evaluation.aggregate) on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrgym.evaluation.aggregate import (
    aggregate,
    aggregate_markdown,
    bootstrap_interval,
    iqm,
    loss_matrices,
    performance_profile,
    probability_of_improvement,
    run_loss,
)


def row(agent, instance, seed, loss, diverged=False, initial=2.3):
    return {"agent": agent, "instance": instance, "seed": seed, "test_loss_at_best_val": loss,
            "diverged": diverged, "initial_val_loss": initial}


def test_a_diverged_run_scores_at_least_the_initial_loss():
    assert run_loss(row("a", 0, 0, 0.5)) == 0.5
    assert run_loss(row("a", 0, 0, 0.5, diverged=True)) == 2.3  # its best point was fine: still no better than 2.3
    assert run_loss(row("a", 0, 0, 7.0, diverged=True)) == 7.0
    assert run_loss(row("a", 0, 0, math.nan, diverged=True)) == 2.3


def test_iqm_is_the_mean_of_the_middle_half():
    assert iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # (3 + 4 + 5 + 6) / 4


def test_probability_of_improvement_counts_pairs_and_half_ties():
    x, y = np.array([[1.0, 2.0]]), np.array([[1.5, 3.0]])
    assert probability_of_improvement(x, y) == pytest.approx(3 / 4)
    assert probability_of_improvement(np.array([[1.0]]), np.array([[1.0]])) == 0.5
    # averaged over instances, not pooled
    assert probability_of_improvement(np.array([[1.0], [5.0]]), np.array([[2.0], [4.0]])) == 0.5


def test_loss_matrices_pair_instances_and_seeds():
    rows = [row("a", 3, 1, 0.2), row("a", 1, 0, 0.4), row("b", 1, 0, 0.8), row("b", 3, 1, 0.1)]
    matrices, instances, seeds = loss_matrices(rows)
    assert instances == [1, 3] and seeds == [0, 1]
    np.testing.assert_array_equal(matrices["a"], [[0.4, np.nan], [np.nan, 0.2]])


def test_bootstrap_interval_brackets_the_estimate_and_collapses_without_spread():
    rng = np.random.default_rng(0)
    matrix = rng.normal(1.0, 0.1, size=(10, 3))
    low, high = bootstrap_interval(lambda m: float(m.mean()), [matrix], repetitions=500)
    assert low < matrix.mean() < high
    assert bootstrap_interval(lambda m: float(m.mean()), [np.ones((4, 3))], repetitions=50) == (1.0, 1.0)


def test_performance_profile_is_a_fraction_of_runs():
    np.testing.assert_array_equal(performance_profile(np.array([0.5, 1.0, 2.0, np.nan]), np.array([0.4, 1.0, 3.0])),
                                  [0.0, 2 / 3, 1.0])


def test_aggregate_against_the_reference():
    rows = []
    for instance in range(4):
        for seed in range(3):
            rows.append(row("ref", instance, seed, 1.0))
            rows.append(row("good", instance, seed, 0.8))
            rows.append(row("bad", instance, seed, 1.0, diverged=True, initial=2.0))
    by_agent = {item.agent: item for item in aggregate(rows, "ref", repetitions=100)}
    assert by_agent["ref"].iqm == 1.0 and by_agent["ref"].improvement == 0.5
    assert by_agent["good"].iqm == pytest.approx(0.8) and by_agent["good"].improvement == 1.0
    assert by_agent["good"].improvement_interval == (1.0, 1.0)
    assert by_agent["bad"].iqm == pytest.approx(2.0) and by_agent["bad"].diverged == 12
    text = aggregate_markdown(list(by_agent.values()), "ref")
    assert text.index("| good |") < text.index("| ref |") < text.index("| bad |")
