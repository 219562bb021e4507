"""The memory estimate and refusal of populations (lrgym/trainee/population_memory.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrgym.tasks.specs import load_task_spec
from lrgym.trainee.population_memory import (
    FLOAT_BYTES,
    available_bytes,
    member_bytes,
    model_structure,
    population_memory_error,
)

SHAPE, CLASSES = (1, 40), 10


@settings(max_examples=20, deadline=None)
@given(width=st.integers(1, 300), batch=st.integers(1, 512), optimizer=st.sampled_from(["sgd", "momentum", "adam"]))
def test_a_member_needs_its_copies_of_the_parameters_its_activations_and_its_probabilities(width, batch, optimizer):
    task = load_task_spec("mnist1d-mlp", model_kwargs={"hidden": [width]}, batch_size=batch, optimizer=optimizer,
                          val_size=100)
    parameters = 40 * width + width + width * 10 + 10
    copies = 5 + {"sgd": 0, "momentum": 1, "adam": 2}[optimizer]
    activations = 40 + width + width + 10  # flatten, linear, relu, linear outputs per example
    expected = FLOAT_BYTES * (copies * parameters + 3 * activations * batch + 2 * 100 * CLASSES)
    assert model_structure("mlp", f'{{"hidden": [{width}]}}', SHAPE, CLASSES) == (parameters, activations)
    assert member_bytes(task, SHAPE, CLASSES) == expected


def test_a_population_that_fits_passes_and_one_that_does_not_is_refused_with_the_limit():
    task = load_task_spec("mnist1d-lenet")
    tasks = [(task, SHAPE, CLASSES)]
    assert population_memory_error(tasks, 8, 2, "cpu", "--population 8") is None
    per_member = member_bytes(task, SHAPE, CLASSES) * 2
    too_many = int(available_bytes("cpu") // per_member) + 1
    message = population_memory_error(tasks, too_many, 1, "cpu", "--population N", trainees_per_member=2)
    assert message.startswith("--population N: 1 x") and "(x2 with their base runs)" in message
    assert "\n" not in message
    limit = int(re.search(r"at most --population (\d+) with --n-envs 1$", message).group(1))
    # Half the available memory (which other processes move a little between the two reads).
    assert limit == pytest.approx(0.5 * available_bytes("cpu") / per_member, rel=0.05)


def test_available_memory_is_a_positive_number_of_bytes():
    assert available_bytes("cpu") > 2**20
