"""Controller checkpoints: a folder with a card, the files a controller acts from and SB3's training state.

::

    checkpoints/NAME/
        card.json                       what was trained on what, how; the policy's architecture;
                                        the name and sha256 of every file below
        policy.TAG.safetensors          the policy weights              } acting: no pickle
        normalization.TAG.json          the observation statistics      } (lrgym.checkpoints.policy_files)
        model.TAG.zip                   SB3's model with its optimizer  } training state, for
        vecnormalize.TAG.pkl            SB3's VecNormalize              } --resume only (pickles)

**Acting never unpickles.** ``ppo:PATH`` (evaluate, transfer, episode) and
:class:`lrgym.controller.LRController` read the card, the safetensors weights and the
JSON statistics (:func:`load_acting_policy`). Only :func:`load_training_state`, used by
``lrgym train --resume`` on the user's own runs, reads ``model.TAG.zip`` and
``vecnormalize.TAG.pkl``, which SB3 writes with (cloud)pickle and which can run code.

**What the sha256 proves.** Every file's sha256 is in the card and is checked before a
file is read: it catches a file changed by accident (a truncated copy, a wrong file
put there, a half-finished write). It is not a signature: the card sits beside the
files, so whoever can replace a file can update its hash too. Trust a checkpoint's
pickles as much as you trust whoever wrote the folder.

**Saves are atomic.** A save writes the new files into a temporary folder
(``.saving-TAG`` in the checkpoint folder: same file system, so renames are atomic),
renames them in under fresh names (``TAG`` is new for every save) and then replaces
``card.json`` in one rename, the commit point; the previous save's files are removed
after. (The folder itself cannot be swapped in one rename: a run folder also holds
``periodic/`` and ``tensorboard/``.) At every instant the folder's card names complete files: a kill during
a save leaves the previous controller loadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import platform
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from lrgym.checkpoints.algorithms import ALGORITHMS, algorithm_class, card_algorithm  # noqa: F401
from lrgym.checkpoints.file_checks import check_card, read_json
from lrgym.checkpoints.policy_files import ObservationNormalizer, build_policy, policy_facts, save_policy_weights
from lrgym.tasks.family import TaskFamily
from lrgym.tasks.specs import TaskSpec
from lrgym.trainee.features import FEATURE_SETS

CARD_FILE = "card.json"
CARD_FORMAT = 2
# role -> (file name prefix, suffix); the name in between is the save's tag
FILE_ROLES = {
    "policy": ("policy.", ".safetensors"),
    "normalization": ("normalization.", ".json"),
    "model": ("model.", ".zip"),
    "vecnormalize": ("vecnormalize.", ".pkl"),
}
ACTING_ROLES = ("policy", "normalization")
TRAINING_ROLES = ("model", "vecnormalize")
SECURITY_NOTE = (
    "The sha256 of each file catches accidental changes (a truncated copy, a wrong file, an unfinished "
    "write); it is not a signature: whoever can replace a file can also update its hash here. Acting "
    "(ppo:PATH, LRController) reads only the safetensors weights and the JSON statistics, never a pickle; "
    "model.*.zip and vecnormalize.*.pkl are SB3 pickles read only by `lrgym train --resume`: resume only "
    "your own runs."
)
_PACKAGES = ("lrgym", "torch", "stable-baselines3", "sb3-contrib", "gymnasium", "numpy", "safetensors")


def space_signature(task: TaskSpec) -> dict[str, Any]:
    """What fixes the observation and action spaces of ``task`` (see :class:`~lrgym.environment.LRControlEnv`).

    The observation is the task's feature set (:data:`lrgym.trainee.features.FEATURE_SETS`); the
    action space is set by the action mode (and, for absolute rates, their bounds).
    Task fields that change what an action *means* but not its space (``lr_scale``,
    ``interval``) are in the card's task spec, not in the signature: a controller may be
    transferred across them.
    """
    signature: dict[str, Any] = {"features": list(FEATURE_SETS[task.features]), "action": task.action}
    if task.action in ("lr", "log_lr"):
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
    source = Path(__file__).resolve().parents[1]  # the lrgym package
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


def write_checkpoint_files(folder: Path, tag: str, model: Any, vec_normalize: Any, training_state: bool) -> None:
    """The checkpoint's data files, named with ``tag``, into (empty) ``folder``."""
    names = {role: prefix + tag + suffix for role, (prefix, suffix) in FILE_ROLES.items()}
    save_policy_weights(model.policy, folder / names["policy"])
    normalizer = ObservationNormalizer.from_vec_normalize(vec_normalize)
    (folder / names["normalization"]).write_text(json.dumps(normalizer.to_json(), indent=1) + "\n")
    if training_state:
        model.save(folder / names["model"])
        vec_normalize.save(str(folder / names["vecnormalize"]))


def commit_files(folder: Path, staging: Path, card: dict[str, Any]) -> dict[str, Any]:
    """Move the files in ``staging`` into ``folder`` and make ``card`` (which names them) current.

    The files carry names no current card uses, so moving them in changes nothing a
    reader sees; replacing ``card.json`` (one rename) switches to them; files of the
    previous save that the new card does not name are removed last.

    :returns: the card as written (with ``files``: each role's name and sha256).
    """
    card = {**card, "files": {}}
    for path in sorted(staging.iterdir()):
        role = next(role for role, (prefix, suffix) in FILE_ROLES.items()
                    if path.name.startswith(prefix) and path.name.endswith(suffix))
        card["files"][role] = {"name": path.name, "sha256": sha256(path)}
        os.replace(path, folder / path.name)
    temporary = staging / CARD_FILE
    temporary.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(temporary, folder / CARD_FILE)
    shutil.rmtree(staging, ignore_errors=True)
    current = {entry["name"] for entry in card["files"].values()}
    for prefix, suffix in FILE_ROLES.values():
        for path in folder.glob(f"{prefix}*{suffix}"):
            if path.name not in current:
                path.unlink(missing_ok=True)
    for stale in folder.glob(".saving-*"):  # left by a save that was killed
        shutil.rmtree(stale, ignore_errors=True)
    return card


def save_checkpoint(
    folder: str | Path, model: Any, vec_normalize: Any, card: dict[str, Any], training_state: bool = True
) -> Path:
    """Write ``model`` (an SB3 algorithm), ``vec_normalize`` and ``card.json`` into ``folder``, atomically.

    :param card: the card's content (task, agent, signature, timesteps, ...); the
        format, policy architecture, versions, git commit, time and file hashes are added here.
    :param training_state: also write SB3's pickled model and statistics (for ``--resume``).
    :return: the folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{int(model.num_timesteps):09d}-{secrets.token_hex(4)}"
    staging = folder / f".saving-{tag}"
    staging.mkdir()
    write_checkpoint_files(staging, tag, model, vec_normalize, training_state)
    full_card = {
        "format": CARD_FORMAT,
        **card,
        "policy": policy_facts(model),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "security": SECURITY_NOTE,
    }
    commit_files(folder, staging, full_card)
    return folder


def annotate_card(folder: str | Path, key: str, value: Any) -> None:
    """Add ``key`` to the card of ``folder`` (its files, and so their hashes, stay as they are)."""
    card_path = Path(folder) / CARD_FILE
    card = json.loads(card_path.read_text())
    card[key] = value
    temporary = card_path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(temporary, card_path)


def read_card(folder: str | Path, roles: tuple[str, ...] = ACTING_ROLES) -> dict[str, Any]:
    """The card of checkpoint ``folder``, after checking the files of ``roles`` against their sha256.

    :param roles: the files about to be read: :data:`ACTING_ROLES` (default) or also
        :data:`TRAINING_ROLES` (resume).
    :raises FileNotFoundError: no checkpoint there.
    :raises ValueError: a file is missing or changed since it was saved, or the card is unreadable,
        of another format or malformed (a field missing, of another kind, a task that is not one).
    """
    folder = Path(folder)
    card_path = folder / CARD_FILE
    if not card_path.is_file():
        raise FileNotFoundError(
            f"{folder}: not a controller checkpoint (no {CARD_FILE}); train one with `lrgym train TASK --out DIR`"
        )
    card = read_json(card_path, "a controller card (JSON)")
    if not isinstance(card, dict):
        raise ValueError(f"{card_path}: a card is a JSON object, got a {type(card).__name__}")
    if card.get("format") != CARD_FORMAT:
        found = card.get("format")
        hint = (" (a pickled controller from before lrgym acted without pickle: if you trust it, convert it with "
                "lrgym.checkpoints.upgrade.upgrade_checkpoint)" if found == 1 else "")
        raise ValueError(f"{card_path}: card format {found!r:.40}, this lrgym reads {CARD_FORMAT}{hint}")
    check_card(card, card_path)  # resuming also needs training_state: lrgym.resume checks it
    _check_card_task(card, card_path)
    files = card["files"]
    for role in roles:
        entry = files.get(role)
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{card_path}: the card names no {role} file" + (
                " (saved without training state: it can act, not resume)" if role in TRAINING_ROLES else ""))
        name = entry["name"]
        prefix, suffix = FILE_ROLES[role]
        if Path(name).name != name or not (name.startswith(prefix) and name.endswith(suffix)):
            raise ValueError(f"{card_path}: {role} file name {name!r} is not {prefix}TAG{suffix} in the folder")
        if not (folder / name).is_file():
            raise ValueError(f"{folder}: {name} is missing")
        if sha256(folder / name) != entry.get("sha256"):
            raise ValueError(
                f"{folder}: {name} changed since the checkpoint was saved (sha256 differs from card.json); "
                "refusing to load it"
            )
    return card


def _check_card_task(card: dict[str, Any], card_path: Path) -> None:
    """The card's task (and family) must be what this lrgym reads as one: every later use trusts it."""
    try:
        TaskSpec(**card["task"])
        if card.get("family") is not None:
            TaskFamily.from_dict(card["family"])
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ValueError(f"{card_path}: the card's task is not one this lrgym reads: {error}") from None


def card_file(folder: str | Path, card: dict[str, Any], role: str) -> Path:
    """The path of the checkpoint file of ``role`` (see :data:`FILE_ROLES`)."""
    return Path(folder) / card["files"][role]["name"]


def export_for_acting(folder: str | Path, out: str | Path) -> Path:
    """Copy what acting needs of checkpoint ``folder`` into the new folder ``out``: the card
    (listing only those files) and the weights and statistics; no SB3 pickle. How a trained
    run becomes a shipped controller in ``checkpoints/``.

    :raises ValueError: ``out`` exists, or a file of ``folder`` changed since it was saved.
    """
    folder, out = Path(folder), Path(out)
    if out.exists():
        raise ValueError(f"{out} exists: export into a new folder")
    card = read_card(folder, ACTING_ROLES)
    out.mkdir(parents=True)
    for role in ACTING_ROLES:
        shutil.copyfile(card_file(folder, card, role), out / card["files"][role]["name"])
    card["files"] = {role: card["files"][role] for role in ACTING_ROLES}
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return out


@dataclass
class ActingPolicy:
    """A controller loaded for acting: the SB3 policy, its frozen normalisation and its card."""

    policy: Any
    normalizer: ObservationNormalizer
    card: dict[str, Any]
    folder: Path

    @property
    def recurrent(self) -> bool:
        return self.card["agent"]["kind"] == "ppo-lstm"

    @property
    def task(self) -> TaskSpec:
        """The task the controller was trained on."""
        return TaskSpec(**self.card["task"])


def load_acting_policy(folder: str | Path, task: TaskSpec | None = None, device: str = "cpu") -> ActingPolicy:
    """Verify and load checkpoint ``folder`` for acting, without unpickling anything.

    :param task: the task it will act on; its space signature must match the card's.
    :param device: where the policy runs (a 32-unit policy is fastest on the CPU).
    """
    folder = Path(folder)
    card = read_card(folder, ACTING_ROLES)
    if task is not None:
        check_signature(card, task, folder)
    normalization_path = card_file(folder, card, "normalization")
    statistics = read_json(normalization_path, "observation statistics (JSON)")
    normalizer = ObservationNormalizer.from_json(statistics, normalization_path)
    try:
        algorithm = card_algorithm(card)
    except ValueError as error:
        raise ValueError(f"{folder / CARD_FILE}: {error}") from None
    policy = build_policy(card["policy"], algorithm, card_file(folder, card, "policy"), device=device,
                          where=folder / CARD_FILE)
    return ActingPolicy(policy=policy, normalizer=normalizer, card=card, folder=folder)


@dataclass
class TrainingState:
    """SB3's model and VecNormalize of a checkpoint, to continue training (``--resume``)."""

    model: Any
    vec_normalize: Any
    card: dict[str, Any]
    folder: Path


def load_training_state(folder: str | Path, task: TaskSpec, env: Any, device: str = "cpu") -> TrainingState:
    """Load SB3's pickled training state of checkpoint ``folder`` to continue training on ``env``.

    **This unpickles** ``model.TAG.zip`` and ``vecnormalize.TAG.pkl``: a crafted file runs
    code. The sha256 check only proves the files are the ones the card names; resume only
    runs you trust (your own). Acting never comes here (:func:`load_acting_policy`).

    :param env: the VecEnv to continue training on: the statistics wrap it and keep updating.
    """
    folder = Path(folder)
    card = read_card(folder, ACTING_ROLES + TRAINING_ROLES)
    check_signature(card, task, folder)
    with open(card_file(folder, card, "vecnormalize"), "rb") as handle:
        vec_normalize = pickle.load(handle)  # resume only: see the docstring
    vec_normalize.set_venv(env)
    cls = card_algorithm(card)
    model = cls.load(card_file(folder, card, "model"), env=vec_normalize, device=device)
    return TrainingState(model=model, vec_normalize=vec_normalize, card=card, folder=folder)
