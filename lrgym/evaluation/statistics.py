"""Summaries and significance tests for paired evaluation runs.

Every agent in an evaluation runs on the same seeds, so two tests are reported
against the reference agent: the source paper's two-sample t-test (Welch's, which
does not assume equal variances) and a paired t-test on the seeds both agents
finished, which uses the pairing and is the sharper of the two. Diverged runs are
counted, never averaged: their numbers are left out of every mean and test.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

SIGNIFICANCE_LEVEL = 0.05

# metric column -> (label in tables, higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "test_loss_at_best_val": ("test loss @ best val", False),
    "test_accuracy_at_best_val": ("test acc @ best val", True),
    "final_test_loss": ("final test loss", False),
    "final_test_accuracy": ("final test acc", True),
    "best_val_loss": ("best val loss", False),
}
RANK_METRIC = "test_loss_at_best_val"  # the source paper reports the best-validation point
TESTED_METRICS = ("test_loss_at_best_val", "test_accuracy_at_best_val")


@dataclass
class Comparison:
    """One agent against the reference agent on one metric."""

    welch_p: float  # two-sample t-test, unequal variances (scipy.stats.ttest_ind)
    paired_p: float  # paired t-test over the seeds both finished (scipy.stats.ttest_rel)
    mean_difference: float  # agent minus reference, over the paired seeds
    pairs: int

    @property
    def significant(self) -> bool:
        """Either test rejects equal means at :data:`SIGNIFICANCE_LEVEL`."""
        return any(p < SIGNIFICANCE_LEVEL for p in (self.welch_p, self.paired_p) if math.isfinite(p))


@dataclass
class AgentSummary:
    """Mean and standard deviation (ddof=1) of each metric over one agent's finished runs."""

    agent: str
    runs: int
    diverged: int
    mean: dict[str, float]
    std: dict[str, float]
    wall_time: float
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return self.runs - self.diverged


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Sample mean and standard deviation (ddof=1); NaN where there are too few values."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean()) if array.size else math.nan
    std = float(array.std(ddof=1)) if array.size > 1 else math.nan
    return mean, std


def compare(
    candidate: Mapping[Any, float], reference: Mapping[Any, float]
) -> Comparison:
    """Welch's two-sample t-test and the paired t-test of ``candidate`` against ``reference``.

    :param candidate: seed -> value for the agent's finished runs.
    :param reference: seed -> value for the reference agent's finished runs.
    :return: p-values (NaN when a test has too few values or zero variance) and the
        mean paired difference.
    """
    a = np.asarray(list(candidate.values()), dtype=np.float64)
    b = np.asarray(list(reference.values()), dtype=np.float64)
    welch_p = _p_value(stats.ttest_ind, a, b, equal_var=False) if a.size > 1 and b.size > 1 else math.nan
    seeds = sorted(set(candidate) & set(reference))
    paired_a = np.asarray([candidate[s] for s in seeds], dtype=np.float64)
    paired_b = np.asarray([reference[s] for s in seeds], dtype=np.float64)
    paired_p = _p_value(stats.ttest_rel, paired_a, paired_b) if len(seeds) > 1 else math.nan
    difference = float(np.mean(paired_a - paired_b)) if seeds else math.nan
    return Comparison(welch_p, paired_p, difference, len(seeds))


def _p_value(test, *args, **kwargs) -> float:
    # Nearly identical samples make scipy warn about precision; the p-value says enough.
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(test(*args, **kwargs).pvalue)
    return p if math.isfinite(p) else math.nan  # identical samples: no evidence either way


def summarize(
    rows: Iterable[Mapping[str, object]], reference: str | None = None, pair_by: Sequence[str] = ("seed",)
) -> list[AgentSummary]:
    """Per-agent summaries of result rows, ranked by mean test loss at the best-validation point.

    :param rows: one per run with ``agent``, ``seed``, ``diverged``, ``wall_time`` and
        the :data:`METRICS` columns.
    :param reference: the agent the others are tested against (none: no tests).
    :param pair_by: the columns that identify a paired run (a family evaluation pairs
        by ``("instance", "seed")``).
    :return: summaries, best first; agents whose every run diverged come last.
    """
    by_agent: dict[str, list[Mapping[str, object]]] = {}
    for row in rows:
        by_agent.setdefault(str(row["agent"]), []).append(row)
    if reference is not None and reference not in by_agent:
        raise ValueError(f"reference agent {reference!r} is not among {sorted(by_agent)}")

    def finished_values(agent: str, metric: str) -> dict[tuple[int, ...], float]:
        return {
            tuple(int(row[column]) for column in pair_by): float(row[metric])
            for row in by_agent[agent]
            if not row["diverged"] and row[metric] is not None and math.isfinite(float(row[metric]))
        }

    summaries = []
    for agent, agent_rows in by_agent.items():
        means, stds = {}, {}
        for metric in METRICS:
            means[metric], stds[metric] = mean_and_std(list(finished_values(agent, metric).values()))
        summary = AgentSummary(
            agent=agent,
            runs=len(agent_rows),
            diverged=sum(bool(row["diverged"]) for row in agent_rows),
            mean=means,
            std=stds,
            wall_time=float(np.mean([float(row["wall_time"]) for row in agent_rows])),
        )
        if reference is not None and agent != reference:
            summary.comparisons = {
                metric: compare(finished_values(agent, metric), finished_values(reference, metric))
                for metric in TESTED_METRICS
            }
        summaries.append(summary)
    summaries.sort(key=lambda s: (math.isnan(s.mean[RANK_METRIC]), s.mean[RANK_METRIC]))
    return summaries


def _format_value(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _format_p(p: float) -> str:
    if math.isnan(p):
        return "—"
    text = f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"
    return f"{text} *" if p < SIGNIFICANCE_LEVEL else text


def _marks(comparison: Comparison | None) -> str:
    if comparison is None:
        return ""
    marks = "*" if comparison.welch_p < SIGNIFICANCE_LEVEL else ""
    marks += "†" if comparison.paired_p < SIGNIFICANCE_LEVEL else ""
    return f" {marks}" if marks else ""


def summary_markdown(summaries: Sequence[AgentSummary], reference: str | None = None) -> str:
    """Markdown: a table of the summaries, a table of the tests against ``reference``, a legend."""
    header = ["rank", "agent", "runs", "diverged"] + [METRICS[m][0] for m in METRICS] + ["s / run"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for rank, summary in enumerate(summaries, start=1):
        cells = [str(rank), summary.agent, str(summary.runs), str(summary.diverged)]
        for metric in METRICS:
            cell = _format_value(summary.mean[metric], summary.std[metric])
            cells.append(cell + _marks(summary.comparisons.get(metric)))
        cells.append(f"{summary.wall_time:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Mean ± standard deviation (ddof=1) over the runs that did not diverge, ranked by "
        "test loss at the best-validation point (the source paper's protocol). "
        "Diverged runs are counted in `diverged` and left out of every mean and test.",
    ]
    if reference is not None:
        lines += [
            "",
            f"Against `{reference}`: `*` Welch's two-sample t-test p < {SIGNIFICANCE_LEVEL}, "
            f"`†` paired t-test p < {SIGNIFICANCE_LEVEL}.",
            "",
            "| agent | metric | Δ vs reference | p two-sample (Welch) | p paired | pairs |",
            "|---|---|---|---|---|---|",
        ]
        for summary in summaries:
            for metric, comparison in summary.comparisons.items():
                difference = comparison.mean_difference
                lines.append(
                    f"| {summary.agent} | {METRICS[metric][0]} | "
                    + ("—" if math.isnan(difference) else f"{difference:+.4f}")
                    + f" | {_format_p(comparison.welch_p)} | {_format_p(comparison.paired_p)} "
                    f"| {comparison.pairs} |"
                )
        lines += [
            "",
            "Δ is the mean paired difference, agent minus reference, over the seeds both "
            "finished (negative is better for loss, positive for accuracy). Tests: "
            "scipy.stats.ttest_ind(equal_var=False) and scipy.stats.ttest_rel; `*` marks "
            f"p < {SIGNIFICANCE_LEVEL}.",
        ]
    return "\n".join(lines) + "\n"
