"""The Gymnasium environments: :class:`LRControlEnv` (one trainee), the episode rules they
share, the family env (a task drawn per episode), the population env (N trainees in lock-step)
and the family population env (one drawn instance with N seeds at a time)."""

from __future__ import annotations

from lrgym.environment.episode import EpisodeTracker
from lrgym.environment.family_env import FamilyEnv
from lrgym.environment.family_population_env import FamilyPopulationEnv
from lrgym.environment.lr_control_env import LRControlEnv
from lrgym.environment.population_env import PopulationEnv

__all__ = ['EpisodeTracker', 'FamilyEnv', 'FamilyPopulationEnv', 'LRControlEnv', 'PopulationEnv']
