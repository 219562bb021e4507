"""Datasets: registry, sources, the source paper's splits, batches.

Every dataset is held as three splits (train / validation / test), each one tensor
of inputs and one of labels, on the training device (:mod:`lrgym.trainee.splits`).
Batches are drawn by index with a seeded generator; no DataLoader sits in the hot loop.

Where files come from, in order (design.md, "Data without a network"):

1. ``data_dir`` (the ``--data-dir`` flag) or the ``LRGYM_DATA`` environment variable;
2. well-known system folders (Debian's ``dataset-fashion-mnist`` package installs
   the full Fashion-MNIST in ``/usr/share/datasets/fashion-mnist``);
3. a torchvision download into ``data_dir`` (or ``~/.cache/lrgym``), only when the
   caller asked for it (``download=True`` / ``--download``).

``mnist1d`` needs none of these: the ``mnist1d`` package generates it locally from
its templates, so the demo and the tests run with no network and no system package.
Its generation knobs (:data:`MNIST1D_KNOBS`: noise, shift, scale, shear) are a task's
``dataset_kwargs``; each variant is generated once and cached on disk, keyed by them.

Every dataset, lrgym's own included, is a *loader* in one registry
(:data:`DATASET_REGISTRY`, :mod:`lrgym.trainee.registry`): a callable taking the task's
``dataset_kwargs`` (and ``data_dir`` / ``download`` when its signature names them) and
returning ``(train, validation, test)`` in the forms :mod:`lrgym.trainee.splits` accepts.
A loader may say its class count with a ``num_classes`` attribute (else: 1 + the largest
label). Normalisation is lrgym's, the same for all: ``uint8`` inputs are divided by 255,
then every input is standardised with one mean and one standard deviation measured on
(up to 10,000 examples of) the training split; give raw values, not normalised ones.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lrgym.trainee.file_formats import DataNotFoundError, read_cifar_folder, read_idx_folder
from lrgym.trainee.registry import REGISTRIES, Registry, unknown_keywords_error
from lrgym.trainee.splits import (
    Arrays,
    Dataset,
    Split,  # noqa: F401  (re-exported: the trainees import it from here)
    checked_splits,
    class_count,
    held_dataset,
)

SYSTEM_DATA_DIRS = (Path("/usr/share/datasets"), Path("/usr/local/share/datasets"))
DEFAULT_DOWNLOAD_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lrgym"
VALIDATION_SPLIT_SEED = 0  # the validation set is carved from the official train set once


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class DatasetInfo:
    """How to find, read and split one of lrgym's own datasets; calling it is its loader."""

    name: str
    folder_names: tuple[str, ...]  # sub-folders of a data dir that may hold the files
    read: Callable[[Path], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] | None
    validation_size: int
    num_classes: int
    torchvision_class: str | None = None
    debian_package: str | None = None
    description: str = ""

    def __call__(
        self, data_dir: str | Path | None = None, download: bool = False, **dataset_kwargs: Any
    ) -> tuple[Arrays, Arrays, Arrays]:
        """The official train and test files (or mnist1d's generator), with the validation split
        carved from the official train split once (:data:`VALIDATION_SPLIT_SEED`)."""
        check_dataset_kwargs(self.name, dataset_kwargs)
        if self.read is None:  # mnist1d: generated
            train_x, train_y, test_x, test_y = _generate_mnist1d(knobs=dataset_kwargs)
            train_x, test_x = train_x[:, None, :], test_x[:, None, :]  # (N, 1, 40): one channel
        else:
            train_x, train_y, test_x, test_y = _read_raw(self, data_dir, download)
            if train_x.ndim == 3:  # greyscale idx images: add the channel axis
                train_x, test_x = train_x[:, None], test_x[:, None]
        if len(train_x) <= self.validation_size:
            raise ValueError(f"{self.name}: {len(train_x)} training examples cannot give a validation split")
        order = np.random.default_rng(VALIDATION_SPLIT_SEED).permutation(len(train_x))
        val_index, train_index = order[: self.validation_size], order[self.validation_size :]
        return (train_x[train_index], train_y[train_index]), (train_x[val_index], train_y[val_index]), (test_x, test_y)


def _cifar10(folder: Path):
    return read_cifar_folder(folder, [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels")


def _cifar100(folder: Path):
    return read_cifar_folder(folder, ["train"], ["test"], "fine_labels")


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        DatasetInfo(
            "mnist1d", (), None, 2000, 10,
            description="MNIST-1D, generated locally by the mnist1d package (no files needed)",
        ),
        DatasetInfo(
            "fashion-mnist", ("fashion-mnist", "FashionMNIST/raw", "fashion_mnist"), read_idx_folder,
            10_000, 10, "FashionMNIST", "dataset-fashion-mnist",
            description="Fashion-MNIST 28x28 grey, 50k/10k/10k",
        ),
        DatasetInfo(
            "mnist", ("mnist", "MNIST/raw"), read_idx_folder, 10_000, 10, "MNIST",
            description="MNIST 28x28 grey, 50k/10k/10k",
        ),
        DatasetInfo(
            "kmnist", ("kmnist", "KMNIST/raw"), read_idx_folder, 10_000, 10, "KMNIST",
            description="Kuzushiji-MNIST 28x28 grey, 50k/10k/10k",
        ),
        DatasetInfo(
            "cifar10", ("cifar-10-batches-py", "cifar10/cifar-10-batches-py", "cifar10"), _cifar10,
            10_000, 10, "CIFAR10",
            description="CIFAR-10 32x32 colour, 40k/10k/10k",
        ),
        DatasetInfo(
            "cifar100", ("cifar-100-python", "cifar100/cifar-100-python", "cifar100"), _cifar100,
            10_000, 100, "CIFAR100",
            description="CIFAR-100 32x32 colour, 40k/10k/10k",
        ),
    ]
}


DATASET_REGISTRY = REGISTRIES["dataset"] = Registry("dataset", "lrgym.datasets", DATASETS)


def register_dataset(name: str, loader: Callable[..., Any], replace: bool = False) -> None:
    """Make ``loader`` the dataset ``name`` (in this process and lrgym's local workers).

    :param loader: called with a task's ``dataset_kwargs`` (and ``data_dir`` / ``download``
        when it names them); returns ``(train, validation, test)`` as
        :mod:`lrgym.trainee.splits` says. A module-level function, so that workers receive it.
    :param replace: allow replacing an existing name (lrgym's own included).
    """
    DATASET_REGISTRY.register(name, loader, replace=replace)
    _load_cpu.cache_clear()
    _DEVICE_CACHE.clear()



def candidate_dirs(data_dir: str | Path | None) -> list[Path]:
    """Folders searched for dataset files, in order."""
    dirs = []
    if data_dir:
        dirs.append(Path(data_dir))
    if os.environ.get("LRGYM_DATA"):
        dirs.append(Path(os.environ["LRGYM_DATA"]))
    dirs.extend(SYSTEM_DATA_DIRS)
    dirs.append(DEFAULT_DOWNLOAD_DIR)
    return dirs


def _missing_message(info: DatasetInfo, searched: list[Path]) -> str:
    lines = [
        f"dataset {info.name!r} was not found. Searched: {', '.join(str(p) for p in searched)}.",
        "Get it in one of these ways:",
        "  1. put its files in a folder and pass --data-dir DIR (or set LRGYM_DATA=DIR);",
    ]
    if info.debian_package:
        lines.append(
            f"  2. on Debian/Ubuntu: apt-get install {info.debian_package} "
            f"(files land in /usr/share/datasets/{info.folder_names[0]});"
        )
    else:
        lines.append("  2. (no Debian package ships this dataset);")
    lines.append("  3. pass --download (download=True) to let torchvision fetch it (needs network).")
    lines.append("mnist1d needs no files at all: it is generated locally.")
    return "\n".join(lines)


def _read_raw(info: DatasetInfo, data_dir: str | Path | None, download: bool):
    searched = []
    for root in candidate_dirs(data_dir):
        for sub in ("", *info.folder_names):
            folder = root / sub if sub else root
            searched.append(folder)
            if folder.is_dir():
                try:
                    return info.read(folder)
                except DataNotFoundError:
                    continue
    if download and info.torchvision_class:
        import torchvision

        root = Path(data_dir) if data_dir else DEFAULT_DOWNLOAD_DIR
        getattr(torchvision.datasets, info.torchvision_class)(root, train=True, download=True)
        getattr(torchvision.datasets, info.torchvision_class)(root, train=False, download=True)
        return _read_raw(info, root, download=False)
    raise DataNotFoundError(_missing_message(info, searched))


# The mnist1d package's generation arguments (mnist1d.data.get_dataset_args) that a task
# may set: what the digits look like. The sample count, split, sequence length and seed
# stay fixed, so every variant has the same shape and the same number of examples.
MNIST1D_KNOBS = (
    "scale_coeff", "max_translation", "corr_noise_scale", "iid_noise_scale", "shear_scale", "shuffle_seq",
)


LOADER_OPTIONS = ("data_dir", "download")  # filled by lrgym from the command line, not by a spec


def check_dataset_kwargs(name: str, dataset_kwargs: dict | None) -> None:
    """Refuse ``dataset_kwargs`` the dataset does not take: of lrgym's own only mnist1d has
    generation arguments; a plug-in takes the keywords its loader's signature names."""
    if not DATASET_REGISTRY.is_builtin(name):
        error = unknown_keywords_error(
            "dataset", name, DATASET_REGISTRY.resolve(name), dataset_kwargs or {}, hidden=LOADER_OPTIONS
        )
        if error is not None:
            raise error
        return
    unknown = sorted(set(dataset_kwargs or {}) - set(MNIST1D_KNOBS if name == "mnist1d" else ()))
    if unknown:
        valid = ", ".join(MNIST1D_KNOBS) if name == "mnist1d" else "none (only mnist1d is generated)"
        raise ValueError(f"dataset {name!r} takes no generation argument(s) {unknown}; valid: {valid}")


def _generate_mnist1d(
    seed: int = 0, knobs: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST-1D from the ``mnist1d`` package's local generator, cached as .npz after the first call.

    :param knobs: generation arguments of :data:`MNIST1D_KNOBS` (none: the package's defaults);
        each variant has its own cache file, named by a hash of its arguments.
    """
    knobs = dict(knobs or {})
    check_dataset_kwargs("mnist1d", knobs)
    variant = ""
    if knobs:
        digest = hashlib.sha256(json.dumps(knobs, sort_keys=True).encode()).hexdigest()[:12]
        variant = f"-{digest}"
    cache = DEFAULT_DOWNLOAD_DIR / f"mnist1d-12000-seed{seed}{variant}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return data["x"], data["y"], data["x_test"], data["y_test"]
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 12_000  # 9600 train / 2400 test; 2000 of train carved for validation
    args.seed = seed
    for key, value in knobs.items():
        setattr(args, key, value)
    data = make_dataset(args)
    arrays = {
        "x": data["x"].astype(np.float32),
        "y": data["y"].astype(np.int64),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int64),
    }
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_suffix(f".{os.getpid()}.npz")
        np.savez(temporary, **arrays)
        temporary.replace(cache)  # atomic: parallel workers never read a half-written file
    except OSError:
        pass  # a read-only home only costs the generation time next run
    return arrays["x"], arrays["y"], arrays["x_test"], arrays["y_test"]


def _call_loader(name: str, data_dir: str | None, download: bool, dataset_kwargs: dict) -> Any:
    """What dataset ``name``'s loader returns, given ``data_dir`` / ``download`` when it names them."""
    try:
        parameters = inspect.signature(DATASET_REGISTRY.resolve(name)).parameters
    except (TypeError, ValueError):
        parameters = {}
    options = {key: value for key, value in (("data_dir", data_dir), ("download", download)) if key in parameters}
    return DATASET_REGISTRY.call(name, passing=(DataNotFoundError,), **options, **dataset_kwargs)


@functools.lru_cache(maxsize=8)
def _load_cpu(name: str, data_dir: str | None, download: bool, dataset_kwargs: str = "{}") -> Dataset:
    splits = checked_splits(name, _call_loader(name, data_dir, download, json.loads(dataset_kwargs)))
    num_classes = class_count(name, splits, getattr(DATASET_REGISTRY.resolve(name), "num_classes", None))
    return held_dataset(name, splits, num_classes)


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = False,
    device: torch.device | str = "cpu",
    dataset_kwargs: dict | None = None,
) -> Dataset:
    """Load ``name`` with its train/validation/test splits, as tensors on ``device``.

    :param name: a registered name (:func:`dataset_names`) or a plug-in reference ``module:function``.
    :param dataset_kwargs: the loader's keywords (mnist1d: :data:`MNIST1D_KNOBS`).
    :param data_dir: a folder to search first (else ``LRGYM_DATA``, then system folders).
    :param download: let torchvision download the files when they are nowhere.
    :param device: where the tensors live.
    :raises ValueError: for an unknown name (the message lists the valid ones), a plug-in that
        cannot be imported, fails or returns the wrong types or shapes (one line naming it).
    :raises DataNotFoundError: when the files are missing (the message says how to get them).
    """
    check_dataset_kwargs(name, dataset_kwargs)
    key = (name, str(data_dir) if data_dir else None, bool(download),
           json.dumps(dataset_kwargs or {}, sort_keys=True))
    dataset = _load_cpu(*key)
    device = torch.device(device)
    if device.type == "cpu":
        return dataset
    if (key, device) not in _DEVICE_CACHE:  # one copy per device, shared by every env
        _DEVICE_CACHE[(key, device)] = dataset.to(device)
    return _DEVICE_CACHE[(key, device)]


_DEVICE_CACHE: dict = {}


def check_batch_size(dataset: Dataset, batch_size: int) -> int:
    """``batch_size`` as an int; a training split smaller than one batch is refused."""
    dataset.check_sizes(batch_size, 1)
    return int(batch_size)


def carve_validation(dataset: Dataset, percent: int, generator: torch.Generator) -> Dataset:
    """``dataset`` with ``percent`` % of its official training set held out for validation.

    The train and validation splits are pooled (together the official training set) and
    split again by a random permutation drawn with ``generator``: the training split keeps
    ``int(pooled * (1 - percent / 100))`` examples (the DAC4SGD generator's rule), the rest
    is the validation split. The test split and the normalisation statistics are unchanged.

    :param percent: 1..99.
    """
    if not 1 <= int(percent) <= 99:
        raise ValueError(f"validation_percent must be 1..99 to carve a validation split, got {percent}")
    x = torch.cat([dataset.train.x, dataset.validation.x])
    y = torch.cat([dataset.train.y, dataset.validation.y])
    train_size = int(len(y) * (1 - int(percent) / 100))
    order = torch.randperm(len(y), generator=generator, device=generator.device).to(y.device)
    train_index, val_index = order[:train_size], order[train_size:]
    train, validation = dataset.train, dataset.validation
    return Dataset(
        dataset.name,
        Split(x[train_index], y[train_index], train.mean, train.std),
        Split(x[val_index], y[val_index], validation.mean, validation.std),
        dataset.test,
        dataset.input_shape,
        dataset.num_classes,
    )


def batch_index(
    size: int, batch_size: int, generator: torch.Generator, state: dict
) -> torch.Tensor:
    """Next batch of indices from seeded epoch-wise permutations (no replacement in an epoch).

    ``state`` holds the current permutation and cursor; it is owned by the caller.
    """
    perm = state.get("perm")
    cursor = state.get("cursor", 0)
    if perm is None or cursor + batch_size > size:
        perm = torch.randperm(size, generator=generator, device=generator.device)
        cursor = 0
        state["epoch"] = state.get("epoch", -1) + 1
    state["perm"], state["cursor"] = perm, cursor + batch_size
    return perm[cursor : cursor + batch_size]
