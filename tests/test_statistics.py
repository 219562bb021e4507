"""lrgym.evaluation.statistics: summaries and tests agree with scipy; diverged runs are counted, not averaged."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lrgym.evaluation.statistics import compare, mean_and_std, summarize, summary_markdown

REFERENCE = [0.30, 0.32, 0.29, 0.35, 0.31]
CANDIDATE = [0.27, 0.30, 0.28, 0.31, 0.29]


def rows(agent: str, values: list[float], diverged: tuple[int, ...] = ()) -> list[dict]:
    return [
        {
            "agent": agent, "seed": seed, "diverged": seed in diverged, "wall_time": 1.0,
            "test_loss_at_best_val": value, "test_accuracy_at_best_val": 1 - value,
            "final_test_loss": value + 0.01, "final_test_accuracy": 0.9,
            "best_val_loss": value,
        }
        for seed, value in enumerate(values)
    ]


def test_mean_and_std_use_the_sample_standard_deviation():
    mean, std = mean_and_std(REFERENCE)
    assert mean == pytest.approx(np.mean(REFERENCE))
    assert std == pytest.approx(np.std(REFERENCE, ddof=1))
    assert math.isnan(mean_and_std([0.3])[1])


def test_compare_matches_scipy_welch_and_paired_tests():
    candidate, reference = dict(enumerate(CANDIDATE)), dict(enumerate(REFERENCE))
    comparison = compare(candidate, reference)
    assert comparison.welch_p == pytest.approx(stats.ttest_ind(CANDIDATE, REFERENCE, equal_var=False).pvalue)
    assert comparison.paired_p == pytest.approx(stats.ttest_rel(CANDIDATE, REFERENCE).pvalue)
    assert comparison.mean_difference == pytest.approx(np.mean(np.subtract(CANDIDATE, REFERENCE)))
    assert comparison.pairs == 5
    # the pairing is what makes this difference clear: paired p well below the two-sample p
    assert comparison.paired_p < 0.05 < comparison.welch_p
    assert comparison.significant


def test_paired_test_uses_only_seeds_both_agents_finished():
    candidate = {0: 0.27, 1: 0.30, 3: 0.31, 4: 0.29}  # seed 2 diverged
    comparison = compare(candidate, dict(enumerate(REFERENCE)))
    seeds = [0, 1, 3, 4]
    expected = stats.ttest_rel([candidate[s] for s in seeds], [REFERENCE[s] for s in seeds]).pvalue
    assert comparison.paired_p == pytest.approx(expected)
    assert comparison.pairs == 4


def test_identical_samples_give_no_p_value_rather_than_an_error():
    comparison = compare({0: 0.3, 1: 0.3}, {0: 0.3, 1: 0.3})
    assert math.isnan(comparison.paired_p) and not comparison.significant


def test_summarize_ranks_by_test_loss_and_tests_against_the_reference():
    summaries = summarize(rows("step", REFERENCE) + rows("ppo", CANDIDATE), reference="step")
    assert [s.agent for s in summaries] == ["ppo", "step"]
    ppo = summaries[0]
    assert ppo.mean["test_loss_at_best_val"] == pytest.approx(np.mean(CANDIDATE))
    assert ppo.std["test_loss_at_best_val"] == pytest.approx(np.std(CANDIDATE, ddof=1))
    assert ppo.comparisons["test_loss_at_best_val"].paired_p == pytest.approx(
        stats.ttest_rel(CANDIDATE, REFERENCE).pvalue
    )
    assert summaries[1].comparisons == {}


def test_diverged_runs_are_counted_and_left_out_of_the_means():
    values = [0.27, 0.30, 1e9, 0.31, 0.29]
    summaries = summarize(rows("step", REFERENCE) + rows("wild", values, diverged=(2,)), reference="step")
    wild = next(s for s in summaries if s.agent == "wild")
    assert (wild.runs, wild.diverged, wild.finished) == (5, 1, 4)
    assert wild.mean["test_loss_at_best_val"] == pytest.approx(np.mean([0.27, 0.30, 0.31, 0.29]))


def test_an_agent_that_always_diverges_ranks_last_with_no_numbers():
    summaries = summarize(rows("step", REFERENCE) + rows("boom", REFERENCE, diverged=(0, 1, 2, 3, 4)))
    assert summaries[-1].agent == "boom" and summaries[-1].diverged == 5
    assert math.isnan(summaries[-1].mean["test_loss_at_best_val"])
    table = summary_markdown(summaries)
    assert "| 2 | boom | 5 | 5 | — |" in table


def test_markdown_marks_significant_differences():
    summaries = summarize(rows("step", REFERENCE) + rows("ppo", CANDIDATE), reference="step")
    table = summary_markdown(summaries, reference="step")
    ppo_row = next(line for line in table.splitlines() if line.startswith("| 1 | ppo"))
    assert "†" in ppo_row  # paired p < 0.05
    assert "| ppo | test loss @ best val | -0.0240 |" in table


def test_unknown_reference_is_an_error():
    with pytest.raises(ValueError, match="reference agent 'nope'"):
        summarize(rows("step", REFERENCE), reference="nope")
