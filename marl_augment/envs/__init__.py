"""Environments as PettingZoo ParallelEnvs: ``smac:<map>``, ``smax:<map>``, ``mpe:<env>``,
``mamujoco:<agents>-<robot>``, ``pettingzoo:<module>``.

``make_env(id)`` returns a ParallelEnv with the legal-action mask (when the env has one) in
``obs[agent]["action_mask"]`` and ``state()``. Backends import lazily; a missing one raises an
error naming what to install.
"""

from __future__ import annotations

from typing import Any

from ..errors import NotFound
from ..spaces import agent_action_kinds

#: env-id prefix -> (maximum team return used to normalise, description)
BACKENDS = {
    "smax": (2.0, "JaxMARL's SMAX with the heuristic enemy (pip install 'marl-augment[smax]')"),
    "smac": (20.0, "StarCraft SMAC's StarCraft2Env (needs StarCraft II and SC2PATH)"),
    "mpe": (
        None,
        "PettingZoo MPE (mpe2) with continuous actions, e.g. mpe:simple_spread "
        "(pip install 'marl-augment[mpe]')",
    ),
    "mamujoco": (
        None,
        "Gymnasium-Robotics' multi-agent MuJoCo, e.g. mamujoco:2x3-HalfCheetah "
        "(pip install 'marl-augment[mamujoco]')",
    ),
    "pettingzoo": (
        None,
        "any PettingZoo ParallelEnv module, e.g. pettingzoo:mpe2.simple_spread_v3",
    ),
}


def split_id(env_id: str) -> tuple[str, str]:
    backend, sep, name = env_id.partition(":")
    if not sep or backend not in BACKENDS or not name:
        raise NotFound(
            f"unknown environment id {env_id!r}; use smax:<map> (e.g. smax:3m), smac:<map>, "
            f"mpe:<env> (e.g. mpe:simple_spread), mamujoco:<agents>-<robot> (e.g. "
            f"mamujoco:2x3-HalfCheetah) or pettingzoo:<module> (e.g. "
            f"pettingzoo:mpe2.simple_spread_v3)"
        )
    return backend, name


def max_return(env_id: str) -> float | None:
    """The maximum team return of an env family with its default settings (SMAX 2, SMAC 20),
    for normalised returns; a SMAC env made with other reward settings has its own
    ``env.max_return``, which evaluation uses."""
    return BACKENDS[split_id(env_id)[0]][0]


def make_env(env_id: str, **kwargs: Any):
    """A PettingZoo ParallelEnv for ``smax:<map>``, ``smac:<map>``, ``mpe:<env>``,
    ``mamujoco:<agents>-<robot>`` or ``pettingzoo:<module>``."""
    backend, name = split_id(env_id)
    if backend == "smax":
        from .smax import SmaxParallelEnv

        return SmaxParallelEnv(name, **kwargs)
    if backend == "smac":
        from .smac import SmacParallelEnv

        return SmacParallelEnv(name, **kwargs)
    from .pettingzoo import make_mamujoco, make_mpe, make_parallel_env

    if backend == "mamujoco":
        return make_mamujoco(name, **kwargs)
    if backend == "mpe":
        return make_mpe(name, **kwargs)
    return make_parallel_env(name, **kwargs)


#: backends whose agents all receive the one team reward: the team return is its sum over
#: steps, not over agents too
SHARED_REWARD = ("smax", "smac", "mamujoco")


def team_reward(env_id: str) -> str:
    """How the team reward is formed from the agents' rewards: ``mean`` where every agent
    receives the same team reward (SMAX, SMAC, MaMuJoCo), ``sum`` elsewhere (MPE)."""
    return "mean" if split_id(env_id)[0] in SHARED_REWARD else "sum"


def action_kind_of(env_id: str, **kwargs: Any) -> str:
    """``discrete`` or ``continuous``: the actions ``env_id`` takes (a PettingZoo module is made
    and closed to look at its action spaces)."""
    backend = split_id(env_id)[0]
    if backend in ("smax", "smac"):
        return "discrete"
    if backend in ("mpe", "mamujoco"):
        return "continuous"

    env = make_env(env_id, **kwargs)
    try:
        return agent_action_kinds(env, list(env.possible_agents))
    finally:
        env.close()


def recorded_settings(spec, env_id: str) -> dict[str, Any]:
    """The env settings a dataset was recorded with (``record -e key=value``, kept in its
    spec's ``extras["env_kwargs"]``) when ``env_id`` is the dataset's own env, else none: a
    policy is evaluated in the env its data came from, not in that env's defaults."""
    kwargs = dict(spec.extras).get("env_kwargs") if env_id == spec.env_id else None
    return dict(kwargs) if isinstance(kwargs, dict) else {}


def episode_seed(env, seed: int | None, episode: int) -> int | None:
    """The seed to pass to ``env.reset`` for episode ``episode`` of a run seeded with ``seed``.

    Envs whose reseeding is cheap get ``seed + episode`` (every episode reproducible on its
    own); SMAC, where a new seed relaunches StarCraft II, is seeded once and its episodes follow.
    """
    if seed is None:
        return None
    if getattr(env, "reseed_relaunches", False) or getattr(
        getattr(env, "env", None), "reseed_relaunches", False
    ):
        return seed if episode == 0 else None
    return seed + episode


__all__ = [
    "BACKENDS",
    "action_kind_of",
    "episode_seed",
    "make_env",
    "max_return",
    "recorded_settings",
    "split_id",
    "team_reward",
]
