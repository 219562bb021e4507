"""Convert a format-1 checkpoint (SB3 pickles only) into one that acts without pickle.

Format 1 (lrgym before card format 2) kept a controller as SB3's ``model.zip`` and
``vecnormalize.pkl``; acting unpickled both. :func:`upgrade_checkpoint` reads them
**once, by unpickling** (so only run it on checkpoints you trust: the shipped ones,
your own), and writes the plain files of :mod:`lrgym.checkpoints.policy_files` and a format-2 card
that keeps everything the old card said. ``benchmarks/reexport_checkpoints.py`` runs it
on the shipped controllers.
"""

from __future__ import annotations

import json
import pickle
import secrets
import shutil
from pathlib import Path
from typing import Any

from lrgym.checkpoints.checkpoint import (
    CARD_FILE,
    CARD_FORMAT,
    FILE_ROLES,
    SECURITY_NOTE,
    algorithm_class,
    commit_files,
    package_versions,
    sha256,
    write_checkpoint_files,
)
from lrgym.checkpoints.policy_files import policy_facts

LEGACY_FILES = ("model.zip", "vecnormalize.pkl")


def upgrade_checkpoint(folder: str | Path, keep_training_state: bool = False) -> dict[str, Any]:
    """Rewrite the format-1 checkpoint ``folder`` as format 2 (same weights and statistics).

    **Unpickles** ``model.zip`` and ``vecnormalize.pkl`` (after checking them against the
    old card's sha256, which only proves they are the files the card names).

    :param keep_training_state: also write SB3's training state in the new naming (to
        resume from); the shipped controllers keep only what acting needs.
    :returns: the new card.
    """
    folder = Path(folder)
    card = json.loads((folder / CARD_FILE).read_text())
    if card.get("format") != 1:
        raise ValueError(f"{folder}: card format {card.get('format')!r}; only format 1 is upgraded")
    for name in LEGACY_FILES:
        if sha256(folder / name) != card["files"][name]:
            raise ValueError(f"{folder}: {name} changed since the checkpoint was saved; refusing to upgrade it")
    with open(folder / "vecnormalize.pkl", "rb") as handle:
        vec_normalize = pickle.load(handle)  # trusted input only: see the docstring
    model = algorithm_class(card["agent"]["kind"]).load(folder / "model.zip", device="cpu")
    tag = f"{int(model.num_timesteps):09d}-{secrets.token_hex(4)}"
    staging = folder / f".saving-{tag}"
    staging.mkdir()
    write_checkpoint_files(staging, tag, model, vec_normalize, training_state=False)
    # SB3's own files, copied as they are (a VecNormalize loaded without its env cannot re-pickle).
    if keep_training_state:
        for role, legacy in (("model", "model.zip"), ("vecnormalize", "vecnormalize.pkl")):
            prefix, suffix = FILE_ROLES[role]
            shutil.copyfile(folder / legacy, staging / f"{prefix}{tag}{suffix}")
    new_card = {
        **{key: value for key, value in card.items() if key != "files"},
        "format": CARD_FORMAT,
        "policy": policy_facts(model),
        "upgraded": {"from_format": 1, "files": card["files"], "by": package_versions()},
        "security": SECURITY_NOTE,
    }
    new_card = commit_files(folder, staging, new_card)
    for name in LEGACY_FILES:
        (folder / name).unlink()
    return new_card
