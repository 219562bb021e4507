"""Every way to run many envs at once behind SB3's ``VecEnv`` (and Gymnasium's ``VectorEnv``):
populations in one process or several (of one task, or of a family's drawn
instances), Ray actors (loaded only with the ray backend), and
:func:`make_training_env`, the one function that chooses among them."""

from __future__ import annotations

from lrgym.vec_env.family_population import FamilyPopulationVecEnv
from lrgym.vec_env.population_gymnasium import PopulationVectorEnv
from lrgym.vec_env.population_sb3 import PopulationVecEnv
from lrgym.vec_env.subproc_population import SubprocPopulationVecEnv
from lrgym.vec_env.training import make_training_env, make_vec_env

__all__ = [
    'FamilyPopulationVecEnv', 'PopulationVecEnv', 'PopulationVectorEnv', 'SubprocPopulationVecEnv',
    'make_training_env', 'make_vec_env',
]
