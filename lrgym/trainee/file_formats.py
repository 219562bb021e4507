"""Readers of the dataset file formats lrgym finds on disk: IDX (the MNIST family, ``.gz``
or plain) and CIFAR's python pickles.

torchvision's dataset classes read the same files, but only in their own folder layout
and after their own download check; these read the files wherever a system package or
``--data-dir`` put them.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are not in any of the places lrgym looks."""



def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain): the MNIST family's format."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four MNIST-format files of ``folder``: train x, train y, test x, test y."""
    stems = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    paths = [_find_idx(folder, stem) for stem in stems]
    if any(path is None for path in paths):
        raise DataNotFoundError(folder)
    return tuple(read_idx(path) for path in paths)  # type: ignore[return-value,arg-type]


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="latin1")


def read_cifar_folder(
    folder: Path, train_files: list[str], test_files: list[str], label_key: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR's python pickles: ``data`` rows of 3072 bytes (RGB planes) and labels."""
    if not all((folder / name).is_file() for name in train_files + test_files):
        raise DataNotFoundError(folder)

    def load(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        batches = [_unpickle(folder / name) for name in names]
        x = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        y = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
        return x.reshape(-1, 3, 32, 32), y

    return (*load(train_files), *load(test_files))
