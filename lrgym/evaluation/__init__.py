"""Evaluate agents side by side, on tasks and on family instances; transfer a controller;
the statistics, the aggregate over instances and the report that pools evaluations.

The figures (:mod:`lrgym.evaluation.plots`, matplotlib) are imported by the modules that draw."""

from __future__ import annotations

from lrgym.evaluation.aggregate import aggregate
from lrgym.evaluation.evaluate import evaluate
from lrgym.evaluation.family import FamilyEvaluation, evaluate_instances
from lrgym.evaluation.outputs import Evaluation, read_results, write_evaluation
from lrgym.evaluation.statistics import summarize
from lrgym.evaluation.transfer import plan_transfer, run_transfer

__all__ = [
    'Evaluation',
    'FamilyEvaluation',
    'aggregate',
    'evaluate',
    'evaluate_instances',
    'plan_transfer',
    'read_results',
    'run_transfer',
    'summarize',
    'write_evaluation',
]
