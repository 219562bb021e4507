"""Scores aggregated across task instances, with interval estimates (Agarwal et al. 2021).

"Deep RL at the edge of the statistical precipice" (Agarwal, Schwarzer, Castro, Courville,
Bellemare, NeurIPS 2021) is followed for the definitions:

- a run's **normalised score** is its test loss at the best-validation point divided by
  the reference agent's on the same instance and seed (paired: < 1 is better);
- the **interquartile mean** (IQM) is the mean of the middle 50% of all runs' scores
  (``scipy.stats.trim_mean(scores, 0.25)``);
- **95% stratified bootstrap intervals** resample the runs (seeds) *within* each instance,
  instances fixed, as rliable's ``StratifiedBootstrap`` does; because the claim here is
  about tasks never seen, an **instance bootstrap** (resampling whole instances) is
  reported beside it: it also counts the luck of which instances were drawn;
- the **probability of improvement** P(X < Y) is, per instance, the Mann-Whitney
  statistic over all pairs of X's and Y's runs (ties count 1/2), averaged over instances;
- a **performance profile** is the fraction of runs whose score is at most tau;
- **instance-level tests** (:func:`instance_tests`): each instance's mean over its seeds of
  log(agent's loss / the reference's), then a two-sided Wilcoxon signed-rank test and a
  two-sided sign test (binomial, ties dropped) on those per-instance means. The seeds of one
  instance are not independent draws of the question "is it better on a new task?": the
  instances are, so a claim about unseen tasks is tested on them, not on the runs.

rliable itself is not a dependency: its sdist pulls arch, seaborn and pandas for these few
lines. The bootstrap is written out because ``scipy.stats.bootstrap`` resamples whole
observations and has no strata.

Diverged runs are never left out (that would flatter the agent that diverged): a run
that diverged, or whose test loss is not finite, scores the worse of its test loss at
the best-validation point and the validation loss of the untrained network at reset
(``initial_val_loss``): a diverged run is worth at most doing nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

METRIC = "test_loss_at_best_val"
CONFIDENCE = 0.95


def run_loss(row: Mapping, metric: str = METRIC) -> float:
    """A run's loss for aggregation: diverged or non-finite runs score at least the initial loss."""
    value = float(row.get(metric, math.nan))
    initial = float(row.get("initial_val_loss", math.nan))
    if bool(row.get("diverged")) or not math.isfinite(value):
        candidates = [v for v in (value, initial) if math.isfinite(v)]
        if not candidates:
            raise ValueError(f"run {row.get('agent')}/{row.get('instance')}/{row.get('seed')} has no finite loss")
        return max(candidates)
    return value


def loss_matrices(
    rows: Iterable[Mapping], metric: str = METRIC
) -> tuple[dict[str, np.ndarray], list, list[int]]:
    """Per agent, a matrix of run losses: one row per instance, one column per seed.

    Rows without an ``instance`` column are one instance (a single task).
    :return: the matrices (NaN where a run is missing), the instances and seeds (sorted).
    """
    rows = list(rows)
    instances = sorted({row.get("instance", 0) for row in rows})
    seeds = sorted({int(row["seed"]) for row in rows})
    agents = list(dict.fromkeys(row["agent"] for row in rows))
    where = {instance: i for i, instance in enumerate(instances)}
    column = {seed: j for j, seed in enumerate(seeds)}
    matrices = {agent: np.full((len(instances), len(seeds)), np.nan) for agent in agents}
    for row in rows:
        matrices[row["agent"]][where[row.get("instance", 0)], column[int(row["seed"])]] = run_loss(row, metric)
    return matrices, instances, seeds


def normalised_scores(losses: Mapping[str, np.ndarray], reference: str) -> dict[str, np.ndarray]:
    """Every agent's losses divided by the reference's on the same instance and seed."""
    if reference not in losses:
        raise ValueError(f"reference agent {reference!r} is not among {sorted(losses)}")
    return {agent: matrix / losses[reference] for agent, matrix in losses.items()}


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all finite entries."""
    values = scores[np.isfinite(scores)]
    return float(stats.trim_mean(values, 0.25)) if values.size else math.nan


def mean(scores: np.ndarray) -> float:
    values = scores[np.isfinite(scores)]
    return float(values.mean()) if values.size else math.nan


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> float:
    """P(a run of X has a lower loss than a run of Y on the same instance), averaged over instances."""
    per_instance = []
    for x_runs, y_runs in zip(x, y):
        x_runs, y_runs = x_runs[np.isfinite(x_runs)], y_runs[np.isfinite(y_runs)]
        if x_runs.size and y_runs.size:
            less = (x_runs[:, None] < y_runs[None, :]).mean()
            ties = (x_runs[:, None] == y_runs[None, :]).mean()
            per_instance.append(less + 0.5 * ties)
    return float(np.mean(per_instance)) if per_instance else math.nan


def _resample(matrices: Sequence[np.ndarray], rng: np.random.Generator, stratified: bool) -> list[np.ndarray]:
    """One bootstrap replicate of paired matrices (the same draw for each, keeping pairs)."""
    instances, seeds = matrices[0].shape
    if stratified:  # runs within each instance
        columns = rng.integers(seeds, size=(instances, seeds))
        rows = np.arange(instances)[:, None]
        return [matrix[rows, columns] for matrix in matrices]
    chosen = rng.integers(instances, size=instances)  # whole instances
    return [matrix[chosen] for matrix in matrices]


def bootstrap_interval(
    statistic: Callable[..., float],
    matrices: Sequence[np.ndarray],
    stratified: bool = True,
    repetitions: int = 2000,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(*matrices)`` over bootstrap replicates."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(*_resample(matrices, rng, stratified)) for _ in range(repetitions)])
    values = values[np.isfinite(values)]
    if not values.size:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs with a normalised score at most each tau (lower scores are better)."""
    values = scores[np.isfinite(scores)]
    return np.array([(values <= tau).mean() if values.size else math.nan for tau in taus])


@dataclass(frozen=True)
class InstanceTests:
    """Tests on the per-instance mean log ratios of an agent's losses to the reference's."""

    instances: int  # instances with at least one paired run
    better: int  # instances whose mean log ratio is < 0
    worse: int  # ... > 0 (the rest tie exactly)
    median_log_ratio: float
    wilcoxon_p: float  # two-sided Wilcoxon signed-rank test (NaN when every ratio is 0)
    sign_p: float  # two-sided sign test: binomial on better vs worse, ties dropped (NaN when all tie)


def instance_log_ratios(losses: np.ndarray, reference_losses: np.ndarray) -> np.ndarray:
    """Per instance, the mean over its paired seeds of log(loss / reference loss) (instances
    without a finite pair are left out)."""
    ratios = np.log(losses / reference_losses)
    finite = np.isfinite(ratios)
    counts = finite.sum(axis=1)
    sums = np.where(finite, ratios, 0.0).sum(axis=1)
    return sums[counts > 0] / counts[counts > 0]


def instance_tests(losses: np.ndarray, reference_losses: np.ndarray) -> InstanceTests:
    """Wilcoxon signed-rank and sign tests (two-sided) on :func:`instance_log_ratios`."""
    means = instance_log_ratios(losses, reference_losses)
    better, worse = int((means < 0).sum()), int((means > 0).sum())
    wilcoxon_p = sign_p = math.nan
    if better + worse:
        sign_p = float(stats.binomtest(better, better + worse, 0.5).pvalue)
        wilcoxon_p = float(stats.wilcoxon(means, zero_method="wilcox").pvalue)
    median = float(np.median(means)) if means.size else math.nan
    return InstanceTests(int(means.size), better, worse, median, wilcoxon_p, sign_p)


@dataclass
class AgentAggregate:
    """One agent's normalised scores against the reference, with intervals."""

    agent: str
    runs: int
    diverged: int
    iqm: float
    iqm_interval: tuple[float, float]
    iqm_instance_interval: tuple[float, float]
    mean: float
    mean_interval: tuple[float, float]
    improvement: float  # P(agent beats the reference)
    improvement_interval: tuple[float, float]
    improvement_instance_interval: tuple[float, float]
    tests: InstanceTests | None = None  # instance-level tests against the reference


def aggregate(
    rows: Iterable[Mapping], reference: str, repetitions: int = 2000, metric: str = METRIC
) -> list[AgentAggregate]:
    """Every agent of ``rows`` (results.csv rows) against ``reference``."""
    rows = list(rows)
    losses, _, _ = loss_matrices(rows, metric)
    scores = normalised_scores(losses, reference)
    reference_losses = losses[reference]
    result = []
    for agent, matrix in losses.items():
        pair = [matrix, reference_losses]  # resampled together, so each run keeps its paired reference
        result.append(
            AgentAggregate(
                agent=agent,
                runs=int(np.isfinite(matrix).sum()),
                diverged=sum(1 for row in rows if row["agent"] == agent and bool(row.get("diverged"))),
                iqm=iqm(scores[agent]),
                iqm_interval=bootstrap_interval(_ratio_iqm, pair, True, repetitions),
                iqm_instance_interval=bootstrap_interval(_ratio_iqm, pair, False, repetitions),
                mean=mean(scores[agent]),
                mean_interval=bootstrap_interval(_ratio_mean, pair, True, repetitions),
                improvement=probability_of_improvement(matrix, reference_losses),
                improvement_interval=bootstrap_interval(probability_of_improvement, pair, True, repetitions),
                improvement_instance_interval=bootstrap_interval(
                    probability_of_improvement, pair, False, repetitions
                ),
                tests=instance_tests(matrix, reference_losses),
            )
        )
    return result


def _ratio_iqm(losses: np.ndarray, reference_losses: np.ndarray) -> float:
    return iqm(losses / reference_losses)


def _ratio_mean(losses: np.ndarray, reference_losses: np.ndarray) -> float:
    return mean(losses / reference_losses)


def _interval(values: tuple[float, float]) -> str:
    return f"[{values[0]:.3f}, {values[1]:.3f}]"


def _markdown_table(intro: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A paragraph, then a markdown table of ``rows`` under ``columns``."""
    lines = [intro, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _ranked(aggregates: Sequence[AgentAggregate]) -> list[AgentAggregate]:
    return sorted(aggregates, key=lambda a: (math.isnan(a.iqm), a.iqm))


def aggregate_markdown(aggregates: Sequence[AgentAggregate], reference: str) -> str:
    """A markdown table of :func:`aggregate`'s result, best IQM first, then the instance-level tests."""
    intro = (
        f"Normalised score = test loss at the best-validation point / `{reference}`'s on the same "
        "instance and seed (< 1 is better). Intervals: 95% stratified bootstrap over seeds within "
        "instances (rliable's), and over instances (the luck of the draw of instances)."
    )
    columns = ("agent", "runs", "diverged", "IQM", "IQM 95% CI (seeds)", "IQM 95% CI (instances)", "mean",
               "mean 95% CI", f"P(better than {reference})", "its 95% CI (seeds)", "its 95% CI (instances)")
    rows = [
        (item.agent, str(item.runs), str(item.diverged), f"{item.iqm:.3f}", _interval(item.iqm_interval),
         _interval(item.iqm_instance_interval), f"{item.mean:.3f}", _interval(item.mean_interval),
         f"{item.improvement:.2f}", _interval(item.improvement_interval),
         _interval(item.improvement_instance_interval))
        for item in _ranked(aggregates)
    ]
    return _markdown_table(intro, columns, rows) + "\n" + instance_tests_markdown(aggregates, reference)


def instance_tests_markdown(aggregates: Sequence[AgentAggregate], reference: str) -> str:
    """A markdown table of each agent's :class:`InstanceTests` against ``reference``."""
    intro = (
        f"Instance level: per instance, the mean over its seeds of log(test loss / `{reference}`'s); "
        "two-sided Wilcoxon signed-rank and sign tests on those means (instances, not runs, are the "
        "independent draws)."
    )
    columns = ("agent", "instances", "better", "worse", "median log ratio", "Wilcoxon p", "sign test p")
    rows = [
        (item.agent, str(t.instances), str(t.better), str(t.worse), f"{t.median_log_ratio:+.3f}",
         _p_value(t.wilcoxon_p), _p_value(t.sign_p))
        for item in _ranked(aggregates) if item.agent != reference and (t := item.tests) is not None
    ]
    return _markdown_table(intro, columns, rows)


def _p_value(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2g}"
