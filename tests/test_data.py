"""Dataset loaders: the real file formats on tiny files written here, no network."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from lrgym.trainee.data import DataNotFoundError, batch_index, carve_validation, load_dataset
from lrgym.trainee.file_formats import read_cifar_folder, read_idx, read_idx_folder


def write_idx(path, array: np.ndarray, compress: bool = True) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", size) for size in array.shape
    )
    opener = gzip.open if compress else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def write_mnist_folder(folder, n_train: int, n_test: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(n_train) % 10)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n_test) % 10)


def write_cifar10_folder(folder, per_batch: int, n_test: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        batch = {"data": rng.integers(0, 256, (size, 3072), dtype=np.uint8),
                 "labels": list(rng.integers(0, 10, size))}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle)


def test_idx_reader_reads_gz_and_plain_files(tmp_path):
    array = np.arange(2 * 3 * 4).reshape(2, 3, 4) % 256
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b", array, compress=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "b"), array)


def test_idx_reader_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="IDX"):
        read_idx(tmp_path / "bad")


def test_idx_folder_needs_all_four_files(tmp_path):
    write_mnist_folder(tmp_path, 5, 3)
    train_x, train_y, test_x, test_y = read_idx_folder(tmp_path)
    assert train_x.shape == (5, 28, 28) and test_y.tolist() == [0, 1, 2]
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError):
        read_idx_folder(tmp_path)


def test_cifar_pickles_are_read_as_nchw_uint8(tmp_path):
    write_cifar10_folder(tmp_path, per_batch=4, n_test=3)
    train_x, train_y, test_x, test_y = read_cifar_folder(
        tmp_path, [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels"
    )
    assert train_x.shape == (20, 3, 32, 32) and train_x.dtype == np.uint8
    assert test_x.shape == (3, 3, 32, 32) and train_y.shape == (20,)


def test_fashion_mnist_from_data_dir_has_the_paper_splits(tmp_path):
    write_mnist_folder(tmp_path / "fashion-mnist", n_train=10_050, n_test=7)
    dataset = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (50, 10_000, 7)
    assert dataset.train.x.dtype == torch.uint8  # one byte per pixel on the device
    assert dataset.input_shape == (1, 28, 28) and dataset.num_classes == 10
    inputs = dataset.train.inputs(slice(0, 4))
    assert inputs.dtype == torch.float32 and inputs.shape == (4, 1, 28, 28)


def test_cifar10_from_data_dir(tmp_path):
    write_cifar10_folder(tmp_path / "cifar-10-batches-py", per_batch=2_004, n_test=5)
    dataset = load_dataset("cifar10", data_dir=tmp_path)
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (20, 10_000, 5)
    assert dataset.input_shape == (3, 32, 32)


def test_validation_split_is_fixed(tmp_path):
    write_mnist_folder(tmp_path / "a" / "fashion-mnist", n_train=10_050, n_test=7)
    write_mnist_folder(tmp_path / "b" / "fashion-mnist", n_train=10_050, n_test=7)
    first = load_dataset("fashion-mnist", data_dir=tmp_path / "a")
    second = load_dataset("fashion-mnist", data_dir=tmp_path / "b")
    assert torch.equal(first.validation.x, second.validation.x)


def test_missing_dataset_names_the_three_ways_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("lrgym.trainee.data.SYSTEM_DATA_DIRS", ())
    monkeypatch.setattr("lrgym.trainee.data.DEFAULT_DOWNLOAD_DIR", tmp_path / "cache")
    monkeypatch.delenv("LRGYM_DATA", raising=False)
    with pytest.raises(DataNotFoundError) as error:
        load_dataset("kmnist", data_dir=tmp_path)
    message = str(error.value)
    assert "--data-dir" in message and "LRGYM_DATA" in message and "--download" in message
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=tmp_path / "empty")


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="valid datasets: cifar10, cifar100, fashion-mnist"):
        load_dataset("imagenet")


def test_mnist1d_is_available_offline():
    dataset = load_dataset("mnist1d")
    assert dataset.input_shape == (1, 40)
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (7600, 2000, 2400)


def test_batches_are_epoch_permutations_from_a_seeded_generator():
    def draw(seed):
        generator, state = torch.Generator().manual_seed(seed), {}
        return [batch_index(10, 5, generator, state) for _ in range(4)], state

    batches, state = draw(0)
    assert sorted(torch.cat(batches[:2]).tolist()) == list(range(10))  # one epoch, no repeats
    assert state["epoch"] == 1
    again, _ = draw(0)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_a_validation_share_is_carved_from_the_pooled_training_set_by_the_seed():
    dataset = load_dataset("mnist1d")
    carved = carve_validation(dataset, 10, torch.Generator().manual_seed(0))
    assert (len(carved.train), len(carved.validation)) == (int(9600 * 0.9), 9600 - int(9600 * 0.9))
    assert carved.test is dataset.test
    assert (carved.train.mean, carved.train.std) == (dataset.train.mean, dataset.train.std)
    pooled = torch.cat([dataset.train.y, dataset.validation.y])
    assert torch.equal(torch.cat([carved.train.y, carved.validation.y]).bincount(), pooled.bincount())  # a partition
    again = carve_validation(dataset, 10, torch.Generator().manual_seed(0))
    other = carve_validation(dataset, 10, torch.Generator().manual_seed(1))
    assert torch.equal(again.validation.y, carved.validation.y)
    assert not torch.equal(other.validation.x, carved.validation.x)
    with pytest.raises(ValueError, match="validation_percent must be 1..99"):
        carve_validation(dataset, 0, torch.Generator())


DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_debian_fashion_mnist_gives_the_paper_splits():
    dataset = load_dataset("fashion-mnist")
    assert (len(dataset.train), len(dataset.validation), len(dataset.test)) == (50_000, 10_000, 10_000)
    assert sorted(dataset.test.y.unique().tolist()) == list(range(10))


def test_mnist1d_variants_are_generated_from_their_kwargs_and_cached(tmp_path, monkeypatch):
    import lrgym.trainee.data as data

    default = load_dataset("mnist1d")  # from the usual cache
    monkeypatch.setattr(data, "DEFAULT_DOWNLOAD_DIR", tmp_path)
    variant = load_dataset("mnist1d", dataset_kwargs={"shuffle_seq": True, "iid_noise_scale": 0.03})
    assert variant.input_shape == default.input_shape and len(variant.train) == len(default.train)
    assert not torch.equal(variant.train.x, default.train.x)
    assert len(list(tmp_path.glob("mnist1d-12000-seed0-*.npz"))) == 1  # cached, named by its kwargs


def test_unknown_dataset_kwargs_name_the_valid_ones():
    with pytest.raises(ValueError, match="valid: scale_coeff"):
        load_dataset("mnist1d", dataset_kwargs={"noise": 1})
    with pytest.raises(ValueError, match="only mnist1d"):
        load_dataset("fashion-mnist", dataset_kwargs={"noise": 1})


@pytest.mark.parametrize(("batch_size", "val_size", "message"), [
    (10_000_000, 100, r"batch_size 10000000 is more than the 7600 training examples of mnist1d \(valid: 1..7600\)"),
    (32, 1_000_000_000, r"val_size 1000000000 is more than the 2000 validation examples of mnist1d"),
])
def test_a_batch_or_validation_subset_larger_than_its_split_is_refused_not_shrunk(batch_size, val_size, message):
    dataset = load_dataset("mnist1d")
    dataset.check_sizes(len(dataset.train), len(dataset.validation))  # the whole split is allowed
    with pytest.raises(ValueError, match=message):
        dataset.check_sizes(batch_size, val_size)
