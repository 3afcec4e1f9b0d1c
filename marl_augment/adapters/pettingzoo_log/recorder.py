"""The :class:`Recorder`: wraps a PettingZoo ``ParallelEnv`` and writes its log while the
user's own loop runs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...spaces import (
    action_mask_of,
    agent_action_kinds,
    box_bounds,
    flat_obs,
    n_actions,
    obs_dim,
)
from .format import LOG_FORMAT, LOG_VERSION, LogWriter, _jsonable


class Recorder:
    """Wraps a PettingZoo ``ParallelEnv`` and logs every reset and step to a JSON Lines file.

    Use it in place of the env in your own loop, then ``close()`` it::

        env = Recorder(mpe2.simple_spread_v3.parallel_env(), "run.jsonl.gz")
        obs, infos = env.reset(seed=0)
        while env.agents:
            obs, rew, term, trunc, infos = env.step({a: policy(obs[a]) for a in env.agents})
        env.close()

    Until ``close()`` the log is ``<path>.partial`` (the adapter reads that too, dropping an
    unfinished last episode). Observations are flattened with ``gymnasium.spaces.flatten``
    (the ``observation`` part of a ``Dict`` space holding an ``action_mask``); masks come from
    ``obs[agent]["action_mask"]`` or ``infos[agent]["action_mask"]``.
    """

    def __init__(
        self,
        env,
        path: str | os.PathLike,
        *,
        env_id: str | None = None,
        overwrite: bool = False,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.env = env
        self.env_id = env_id or _guess_env_id(env)
        agents = list(env.possible_agents)
        self._obs_spaces = {a: env.observation_space(a) for a in agents}
        self._n_actions = {a: n_actions(env.action_space(a), a) for a in agents}
        self._kind = agent_action_kinds(env, agents)
        self._bounds = (
            {a: box_bounds(env.action_space(a), a) for a in agents}
            if self._kind == "continuous"
            else None
        )
        self._obs_dims = {a: obs_dim(self._obs_spaces[a]) for a in agents}
        self._agents = agents
        self._meta = dict(meta or {})
        self._log = LogWriter(path, overwrite=overwrite)
        self._header_written = False
        self._has_state: bool | None = None
        self.episodes = 0

    # the ParallelEnv surface ------------------------------------------------------------------
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.env, name)

    @property
    def agents(self):
        return self.env.agents

    @property
    def possible_agents(self):
        return self.env.possible_agents

    def observation_space(self, agent):
        return self.env.observation_space(agent)

    def action_space(self, agent):
        return self.env.action_space(agent)

    def state(self):
        return self.env.state()

    def reset(self, seed: int | None = None, options: dict | None = None):
        self._log.flush()  # the episodes so far survive a crash (kill -9, power loss)
        obs, infos = self.env.reset(seed=seed, options=options)
        record = {"t": "reset", "seed": seed, **self._observe(obs, infos)}
        if not self._header_written:
            self._write_header(record)
        self._log.write(record)
        self.episodes += 1
        return obs, infos

    def step(self, actions: Mapping[str, Any]):
        obs, rewards, terms, truncs, infos = self.env.step(actions)
        record = {
            "t": "step",
            "actions": {a: self._action(v) for a, v in actions.items()},
            "rewards": {a: float(r) for a, r in rewards.items()},
            "terminations": {a: bool(v) for a, v in terms.items()},
            "truncations": {a: bool(v) for a, v in truncs.items()},
            **self._observe(obs, infos),
        }
        self._log.write(record)
        return obs, rewards, terms, truncs, infos

    def close(self) -> None:
        self._log.close()
        self.env.close()

    def abort(self) -> None:
        """Stop recording without keeping the log (e.g. after an error in the loop)."""
        self._log.abort()
        self.env.close()

    @property
    def log_path(self) -> Path:
        return self._log.path

    # helpers --------------------------------------------------------------------------------
    def _action(self, v: Any) -> int | list[float]:
        if self._kind == "continuous":
            return np.asarray(v, np.float64).ravel().tolist()
        return int(np.asarray(v).item())

    def _observe(self, obs: Mapping[str, Any], infos: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "obs": {a: flat_obs(self._obs_spaces[a], o).tolist() for a, o in obs.items()},
        }
        masks = {}
        for a, o in obs.items():
            m = action_mask_of(o, infos.get(a))
            if m is not None:
                masks[a] = m.astype(int).tolist()
        if masks:
            out["action_mask"] = masks
        if self._has_state is None:
            self._has_state = _try_state(self.env) is not None
        if self._has_state:
            out["state"] = np.asarray(self.env.state(), dtype=np.float32).ravel().tolist()
        out["infos"] = _jsonable(dict(infos))
        return out

    def _write_header(self, first: Mapping[str, Any]) -> None:
        state_dim = len(first["state"]) if "state" in first else None
        header = {
            "format": LOG_FORMAT,
            "version": LOG_VERSION,
            "env_id": self.env_id,
            "agents": self._agents,
            "obs_dims": self._obs_dims,
            "n_actions": self._n_actions,
            "state_dim": state_dim,
            "has_action_mask": "action_mask" in first,
            "meta": _jsonable(self._meta),
        }
        if self._bounds is not None:
            header["action_kind"] = "continuous"
            header["action_low"] = {a: lo for a, (lo, _) in self._bounds.items()}
            header["action_high"] = {a: hi for a, (_, hi) in self._bounds.items()}
        self._log.write(header)
        self._log.flush()  # a crash leaves a log that says what it is
        self._header_written = True


def _try_state(env) -> np.ndarray | None:
    """The env's global state, or None when its class does not provide ``state()``."""
    from pettingzoo import ParallelEnv

    if type(env.unwrapped).state is ParallelEnv.state:  # the base class's "not implemented"
        return None
    s = env.state()
    return None if s is None else np.asarray(s)


def _guess_env_id(env) -> str:
    module = type(env.unwrapped).__module__
    name = env.metadata.get("name") if hasattr(env, "metadata") else None
    if module.startswith("mpe2.") and name:
        return f"pettingzoo:mpe2.{name}"
    return f"pettingzoo:{name or module}"


# ---------------------------------------------------------------------------------------------
# reading logs
# ---------------------------------------------------------------------------------------------
