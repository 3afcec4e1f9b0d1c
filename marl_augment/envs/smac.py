"""``smac:<map>``: StarCraft SMAC's ``StarCraft2Env`` behind the current PettingZoo ParallelEnv API.

Read against oxwhirl/smac's source (``smac/env/starcraft2/starcraft2.py``; the functions named
below are ``StarCraft2Env``'s). SMAC's own bundled PettingZoo wrapper predates the current API
(its ``reset`` returns only observations, its infos are empty so ``battle_won`` is lost). This
one:

- ``reset(seed)`` returns ``(obs, infos)``. SMAC hands its seed to StarCraft II when the game
  launches (``_launch``: ``RequestCreateGame(random_seed=...)``), so the seed of the *first*
  reset starts the game, and later episodes follow the game's own random state. A different
  seed later relaunches StarCraft II in the same object (``full_restart``; tens of seconds), so
  :func:`episode_seed` seeds SMAC once per evaluation or recording, not once per episode. What
  a seed replays: the game's random draws from launch on; StarCraft II itself does not promise
  bit-identical battles across machines or game versions, so the same seed and policy give the
  same episodes only as far as the game does.
- The game launches exactly once. ``reset`` launches StarCraft II while ``_episode_count == 0``
  and that count rises only when an episode ends, so a second reset before the first episode
  ends (PettingZoo's ``parallel_api_test`` does this) would start a second game process and add
  the enemies' health to ``max_reward`` again, changing the reward scale. After the first reset
  the wrapper marks the game as started, as SMAC's own PettingZoo wrapper does
  (``StarCraft2PZEnv.reset`` sets ``_episode_count = 1``).
- :attr:`max_return` follows the reward settings (``reward_scale``, ``reward_scale_rate``,
  ``reward_sparse``): 20 with SMAC's defaults. Protoss shields regenerate, so on protoss maps
  a return can exceed it a little (``reward_battle`` counts regenerated shield as new damage).
- A lost game connection (``step`` answers ``(0, True, {})`` after ``full_restart``) ends the
  episode as a truncation with ``info["interrupted"] = True``: it is not a lost battle, the
  recorder's logs mark it and ``convert`` leaves it out, and evaluation does not count it.
- The legal-action mask is in ``obs[agent]["action_mask"]``; ``state()`` is SMAC's global state;
  infos carry ``battle_won``, ``dead_allies``, ``dead_enemies`` (and ``episode_limit``).
- A time-limit ending is a *truncation*, a battle ending a *termination*: SMAC signals a
  time-out only through ``terminated=True`` plus ``info["episode_limit"]`` (or the step count
  reaching the limit), and both are handled.
- An agent that dies gets ``termination=True`` and leaves ``agents``; from then on the wrapper
  sends it the no-op SMAC requires of dead units (action 0).
- An unknown map or a misspelt keyword argument is one clear error, before any game starts.

StarCraft SMAC is imported lazily. PyPI's ``smac`` is SMAC3, an unrelated hyper-parameter
optimiser; StarCraft SMAC installs from its git repository and needs StarCraft II (``SC2PATH``).
"""

from __future__ import annotations

import importlib
import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv

from ..errors import ConfigError, MarlAugmentError, NotFound

NOOP = 0
#: the best return with SMAC's default reward settings; SmacParallelEnv.max_return follows
#: the settings it was made with
MAX_RETURN = 20.0
INSTALL = (
    "pip install 'git+https://github.com/oxwhirl/smac.git' (StarCraft SMAC) and install "
    "StarCraft II with its SMAC maps, then set SC2PATH; where StarCraft II cannot run, "
    "use smax:<map> (pip install 'marl-augment[smax]')"
)


class SmacUnavailable(MarlAugmentError, ImportError):
    """StarCraft SMAC or StarCraft II is missing, or the wrong ``smac`` package is installed."""


def load_starcraft2env(check_sc2: bool = True):
    """``smac.env.StarCraft2Env``, or one clear error saying exactly what to install."""
    try:
        smac = importlib.import_module("smac")
    except ImportError:
        raise SmacUnavailable(f"StarCraft SMAC is not installed; {INSTALL}") from None
    try:
        env_mod = importlib.import_module("smac.env")
        cls = env_mod.StarCraft2Env
    except (ImportError, AttributeError):
        where = getattr(smac, "__file__", "?")
        raise SmacUnavailable(
            f"the installed 'smac' ({where}) is SMAC3, the hyper-parameter optimiser from PyPI, "
            f"not StarCraft SMAC: pip uninstall smac, then {INSTALL}"
        ) from None
    if check_sc2:
        sc2 = os.environ.get("SC2PATH")
        if not sc2 or not Path(sc2).exists():
            raise SmacUnavailable(
                f"StarCraft II was not found (SC2PATH is {'unset' if not sc2 else repr(sc2)}); "
                f"install StarCraft II and set SC2PATH, or use smax:<map> instead"
            )
    return cls


class SmacParallelEnv(ParallelEnv):
    """PettingZoo ParallelEnv over ``StarCraft2Env`` (see the module docstring)."""

    metadata = {"name": "smac_v1", "render_modes": [], "is_parallelizable": True}
    #: a new seed relaunches StarCraft II: seed once, then let episodes follow (episode_seed)
    reseed_relaunches = True

    def __init__(self, map_name: str = "3m", *, env_factory=None, **smac_kwargs: Any) -> None:
        from gymnasium import spaces

        self.map_name = map_name
        self.env_id = f"smac:{map_name}"
        self._factory = env_factory or load_starcraft2env()
        self._kwargs = dict(smac_kwargs)
        self._seed = self._kwargs.pop("seed", None)
        _check_options(self._factory, self._kwargs)
        try:
            self._env = self._factory(map_name=map_name, seed=self._seed, **self._kwargs)
        except KeyError as e:  # smac.env.starcraft2.maps.get_map_params: map_param_registry[name]
            if e.args and e.args[0] == map_name:
                raise NotFound(
                    f"unknown SMAC map {map_name!r}; {_known_maps(self._factory)}"
                ) from None
            raise
        info = self._env.get_env_info()
        self.n_actions = int(info["n_actions"])
        self.obs_dim = int(info["obs_shape"])
        self.state_dim = int(info["state_shape"])
        self.episode_limit = int(info["episode_limit"])
        self.possible_agents = [f"agent_{i}" for i in range(int(info["n_agents"]))]
        self.agents: list[str] = []
        box = spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        self._obs_spaces = {
            a: spaces.Dict({"observation": box, "action_mask": spaces.MultiBinary(self.n_actions)})
            for a in self.possible_agents
        }
        self._act_spaces = {a: spaces.Discrete(self.n_actions) for a in self.possible_agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32)
        self.episodes = 0
        self.interrupted = 0
        self._started = False  # StarCraft II launched (by our first reset)
        self._steps = 0

    @property
    def smac_env(self):
        """The ``StarCraft2Env`` underneath."""
        return self._env

    @property
    def max_return(self) -> float | None:
        """The best team return of an episode under this env's reward settings (None while it
        depends on the units' health, which SMAC reads when the game starts)."""
        e = self._env
        sparse = bool(getattr(e, "reward_sparse", self._kwargs.get("reward_sparse", False)))
        scale = bool(getattr(e, "reward_scale", self._kwargs.get("reward_scale", True)))
        rate = float(getattr(e, "reward_scale_rate", self._kwargs.get("reward_scale_rate", 20)))
        # StarCraft2Env.step: the reward is divided by max_reward / reward_scale_rate, where
        # max_reward (init_units) is every enemy's health + shield + kill bonuses + win bonus
        if scale and not sparse:
            return rate
        top = getattr(e, "max_reward", None) if self._started else None
        if sparse:
            return (rate / top if top else None) if scale else 1.0
        return float(top) if top else None

    def observation_space(self, agent):
        return self._obs_spaces[agent]

    def action_space(self, agent):
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        e = self._env
        if seed is not None and seed != getattr(e, "_seed", self._seed):
            e._seed = seed
            if self._started:  # SMAC takes its seed at launch: relaunch the game in place
                e.full_restart()
        if self._started and getattr(e, "_episode_count", 1) == 0:
            # no episode has ended yet, so SMAC's reset would launch a second game and count
            # the enemies' health into max_reward twice: restart in the running game instead
            # (what StarCraft2PZEnv.reset does)
            e._episode_count = 1
        e.reset()
        self._started = True
        self.agents = list(self.possible_agents)
        self._steps = 0
        self.episodes += 1
        return self._observations(self.agents), {a: {} for a in self.agents}

    def _observations(self, agents):
        obs = self._env.get_obs()
        out = {}
        for a in agents:
            i = self.possible_agents.index(a)
            mask = np.asarray(self._env.get_avail_agent_actions(i), dtype=np.int8)
            out[a] = {"observation": np.asarray(obs[i], dtype=np.float32), "action_mask": mask}
        return out

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise ConfigError("step() after the episode ended: call reset() first")
        acting = list(self.agents)
        joint = []
        for i, a in enumerate(self.possible_agents):
            if a in acting:
                if a not in actions:
                    raise ConfigError(f"no action for live agent {a!r}")
                act = int(np.asarray(actions[a]).item())
                legal = np.asarray(self._env.get_avail_agent_actions(i))
                if not 0 <= act < self.n_actions or not legal[act]:
                    raise ConfigError(
                        f"agent {a!r} cannot take action {act} now (legal: "
                        f"{np.flatnonzero(legal).tolist()})"
                    )
                joint.append(act)
            else:
                joint.append(NOOP)  # dead units may only no-op
        reward, terminated, info = self._env.step(joint)
        self._steps += 1
        if terminated and not info:
            return self._interrupted(acting)
        info = dict(info)
        done = bool(terminated)
        dead = self._dead_allies()
        # SMAC reports a time-out as terminated=True, with info["episode_limit"] only when
        # continuing_episode is set: also recognise it by the step count (and no winner)
        timeout = done and (
            bool(info.get("episode_limit", False))
            or (
                self._steps >= self.episode_limit
                and not info.get("battle_won", False)
                and not dead.all()
            )
        )
        out_info = {
            "battle_won": bool(info.get("battle_won", False)),
            "dead_allies": int(info.get("dead_allies", int(dead.sum()))),
            "dead_enemies": int(info.get("dead_enemies", 0)),
            "episode_limit": timeout,
        }
        terms, truncs = {}, {}
        for a in acting:
            died = bool(dead[self.possible_agents.index(a)])
            terms[a] = died or (done and not timeout)
            truncs[a] = done and timeout and not died
        obs = self._observations(acting)
        self.agents = [] if done else [a for a in acting if not terms[a]]
        return (
            obs,
            {a: float(reward) for a in acting},
            terms,
            truncs,
            {a: dict(out_info) for a in acting},
        )

    def _interrupted(self, acting: list[str]):
        """StarCraft2Env.step lost the game connection, restarted StarCraft II and answered
        ``(0, True, {})``: the episode was cut short, not lost. Truncate it and say so; the
        restarted game's observations stand in for the last ones."""
        self.interrupted += 1
        self.agents = []
        info = {
            "battle_won": False,
            "dead_allies": 0,
            "dead_enemies": 0,
            "episode_limit": False,
            "interrupted": True,
        }
        obs = self._observations(acting)
        return (
            obs,
            {a: 0.0 for a in acting},
            {a: False for a in acting},
            {a: True for a in acting},
            {a: dict(info) for a in acting},
        )

    def _dead_allies(self) -> np.ndarray:
        """SMAC marks a dead unit by leaving it only the no-op."""
        dead = []
        for i in range(len(self.possible_agents)):
            legal = np.asarray(self._env.get_avail_agent_actions(i))
            dead.append(bool(legal[NOOP]) and not legal[1:].any())
        return np.asarray(dead)

    def state(self) -> np.ndarray:
        return np.asarray(self._env.get_state(), dtype=np.float32)

    def close(self) -> None:
        self._env.close()


def _check_options(factory, kwargs: dict[str, Any]) -> None:
    """Keyword arguments StarCraft2Env does not take are one clear error (its constructor has
    no ``**kwargs``, so a misspelt option would otherwise be a TypeError from deep inside)."""

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # not introspectable: let the constructor decide
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        known = ", ".join(k for k in params if k not in ("self", "map_name", "seed"))
        raise ConfigError(
            f"StarCraft2Env has no option {', '.join(map(repr, unknown))}; its options are: {known}"
        )


def _known_maps(factory) -> str:
    """The maps SMAC knows, from its registry (smac.env.starcraft2.maps.smac_maps)."""
    registry = None
    for name in ("smac.env.starcraft2.maps.smac_maps", getattr(factory, "__module__", "")):
        try:
            registry = importlib.import_module(name).get_smac_map_registry()
            break
        except (ImportError, AttributeError, ValueError):
            continue
    if not registry:
        return "see SMAC's smac_maps.py for the map names"
    return f"known maps: {', '.join(sorted(registry))}"
