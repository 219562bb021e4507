"""The network being trained: data, models (one registry each, plug-ins included), one trainee, a
population of stacked trainees, the measurements the state is built from, and optimizers over
stacked parameters."""

from __future__ import annotations

from lrgym.trainee.data import DataNotFoundError, Dataset, load_dataset, register_dataset
from lrgym.trainee.features import Measurement, ScaleFreeFeatures
from lrgym.trainee.models import build_model, register_model
from lrgym.trainee.population import PopulationTrainee
from lrgym.trainee.single import Trainee

__all__ = [
    'DataNotFoundError',
    'Dataset',
    'Measurement',
    'PopulationTrainee',
    'ScaleFreeFeatures',
    'Trainee',
    'build_model',
    'load_dataset',
    'register_dataset',
    'register_model',
]
