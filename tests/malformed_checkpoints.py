"""A folder of malformed controller checkpoints, made from a shipped one (tests/test_malformed_checkpoints.py).

Each case is a copy of the controller with one thing wrong: a corrupt, truncated or
hostile weights file, a pickle or zip in the place of each file, a card with a field
removed or an absurd architecture. Where a file is replaced, the card's sha256 is updated
to match (a hash beside the files is no signature): what must refuse the file is the
check of its content. A pickle put anywhere creates ``CANARY`` if it is ever unpickled.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parents[1] / "checkpoints" / "mnist1d-mlp-ppo"
CANARY = "UNPICKLED"


class _Hostile:
    """Unpickling this creates the canary file next to the checkpoint cases."""

    def __init__(self, canary: Path) -> None:
        self.canary = str(canary)

    def __reduce__(self):
        return open, (self.canary, "w")


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.pkl", b"not a policy")
    return buffer.getvalue()


def _header(raw: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def _with_header(header: dict[str, Any], data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _first_tensor(raw: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    header, data = _header(raw)
    change(header[next(name for name in sorted(header) if name != "__metadata__")])
    return _with_header(header, data)


# case name -> (slot, new content from the original bytes and the canary path) for file cases
FILE_CASES: dict[str, tuple[str, Callable[[bytes, Path], bytes]]] = {
    "weights-corrupt-header": ("policy", lambda raw, _: raw[:8] + b"\xff\xfe" * 200 + raw[408:]),
    "weights-header-2^63-1": ("policy", lambda raw, _: struct.pack("<Q", 2**63 - 1) + raw[8:]),
    "weights-header-99MB": ("policy", lambda raw, _: struct.pack("<Q", 99 << 20) + raw[8:]),
    "weights-huge-shape": ("policy", lambda raw, _: _first_tensor(raw, lambda t: t.update(shape=[10**6, 10**6]))),
    "weights-huge-offsets": ("policy", lambda raw, _: _first_tensor(raw, lambda t: t.update(data_offsets=[0, 2**62]))),
    "weights-integer-dtype": ("policy", lambda raw, _: _first_tensor(raw, lambda t: t.update(dtype="I32"))),
    "weights-truncated": ("policy", lambda raw, _: raw[: len(raw) // 2]),
    "weights-empty": ("policy", lambda raw, _: b""),
    "weights-pickle": ("policy", lambda raw, canary: pickle.dumps(_Hostile(canary))),
    "weights-zip": ("policy", lambda raw, _: _zip_bytes()),
    "normalization-pickle": ("normalization", lambda raw, canary: pickle.dumps(_Hostile(canary))),
    "normalization-zip": ("normalization", lambda raw, _: _zip_bytes()),
    "normalization-nested-100000": ("normalization", lambda raw, _: b"[" * 100_000 + b"]" * 100_000),
    "normalization-truncated": ("normalization", lambda raw, _: raw[: len(raw) // 2]),
    "normalization-empty": ("normalization", lambda raw, _: b""),
    "normalization-a-list": ("normalization", lambda raw, _: b"[1, 2, 3]"),
    "card-pickle": ("card", lambda raw, canary: pickle.dumps(_Hostile(canary))),
    "card-zip": ("card", lambda raw, _: _zip_bytes()),
    "card-nested-100000": ("card", lambda raw, _: b'{"a": ' * 100_000 + b"1" + b"}" * 100_000),
    "card-truncated": ("card", lambda raw, _: raw[: len(raw) // 2]),
    "card-empty": ("card", lambda raw, _: b""),
    "card-a-list": ("card", lambda raw, _: b"[1, 2, 3]"),
}


def _remove(dotted: str) -> Callable[[dict[str, Any]], None]:
    def change(card: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        for key in parents:
            card = card[key]
        del card[last]
    return change


def _set(dotted: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(card: dict[str, Any]) -> None:
        *parents, last = dotted.split(".")
        for key in parents:
            card = card[key]
        card[last] = copy.deepcopy(value)
    return change


STEP_LR = {"scheduler": "StepLR", "initial_lr": 0.01}
# case name -> a change of the card (the files stay as they are)
CARD_CASES: dict[str, Callable[[dict[str, Any]], None]] = {
    **{f"card-without-{field}": _remove(field) for field in (
        "format", "files", "task", "task.name", "agent", "agent.kind", "signature", "signature.action",
        "signature.features", "policy", "policy.name", "policy.observation_space", "policy.action_space",
    )},
    "card-files-a-list": _set("files", ["policy.safetensors"]),
    "card-net-arch-1e6": _set("policy.kwargs.net_arch", [1e6, 1e6]),
    "card-net-arch-20000": _set("policy.kwargs.net_arch", [20000, 20000]),
    "card-net-arch-10^12": _set("policy.kwargs.net_arch", [10**12]),
    "card-net-arch-0": _set("policy.kwargs.net_arch", [0]),
    "card-net-arch-text": _set("policy.kwargs.net_arch", "big"),
    "card-unknown-policy-option": _set("policy.kwargs.no_such_option", 1),
    "card-lstm-of-10^6": lambda card: [change(card) for change in (
        _set("agent.kind", "ppo-lstm"), _set("policy.name", "MlpLstmPolicy"),
        _set("policy.kwargs.lstm_hidden_size", 10**6))],
    "card-observation-shape-10^9": _set("policy.observation_space.shape", [10**9]),
    "card-observation-shape-text": _set("policy.observation_space.shape", ["8"]),
    "card-unknown-space": _set("policy.action_space", {"type": "Dict"}),
    "card-unknown-agent-kind": _set("agent.kind", "dqn"),
    "card-base-schedule-step-size-0": _set("task.base_schedule", {**STEP_LR, "kwargs": {"step_size": 0, "gamma": 0.9}}),
    "card-base-schedule-gamma-nan": _set("task.base_schedule", {**STEP_LR, "kwargs": {"step_size": 2, "gamma": "nan"}}),
    "card-task-unknown-field": _set("task.no_such_field", 1),
    "card-task-steps-text": _set("task.steps", "many"),
    "card-file-outside": _set("files.policy.name", "../policy.safetensors"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_cases(folder: Path, source: Path = SOURCE) -> dict[str, Path]:
    """Every malformed case as a checkpoint folder under ``folder``; the canary is ``folder / CANARY``."""
    cases = {}
    canary = folder / CANARY
    for name, (slot, content) in FILE_CASES.items():
        case = cases[name] = folder / name
        shutil.copytree(source, case)
        card = json.loads((case / "card.json").read_text())
        target = case / ("card.json" if slot == "card" else card["files"][slot]["name"])
        target.write_bytes(content(target.read_bytes(), canary))
        if slot != "card":
            card["files"][slot]["sha256"] = _sha256(target)
            (case / "card.json").write_text(json.dumps(card, indent=2))
    for name, change in CARD_CASES.items():
        case = cases[name] = folder / name
        shutil.copytree(source, case)
        card = json.loads((case / "card.json").read_text())
        change(card)
        (case / "card.json").write_text(json.dumps(card, indent=2))
    return cases
