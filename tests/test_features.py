"""The controller's state (lrgym/trainee/features.py) on a model small enough to work out by hand.

The model is ``Linear(1, 2, bias=False)`` with weights (1, -1): input x gives logits
(x, -x), so x = ±ln(3)/2 gives the probabilities (3/4, 1/4) and (1/4, 3/4). Variances
are torch's unbiased ones. How the features behave inside the env (scale invariance,
finite observations on divergence) is tests/test_episode.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lrgym.trainee.features import (
    FEATURE_LIMIT,
    FEATURE_NAMES,
    SCALE_FREE_FEATURE_NAMES,
    SCALE_FREE_LIMIT,
    Measurement,
    ModelMeter,
    ScaleFreeFeatures,
    measure_model,
    observation,
    parameter_change,
)

HALF_LN3 = math.log(3) / 2
INPUTS = torch.tensor([[HALF_LN3], [-HALF_LN3]])


def tiny_model(weights=(1.0, -1.0)) -> nn.Linear:
    model = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor(weights).reshape(2, 1))
    return model


def a_measurement(**values) -> Measurement:
    defaults = dict(val_loss=1.0, val_accuracy=0.5, prediction_variance=0.1, prediction_change_variance=0.0,
                    final_weight_mean=0.0, final_weight_variance=1.0, probabilities=torch.zeros(1, 2))
    return Measurement(**{**defaults, **values})


def test_measurement_of_the_hand_worked_model():
    model = tiny_model()
    result = measure_model(model, model, INPUTS, torch.tensor([0, 0]), previous_probabilities=None)
    torch.testing.assert_close(result.probabilities, torch.tensor([[0.75, 0.25], [0.25, 0.75]]))
    assert result.val_loss == pytest.approx((math.log(4 / 3) + math.log(4)) / 2, rel=1e-6)
    assert result.val_accuracy == 0.5  # the second example is predicted as class 1
    assert result.prediction_variance == pytest.approx(1 / 8, rel=1e-6)  # (1/4)^2 * 2 / (2 - 1), each class
    assert result.prediction_change_variance == 0.0  # nothing to compare with at the first decision
    assert result.final_weight_mean == 0.0 and result.final_weight_variance == pytest.approx(2.0)
    assert result.finite


def test_prediction_change_is_measured_against_the_previous_probabilities():
    model = tiny_model()
    previous = torch.full((2, 2), 0.5)  # changes (1/4, -1/4) and (-1/4, 1/4): variance 1/8 per class
    result = measure_model(model, model, INPUTS, torch.tensor([0, 1]), previous_probabilities=previous)
    assert result.prediction_change_variance == pytest.approx(1 / 8, rel=1e-6)
    assert result.val_loss == pytest.approx(math.log(4 / 3), rel=1e-6) and result.val_accuracy == 1.0


def test_measuring_in_chunks_gives_the_same_numbers_and_keeps_the_training_mode():
    model = nn.Sequential(nn.Linear(1, 4), nn.Dropout(0.5), nn.Linear(4, 2))
    torch.manual_seed(0)
    inputs, labels = torch.randn(7, 1), torch.tensor([0, 1, 0, 1, 1, 0, 0])
    model.train()
    whole = measure_model(model, model[2], inputs, labels, None)
    chunked = measure_model(model, model[2], inputs, labels, None, chunk_size=2)
    assert model.training  # measured in eval mode (no dropout: both agree), then put back
    assert whole.val_loss == pytest.approx(chunked.val_loss, rel=1e-6)
    torch.testing.assert_close(whole.probabilities, chunked.probabilities)


def test_a_diverged_model_is_not_finite():
    model = tiny_model((math.inf, 1.0))
    assert not measure_model(model, model, INPUTS, torch.tensor([0, 1]), None).finite


def test_observation_is_the_documented_features_in_order():
    measurement = a_measurement(val_loss=0.7, prediction_variance=0.2, prediction_change_variance=0.01,
                                final_weight_mean=-0.05, final_weight_variance=0.3)
    values = observation(0.9, measurement, 1e-3, 0.25)
    assert values.dtype == np.float32 and len(values) == len(FEATURE_NAMES) == 8
    np.testing.assert_allclose(values, [0.9, 0.7, 0.2, 0.01, -0.05, 0.3, -3.0, 0.25], rtol=1e-6)


def test_observation_is_finite_whatever_the_measurement():
    measurement = a_measurement(val_loss=math.inf, prediction_variance=math.nan,
                                final_weight_mean=-math.inf, final_weight_variance=1e9)
    values = observation(math.nan, measurement, 1e-3, 0.5)
    assert np.isfinite(values).all()
    assert values[:6].tolist() == [FEATURE_LIMIT, FEATURE_LIMIT, FEATURE_LIMIT, 0.0, -FEATURE_LIMIT, FEATURE_LIMIT]


def test_parameter_change_norms_and_cosine_by_hand():
    start = torch.tensor([3.0, 4.0])
    norm, update, cosine, change = parameter_change(start, None, None)
    assert (norm, update, cosine) == (5.0, 0.0, 0.0) and not change.any()  # nothing moved yet
    moved = torch.tensor([4.0, 4.0])
    norm, update, cosine, first_change = parameter_change(moved, start, None)
    assert (norm, update, cosine) == (pytest.approx(math.sqrt(32)), 1.0, 0.0)  # no previous change: cosine 0
    for after, expected in (([5.0, 4.0], 1.0), ([4.0, 5.0], 0.0), ([3.0, 4.0], -1.0)):
        _, update, cosine, _ = parameter_change(torch.tensor(after), moved, first_change)
        assert update == pytest.approx(1.0) and cosine == pytest.approx(expected, abs=1e-7)


def test_model_meter_remembers_predictions_parameters_and_the_last_change():
    model = tiny_model()
    meter = ModelMeter(model, model)
    labels = torch.tensor([0, 1])
    first = meter.measure(INPUTS, labels)
    assert first.parameter_norm == pytest.approx(math.sqrt(2)) and first.update_norm == 0.0
    assert first.update_cosine == 0.0 and first.prediction_change_variance == 0.0
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[2.0], [-1.0]]))
    second = meter.measure(INPUTS, labels)
    assert second.update_norm == pytest.approx(1.0) and second.update_cosine == 0.0
    assert second.parameter_norm == pytest.approx(math.sqrt(5))
    expected = measure_model(model, model, INPUTS, labels, first.probabilities).prediction_change_variance
    assert second.prediction_change_variance == pytest.approx(expected) and expected > 0
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[4.0], [-1.0]]))  # the same direction again, twice as far
    third = meter.measure(INPUTS, labels)
    assert third.update_norm == pytest.approx(2.0) and third.update_cosine == pytest.approx(1.0)


def test_scale_free_features_by_hand():
    features = ScaleFreeFeatures(initial_val_loss=2.0)
    moved = dict(parameter_norm=10.0, update_norm=0.1, update_cosine=0.5)
    first = features.observe(1.0, a_measurement(val_loss=1.0, **moved), 0.01, 2.0, 0.5, -0.25)
    assert len(first) == len(SCALE_FREE_FEATURE_NAMES) and first.dtype == np.float32
    half = math.log(0.5)
    np.testing.assert_allclose(first, [
        half,  # log(train / initial validation loss)
        half,  # log(validation / initial validation loss)
        half,  # log(validation / previous validation loss)
        0.3 * half,  # EMA with decay 0.7 from 0
        0.0,  # the best so far is this one
        0.0,  # log(validation / train loss)
        -2.0,  # log10(0.1 / 10)
        0.5,  # update cosine
        math.log(2.0),  # log rate multiplier
        -2.0,  # log10 rate
        0.5,  # budget fraction
        -0.25,  # previous action
    ], rtol=1e-6, atol=1e-7)

    second = features.observe(1.0, a_measurement(val_loss=1.5), 0.01, 1.0, 0.75, 0.0)  # worse; nothing moved
    rise = math.log(1.5)
    assert second[2] == pytest.approx(rise, rel=1e-6)
    assert second[3] == pytest.approx(0.7 * 0.3 * half + 0.3 * rise, rel=1e-6)
    assert second[4] == pytest.approx(rise, rel=1e-6)  # above the best (1.0)
    assert second[5] == pytest.approx(rise, rel=1e-6)  # generalisation gap
    assert second[6] == -SCALE_FREE_LIMIT  # no update yet: the floor, not log(0)


def test_scale_free_features_are_clipped_and_finite():
    features = ScaleFreeFeatures(initial_val_loss=1.0)
    values = features.observe(math.nan, a_measurement(val_loss=1e30), 1.0, 1.0, 1.0, 0.0)
    assert np.isfinite(values).all() and np.abs(values).max() <= SCALE_FREE_LIMIT
    assert values[1] == SCALE_FREE_LIMIT  # log(1e30) = 69 clipped to 10
