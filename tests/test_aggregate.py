"""Aggregation across instances (lrgym.evaluation.aggregate) on hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrgym.evaluation.aggregate import (
    aggregate,
    aggregate_markdown,
    bootstrap_interval,
    instance_log_ratios,
    instance_tests,
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


def test_instance_log_ratios_average_each_instances_seeds():
    reference = np.ones((3, 2))
    losses = np.array([[math.e, 1.0], [1.0, np.nan], [np.nan, np.nan]])  # the last instance has no pair
    np.testing.assert_allclose(instance_log_ratios(losses, reference), [0.5, 0.0])


def test_instance_tests_by_hand():
    # Per-instance mean log ratios -0.1, -0.2, -0.3 and +0.05 (each instance's two seeds agree).
    means = np.array([-0.1, -0.2, -0.3, 0.05])
    reference = np.ones((4, 2))
    tests = instance_tests(np.exp(means)[:, None] * reference, reference)
    assert (tests.instances, tests.better, tests.worse) == (4, 3, 1)
    assert tests.median_log_ratio == pytest.approx(-0.15)
    assert tests.sign_p == pytest.approx(2 * 5 / 16)  # P(at least 3 of 4 heads), both tails
    # Ranks of |d|: 0.05 -> 1, 0.1 -> 2, 0.2 -> 3, 0.3 -> 4; W+ = 1; exact: P(W+ <= 1) = 2/16, both tails 4/16.
    assert tests.wilcoxon_p == pytest.approx(0.25)


def test_more_seeds_of_the_same_instances_do_not_make_an_instance_test_more_certain():
    rng = np.random.default_rng(0)
    effects = rng.normal(-0.05, 0.1, size=(12, 1))
    reference = rng.uniform(1.0, 2.0, size=(12, 1))
    few = instance_tests(reference * np.exp(effects), reference)
    many = instance_tests(np.repeat(reference * np.exp(effects), 10, axis=1), np.repeat(reference, 10, axis=1))
    assert (few.better, few.worse, few.wilcoxon_p, few.sign_p) == (many.better, many.worse, many.wilcoxon_p,
                                                                  many.sign_p)


def test_the_reference_against_itself_has_no_test_and_the_table_lists_the_others():
    rows = [row(agent, instance, seed, loss) for instance in range(5) for seed in range(2)
            for agent, loss in (("ref", 1.0), ("good", 0.9 - 0.01 * instance))]
    by_agent = {item.agent: item for item in aggregate(rows, "ref", repetitions=20)}
    assert math.isnan(by_agent["ref"].tests.wilcoxon_p) and by_agent["ref"].tests.better == 0
    assert by_agent["good"].tests.better == 5 and by_agent["good"].tests.sign_p == pytest.approx(2 / 32)
    text = aggregate_markdown(list(by_agent.values()), "ref")
    assert "| good | 5 | 5 | 0 |" in text and "| ref | 5 | 0 | 0 |" not in text
