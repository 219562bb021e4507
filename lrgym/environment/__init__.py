"""The Gymnasium environments: :class:`LRControlEnv` (one trainee), the episode rules they
share, the family env (a task drawn per episode) and the population env (N trainees in lock-step)."""

from __future__ import annotations

from lrgym.environment.episode import EpisodeTracker
from lrgym.environment.family_env import FamilyEnv
from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.environment.population_env import PopulationEnv

__all__ = ['EpisodeTracker', 'FamilyEnv', 'LRControlEnv', 'PopulationEnv']
