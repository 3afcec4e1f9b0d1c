"""Gymnasium spaces as marl-augment reads them: observations flattened (an action mask split
off), action counts and kinds, Box bounds. Shared by the recorder (adapters) and the
environment wrappers and evaluation (envs), which so depend on neither each other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import UnsupportedError


def _obs_part(space):
    """A space's observation part (``Dict(observation=..., action_mask=...)`` -> observation)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict) and "observation" in space.spaces:
        return space.spaces["observation"]
    return space


def flat_obs(space, obs) -> np.ndarray:
    from gymnasium import spaces

    if isinstance(obs, Mapping) and "observation" in obs:
        obs = obs["observation"]
    return np.asarray(spaces.flatten(_obs_part(space), obs), dtype=np.float32).ravel()


def obs_dim(space) -> int:
    from gymnasium import spaces

    return int(spaces.flatdim(_obs_part(space)))


def n_actions(space, agent: str) -> int:
    """Action count of a ``Discrete`` space, or the dimension of a ``Box`` one."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        if int(space.start) != 0:
            raise UnsupportedError(
                f"agent {agent!r} has Discrete(start={int(space.start)}); only start=0 is supported"
            )
        return int(space.n)
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape, dtype=np.int64))
    kind = type(space).__name__
    raise UnsupportedError(
        f"agent {agent!r} has a {kind} action space; marl-augment supports Discrete and Box "
        f"action spaces"
    )


def action_kind(space) -> str:
    """``continuous`` for a ``Box`` action space, ``discrete`` otherwise."""
    from gymnasium import spaces

    return "continuous" if isinstance(space, spaces.Box) else "discrete"


def box_bounds(space, agent: str) -> tuple[list[float], list[float]]:
    """Finite per-dimension bounds of a ``Box`` action space (flattened)."""
    low = np.asarray(space.low, np.float64).ravel()
    high = np.asarray(space.high, np.float64).ravel()
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise UnsupportedError(
            f"agent {agent!r} has an unbounded Box action space; continuous "
            f"actions need finite bounds (wrap the env to rescale them)"
        )
    return low.astype(np.float32).tolist(), high.astype(np.float32).tolist()


def agent_action_kinds(env, agents) -> str:
    """The one action kind of all ``agents`` (a mix of discrete and continuous is refused)."""
    kinds = {a: action_kind(env.action_space(a)) for a in agents}
    if len(set(kinds.values())) > 1:
        raise UnsupportedError(
            f"agents mix discrete and continuous action spaces ({kinds}); a store holds one kind"
        )
    return next(iter(kinds.values()))


def action_mask_of(obs: Any, info: Mapping[str, Any] | None) -> np.ndarray | None:
    """The legal-action mask from ``obs["action_mask"]`` or ``info["action_mask"]``, if any."""
    if isinstance(obs, Mapping) and "action_mask" in obs:
        return np.asarray(obs["action_mask"]).astype(bool).ravel()
    if info and "action_mask" in info:
        return np.asarray(info["action_mask"]).astype(bool).ravel()
    return None
