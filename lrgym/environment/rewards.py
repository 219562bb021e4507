"""The reward kinds, as one table: for each, its value at a decision, its divergence
penalty, and whether it needs the base schedule's own run on the same instance and seed.

:class:`~lrgym.environment.episode.EpisodeTracker` computes every reward from here, and
the env, the population env and :class:`lrgym.controller.LRController` ask
:func:`needs_base_run` instead of testing reward names. The semantics are specified in
:class:`~lrgym.environment.lr_control_env.LRControlEnv`'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from lrgym.tasks.specs import REWARDS, TaskSpec

DIVERGENCE_MARGIN = 1.0  # log-scale rewards: a diverged episode scores this much below "stuck at the limit"
SMALLEST_LOSS = 1e-12  # a logarithm's floor: a loss that rounds to 0 still has a finite log


@dataclass(frozen=True)
class Outcome:
    """What a reward reads after a decision whose trainee stayed finite.

    :param val_loss: this decision's validation loss.
    :param previous_val_loss: the previous decision's (at the first: the untrained network's).
    :param best_val_loss: the best so far, this decision's included.
    :param base_best_val_loss: the base schedule's best on the same instance and seed, for
        rewards that need it.
    :param done: whether this was the last decision.
    """

    val_loss: float
    previous_val_loss: float
    best_val_loss: float
    base_best_val_loss: float | None
    done: bool


@dataclass(frozen=True)
class Divergence:
    """What a divergence penalty reads.

    A finite episode's validation losses are all at most ``stuck`` (the task's
    ``divergence_loss``; above it the episode diverges), so "stuck at ``stuck`` for every
    remaining decision" (per-decision rewards) or "ending at ``stuck``, minus a margin"
    (rewards of the outcome) is worse than any finite episode under every reward.
    """

    stuck: float
    remaining_decisions: int
    previous_val_loss: float
    base_best_val_loss: float | None


@dataclass(frozen=True)
class RewardRule:
    """One reward kind: ``value`` after each decision, ``penalty`` when the trainee diverged."""

    value: Callable[[Outcome], float]
    penalty: Callable[[Divergence], float]
    needs_base_run: bool = False


def _log(loss: float) -> float:
    return math.log(max(loss, SMALLEST_LOSS))


def _at_end(value: Callable[[Outcome], float]) -> Callable[[Outcome], float]:
    """A reward of the outcome: 0 until the last decision."""
    return lambda outcome: value(outcome) if outcome.done else 0.0


REWARD_RULES: dict[str, RewardRule] = {
    "val_loss": RewardRule(
        value=lambda o: -o.val_loss,
        penalty=lambda d: -d.stuck * d.remaining_decisions,
    ),
    "log_val_loss": RewardRule(
        value=lambda o: -_log(o.val_loss),
        penalty=lambda d: -math.log(d.stuck) * d.remaining_decisions,
    ),
    "improvement": RewardRule(
        value=lambda o: o.previous_val_loss - o.val_loss,
        penalty=lambda d: d.previous_val_loss - d.stuck,
    ),
    "log_improvement": RewardRule(
        value=lambda o: math.log(o.previous_val_loss) - _log(o.val_loss),
        penalty=lambda d: math.log(d.previous_val_loss) - math.log(d.stuck) - DIVERGENCE_MARGIN,
    ),
    "terminal": RewardRule(
        value=_at_end(lambda o: -_log(o.best_val_loss)),
        penalty=lambda d: -math.log(d.stuck) - DIVERGENCE_MARGIN,
    ),
    "relative_terminal": RewardRule(
        value=_at_end(lambda o: math.log(o.base_best_val_loss) - _log(o.best_val_loss)),
        penalty=lambda d: math.log(d.base_best_val_loss) - math.log(d.stuck) - DIVERGENCE_MARGIN,
        needs_base_run=True,
    ),
}
if tuple(REWARD_RULES) != REWARDS:  # the spec checks list the names; this table is their meaning
    raise ImportError(f"reward table {tuple(REWARD_RULES)} and the spec's reward names {REWARDS} differ")


def reward_rule(task: TaskSpec) -> RewardRule:
    """The rule of ``task``'s reward kind."""
    return REWARD_RULES[task.reward]


def needs_base_run(task: TaskSpec) -> bool:
    """Whether ``task``'s reward needs the base schedule's own run (the paired counterfactual)."""
    return reward_rule(task).needs_base_run
