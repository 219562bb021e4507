"""The three splits of a dataset: what a loader returns, checked, and how they are held on the device.

A loader (lrgym's own or a plug-in) returns ``(train, validation, test)``; each split is

- a pair ``(inputs, labels)`` of numpy arrays or torch tensors (or what ``numpy.asarray`` takes), or
- a map-style torch ``Dataset`` whose items are ``(input, label)`` pairs (a ``TensorDataset``,
  a torchvision dataset with a ``ToTensor`` transform, your own class).

``inputs`` have the shape ``(N, *input_shape)``, the same ``input_shape`` in every split
(it is what the model is built for), and are ``uint8`` (images, 0-255) or real numbers
(other integer types become float32); ``labels`` are N integer class indices >= 0. Every
violation is one ``ValueError`` line naming the dataset, the split and what was expected.

Every split is held as one tensor of inputs and one of labels on the training device.
Images stay ``uint8`` and are normalised per batch (:meth:`Split.inputs`), so a whole split
costs one byte per pixel of device memory; real-valued inputs are stored standardised.
Either way the mean and standard deviation are one number each, measured on (up to
10,000 examples of) the training split after dividing ``uint8`` values by 255.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

SPLIT_NAMES = ("train", "validation", "test")
CONTRACT = ("(train, validation, test), each an (inputs, labels) pair of arrays or tensors, "
            "or a torch Dataset of (input, label) items")
Arrays = tuple[np.ndarray, np.ndarray]
STATISTICS_SAMPLE = 10_000  # training examples the normalisation statistics are measured on


@dataclass
class Split:
    """One split held on the device: ``x`` (uint8 or float32) and ``y`` (int64)."""

    x: torch.Tensor
    y: torch.Tensor
    mean: float
    std: float

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def inputs(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Normalised float32 inputs for ``index`` (all when ``None``)."""
        x = self.x if index is None else self.x[index]
        if x.dtype == torch.uint8:
            return x.float().div_(255.0).sub_(self.mean).div_(self.std)
        return x if self.mean == 0.0 and self.std == 1.0 else (x - self.mean) / self.std

    def labels(self, index: torch.Tensor | slice | None = None) -> torch.Tensor:
        return self.y if index is None else self.y[index]

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device), self.mean, self.std)


@dataclass
class Dataset:
    """A dataset's three splits and its shape facts."""

    name: str
    train: Split
    validation: Split
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int

    def check_sizes(self, batch_size: int, val_size: int) -> None:
        """Refuse a batch larger than the training split, or a validation subset larger than the
        validation split: drawn from them, they would silently shrink (full-batch training, a
        smaller subset) and the task would not be the one its spec says."""
        for field, value, split, what in (("batch_size", batch_size, self.train, "training"),
                                          ("val_size", val_size, self.validation, "validation")):
            if value > len(split):
                raise ValueError(f"{field} {value} is more than the {len(split)} {what} examples of "
                                 f"{self.name} (valid: 1..{len(split)})")

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(
            self.name,
            self.train.to(device),
            self.validation.to(device),
            self.test.to(device),
            self.input_shape,
            self.num_classes,
        )


def held_dataset(name: str, splits: tuple[Arrays, Arrays, Arrays], num_classes: int) -> Dataset:
    """:func:`checked_splits` output as a :class:`Dataset` on the CPU, normalised as the module says."""
    (train_x, train_y), (val_x, val_y), (test_x, test_y) = splits
    scale = 255.0 if train_x.dtype == np.uint8 else 1.0
    sample = train_x[:STATISTICS_SAMPLE].astype(np.float64) / scale
    mean, std = float(sample.mean()), float(sample.std()) or 1.0
    return Dataset(
        name=name,
        train=_to_split(train_x, train_y, mean, std),
        validation=_to_split(val_x, val_y, mean, std),
        test=_to_split(test_x, test_y, mean, std),
        input_shape=tuple(train_x.shape[1:]),
        num_classes=num_classes,
    )


def _to_split(x: np.ndarray, y: np.ndarray, mean: float, std: float) -> Split:
    if x.dtype != np.uint8:  # float data are stored normalised: no per-batch arithmetic
        x, mean, std = ((x - mean) / std).astype(np.float32), 0.0, 1.0
    x = np.require(x, requirements=["C_CONTIGUOUS", "WRITEABLE"])
    return Split(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)), mean, std)


def checked_splits(name: str, returned: Any) -> tuple[Arrays, Arrays, Arrays]:
    """The three splits of ``returned`` as ``(inputs, labels)`` numpy arrays, checked.

    :param name: the dataset's name or plug-in reference (for the messages).
    """
    if isinstance(returned, (str, bytes, dict)) or not isinstance(returned, (tuple, list)) or len(returned) != 3:
        raise ValueError(f"dataset {name!r} returned {_describe(returned)}; expected {CONTRACT}")
    splits = tuple(_split_arrays(name, split, value) for split, value in zip(SPLIT_NAMES, returned))
    shapes = {split: inputs.shape[1:] for split, (inputs, _) in zip(SPLIT_NAMES, splits)}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"dataset {name!r}: every split needs the same input shape, got "
                         + ", ".join(f"{split} {tuple(shape)}" for split, shape in shapes.items()))
    return splits  # type: ignore[return-value]


def _split_arrays(name: str, split: str, value: Any) -> Arrays:
    where = f"dataset {name!r}: the {split} split"
    if isinstance(value, torch.utils.data.TensorDataset) and len(value.tensors) == 2:
        inputs, labels = (_array(tensor) for tensor in value.tensors)
    elif isinstance(value, torch.utils.data.Dataset):
        inputs, labels = _dataset_arrays(where, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        inputs, labels = _array(value[0]), _array(value[1])
    else:
        raise ValueError(f"{where} is {_describe(value)}; expected an (inputs, labels) pair or a torch Dataset")
    if inputs.dtype.kind not in "uif" or inputs.dtype == np.bool_:
        raise ValueError(f"{where}'s inputs are {inputs.dtype}; expected uint8 (images 0-255) or real numbers")
    if inputs.ndim < 2 or len(inputs) == 0:
        raise ValueError(f"{where}'s inputs have shape {inputs.shape}; expected (N, *input_shape) with N >= 1")
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}'s labels are {labels.dtype} of shape {labels.shape}; expected N integer "
                         "class indices (shape (N,))")
    if len(labels) != len(inputs):
        raise ValueError(f"{where} has {len(inputs)} inputs but {len(labels)} labels")
    if labels.min() < 0:
        raise ValueError(f"{where} has the label {labels.min()}; expected class indices 0, 1, ...")
    if inputs.dtype != np.uint8:
        inputs = inputs.astype(np.float32, copy=False)
        if not np.isfinite(inputs).all():
            raise ValueError(f"{where}'s inputs hold NaN or infinite values")
    return inputs, labels.astype(np.int64, copy=False)


def _dataset_arrays(where: str, dataset: torch.utils.data.Dataset) -> Arrays:
    """Every item of a map-style Dataset, stacked (once per process: datasets are cached)."""
    if not hasattr(dataset, "__len__"):
        raise ValueError(f"{where} is an iterable Dataset; expected a map-style one (len() and indexing)")
    inputs, labels = [], []
    for index in range(len(dataset)):
        item = dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValueError(f"{where}'s item {index} is {_describe(item)}; expected an (input, label) pair")
        inputs.append(_array(item[0]))
        labels.append(_array(item[1]))
    if not inputs:
        raise ValueError(f"{where} is an empty Dataset")
    try:
        return np.stack(inputs), np.stack(labels)
    except ValueError as error:
        raise ValueError(f"{where}'s items differ in shape ({error})") from error


def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError):
        return np.asarray(None)  # an object array: refused by the dtype check with the type in the message


def _describe(value: Any) -> str:
    kind = type(value).__name__
    return f"a {kind} of {len(value)}" if isinstance(value, (tuple, list)) else f"a value of type {kind}"


def class_count(name: str, splits: tuple[Arrays, Arrays, Arrays], declared: int | None) -> int:
    """The number of classes: ``declared`` (a loader's ``num_classes``), else 1 + the largest label."""
    largest = max(int(labels.max()) for _, labels in splits)
    if declared is None:
        return largest + 1
    if largest >= declared:
        raise ValueError(f"dataset {name!r} declares {declared} classes but has the label {largest}")
    return int(declared)
