"""PopulationTrainee: member k behaves as the single Trainee with the same seed.

Tolerance: relative 1e-5 on losses and accuracies (measured: at most 3e-7 after 20
steps on MNIST-1D; vmapped kernels sum in another order than the single network's).
Prediction-change variances are differences of nearly equal numbers: absolute 1e-7.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from lrgym.trainee.data import load_dataset
from lrgym.trainee.population import PopulationTrainee
from lrgym.trainee.single import Trainee

RTOL = 1e-5
SEEDS = [3, 7, 11]


@pytest.fixture(scope="module")
def mnist1d():
    return load_dataset("mnist1d")


def build(dataset, model, optimizer, lrs, seeds=SEEDS):
    population = PopulationTrainee(dataset, model, optimizer, lrs, batch_size=50, val_size=100, seeds=seeds)
    singles = [Trainee(dataset, model, optimizer, lr, 50, 100, seed) for seed, lr in zip(seeds, lrs, strict=True)]
    return population, singles


def assert_member_matches(population, member, trainee, train_loss, measurement, single_loss, single_measurement):
    assert population.steps[member] == trainee.step
    assert train_loss == pytest.approx(single_loss, rel=RTOL)
    assert measurement.val_loss == pytest.approx(single_measurement.val_loss, rel=RTOL)
    assert measurement.val_accuracy == pytest.approx(single_measurement.val_accuracy, rel=RTOL)
    assert measurement.final_weight_variance == pytest.approx(single_measurement.final_weight_variance, rel=RTOL)
    for name in ("parameter_norm", "update_norm", "update_cosine"):
        assert getattr(measurement, name) == pytest.approx(getattr(single_measurement, name), rel=1e-4, abs=1e-6)
    assert measurement.prediction_change_variance == pytest.approx(
        single_measurement.prediction_change_variance, rel=1e-3, abs=1e-7)


@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_each_member_trains_measures_and_tests_like_the_single_trainee_with_its_seed(mnist1d, model):
    lrs = [1e-3, 1e-2, 3e-3]
    population, singles = build(mnist1d, model, "adam", lrs)
    population.measure()
    for trainee in singles:
        trainee.measure()
    for interval in range(3):
        rates = np.array([[lr * (0.9 ** (interval * 4 + step)) for lr in lrs] for step in range(4)])
        losses = population.train(4, rates)
        measurements = population.measure()
        for k, trainee in enumerate(singles):
            single_loss = trainee.train(4, lambda step, lr, groups, k=k, rates=rates: rates[step % 4, k])
            assert_member_matches(population, k, trainee, losses[k], measurements[k], single_loss, trainee.measure())
    for weights in ("current", "best"):
        results = population.evaluate(mnist1d.test, weights)
        for k, trainee in enumerate(singles):
            single = trainee.evaluate(mnist1d.test, weights)
            assert results[k].loss == pytest.approx(single.loss, rel=RTOL)
            assert results[k].accuracy == pytest.approx(single.accuracy, rel=RTOL)
            assert population.best_step[k] == trainee.best_step


def test_members_take_the_size_keywords_of_the_task_as_the_single_trainee_does(mnist1d):
    hidden = {"hidden": [37, 19]}  # a family draws an MLP's widths
    population = PopulationTrainee(mnist1d, "mlp", "momentum", [1e-2, 3e-2], 50, 100, seeds=[4, 5],
                                   model_kwargs=hidden)
    singles = [Trainee(mnist1d, "mlp", "momentum", lr, 50, 100, seed, model_kwargs=hidden)
               for seed, lr in ((4, 1e-2), (5, 3e-2))]
    assert population.params["1.weight"].shape == (2, 37, 40)
    losses = population.train(5)
    population.reset_member(1, 5, 3e-2)  # a restarted member gets the same widths
    for k, trainee in enumerate(singles):
        assert losses[k] == pytest.approx(trainee.train(5), rel=RTOL)
    assert population.params["3.weight"].shape == (2, 19, 37)


def test_a_member_that_diverges_never_disturbs_the_others_and_restarts_alone(mnist1d):
    lrs = [1e-3, 10.0, 1e-2]
    population, singles = build(mnist1d, "mlp", "sgd", lrs)
    for _ in range(3):
        losses = population.train(5)
        measurements = population.measure()
    assert not measurements[1].finite and not math.isfinite(losses[1])  # NaN weights
    for k in (0, 2):
        single_loss = singles[k].train(5)
        for _ in range(2):
            singles[k].measure()
            single_loss = singles[k].train(5)
        assert_member_matches(population, k, singles[k], losses[k], measurements[k], single_loss, singles[k].measure())
    population.reset_member(1, seed=99, lr=1e-2)
    fresh = Trainee(mnist1d, "mlp", "sgd", 1e-2, 50, 100, 99)
    population.measure()
    fresh.measure()
    losses, measurements = population.train(5), population.measure()
    assert_member_matches(population, 1, fresh, losses[1], measurements[1], fresh.train(5), fresh.measure())
    assert population.steps.tolist() == [20, 5, 20]


def test_members_with_fewer_steps_sit_the_rest_out(mnist1d):
    population, singles = build(mnist1d, "mlp", "momentum", [1e-2, 1e-2, 1e-2])
    losses = population.train([4, 2, 0])
    assert population.steps.tolist() == [4, 2, 0]
    assert losses[0] == pytest.approx(singles[0].train(4), rel=RTOL)
    assert losses[1] == pytest.approx(singles[1].train(2), rel=RTOL)
    assert math.isnan(losses[2])
    assert population.measure()[2].val_loss == pytest.approx(singles[2].measure().val_loss, rel=RTOL)


def test_single_env_optimizers_and_models_with_buffers_are_refused(mnist1d):
    with pytest.raises(ValueError, match="single envs only"):
        PopulationTrainee(mnist1d, "mlp", "prodigy", [1e-3], 50, 100, [0])
    images = dataclasses.replace(mnist1d, input_shape=(1, 8, 8))  # resnet18 needs images; its buffers matter
    with pytest.raises(ValueError, match="buffers"):
        PopulationTrainee(images, "resnet18", "adam", [1e-3], 50, 100, [0])
