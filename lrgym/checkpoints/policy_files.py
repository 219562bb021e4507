"""The files a controller acts from, none of them a pickle: weights, normalisation statistics, architecture.

A controller checkpoint (:mod:`lrgym.checkpoints.checkpoint`) keeps what *acting* needs in plain
data that loading cannot turn into code:

- ``policy.<tag>.safetensors``: the SB3 policy's ``state_dict`` (safetensors holds
  tensors and nothing else);
- ``normalization.<tag>.json``: the ``VecNormalize`` statistics the policy was trained
  behind (observation mean, variance and count, ``clip_obs``, ``epsilon``, the flags);
- the card's ``policy`` entry: the SB3 policy alias (``MlpPolicy``, ``MlpLstmPolicy``),
  its JSON keyword arguments and the observation and action spaces.

:func:`build_policy` rebuilds the SB3 policy from those and loads the weights, so
``ppo:PATH``, :class:`lrgym.controller.LRController` and ``lrgym transfer`` never
unpickle anything. SB3's own ``model.zip`` and ``vecnormalize.pkl`` (cloudpickle) stay
beside them only for ``lrgym train --resume``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from lrgym.checkpoints.file_checks import safetensors_shapes


@dataclass(frozen=True)
class ObservationNormalizer:
    """VecNormalize's observation normalisation, frozen, as plain numbers.

    :param mean: running mean of each observation feature.
    :param var: running variance of each feature.
    :param count: observations the statistics were computed from.
    :param clip_obs: normalised observations are clipped to ``[-clip_obs, clip_obs]``.
    :param epsilon: added to the variance before the square root.
    :param norm_obs: normalise observations at all (VecNormalize's flag).
    :param norm_reward: rewards were normalised in training (kept for the record).
    """

    mean: np.ndarray
    var: np.ndarray
    count: float
    clip_obs: float
    epsilon: float
    norm_obs: bool = True
    norm_reward: bool = True

    @classmethod
    def from_vec_normalize(cls, vec_normalize: Any) -> ObservationNormalizer:
        """The current statistics of an SB3 ``VecNormalize`` (copied: later updates do not leak in)."""
        return cls(
            mean=np.array(vec_normalize.obs_rms.mean, dtype=np.float64),
            var=np.array(vec_normalize.obs_rms.var, dtype=np.float64),
            count=float(vec_normalize.obs_rms.count),
            clip_obs=float(vec_normalize.clip_obs),
            epsilon=float(vec_normalize.epsilon),
            norm_obs=bool(vec_normalize.norm_obs),
            norm_reward=bool(vec_normalize.norm_reward),
        )

    def normalize_obs(self, observations: np.ndarray) -> np.ndarray:
        """What ``VecNormalize.normalize_obs`` returns for a batch of observations.

        Hand-written because VecNormalize cannot exist without an environment to wrap;
        the formula is SB3's ``VecNormalize._normalize_obs``, cast to float32 as it does.
        """
        observations = np.asarray(observations)
        if observations.shape[-1:] != self.mean.shape:
            raise ValueError(
                f"observation of shape {observations.shape[-1:]} given to a controller normalising {self.mean.shape}"
            )
        if not self.norm_obs:
            return observations
        normalized = (observations - self.mean) / np.sqrt(self.var + self.epsilon)
        return np.clip(normalized, -self.clip_obs, self.clip_obs).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        # float64 -> JSON -> float64 is exact (Python writes the shortest repr that reads back).
        return {
            "mean": [float(value) for value in self.mean],
            "var": [float(value) for value in self.var],
            "count": self.count,
            "clip_obs": self.clip_obs,
            "epsilon": self.epsilon,
            "norm_obs": self.norm_obs,
            "norm_reward": self.norm_reward,
        }

    @classmethod
    def from_json(cls, data: Any, where: str | Path = "normalization") -> ObservationNormalizer:
        """Read :meth:`to_json`'s output back, refusing anything but the expected plain numbers."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
        missing = sorted({"mean", "var", "count", "clip_obs", "epsilon", "norm_obs"} - set(data))
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)}")
        mean, var = (_finite_vector(data[key], f"{where}: {key}") for key in ("mean", "var"))
        if mean.shape != var.shape or (var < 0).any():
            raise ValueError(f"{where}: mean and var must have the same length and var be >= 0")
        numbers = {key: _finite_number(data[key], f"{where}: {key}") for key in ("count", "clip_obs", "epsilon")}
        if numbers["clip_obs"] <= 0 or numbers["epsilon"] < 0:
            raise ValueError(f"{where}: clip_obs must be > 0 and epsilon >= 0")
        flags = {key: data.get(key, True) for key in ("norm_obs", "norm_reward")}
        if not all(isinstance(flag, bool) for flag in flags.values()):
            raise ValueError(f"{where}: norm_obs and norm_reward must be true or false")
        return cls(mean=mean, var=var, **numbers, **flags)


def _finite_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return float(value)


def _finite_vector(value: Any, where: str) -> np.ndarray:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list of numbers, got {type(value).__name__}")
    return np.array([_finite_number(item, where) for item in value], dtype=np.float64)


# ---------------------------------------------------------------------------- spaces as JSON
def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A ``Box`` or ``Discrete`` space as plain JSON (the only kinds an lrgym env has)."""
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": space.low.reshape(-1).tolist(), "high": space.high.reshape(-1).tolist()}
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    raise ValueError(f"cannot save a controller for a {type(space).__name__} space (Box or Discrete only)")


def space_from_json(data: Any, where: str | Path = "card") -> spaces.Space:
    """The space :func:`space_to_json` wrote; anything else is a ``ValueError`` naming ``where``."""
    kind = data.get("type") if isinstance(data, dict) else None
    try:
        if kind == "Box":
            if data.get("dtype") not in ("float32", "float64"):
                raise ValueError(f"Box dtype must be float32 or float64, got {data.get('dtype')!r:.40}")
            shape = data["shape"]
            if not (isinstance(shape, list) and all(_is_size(size) for size in shape)):
                raise ValueError(f"Box shape must be a list of sizes >= 1, got {shape!r:.80}")
            # low and high must list one number per element: their length bounds the shape's size
            low, high = (np.array(data[key], dtype=data["dtype"]).reshape(shape) for key in ("low", "high"))
            return spaces.Box(low=low, high=high, shape=tuple(shape), dtype=data["dtype"])
        if kind == "Discrete":
            if not _is_size(data.get("n")) or not isinstance(data.get("start", 0), int):
                raise ValueError(f"Discrete needs an integer n >= 1 and an integer start, got {data!r:.80}")
            return spaces.Discrete(data["n"], start=data.get("start", 0))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{where}: malformed {kind} space: {error}") from None
    raise ValueError(f"{where}: unknown space {data!r:.80} (Box or Discrete)")


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# ---------------------------------------------------------------------------- policy
def policy_facts(model: Any) -> dict[str, Any]:
    """What :func:`build_policy` needs to rebuild ``model.policy``, as the card's ``policy`` entry.

    :raises ValueError: the policy is not one of the algorithm's named policies, or its
        keyword arguments are not plain JSON (a class, a function).
    """
    aliases = {cls: name for name, cls in type(model).policy_aliases.items()}
    if type(model.policy) not in aliases:
        raise ValueError(f"{type(model.policy).__name__} is not one of {type(model).__name__}'s named policies")
    try:
        kwargs = json.loads(json.dumps(model.policy_kwargs, allow_nan=False))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"policy_kwargs {model.policy_kwargs!r} are not plain JSON ({error}): a controller is saved "
            "without pickle, so its architecture must be numbers, strings, lists and tables"
        ) from error
    return {
        "name": aliases[type(model.policy)],
        "kwargs": kwargs,
        "use_sde": bool(model.use_sde),
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
    }


def save_policy_weights(policy: Any, path: Path) -> None:
    """The policy's ``state_dict`` as safetensors (tied tensors handled by ``save_model``)."""
    from safetensors.torch import save_model

    save_model(policy, str(path))


def build_policy(
    facts: dict[str, Any], algorithm: type, weights: Path, device: str = "cpu", where: str | Path = "card"
) -> Any:
    """The SB3 policy described by ``facts`` (:func:`policy_facts`) with the weights of ``weights``.

    The architecture is first built on torch's ``meta`` device (no memory) and its tensor
    shapes compared with the weights file's header: a card whose ``net_arch`` is
    ``[1e6, 1e6]`` is refused before 4 TB are asked for, and the real network built after
    is never larger than the weights file.

    :param algorithm: the SB3 class that trained it (its ``policy_aliases`` name the policy class).
    :param where: the card, named in the errors about it.
    :raises ValueError: an unknown policy name, keyword arguments it does not take, a
        malformed weights file, or weights that do not fit the architecture.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    name = facts.get("name")
    if name not in algorithm.policy_aliases:
        raise ValueError(f"{where}: policy {name!r:.40} is not one of {', '.join(algorithm.policy_aliases)}")
    kwargs = facts.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ValueError(f"{where}: policy kwargs must be a table, got {kwargs!r:.80}")
    kwargs = {key: value for key, value in kwargs.items() if key != "use_sde"}  # off-policy SB3 keeps it there
    spaces_of = [space_from_json(facts[key], f"{where}: policy.{key}") for key in ("observation_space", "action_space")]
    policy_class = algorithm.policy_aliases[name]
    arguments = (*spaces_of, lambda _: 0.0)  # the learning rate of an optimizer that acting never steps
    options = {"use_sde": bool(facts.get("use_sde", False)), **kwargs}
    described = f"the {name} that {where} describes"
    expected = _architecture_shapes(policy_class, arguments, options, f"{where}: policy kwargs {options!r:.120} "
                                                                      f"do not fit {name}")
    _check_weight_shapes(expected, safetensors_shapes(weights), weights, described)
    policy = policy_class(*arguments, **options)
    try:
        load_model(policy, str(weights), strict=True)
    except (RuntimeError, SafetensorError) as error:
        raise ValueError(f"{weights}: the weights do not fit {described}: {error}") from None
    from stable_baselines3.common.utils import get_device

    policy.set_training_mode(False)
    return policy.to(get_device(device))  # "auto": the GPU when there is one, as SB3 decides


def _architecture_shapes(
    policy_class: type, arguments: tuple[Any, ...], options: dict[str, Any], refusal: str
) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of the policy ``policy_class(*arguments, **options)``, built on the meta device.

    SB3 moves sub-networks to the policy's ``device`` (the CPU when it has no parameters
    yet), and a meta tensor cannot be copied there: a subclass that says it is on the meta
    device keeps every tensor there.

    :param refusal: the start of the error when they do not build a policy.
    """
    import warnings

    import torch

    on_meta = type(f"Meta{policy_class.__name__}", (policy_class,),
                   {"device": property(lambda self: torch.device("meta"))})
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on zero-sized layers: refused below, not warned
            return {key: tuple(value.shape) for key, value in on_meta(*arguments, **options).state_dict().items()}
    except (TypeError, ValueError, RuntimeError, AttributeError, OverflowError) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{refusal}: {message:.200}") from None


def _check_weight_shapes(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], weights: Path, described: str
) -> None:
    """Refuse weights whose tensors are not the architecture's, by name and shape (first difference named)."""
    for key in sorted(set(expected) | set(found)):
        if expected.get(key) != found.get(key):
            raise ValueError(
                f"{weights}: the weights do not fit {described}: tensor {key!r} is "
                f"{_shape_text(found.get(key))} in the file, {_shape_text(expected.get(key))} in the architecture"
            )


def _shape_text(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else "x".join(map(str, shape)) or "a scalar"
