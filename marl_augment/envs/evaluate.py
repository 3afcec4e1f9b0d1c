"""Evaluate a policy in an environment: returns, normalised returns, win rate, lengths.

A policy is a scripted behaviour name (``random``, ``poor``, ``medium``, ``good``,
``closest[:eps]``, ``focus[:eps]``; SMAX only, except ``random``) or a *batch policy*: a
callable ``policy(obs, avail, first) -> actions`` on arrays ``obs`` (B, N, O), ``avail``
(B, N, A) bool and ``first`` (B,) bool (True where an episode starts: reset recurrent state),
returning int actions (B, N). Trained policies from the offline baselines implement it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError, EnvError
from ..spaces import action_mask_of, agent_action_kinds, box_bounds, flat_obs, obs_dim
from ..torch_state import torch_threads
from . import episode_seed, make_env, max_return, split_id, team_reward

BatchPolicy = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def summarise(returns, lengths, won, env_id: str, *, top: float | None = None) -> dict[str, Any]:
    """Mean and spread of returns; ``top`` (the env's best return, by default its family's)
    normalises them."""
    returns = np.asarray(returns, dtype=np.float64)
    out: dict[str, Any] = {
        "env_id": env_id,
        "episodes": int(returns.shape[0]),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "length_mean": float(np.mean(lengths)),
    }
    top = top if top is not None else max_return(env_id)
    if top:
        out["normalised_return_mean"] = float(returns.mean() / top)
    if won is not None and len(won):
        out["win_rate"] = float(np.mean(won))
    return out


def evaluate(
    policy: str | BatchPolicy,
    env_id: str,
    episodes: int = 32,
    seed: int = 0,
    *,
    batch: int = 32,
    progress: Any = None,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Run ``episodes`` episodes and summarise them (see the module docstring)."""
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    backend, name = split_id(env_id)
    kind = getattr(policy, "action_kind", None)
    if backend in ("smax", "smac") and kind == "continuous":
        raise ConfigError(
            f"this policy acts with continuous actions and {env_id} takes discrete "
            f"ones: evaluate it on the env its dataset came from"
        )
    if backend == "smax" and isinstance(policy, str):
        from .smax import rollout

        rets, lens, wins = [], [], []
        for cols, lengths, won in rollout(
            name,
            policy,
            episodes,
            seed=seed,
            batch=batch,
            max_steps=env_kwargs.get("max_steps", 100),
            progress=progress,
        ):
            off = np.r_[0, np.cumsum(lengths)]
            rets += np.add.reduceat(cols["rewards"].astype(np.float64), off[:-1]).tolist()
            lens += lengths.tolist()
            wins += won.tolist()
        return summarise(rets, lens, wins, env_id)
    if backend == "smax":
        return _evaluate_smax_batch(
            policy, name, env_id, episodes, seed, batch, progress, **env_kwargs
        )

    with torch_threads(1):  # one env, one step at a time: threads only spin
        return _evaluate_loop(policy, env_id, episodes, seed, progress, **env_kwargs)


def _evaluate_smax_batch(policy, name, env_id, episodes, seed, batch, progress, max_steps=100):
    from .smax import STOP, core

    c = core(name, max_steps)
    rets, lens, wins = [], [], []
    left = episodes
    batch = max(1, min(int(batch), int(episodes)))
    for key in c.keys(seed, -(-episodes // batch)):
        # always `batch` envs (one compiled shape); only the first `take` count in a last batch
        b, take = batch, min(batch, left)
        o, w, m, state = c.reset_batch(c.jax.random.split(key, b))
        o, m = np.array(o), np.array(m)  # writable copies, safe to hand to torch
        running = np.arange(b) < take
        first = np.ones(b, bool)
        ret = np.zeros(b)
        length = np.zeros(b, np.int64)
        won = np.zeros(b, bool)
        step_key = key
        while running.any():
            acts = np.asarray(policy(o, m, first), dtype=np.int32)
            if acts.shape != (b, c.n_agents):
                raise ConfigError(
                    f"policy returned actions of shape {acts.shape}, expected {(b, c.n_agents)}"
                )
            acts = np.where(running[:, None], acts, STOP)
            legal = np.take_along_axis(m, acts[..., None].clip(0, c.n_actions - 1), -1)[..., 0]
            if (running[:, None] & ~legal).any():
                bi, ai = np.argwhere(running[:, None] & ~legal)[0]
                raise ConfigError(f"policy chose illegal action {acts[bi, ai]} for agent {ai}")
            step_key, sub = c.jax.random.split(step_key)
            o, w, m, r, done, win, _, _, _, state = c.step_batch(
                c.jax.random.split(sub, b), state, acts
            )
            o, m = np.array(o), np.array(m)
            ret += np.where(running, np.asarray(r), 0.0)
            length += running
            won |= running & np.asarray(win)
            running &= ~np.asarray(done)
            first[:] = False
        rets += ret[:take].tolist()
        lens += length[:take].tolist()
        wins += won[:take].tolist()
        left -= take
        if progress is not None:
            progress(take)
    return summarise(rets, lens, wins, env_id)


#: an evaluation gives up after this many episodes in a row cut short by the env (SMAC's lost
#: game connections)
MAX_INTERRUPTED_IN_A_ROW = 5


def _evaluate_loop(policy, env_id, episodes, seed, progress, **env_kwargs):
    """One PettingZoo env, one episode at a time (any backend). Episodes the env cut short
    (``info["interrupted"]``: SMAC lost the game) are not counted and are played again."""

    combine = np.mean if team_reward(env_id) == "mean" else np.sum
    env = make_env(env_id, **env_kwargs)
    agents = list(env.possible_agents)
    bounds = action_bounds_of(env)
    kind = getattr(policy, "action_kind", None)
    if kind is not None:
        env_kind = "discrete" if bounds is None else "continuous"
        if env_kind != kind:
            env.close()
            raise ConfigError(
                f"this policy acts with {kind} actions and {env_id} takes "
                f"{env_kind} ones: evaluate it on the env its dataset came from"
            )
    rng = np.random.default_rng(seed)
    if isinstance(policy, str) and policy != "random":
        raise ConfigError(
            f"scripted policy {policy!r} runs on smax:* only; use 'random' or a batch policy"
        )
    rets, lens, wins = [], [], []
    started = interrupted = in_a_row = 0
    try:
        while len(rets) < episodes:
            obs, infos = env.reset(seed=episode_seed(env, seed, started))
            started += 1
            ret, length, won, first, cut = 0.0, 0, None, True, False
            while env.agents:
                acts = _act(policy, env, agents, obs, infos, rng, first, bounds)
                obs, rewards, terms, truncs, infos = env.step(acts)
                ret += float(combine(list(rewards.values())))
                length += 1
                first = False
                for info in infos.values():
                    if isinstance(info, dict) and "battle_won" in info:
                        won = bool(info["battle_won"])
                    cut = cut or (isinstance(info, dict) and bool(info.get("interrupted")))
            if cut:
                interrupted += 1
                in_a_row += 1
                if in_a_row >= MAX_INTERRUPTED_IN_A_ROW:
                    raise EnvError(
                        f"{env_id}: {in_a_row} episodes in a row were cut short by the "
                        "environment (StarCraft II lost its connection); check the game "
                        "installation and try again"
                    )
                continue
            in_a_row = 0
            rets.append(ret)
            lens.append(length)
            if won is not None:
                wins.append(won)
            if progress is not None:
                progress(1)
        top = getattr(env, "max_return", None)
    finally:
        env.close()
    out = summarise(rets, lens, wins if len(wins) == len(rets) else None, env_id, top=top)
    if interrupted:
        out["interrupted_episodes"] = interrupted
    return out


def action_bounds_of(env) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Each agent's Box bounds (float32, flattened), or None when the env's actions are
    discrete; read once per env, not at every step."""

    agents = list(env.possible_agents)
    if agent_action_kinds(env, agents) != "continuous":
        return None
    return {
        a: tuple(np.asarray(b, np.float32) for b in box_bounds(env.action_space(a), a))
        for a in agents
    }


def _act(policy, env, agents, obs, infos, rng, first, bounds):
    """The env's actions for one step; ``bounds`` is :func:`action_bounds_of` the env."""

    live = list(env.agents)
    if bounds is not None:
        return _act_continuous(policy, env, agents, live, obs, rng, first, bounds)
    masks = {}
    for a in live:
        m = action_mask_of(obs.get(a), infos.get(a))
        masks[a] = m if m is not None else np.ones(int(env.action_space(a).n), bool)
    if isinstance(policy, str):
        return {a: int(rng.choice(np.flatnonzero(masks[a]))) for a in live}
    n_act = max(int(env.action_space(a).n) for a in agents)
    o = _batch_obs(env, agents, live, obs)
    m = np.zeros((1, len(agents), n_act), bool)
    for i, a in enumerate(agents):
        if a in live:
            m[0, i, : masks[a].shape[0]] = masks[a]
    acts = np.asarray(policy(o, m, np.array([first])))[0]
    return {a: int(acts[agents.index(a)]) for a in live}


def _batch_obs(env, agents, live, obs) -> np.ndarray:
    """(1, N, O) flattened observations, zero for absent agents and padding."""

    vecs = {a: flat_obs(env.observation_space(a), obs[a]) for a in live}
    width = max(obs_dim(env.observation_space(a)) for a in agents)
    o = np.zeros((1, len(agents), width), np.float32)
    for i, a in enumerate(agents):
        if a in vecs:
            o[0, i, : vecs[a].shape[0]] = vecs[a]
    return o


def _act_continuous(policy, env, agents, live, obs, rng, first, bounds):
    """Box actions: a batch policy returns float (1, N, A); each agent takes its first
    dimensions, clipped to its bounds (as the env would), in the shape of its space."""
    if isinstance(policy, str):
        return {
            a: rng.uniform(*bounds[a]).astype(np.float32).reshape(env.action_space(a).shape)
            for a in live
        }
    dims = [int(np.prod(env.action_space(a).shape)) for a in agents]
    o = _batch_obs(env, agents, live, obs)
    avail = np.ones((1, len(agents), max(dims)), bool)
    acts = np.asarray(policy(o, avail, np.array([first])), dtype=np.float32)
    if acts.shape != (1, len(agents), max(dims)):
        raise ConfigError(
            f"policy returned actions of shape {acts.shape[1:]}, expected "
            f"{(len(agents), max(dims))} (continuous actions of {env_name(env)})"
        )
    out = {}
    for a in live:
        i = agents.index(a)
        lo, hi = bounds[a]
        out[a] = np.clip(acts[0, i, : dims[i]], lo, hi).reshape(env.action_space(a).shape)
    return out


def env_name(env) -> str:
    return str(getattr(env, "metadata", {}).get("name") or type(env.unwrapped).__name__)


class NoisyPolicy:
    """A batch policy acting in one PettingZoo env with OG-MARL's behaviour noise, for recording
    datasets: continuous actions get Gaussian noise of std ``noise`` in normalised units (half
    the bound range; OG-MARL's MAMuJoCo data: 0.2), clipped to the bounds; discrete ones are
    ε-greedy with ε = ``noise`` over the legal actions (OG-MARL's SMAC data: 0.05).
    Call it as ``act(env, obs, infos)``; :meth:`reset` at every episode start."""

    def __init__(
        self, policy: BatchPolicy, noise: float, seed: int = 0, name: str = "policy"
    ) -> None:
        if not 0 <= noise <= 1:
            raise ConfigError(f"noise must be in [0, 1], got {noise}")
        self.policy, self.noise, self.name = policy, float(noise), name
        self.rng = np.random.default_rng(seed)
        self.first = True
        self._bounds: dict[int, Any] = {}  # per env: action_bounds_of, once

    def reset(self) -> None:
        self.first = True

    def __call__(self, env, obs, infos) -> dict[str, Any]:

        if id(env) not in self._bounds:
            self._bounds[id(env)] = action_bounds_of(env)
        bounds = self._bounds[id(env)]
        agents = list(env.possible_agents)
        acts = _act(self.policy, env, agents, obs, infos, self.rng, self.first, bounds)
        self.first = False
        if bounds is not None:
            out = {}
            for a, v in acts.items():
                lo, hi = bounds[a]
                step = self.rng.normal(0.0, self.noise, lo.shape) * (hi - lo) / 2
                out[a] = (
                    np.clip(np.ravel(v) + step, lo, hi)
                    .astype(np.float32)
                    .reshape(env.action_space(a).shape)
                )
            return out
        for a in acts:
            if self.rng.random() < self.noise:
                m = action_mask_of(obs.get(a), infos.get(a))
                legal = np.flatnonzero(m) if m is not None else np.arange(env.action_space(a).n)
                acts[a] = int(self.rng.choice(legal))
        return acts
