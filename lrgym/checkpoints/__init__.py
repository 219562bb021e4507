"""Controller checkpoints: the card, the policy files acting reads without unpickling, and
the upgrade of older folders."""

from __future__ import annotations

from lrgym.checkpoints.checkpoint import ActingPolicy, load_acting_policy, read_card, save_checkpoint

__all__ = ['ActingPolicy', 'load_acting_policy', 'read_card', 'save_checkpoint']
