"""Controller checkpoints: a folder with the SB3 model, its normalisation statistics and a card.

::

    checkpoints/NAME/
        model.zip          the SB3 model (PPO or RecurrentPPO), with its optimizer state
        vecnormalize.pkl   the VecNormalize observation (and reward) statistics
        card.json          what was trained on what, how, and the sha256 of the two files

``card.json`` is written last, so a folder whose card is there is complete. Loading
checks every file against its sha256 *before* unpickling anything, and checks the
observation/action space signature against the task the controller is asked to act
on; either mismatch is a ``ValueError`` that names the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from lrgym.features import FEATURE_SETS
from lrgym.specs import TaskSpec

MODEL_FILE = "model.zip"
NORMALIZE_FILE = "vecnormalize.pkl"
CARD_FILE = "card.json"
CARD_FORMAT = 1
# agent spec kind -> the SB3 class that trains it (module, class name)
ALGORITHMS = {
    "ppo": ("stable_baselines3", "PPO"),
    "ppo-lstm": ("sb3_contrib", "RecurrentPPO"),
}
_PACKAGES = ("lrgym", "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy")


def space_signature(task: TaskSpec) -> dict[str, Any]:
    """What fixes the observation and action spaces of ``task`` (see :class:`lrgym.env.LRControlEnv`).

    The observation is the task's feature set (:data:`lrgym.features.FEATURE_SETS`); the
    action space is set by the action mode (and, for absolute rates, their bounds).
    Task fields that change what an action *means* but not its space (``lr_scale``,
    ``interval``) are in the card's task spec, not in the signature: a controller may be
    transferred across them.
    """
    signature: dict[str, Any] = {"features": list(FEATURE_SETS[task.features]), "action": task.action}
    if task.action == "lr":
        signature["lr_bounds"] = [task.lr_min, task.lr_max]
    return signature


def check_signature(card: dict[str, Any], task: TaskSpec, where: str | Path = "checkpoint") -> None:
    """Refuse a controller whose spaces do not fit ``task``.

    :raises ValueError: naming the first difference.
    """
    expected, found = card["signature"], space_signature(task)
    for key in sorted(set(expected) | set(found)):
        if expected.get(key) != found.get(key):
            raise ValueError(
                f"{where}: space signature mismatch: the controller was trained with {key}="
                f"{expected.get(key)!r} (task {card['task']['name']!r}) but task {task.name!r} has "
                f"{key}={found.get(key)!r}"
            )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str | None:
    """The commit of the lrgym source tree (``+dirty`` with uncommitted changes), if it is a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "."],
            cwd=source, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def save_checkpoint(folder: str | Path, model: Any, vec_normalize: Any, card: dict[str, Any]) -> Path:
    """Write ``model`` (an SB3 algorithm), ``vec_normalize`` and ``card.json`` into ``folder``.

    :param card: the card's content (task, agent, signature, timesteps, ...); the
        format, versions, git commit, time and file hashes are added here.
    :return: the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    card_path = folder / CARD_FILE
    card_path.unlink(missing_ok=True)  # no card = incomplete, until the new files are all written
    model.save(folder / MODEL_FILE)
    vec_normalize.save(str(folder / NORMALIZE_FILE))
    full_card = {
        "format": CARD_FORMAT,
        **card,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "files": {name: sha256(folder / name) for name in (MODEL_FILE, NORMALIZE_FILE)},
    }
    temporary = card_path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(full_card, indent=2) + "\n")
    os.replace(temporary, card_path)
    return folder


def annotate_card(folder: str | Path, key: str, value: Any) -> None:
    """Add ``key`` to the card of ``folder`` (its files, and so their hashes, stay as they are)."""
    card_path = Path(folder) / CARD_FILE
    card = json.loads(card_path.read_text())
    card[key] = value
    temporary = card_path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(temporary, card_path)


def read_card(folder: str | Path) -> dict[str, Any]:
    """The card of checkpoint ``folder``, after checking every file against its sha256.

    :raises FileNotFoundError: no checkpoint there.
    :raises ValueError: a file is missing or changed since it was saved, or the card is unreadable.
    """
    folder = Path(folder)
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise FileNotFoundError(
            f"{folder}: not a controller checkpoint (no {CARD_FILE}); train one with `lrgym train TASK --out DIR`"
        )
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{card_path}: unreadable card ({error})") from error
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{card_path}: card format {card.get('format')!r}, this lrgym reads {CARD_FORMAT}")
    for name in (MODEL_FILE, NORMALIZE_FILE):
        expected = card.get("files", {}).get(name)
        if expected is None:
            raise ValueError(f"{card_path}: the card lists no sha256 for {name}")
        if not (folder / name).is_file():
            raise ValueError(f"{folder}: {name} is missing")
        if sha256(folder / name) != expected:
            raise ValueError(
                f"{folder}: {name} changed since the checkpoint was saved (sha256 differs from card.json); "
                "refusing to load it"
            )
    return card


def algorithm_class(kind: str) -> type:
    """The SB3 class that trains agent kind ``kind`` (``ppo`` or ``ppo-lstm``)."""
    import importlib

    if kind not in ALGORITHMS:
        raise ValueError(f"no training algorithm for agent kind {kind!r}; known: {', '.join(ALGORITHMS)}")
    module, name = ALGORITHMS[kind]
    return getattr(importlib.import_module(module), name)


@dataclass
class Checkpoint:
    """A loaded controller: the SB3 model, its VecNormalize (without an env) and its card."""

    model: Any
    vec_normalize: Any
    card: dict[str, Any]
    folder: Path

    @property
    def recurrent(self) -> bool:
        return self.card["agent"]["kind"] == "ppo-lstm"

    @property
    def task(self) -> TaskSpec:
        """The task the controller was trained on."""
        return TaskSpec(**self.card["task"])


def load_checkpoint(
    folder: str | Path, task: TaskSpec | None = None, device: str = "cpu", env: Any = None
) -> Checkpoint:
    """Verify and load checkpoint ``folder``.

    :param task: the task it will act on; its space signature must match the card's.
    :param device: where the policy runs (a 32-unit policy is fastest on the CPU).
    :param env: a VecEnv to continue training on: the statistics wrap it and keep
        updating, the model trains on them; ``None`` for acting only (frozen statistics).
    """
    folder = Path(folder)
    card = read_card(folder)
    if task is not None:
        check_signature(card, task, folder)
    # Safe to unpickle: the file's sha256 matched the card above.
    with open(folder / NORMALIZE_FILE, "rb") as handle:
        vec_normalize = pickle.load(handle)
    if env is not None:
        vec_normalize.set_venv(env)
    else:
        vec_normalize.training = False  # acting only: frozen statistics
    cls = algorithm_class(card["agent"]["kind"])
    model = cls.load(folder / MODEL_FILE, env=vec_normalize if env is not None else None, device=device)
    return Checkpoint(model=model, vec_normalize=vec_normalize, card=card, folder=folder)
