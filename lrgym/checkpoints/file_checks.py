"""Checks of a controller's files before anything is built from them: malformed, not only changed.

The sha256 in the card (:mod:`lrgym.checkpoints.checkpoint`) catches a file changed by
accident; it proves nothing about a file that was *written* malformed, since whoever
writes the folder writes the hash too. These checks make every malformed file a one-line
``ValueError`` that names the file and what is wrong, with bounded memory and time:

- :func:`read_json`: a JSON file (the card, the normalisation statistics) no larger than
  :data:`MAX_JSON_BYTES`, UTF-8 (a pickle put in its place is named as such), nesting
  too deep for the parser refused rather than a ``RecursionError``;
- :func:`safetensors_shapes`: the header of a weights file, read by hand (8 bytes of
  length, then at most :data:`MAX_HEADER_BYTES` of JSON) and checked against the file's
  size, so that a corrupt header, a pickle or zip put in its place, or a header declaring
  huge shapes or offsets is refused before safetensors or torch allocate anything;
- :func:`check_card`: the fields acting reads, each of the expected kind.

Hand-written rather than left to ``safetensors``: its errors are tracebacks without the
file's name, and its own header limit (100 MB) is far above what a controller needs.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 16 << 20  # a card or statistics file is a few kB; 16 MiB is room for any real one
MAX_HEADER_BYTES = 1 << 20  # a policy's safetensors header lists ~20 tensors in ~2 kB
# safetensors dtype -> bytes per element: a policy's weights are floating point
FLOAT_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}
PICKLE_START = b"\x80"  # the PROTO opcode every pickle since protocol 2 begins with
ZIP_START = b"PK\x03\x04"


def _what_it_is(head: bytes) -> str:
    """A guess at what a file that is not what it should be is, from its first bytes."""
    if head.startswith(PICKLE_START):
        return " (it looks like a pickle)"
    if head.startswith(ZIP_START):
        return " (it looks like a zip archive, e.g. SB3's model.zip)"
    return ""


def parse_json(raw: bytes, where: str | Path, what: str = "JSON") -> Any:
    """``raw`` as JSON, refused with one line naming ``where`` when it is not UTF-8 JSON (nesting
    deeper than Python's recursion limit included: ``json`` raises ``RecursionError`` for it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not {what}: not UTF-8 text{_what_it_is(raw[:4])}") from None
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{where}: not {what}: {error}") from None


def read_json(path: Path, what: str = "JSON") -> Any:
    """The JSON file ``path``, refused (``ValueError`` naming it) when too large, not text or malformed."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{path}: {size} bytes is too large for {what} (at most {MAX_JSON_BYTES})")
    return parse_json(path.read_bytes(), path, what)


# ---------------------------------------------------------------------------- safetensors
def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes the safetensors file ``path`` holds, after checking its header.

    :raises ValueError: naming the file: too short, a header length beyond the file or
        beyond :data:`MAX_HEADER_BYTES`, a header that is not a JSON table of tensors, a
        dtype that is not floating point, a shape or offsets that do not fit the file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file ({size} bytes, shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES or length > size - 8:
            raise ValueError(
                f"{path}: not a safetensors file of policy weights: its header declares {length} bytes "
                f"(the file has {size}, a policy's header is at most {MAX_HEADER_BYTES}){_what_it_is(head)}"
            )
        header = parse_json(handle.read(length), path, "a safetensors header")
    if not isinstance(header, dict):
        raise ValueError(f"{path}: a safetensors header is a JSON object, got {type(header).__name__}")
    data_bytes = size - 8 - length
    return {name: _tensor_shape(path, name, entry, data_bytes)
            for name, entry in header.items() if name != "__metadata__"}


def _tensor_shape(path: Path, name: str, entry: Any, data_bytes: int) -> tuple[int, ...]:
    where = f"{path}: tensor {name!r}"
    if not isinstance(entry, Mapping) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise ValueError(f"{where}: needs dtype, shape and data_offsets, got {entry!r:.80}")
    if entry["dtype"] not in FLOAT_DTYPES:
        raise ValueError(f"{where}: dtype {entry['dtype']!r:.20} is not one of {', '.join(FLOAT_DTYPES)}")
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not isinstance(shape, list) or not all(_is_count(size) for size in shape):
        raise ValueError(f"{where}: shape must be a list of sizes >= 0, got {shape!r:.80}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(offset) for offset in offsets)
            and offsets[0] <= offsets[1] <= data_bytes):
        raise ValueError(f"{where}: data_offsets {offsets!r:.80} do not lie within the file's {data_bytes} data bytes")
    declared = math.prod(shape) * FLOAT_DTYPES[entry["dtype"]]
    if declared != offsets[1] - offsets[0]:
        raise ValueError(f"{where}: shape {shape} needs {declared} bytes, its offsets span {offsets[1] - offsets[0]}")
    return tuple(shape)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ---------------------------------------------------------------------------- the card
# field (nested ones dotted) -> the kind of value it must hold
CARD_FIELDS: dict[str, type] = {
    "task": dict, "task.name": str, "agent": dict, "agent.kind": str,
    "signature": dict, "signature.action": str, "signature.features": list,
    "policy": dict, "policy.name": str, "policy.observation_space": dict, "policy.action_space": dict,
    "files": dict,
}


def check_card(card: Any, path: Path) -> None:
    """Refuse a card that lacks a field acting reads, or holds one of another kind, naming the
    card file and the field (resuming also reads ``training_state``: :mod:`lrgym.resume` checks it)."""
    for dotted, kind in CARD_FIELDS.items():
        value: Any = card
        for key in dotted.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            raise ValueError(f"{path}: the card has no {dotted} (a controller card names it)")
        if not isinstance(value, kind):
            raise ValueError(f"{path}: the card's {dotted} must be a {_KIND_NAMES[kind]}, got {type(value).__name__}")


_KIND_NAMES = {dict: "table", str: "string", list: "list"}
