"""One trainee (lrgym/trainee/single.py): paired seeds, the rates of each step, parameter groups, the best weights.

Through the env these show up as paired episodes (tests/test_lr_control_env.py); a
population member against a single trainee is tests/test_population.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lrgym.trainee.data import load_dataset
from lrgym.trainee.single import Trainee, split_param_groups


@pytest.fixture(scope="module")
def mnist1d():
    return load_dataset("mnist1d")


def trainee(dataset, seed=0, optimizer="adam", lr=1e-2, batch_size=32, val_size=100, **kwargs) -> Trainee:
    return Trainee(dataset, "mlp", optimizer, lr, batch_size, val_size, seed, **kwargs)


def weights(trainee: Trainee) -> list[torch.Tensor]:
    return [parameter.detach().clone() for parameter in trainee.model.parameters()]


def record_rates(trainee: Trainee) -> list[list[float]]:
    """Every parameter group's rate at each optimizer step from now on."""
    rates: list[list[float]] = []
    trainee.optimizer.register_step_pre_hook(
        lambda optimizer, args, kwargs: rates.append([group["lr"] for group in optimizer.param_groups]))
    return rates


def assert_same(first: list[torch.Tensor], second: list[torch.Tensor]) -> None:
    assert len(first) == len(second) and all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_the_same_seed_gives_the_same_weights_batches_and_validation_subset(mnist1d):
    # Whatever the optimizer and rate: the seed alone fixes the start, so runs are paired.
    first, second = trainee(mnist1d, seed=5), trainee(mnist1d, seed=5, optimizer="sgd", lr=0.3)
    assert_same(weights(first), weights(second))
    assert torch.equal(first.val_inputs, second.val_inputs) and torch.equal(first.val_labels, second.val_labels)
    for _ in range(3):
        assert_same(list(first.sample_batch()), list(second.sample_batch()))


def test_another_seed_gives_other_weights_batches_and_validation_subset(mnist1d):
    first, other = trainee(mnist1d, seed=5), trainee(mnist1d, seed=6)
    assert not torch.equal(next(first.model.parameters()), next(other.model.parameters()))
    assert not torch.equal(first.val_labels, other.val_labels)
    assert not torch.equal(first.sample_batch()[1], other.sample_batch()[1])


def test_building_a_trainee_leaves_the_global_random_state_alone(mnist1d):
    state = torch.random.get_rng_state()
    trainee(mnist1d, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_the_validation_subset_has_val_size_examples_of_the_validation_split(mnist1d):
    subset = trainee(mnist1d, val_size=100)
    assert subset.val_inputs.shape == (100, *mnist1d.input_shape) and subset.val_labels.shape == (100,)
    assert len(trainee(mnist1d, val_size=10**9).val_labels) == len(mnist1d.validation)  # capped at the split


def test_a_batch_with_another_generator_leaves_the_training_stream_alone(mnist1d):
    drawing, untouched = trainee(mnist1d, seed=1), trainee(mnist1d, seed=1)
    inputs, labels = drawing.sample_batch(mnist1d.validation, torch.Generator().manual_seed(0), size=7)
    assert inputs.shape == (7, *mnist1d.input_shape) and labels.shape == (7,)
    assert_same(list(drawing.sample_batch()), list(untouched.sample_batch()))


def test_train_is_an_ordinary_training_loop_and_returns_its_mean_loss(mnist1d):
    trained, by_hand = trainee(mnist1d, seed=2), trainee(mnist1d, seed=2)
    losses = []
    for _ in range(3):
        inputs, labels = by_hand.sample_batch()
        loss = F.cross_entropy(by_hand.model(inputs), labels)
        by_hand.optimizer.zero_grad()
        loss.backward()
        by_hand.optimizer.step()
        losses.append(loss.item())
    assert trained.train(3) == pytest.approx(sum(losses) / 3, rel=1e-6)
    assert_same(weights(trained), weights(by_hand))
    assert trained.step == 3


def test_each_step_runs_its_own_rate_and_the_last_stays(mnist1d):
    subject = trainee(mnist1d)
    rates = record_rates(subject)
    subject.train(3, rates=[0.1, 0.01, 0.001])
    subject.train(1)
    assert rates == [[0.1], [0.01], [0.001], [0.001]] and subject.lr == 0.001
    with pytest.raises(ValueError, match="need one rate per step: 3 steps, 2 rates"):
        subject.train(3, rates=[0.1, 0.2])


def test_a_sampler_sets_each_group_for_one_step_then_the_nominal_rate_returns(mnist1d):
    subject = trainee(mnist1d, lr=0.01)
    subject.split_param_groups()
    groups = subject.num_groups
    rates = record_rates(subject)
    subject.train(2, lr_sampler=lambda step, lr, count: [lr * (step + 1) * (k + 1) for k in range(count)])
    assert rates == [[0.01 * (k + 1) for k in range(groups)], [0.02 * (k + 1) for k in range(groups)]]
    assert [group["lr"] for group in subject.optimizer.param_groups] == [0.01] * groups
    with pytest.raises(ValueError, match=f"lr sampler gave 1 rates for {groups} parameter groups"):
        subject.train(1, lr_sampler=lambda step, lr, count: [lr])


def test_the_epoch_counts_completed_passes_over_the_training_split(mnist1d):
    subject = trainee(mnist1d, batch_size=len(mnist1d.train) // 2 + 1)  # two batches overrun one pass
    assert subject.epoch == 0
    subject.train(1)
    assert subject.epoch == 0
    subject.train(1)
    assert subject.epoch == 1


@pytest.mark.parametrize("optimizer", ["momentum", "adamw"])
def test_split_param_groups_keeps_the_updates_and_the_state(mnist1d, optimizer):
    plain, split = trainee(mnist1d, optimizer=optimizer), trainee(mnist1d, optimizer=optimizer)
    plain.train(3)
    split.train(3)  # optimizer state (momentum, moments) built before the split must carry over
    split.split_param_groups()
    tensors = list(split.model.parameters())
    assert split.num_groups == len(tensors) and plain.num_groups == 1
    assert [group["params"] for group in split.optimizer.param_groups] == [[tensor] for tensor in tensors]
    settings = {key: value for key, value in plain.optimizer.param_groups[0].items() if key != "params"}
    for group in split.optimizer.param_groups:
        assert {key: value for key, value in group.items() if key != "params"} == settings
    assert plain.train(4) == split.train(4)
    assert_same(weights(plain), weights(split))
    split.split_param_groups()  # already split: unchanged
    assert split.num_groups == len(tensors)


def test_split_param_groups_on_any_optimizer():
    layers = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    optimizer = torch.optim.SGD(layers.parameters(), lr=0.5, momentum=0.9, nesterov=True)
    split_param_groups(optimizer)
    assert len(optimizer.param_groups) == 4
    assert all(group["lr"] == 0.5 and group["nesterov"] for group in optimizer.param_groups)


def test_measure_keeps_the_best_weights_and_evaluate_reads_them(mnist1d):
    subject = trainee(mnist1d, optimizer="sgd", lr=0.1)
    subject.train(20)
    measured = subject.measure()
    assert subject.best_val_loss == measured.val_loss and subject.best_step == 20
    at_best = subject.evaluate(mnist1d.test)
    subject.set_lr(50.0)  # far too large: the validation loss gets worse or diverges
    subject.train(20)
    worse = subject.measure()
    assert not (worse.finite and worse.val_loss < measured.val_loss)
    assert subject.best_step == 20 and subject.best_val_loss == measured.val_loss
    best = subject.evaluate(mnist1d.test, weights="best")
    assert best.loss == pytest.approx(at_best.loss, rel=1e-6) and best.accuracy == at_best.accuracy


def test_evaluate_gives_finite_loss_and_accuracy_on_a_whole_split(mnist1d):
    subject = trainee(mnist1d)
    subject.train(10)
    result = subject.evaluate(mnist1d.test)
    assert math.isfinite(result.loss) and result.loss > 0 and 0.0 <= result.accuracy <= 1.0
    chunked = subject.evaluate(mnist1d.test, chunk_size=7)
    assert chunked.loss == pytest.approx(result.loss, rel=1e-5) and chunked.accuracy == result.accuracy
    assert subject.model.training  # evaluated in eval mode, then put back
    with pytest.raises(ValueError, match="weights must be 'current' or 'best', got 'last'"):
        subject.evaluate(mnist1d.test, weights="last")
