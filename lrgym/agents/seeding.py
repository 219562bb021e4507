"""Random streams that agents own, kept apart from the trainee's.

ASLR's per-step rate draws and the lookahead's scoring batches must not consume the
trainee's batch stream (that would break the pairing of seeds across agents), so each
agent draws from its own generator, derived from the episode seed and a purpose.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch


def agent_generator(seed: int, purpose: str) -> torch.Generator:
    """A CPU generator for ``purpose`` (e.g. ``"aslr-draws"``) in episode ``seed``.

    Same seed and purpose give the same stream on every device; different purposes
    give independent streams (:class:`numpy.random.SeedSequence` mixes the two).

    :param seed: the episode seed (the one given to ``env.reset``).
    :param purpose: a name that keeps this stream apart from other agents' streams.
    """
    entropy = [int(seed) % 2**63, zlib.crc32(purpose.encode())]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
