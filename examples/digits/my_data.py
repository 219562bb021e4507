"""A user's own dataset for lrgym: scikit-learn's bundled handwritten digits (no download).

``lrgym`` calls ``load()`` (with the task's ``dataset_kwargs`` as keywords) and takes the
three splits as (inputs, labels) arrays; it standardises the inputs itself with the
training split's mean and standard deviation, so the values are given raw (0..16).
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits


def load(seed: int = 0):
    """1797 8x8 images: 1000 train, 397 validation, 400 test, shuffled once with ``seed``."""
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    images = digits.images[order].astype(np.float32)[:, None]  # (N, 1, 8, 8): one channel
    labels = digits.target[order]
    return (images[:1000], labels[:1000]), (images[1000:1397], labels[1000:1397]), (images[1397:], labels[1397:])
