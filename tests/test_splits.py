"""What a dataset loader may return (lrgym/trainee/splits.py): the accepted forms give the same
arrays, every other form is one line naming the dataset and the split, and normalisation is
measured on the training split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Dataset, TensorDataset

from lrgym.trainee.splits import checked_splits, class_count, held_dataset


def split(examples: int = 12, shape: tuple[int, ...] = (3,), dtype=np.float32, seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs = (rng.random((examples, *shape)) * 200).astype(dtype)
    return inputs, rng.integers(4, size=examples)


class Items(Dataset):
    """A map-style Dataset of (input tensor, int label) items, as a user writes one."""

    def __init__(self, inputs, labels):
        self.inputs, self.labels = inputs, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return torch.from_numpy(self.inputs[index]), int(self.labels[index])


def test_every_accepted_form_gives_the_same_arrays():
    splits = [split(seed=seed) for seed in range(3)]
    forms = {
        "numpy pairs": splits,
        "tensor pairs": [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in splits],
        "lists": [[x.tolist(), y.tolist()] for x, y in splits],
        "TensorDataset": [TensorDataset(torch.from_numpy(x), torch.from_numpy(y)) for x, y in splits],
        "a Dataset of items": [Items(x, y) for x, y in splits],
    }
    for form, returned in forms.items():
        for (inputs, labels), (expected_inputs, expected_labels) in zip(checked_splits("d", tuple(returned)), splits):
            assert np.array_equal(inputs, expected_inputs) and np.array_equal(labels, expected_labels), form
            assert inputs.dtype == np.float32 and labels.dtype == np.int64, form


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.tuples(*[st.integers(1, 20)] * 3),
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    dtype=st.sampled_from([np.uint8, np.float32, np.float64, np.int16]),
)
def test_shapes_are_kept_and_types_made_canonical(sizes, shape, dtype):
    returned = tuple(split(size, shape, dtype, seed) for seed, size in enumerate(sizes))
    for (inputs, labels), size in zip(checked_splits("d", returned), sizes):
        assert inputs.shape == (size, *shape) and labels.shape == (size,)
        assert inputs.dtype == (np.uint8 if dtype == np.uint8 else np.float32) and labels.dtype == np.int64


def with_split(index: int, value):
    splits = [split(seed=seed) for seed in range(3)]
    splits[index] = value
    return tuple(splits)


MISTAKES = [
    ("two splits", (split(), split()), "returned a tuple of 2; expected (train, validation, test)"),
    ("a dict", {"train": split()}, "returned a value of type dict; expected (train,"),
    ("a bare array", with_split(1, split()[0]), "validation split is a value of type ndarray; expected an (inputs"),
    ("float labels", with_split(0, (split()[0], np.ones(12))), "labels are float64 of shape (12,); expected N integer"),
    ("one-hot labels", with_split(0, (split()[0], np.eye(12, dtype=int))), "of shape (12, 12); expected N integer"),
    ("fewer labels", with_split(2, (split()[0], np.zeros(5, int))), "the test split has 12 inputs but 5 labels"),
    ("negative label", with_split(0, (split()[0], -np.ones(12, int))), "has the label -1; expected class indices"),
    ("strings", with_split(0, (np.array([["a"]] * 12), np.zeros(12, int))), "inputs are <U1; expected uint8"),
    ("no feature axis", with_split(0, (np.zeros(12, np.float32), np.zeros(12, int))), "have shape (12,); expected (N,"),
    ("empty", with_split(0, (np.zeros((0, 3), np.float32), np.zeros(0, int))), "with N >= 1"),
    ("NaN", with_split(0, (np.full((12, 3), np.nan, np.float32), np.zeros(12, int))), "NaN or infinite values"),
    ("shapes differ", with_split(2, split(shape=(4,))), "same input shape, got train (3,), validation (3,), test (4,)"),
    ("item not a pair", with_split(0, TensorDataset(torch.zeros(3, 2))), "item 0 is a tuple of 1; expected an (input"),
]


@pytest.mark.parametrize(("returned", "fragment"), [case[1:] for case in MISTAKES], ids=[case[0] for case in MISTAKES])
def test_a_wrong_return_is_one_line_naming_the_dataset(returned, fragment):
    with pytest.raises(ValueError) as error:
        checked_splits("my_data:load", returned)
    message = str(error.value)
    assert message.startswith("dataset 'my_data:load'") and fragment in message and "\n" not in message


def test_normalisation_is_measured_on_the_training_split():
    images = tuple(split(50, (1, 4, 4), np.uint8, seed) for seed in range(3))
    dataset = held_dataset("images", images, num_classes=4)
    assert dataset.train.x.dtype == torch.uint8  # one byte per pixel, normalised per batch
    assert dataset.train.mean == pytest.approx(images[0][0].mean() / 255)
    assert dataset.train.inputs().mean().item() == pytest.approx(0, abs=1e-5)
    assert dataset.validation.mean == dataset.train.mean  # the training split's statistics everywhere

    numbers = tuple(split(50, (3,), np.float64, seed) for seed in range(3))
    dataset = held_dataset("numbers", checked_splits("numbers", numbers), num_classes=4)
    train = dataset.train.inputs()
    assert train.dtype == torch.float32
    assert train.mean().item() == pytest.approx(0, abs=1e-5) and train.std().item() == pytest.approx(1, abs=0.02)
    expected = (numbers[1][0] - numbers[0][0].mean()) / numbers[0][0].std()
    assert np.allclose(dataset.validation.inputs().numpy(), expected, atol=1e-5)


def test_the_class_count_is_declared_or_one_more_than_the_largest_label():
    splits = checked_splits("d", tuple(split(seed=seed) for seed in range(3)))
    largest = max(int(labels.max()) for _, labels in splits)
    assert class_count("d", splits, None) == largest + 1
    assert class_count("d", splits, 10) == 10
    with pytest.raises(ValueError, match=f"declares 2 classes but has the label {largest}"):
        class_count("d", splits, 2)
