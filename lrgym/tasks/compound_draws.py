"""Compound distributions of a family spec: draws made of other draws.

:mod:`lrgym.tasks.family` draws plain values, choices, ranges and lists of i.i.d. draws.
Instance generators written by others (the DAC4SGD competition's ``DefaultSGDGenerator``,
``envs/dac4sgd-fashion-mnist.toml``) also draw *whether* to draw, different
distributions at different positions, and values through a transform. These tables
say so declaratively; each is recognised by its keys, and every ``D`` below is itself
any distribution (recursively):

- ``{ probability = p, then = D1, else = D2 }``: one uniform draw ``u``; ``D1`` when
  ``u < p``, else ``D2``. A branch that is a plain table (not a distribution) is drawn key
  by key, like a ``[model_kwargs.NAME]`` sub-table: several keys can share one coin
  (``optimizer_kwargs = { probability = 0.2, then = {...}, else = {...} }``);
- ``{ items = [D1, D2, ...] }``: a list with one draw of each item, in order (a list
  whose positions have different distributions: Adam's two betas, a CNN's per-layer widths);
- ``{ one_minus = D }``: ``1 - D`` (Adam's ``betas`` from ``1 - beta`` drawn log-uniformly);
- ``{ base = b, exponent = D }``: ``b ** D`` (a batch size ``2 ** k``); integers stay integers;
- ``{ choose = [D1, D2, ...], weights = [w1, w2, ...] }``: one item, item ``i`` with
  probability ``w_i / sum(w)`` (weights need not sum to 1), then drawn.

And one option of the integer range (``{low, high, integer = true}``):
``rounding = "nearest"`` draws a real number uniformly (log-uniformly with ``log = true``)
on ``[low - 1/2, high + 1/2]`` and rounds it to the nearest integer, which is how
ConfigSpace's ``UniformIntegerHyperparameter`` samples (``lower - 0.49999`` to
``upper + 0.49999``, then rounded); the default ``rounding = "floor"`` takes the integer
part of a draw on ``[low, high + 1)``, which is what ``int(np.exp(rng.uniform(log a, log b)))``
in hand-written generators does.

All draws come from the field's one stream (:func:`lrgym.tasks.family.field_stream`), in
the order written, so an instance stays a pure function of (family, index).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

COMPOUND_KINDS = {
    "probability": ({"probability", "then", "else"}, {"probability", "then", "else"}),
    "items": ({"items"}, {"items"}),
    "one_minus": ({"one_minus"}, {"one_minus"}),
    "power": ({"base", "exponent"}, {"base", "exponent"}),
    "weighted": ({"choose", "weights"}, {"choose", "weights"}),
}  # kind -> (allowed keys, required keys)
ROUNDINGS = ("floor", "nearest")

Draw = Callable[[Any, np.random.Generator], Any]


def compound_kind(value: Any) -> str | None:
    """The kind of compound distribution ``value`` is (a key of :data:`COMPOUND_KINDS`), or ``None``."""
    if not isinstance(value, Mapping):
        return None
    for kind, (allowed, required) in COMPOUND_KINDS.items():
        if required <= set(value) <= allowed:
            return kind
    return None


def check_compound(value: Mapping[str, Any], where: str, check: Callable[[Any, str], None],
                   is_distribution: Callable[[Any], bool]) -> None:
    """Refuse a malformed compound distribution (``check`` checks the distributions inside it)."""
    kind = compound_kind(value)
    if kind == "probability":
        p = value["probability"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"{where}: probability must be a number in [0, 1], got {p!r}")
        for branch in ("then", "else"):
            _check_branch(value[branch], f"{where}.{branch}", check, is_distribution)
    elif kind == "items":
        if not isinstance(value["items"], list):
            raise ValueError(f"{where}: items must be a list of distributions, got {value['items']!r}")
        for position, item in enumerate(value["items"]):
            check(item, f"{where}.items[{position}]")
    elif kind == "one_minus":
        check(value["one_minus"], f"{where}.one_minus")
    elif kind == "power":
        if isinstance(value["base"], bool) or not isinstance(value["base"], (int, float)) or value["base"] <= 0:
            raise ValueError(f"{where}: base must be a number > 0, got {value['base']!r}")
        check(value["exponent"], f"{where}.exponent")
    elif kind == "weighted":
        _check_weights(value, where)
        for position, item in enumerate(value["choose"]):
            check(item, f"{where}.choose[{position}]")


def _check_branch(branch: Any, where: str, check: Callable[[Any, str], None],
                  is_distribution: Callable[[Any], bool]) -> None:
    if isinstance(branch, Mapping) and not is_distribution(branch):
        for name, sub in branch.items():
            check(sub, f"{where}.{name}")
    else:
        check(branch, where)


def _check_weights(value: Mapping[str, Any], where: str) -> None:
    choose, weights = value["choose"], value["weights"]
    if not isinstance(choose, list) or not choose:
        raise ValueError(f"{where}: choose must be a non-empty list, got {choose!r}")
    if not isinstance(weights, list) or len(weights) != len(choose):
        raise ValueError(f"{where}: weights must be a list of {len(choose)} numbers (one per choice), got {weights!r}")
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"{where}: weights must be finite numbers >= 0, got {weights!r}")
    if sum(weights) <= 0:
        raise ValueError(f"{where}: at least one weight must be > 0, got {weights!r}")


def check_rounding(value: Mapping[str, Any], where: str) -> None:
    """Refuse a ``rounding`` other than :data:`ROUNDINGS`, or one on a range that is not integer."""
    rounding = value.get("rounding", "floor")
    if rounding not in ROUNDINGS:
        raise ValueError(f"{where}: rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    if "rounding" in value and not value.get("integer"):
        raise ValueError(f"{where}: rounding applies to integer ranges only (add integer = true)")


def nearest_integer(low: float, high: float, log: bool, rng: np.random.Generator) -> int:
    """An integer in ``[low, high]``: a (log-)uniform real on ``[low - 1/2, high + 1/2]``, rounded.

    ConfigSpace's bounds are ``lower - 0.49999`` and ``upper + 0.49999`` (never rounding
    outside the range); the clamp below does the same for the end points.
    """
    lower, upper = low - 0.5, high + 0.5
    if log:
        value = math.exp(rng.uniform(math.log(max(lower, 1e-12)), math.log(upper)))
    else:
        value = rng.uniform(lower, upper)
    return int(min(max(round(value), low), high))


def draw_compound(value: Mapping[str, Any], rng: np.random.Generator, draw: Draw,
                  is_distribution: Callable[[Any], bool]) -> Any:
    """One value of compound distribution ``value`` (``draw`` draws the distributions inside it)."""
    kind = compound_kind(value)
    if kind == "probability":
        branch = value["then"] if rng.uniform() < value["probability"] else value["else"]
        if isinstance(branch, Mapping) and not is_distribution(branch):
            return {name: draw(sub, rng) for name, sub in branch.items()}
        return draw(branch, rng)
    if kind == "items":
        return [draw(item, rng) for item in value["items"]]
    if kind == "one_minus":
        return 1 - draw(value["one_minus"], rng)
    if kind == "power":
        return value["base"] ** draw(value["exponent"], rng)  # int ** int >= 0 stays an int
    weights = np.asarray(value["weights"], dtype=np.float64)
    position = int(rng.choice(len(weights), p=weights / weights.sum()))
    return draw(value["choose"][position], rng)


def describe_compound(value: Mapping[str, Any], describe: Callable[[Any], str]) -> str:
    """A compound distribution in one short line (``lrgym list``)."""
    kind = compound_kind(value)
    if kind == "probability":
        return f"p={value['probability']:g}: {describe(value['then'])} else {describe(value['else'])}"
    if kind == "items":
        return "[" + ", ".join(describe(item) for item in value["items"]) + "]"
    if kind == "one_minus":
        return f"1 - ({describe(value['one_minus'])})"
    if kind == "power":
        return f"{value['base']:g}^({describe(value['exponent'])})"
    total = sum(value["weights"])
    return " | ".join(f"{describe(item)} ({weight / total:.3g})"
                      for item, weight in zip(value["choose"], value["weights"], strict=True))

