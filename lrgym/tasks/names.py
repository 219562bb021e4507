"""Messages shared by every registry of names (tasks, agents, datasets, models, optimizers)."""

from __future__ import annotations


def unknown_name_error(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> ValueError:
    """The one error message for an unknown registry name: it lists the valid ones."""
    return ValueError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid))}")
