"""Checks of a family spec's values (:mod:`lrgym.tasks.family`): ranges, instance bounds, family keys.

Each check names the family and the key, shows the value and says what is allowed, as
:mod:`lrgym.tasks.spec_checks` does for task fields; nothing is coerced (a bound of 10.7
is refused, not truncated to 10; ``decisions = 1.5`` is refused, not run as 1).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Integer ranges are drawn by numpy in int64 and their bounds may arrive as floats (1e3):
# whole numbers up to 2**53 are exact in both.
MAX_INTEGER_BOUND = 2**53


def _shown(value: Any) -> str:
    return f"{value!r:.60} ({type(value).__name__})"


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_range(value: Mapping[str, Any], where: str) -> None:
    """Refuse a range table ``{low, high, log, integer}`` whose bounds are not finite numbers
    with ``low <= high`` (``low > 0`` when ``log``; whole numbers within +-2**53 when ``integer``)."""
    for flag in ("log", "integer"):
        if not isinstance(value.get(flag, False), bool):
            raise ValueError(f"{where}.{flag} must be true or false, got {_shown(value[flag])}")
    for key in ("low", "high"):
        bound = value[key]
        if isinstance(bound, bool) or not isinstance(bound, numbers.Real):
            raise ValueError(f"{where}.{key} must be a number, got {_shown(bound)}")
        if not math.isfinite(bound):
            raise ValueError(f"{where}.{key} must be finite, got {bound}")
        if value.get("integer") and (bound != math.floor(bound) or abs(bound) > MAX_INTEGER_BOUND):
            raise ValueError(
                f"{where}.{key} of an integer range must be a whole number within +-2**53, got {bound!r}"
            )
    if value["low"] > value["high"]:
        raise ValueError(f"{where}: a range needs low <= high, got low={value['low']!r} and high={value['high']!r}")
    if value.get("log") and value["low"] <= 0:
        raise ValueError(f"{where}: a log range needs low > 0, got {value['low']}")


def instance_ranges(family: str, instances: Mapping[str, Any], splits: Sequence[str]) -> dict[str, tuple[int, int]]:
    """``[instances]`` as split -> ``(start, stop)``: exactly ``splits``, each two integers
    with ``0 <= start < stop`` (a bound of 10.7 or "10" is refused, not truncated)."""
    if set(instances) != set(splits):
        raise ValueError(
            f"family {family!r}: [instances] needs exactly {', '.join(splits)}, got {sorted(instances)}"
        )
    ranges = {}
    for split in splits:
        bounds = instances[split]
        if not (isinstance(bounds, Sequence) and not isinstance(bounds, str) and len(bounds) == 2
                and all(_is_integer(bound) for bound in bounds) and 0 <= bounds[0] < bounds[1]):
            raise ValueError(
                f"family {family!r}: instances.{split} must be [start, stop) with integers "
                f"0 <= start < stop, e.g. [0, 1000], got {_shown(bounds)}"
            )
        ranges[split] = (int(bounds[0]), int(bounds[1]))
    return ranges


def decisions(family: str, value: Any) -> int:
    """A drawn or given ``decisions``: an integer >= 1 (``1.5`` is refused, not run as 1)."""
    if not _is_integer(value) or value < 1:
        raise ValueError(f"family {family!r}: decisions must be an integer >= 1, got {_shown(value)}")
    return int(value)


def instance_positions(text: str, amount: str, available: int, where: str) -> tuple[int, int]:
    """``--instances SPLIT:N`` or ``SPLIT:FIRST-LAST`` as the first and last position in the split.

    :param text: the whole option value (for the message).
    :param amount: what follows ``SPLIT:``.
    :param available: the instances the split holds.
    :param where: the split, in words (``the test split of 'mnist1d-family'``).
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", amount)
    if match is None:
        raise ValueError(
            f"--instances {text!r}: give N (how many instances, >= 1) or FIRST-LAST (positions "
            f"0..{available - 1} of {where}), got {amount!r}"
        )
    if match[2] is None:
        first, last = 0, int(match[1]) - 1
        if last < 0:
            raise ValueError(f"--instances {text!r}: N (how many instances) must be >= 1, got 0")
    else:
        first, last = int(match[1]), int(match[2])
    if not first <= last < available:
        raise ValueError(
            f"--instances {text!r}: {where} has {available} instance(s) (positions 0..{available - 1})"
            + (f"; FIRST {first} is after LAST {last}" if first > last else "")
        )
    return first, last
