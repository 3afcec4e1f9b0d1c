"""Environments as PettingZoo ParallelEnvs: ``smac:<map>``, ``smax:<map>``, ``mpe:<env>``,
``mamujoco:<agents>-<robot>``, ``pettingzoo:<module>``.

``make_env(id)`` returns a ParallelEnv with the legal-action mask (when the env has one) in
``obs[agent]["action_mask"]`` and ``state()``. Backends import lazily; a missing one raises an
error naming what to install.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import MissingDependency, NotFound
from ..registry import Registry, import_string
from ..spaces import agent_action_kinds


@dataclass(frozen=True)
class EnvBackend:
    """An env family behind an id prefix (``<prefix>:<name>``): how to make one, and what
    evaluation and the learners need to know about it without making one."""

    factory: str
    """``"module:callable"``, called as ``callable(name, **kwargs)`` -> a PettingZoo
    ParallelEnv; imported on first use."""
    example: str
    """An id to show in messages, e.g. ``smax:3m``."""
    extra: str = ""
    """The pip extra that installs what the factory imports (for the error when it is missing)."""
    max_return: float | None = None
    """The maximum team return with default settings, for normalised returns (None: none)."""
    action_kind: str | None = None
    """``discrete`` or ``continuous`` for every env of the family; None: look at the env."""
    shared_reward: bool = False
    """Every agent receives the one team reward: the team return sums it over steps only."""

    def make(self, name: str, **kwargs: Any):
        try:
            factory = import_string(self.factory)
        except ImportError as e:
            if not self.extra:
                raise
            raise MissingDependency(e.name or str(e), self.extra, f"env {self.example}") from e
        return factory(name, **kwargs)


#: env-id prefix -> backend
ENVS: Registry[EnvBackend] = Registry("environment backend")
ENVS.register(
    "smax",
    EnvBackend(
        "marl_augment.envs.smax:SmaxParallelEnv",
        "smax:3m",
        extra="smax",
        max_return=2.0,
        action_kind="discrete",
        shared_reward=True,
    ),
    doc="JaxMARL's SMAX with the heuristic enemy (pip install 'marl-augment[smax]')",
)
ENVS.register(
    "smac",
    EnvBackend(
        "marl_augment.envs.smac:SmacParallelEnv",
        "smac:3m",
        max_return=20.0,
        action_kind="discrete",
        shared_reward=True,
    ),
    doc="StarCraft SMAC's StarCraft2Env (needs StarCraft II and SC2PATH)",
)
ENVS.register(
    "mpe",
    EnvBackend(
        "marl_augment.envs.pettingzoo:make_mpe",
        "mpe:simple_spread",
        extra="mpe",
        action_kind="continuous",
    ),
    doc="PettingZoo MPE (mpe2) with continuous actions, e.g. mpe:simple_spread "
    "(pip install 'marl-augment[mpe]')",
)
ENVS.register(
    "mamujoco",
    EnvBackend(
        "marl_augment.envs.pettingzoo:make_mamujoco",
        "mamujoco:2x3-HalfCheetah",
        extra="mamujoco",
        action_kind="continuous",
        shared_reward=True,
    ),
    doc="Gymnasium-Robotics' multi-agent MuJoCo, e.g. mamujoco:2x3-HalfCheetah "
    "(pip install 'marl-augment[mamujoco]')",
)
ENVS.register(
    "pettingzoo",
    EnvBackend(
        "marl_augment.envs.pettingzoo:make_parallel_env", "pettingzoo:mpe2.simple_spread_v3"
    ),
    doc="any PettingZoo ParallelEnv module, e.g. pettingzoo:mpe2.simple_spread_v3",
)


def split_id(env_id: str) -> tuple[str, str]:
    """``(prefix, name)`` of an env id; an unknown prefix gets one line listing the known ones."""
    backend, sep, name = env_id.partition(":")
    if not sep or backend not in ENVS or not name:
        known = ", ".join(f"{k}:<name> (e.g. {ENVS.get(k).example})" for k in ENVS.keys())
        raise NotFound(f"unknown environment id {env_id!r}; use {known}")
    return backend, name


def backend_of(env_id: str) -> EnvBackend:
    """The backend of ``env_id``."""
    return ENVS.get(split_id(env_id)[0])


def max_return(env_id: str) -> float | None:
    """The maximum team return of an env family with its default settings (SMAX 2, SMAC 20),
    for normalised returns; a SMAC env made with other reward settings has its own
    ``env.max_return``, which evaluation uses."""
    return backend_of(env_id).max_return


def make_env(env_id: str, **kwargs: Any):
    """A PettingZoo ParallelEnv for ``env_id`` (``smax:<map>``, ``smac:<map>``, ``mpe:<env>``,
    ``mamujoco:<agents>-<robot>``, ``pettingzoo:<module>``, or a backend registered in
    :data:`ENVS`)."""
    backend, name = split_id(env_id)
    return ENVS.get(backend).make(name, **kwargs)


def team_reward(env_id: str) -> str:
    """How the team reward is formed from the agents' rewards: ``mean`` where every agent
    receives the same team reward (SMAX, SMAC, MaMuJoCo), ``sum`` elsewhere (MPE)."""
    return "mean" if backend_of(env_id).shared_reward else "sum"


def action_kind_of(env_id: str, **kwargs: Any) -> str:
    """``discrete`` or ``continuous``: the actions ``env_id`` takes (where its family does not
    fix it, a PettingZoo module is made and closed to look at its action spaces)."""
    kind = backend_of(env_id).action_kind
    if kind is not None:
        return kind
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
    "ENVS",
    "EnvBackend",
    "backend_of",
    "action_kind_of",
    "episode_seed",
    "make_env",
    "max_return",
    "recorded_settings",
    "split_id",
    "team_reward",
]
