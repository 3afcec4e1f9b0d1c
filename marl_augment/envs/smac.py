"""``smac:<map>``: StarCraft SMAC's ``StarCraft2Env`` behind the current PettingZoo ParallelEnv API.

SMAC's own bundled PettingZoo wrapper predates the current API (its ``reset`` returns only
observations, its infos are empty so ``battle_won`` is lost, its seed is ignored). This one:

- ``reset(seed)`` returns ``(obs, infos)``; the seed reaches the game (SMAC takes the seed when
  it launches StarCraft II, so a new seed relaunches the game);
- the legal-action mask is in ``obs[agent]["action_mask"]``; ``state()`` is SMAC's global state;
- infos carry ``battle_won``, ``dead_allies``, ``dead_enemies`` (and ``episode_limit``);
- a time-limit ending is a *truncation*, a battle ending a *termination*: SMAC signals a
  time-out only through ``terminated=True`` plus ``info["episode_limit"]`` (or the step count
  reaching the limit), and both are handled;
- an agent that dies gets ``termination=True`` and leaves ``agents``; from then on the wrapper
  sends it the no-op SMAC requires of dead units (action 0);
- every episode is counted (``env.episodes``).

StarCraft SMAC is imported lazily. PyPI's ``smac`` is SMAC3, an unrelated hyper-parameter
optimiser; StarCraft SMAC installs from its git repository and needs StarCraft II (``SC2PATH``).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MarlAugmentError

NOOP = 0
MAX_RETURN = 20.0
INSTALL = ("pip install 'git+https://github.com/oxwhirl/smac.git' (StarCraft SMAC) and install "
           "StarCraft II with its SMAC maps, then set SC2PATH; where StarCraft II cannot run, "
           "use smax:<map> (pip install 'marl-augment[smax]')")


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


def _pettingzoo_base():
    from pettingzoo import ParallelEnv

    return ParallelEnv


class SmacParallelEnv(_pettingzoo_base()):
    """PettingZoo ParallelEnv over ``StarCraft2Env`` (see the module docstring)."""

    metadata = {"name": "smac_v1", "render_modes": [], "is_parallelizable": True}

    def __init__(self, map_name: str = "3m", *, env_factory=None, **smac_kwargs: Any) -> None:
        from gymnasium import spaces

        self.map_name = map_name
        self.env_id = f"smac:{map_name}"
        self._factory = env_factory or load_starcraft2env()
        self._kwargs = dict(smac_kwargs)
        self._seed = self._kwargs.pop("seed", None)
        self._env = self._factory(map_name=map_name, seed=self._seed, **self._kwargs)
        info = self._env.get_env_info()
        self.n_actions = int(info["n_actions"])
        self.obs_dim = int(info["obs_shape"])
        self.state_dim = int(info["state_shape"])
        self.episode_limit = int(info["episode_limit"])
        self.possible_agents = [f"agent_{i}" for i in range(int(info["n_agents"]))]
        self.agents: list[str] = []
        box = spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        self._obs_spaces = {a: spaces.Dict({"observation": box,
                                            "action_mask": spaces.MultiBinary(self.n_actions)})
                            for a in self.possible_agents}
        self._act_spaces = {a: spaces.Discrete(self.n_actions) for a in self.possible_agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32)
        self.episodes = 0
        self._launched_seed = self._seed
        self._steps = 0

    def observation_space(self, agent):
        return self._obs_spaces[agent]

    def action_space(self, agent):
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None and seed != self._launched_seed:
            # SMAC passes its seed to StarCraft II at launch: relaunch with the new one
            self._env.close()
            self._env = self._factory(map_name=self.map_name, seed=seed, **self._kwargs)
            self._launched_seed = seed
        self._env.reset()
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
                    raise ConfigError(f"agent {a!r} cannot take action {act} now (legal: "
                                      f"{np.flatnonzero(legal).tolist()})")
                joint.append(act)
            else:
                joint.append(NOOP)  # dead units may only no-op
        reward, terminated, info = self._env.step(joint)
        self._steps += 1
        info = dict(info or {})
        done = bool(terminated)
        dead = self._dead_allies()
        # SMAC reports a time-out as terminated=True, with info["episode_limit"] only when
        # continuing_episode is set: also recognise it by the step count (and no winner)
        timeout = done and (bool(info.get("episode_limit", False)) or (
            self._steps >= self.episode_limit and not info.get("battle_won", False)
            and not dead.all()))
        out_info = {"battle_won": bool(info.get("battle_won", False)),
                    "dead_allies": int(info.get("dead_allies", int(dead.sum()))),
                    "dead_enemies": int(info.get("dead_enemies", 0)),
                    "episode_limit": timeout}
        terms, truncs = {}, {}
        for a in acting:
            died = bool(dead[self.possible_agents.index(a)])
            terms[a] = died or (done and not timeout)
            truncs[a] = done and timeout and not died
        obs = self._observations(acting)
        self.agents = [] if done else [a for a in acting if not terms[a]]
        return (obs, {a: float(reward) for a in acting}, terms, truncs,
                {a: dict(out_info) for a in acting})

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
