"""SMAX (JaxMARL's SMAC re-implementation) as a PettingZoo ParallelEnv, plus batched rollouts.

``smax:<map>`` runs where StarCraft II is absent: SMAC map names (3m, 8m, 2s3z, 5m_vs_6m,
3s5z_vs_3s6z, ...) against JaxMARL's heuristic enemy. Three layers:

- :class:`SmaxCore`: jitted, vmapped reset/step over arrays (B envs at once);
- :class:`SmaxParallelEnv`: the PettingZoo API (one env), for evaluation and conformance;
- :func:`rollout`: a whole batch of episodes under a scripted policy in one jitted ``scan`` —
  what ``marl-augment collect`` uses.

Agent ids are ``agent_0..agent_{N-1}`` (as in OG-MARL's SMAC data); the legal-action mask is in
``obs[agent]["action_mask"]``; ``state()`` is SMAX's ``world_state``. Actions: 0 north, 1 east,
2 south, 3 west, 4 stop (the only action of a dead unit), ``5 + j`` attack enemy ``j``.
SMAX's team reward sums to at most 2 per episode (1 for damage, 1 for winning).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Any

import numpy as np
from pettingzoo import ParallelEnv

from ..data.dataset import StoreWriter, make_provenance_entry
from ..data.schema import Spec
from ..data.store import check_output_path
from ..errors import ConfigError, MissingDependency, NotFound
from . import split_id

STOP = 4
N_MOVES = 4
MAX_RETURN = 2.0
MOVES = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, -1.0], [-1.0, 0.0]], dtype=np.float32)


def _quiet_stdout():
    """Silence file descriptor 1 for a moment: jaxmarl prints a banner on import (one of its
    dependencies rebinds sys.stdout, so contextlib.redirect_stdout does not catch it)."""

    @contextlib.contextmanager
    def quiet():
        streams = sys.stdout, sys.stderr  # put back whatever the import rebinds them to
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
            sys.stdout, sys.stderr = streams

    return quiet()


def _jax():
    try:
        import jax
        import jax.numpy as jnp

        with _quiet_stdout():  # keep our stdout (e.g. --json) clean
            from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario
    except ImportError as exc:
        raise MissingDependency(exc.name or "jaxmarl", "smax", "smax:* environments") from None
    return jax, jnp, HeuristicEnemySMAX, map_name_to_scenario


def smax_maps() -> list[str]:
    _jax()
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    return sorted(MAP_NAME_TO_SCENARIO)


@functools.lru_cache(maxsize=16)
def core(map_name: str, max_steps: int = 100) -> SmaxCore:
    """One compiled core per (map, max_steps): jit caches are shared by every env on it."""
    return SmaxCore(map_name, max_steps=max_steps)


class SmaxCore:
    """Array-level SMAX with the heuristic enemy; every function is jitted and vmapped."""

    def __init__(self, map_name: str, *, max_steps: int = 100) -> None:
        jax, jnp, HeuristicEnemySMAX, map_name_to_scenario = _jax()
        try:
            scenario = map_name_to_scenario(map_name)
        except KeyError:
            raise NotFound(
                f"unknown SMAX map {map_name!r}; known maps: {', '.join(smax_maps())}"
            ) from None
        if max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {max_steps}")
        self.map_name = map_name
        self.max_steps = int(max_steps)
        self.env = HeuristicEnemySMAX(scenario=scenario, max_steps=self.max_steps)
        self.jax, self.jnp = jax, jnp
        self.n_agents = self.env.num_allies
        self.n_enemies = self.env.num_enemies
        ag0 = self.env.agents[0]
        self.obs_dim = int(self.env.observation_spaces[ag0].shape[0])
        self.n_actions = int(self.env.action_spaces[ag0].n)
        self.agents = list(self.env.agents)
        _, st = jax.jit(self.env.reset)(jax.random.PRNGKey(0))
        self.state_dim = int(self.env.get_world_state(st).shape[0])
        self.reset_one = jax.jit(self._reset)
        self.step_one = jax.jit(self._step)
        self.reset_batch = jax.jit(jax.vmap(self._reset))
        self.step_batch = jax.jit(jax.vmap(self._step))

    # -- pure functions ---------------------------------------------------------------------
    def _pack(self, obs, state):
        jnp = self.jnp
        o = jnp.stack([obs[a] for a in self.agents]).astype(jnp.float32)
        avail = self.env.get_avail_actions(state)
        m = jnp.stack([avail[a] for a in self.agents]).astype(jnp.bool_)
        return o, obs["world_state"].astype(jnp.float32), m

    def _reset(self, key):
        jax, jnp = self.jax, self.jnp
        obs, state = self.env.reset(key)
        # the heuristic enemy's initial state holds a Python int (weakly typed); after one step
        # it is a strong int32, which would make jit compile `step` a second time
        eps = state.enemy_policy_state
        eps = eps.replace(
            last_attacked_enemy=jax.lax.convert_element_type(
                jnp.asarray(eps.last_attacked_enemy), jnp.int32
            )
        )
        state = state.replace(enemy_policy_state=eps)
        o, w, m = self._pack(obs, state)
        return o, w, m, state

    def _step(self, key, state, actions):
        jnp = self.jnp
        acts = {a: actions[i] for i, a in enumerate(self.agents)}
        obs, state, rewards, dones, _ = self.env.step_env(key, state, acts)
        o, w, m = self._pack(obs, state)
        s = state.state
        ally_alive = s.unit_alive[: self.n_agents]
        enemy_alive = s.unit_alive[self.n_agents :]
        won = ~enemy_alive.any() & ally_alive.any()
        lost = ~ally_alive.any()
        done = dones["__all__"]
        timeout = done & ~won & ~lost
        reward = rewards[self.agents[0]].astype(jnp.float32)
        return o, w, m, reward, done, won, timeout, ally_alive, enemy_alive, state

    # -- batched numpy helpers --------------------------------------------------------------
    def keys(self, seed: int, n: int):
        return self.jax.random.split(self.jax.random.PRNGKey(int(seed)), n)


# ---------------------------------------------------------------------------------------------
# the PettingZoo ParallelEnv
# ---------------------------------------------------------------------------------------------


class SmaxParallelEnv(ParallelEnv):
    """``smax:<map>``: SMAX with the heuristic enemy behind the PettingZoo ParallelEnv API."""

    metadata = {"name": "smax_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, map_name: str = "3m", *, max_steps: int = 100) -> None:
        from gymnasium import spaces

        self.core = core(map_name, max_steps)
        self.map_name = map_name
        self.env_id = f"smax:{map_name}"
        self.possible_agents = [f"agent_{i}" for i in range(self.core.n_agents)]
        self.agents: list[str] = []
        obs_box = spaces.Box(-np.inf, np.inf, (self.core.obs_dim,), np.float32)
        self._obs_spaces = {
            a: spaces.Dict(
                {"observation": obs_box, "action_mask": spaces.MultiBinary(self.core.n_actions)}
            )
            for a in self.possible_agents
        }
        self._act_spaces = {a: spaces.Discrete(self.core.n_actions) for a in self.possible_agents}
        self.state_space = spaces.Box(-np.inf, np.inf, (self.core.state_dim,), np.float32)
        self.episodes = 0
        self._state = None
        self._key = None

    def observation_space(self, agent):
        return self._obs_spaces[agent]

    def action_space(self, agent):
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        jax = self.core.jax
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        self._key, sub = jax.random.split(jax.random.PRNGKey(int(seed)))
        o, w, m, self._state = self.core.reset_one(sub)
        self._obs, self._world, self._mask = np.asarray(o), np.asarray(w), np.asarray(m)
        self._alive = np.ones(self.core.n_agents, bool)
        self.agents = list(self.possible_agents)
        self.episodes += 1
        self._return = 0.0
        return self._observations(self.agents), {a: {} for a in self.agents}

    def _observations(self, agents):
        idx = [self.possible_agents.index(a) for a in agents]
        return {
            a: {"observation": self._obs[i], "action_mask": self._mask[i].astype(np.int8)}
            for a, i in zip(agents, idx)
        }

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise ConfigError("step() after the episode ended: call reset() first")
        jax = self.core.jax
        arr = np.full(self.core.n_agents, STOP, dtype=np.int32)  # dead units: stop (a no-op)
        for a in self.agents:
            if a not in actions:
                raise ConfigError(f"no action for live agent {a!r}")
            i = self.possible_agents.index(a)
            act = int(np.asarray(actions[a]).item())
            if not 0 <= act < self.core.n_actions or not self._mask[i, act]:
                raise ConfigError(
                    f"agent {a!r} cannot take action {act} now (legal: "
                    f"{np.flatnonzero(self._mask[i]).tolist()})"
                )
            arr[i] = act
        self._key, sub = jax.random.split(self._key)
        o, w, m, r, done, won, timeout, ally_alive, enemy_alive, self._state = self.core.step_one(
            sub, self._state, arr
        )
        self._obs, self._world, self._mask = np.asarray(o), np.asarray(w), np.asarray(m)
        done, won, timeout = bool(done), bool(won), bool(timeout)
        ally_alive = np.asarray(ally_alive)
        acting = list(self.agents)
        reward = float(r)
        self._return += reward
        info = {
            "battle_won": won,
            "dead_allies": int((~ally_alive).sum()),
            "dead_enemies": int((~np.asarray(enemy_alive)).sum()),
            "episode_limit": timeout,
        }
        terms, truncs = {}, {}
        for a in acting:
            i = self.possible_agents.index(a)
            died = not ally_alive[i]
            terms[a] = died or (done and not timeout)
            truncs[a] = done and timeout and not died
        obs = self._observations(acting)
        self.agents = [] if done else [a for a in acting if not terms[a]]
        return (obs, {a: reward for a in acting}, terms, truncs, {a: dict(info) for a in acting})

    def state(self) -> np.ndarray:
        if self._state is None:
            raise ConfigError("state() before reset()")
        return self._world.copy()

    def close(self) -> None:
        self._state = None


# ---------------------------------------------------------------------------------------------
# scripted behaviour policies, batched in JAX
# ---------------------------------------------------------------------------------------------

#: name -> (base behaviour, probability of a uniformly random legal action instead)
QUALITIES: dict[str, tuple[str, float]] = {
    "random": ("random", 1.0),
    "poor": ("closest", 0.5),
    "medium": ("closest", 0.15),
    "good": ("focus", 0.05),
}
BEHAVIOURS = ("random", "closest", "focus")


def policy_spec(name: str) -> tuple[str, float]:
    """``poor|medium|good|random``, a behaviour name, or ``<behaviour>:<epsilon>``."""
    if name in QUALITIES:
        return QUALITIES[name]
    base, _, eps = name.partition(":")
    if base not in BEHAVIOURS:
        raise NotFound(
            f"unknown policy {name!r}; use one of {sorted(QUALITIES)} or "
            f"{'|'.join(BEHAVIOURS)}[:epsilon], e.g. focus:0.1"
        )
    try:
        e = float(eps) if eps else 0.0
    except ValueError:
        raise ConfigError(f"policy {name!r}: epsilon must be a number") from None
    if not 0.0 <= e <= 1.0:
        raise ConfigError(f"policy {name!r}: epsilon must be in [0, 1]")
    return base, e


def scripted_actions(c: SmaxCore, key, state, avail, behaviour: str, epsilon: float):
    """Actions (B, N) for a batch of SMAX states under a scripted behaviour.

    ``closest``: attack the closest enemy in range, else walk toward the closest enemy.
    ``focus``: attack the in-range enemy with the least health (focus fire), else walk toward
    the team's weakest living enemy. Dead units stop. With probability ``epsilon`` a unit takes
    a uniformly random legal action instead.
    """
    jax, jnp = c.jax, c.jnp
    n = c.n_agents
    s = state.state
    pos = s.unit_positions
    ally, enemy = pos[:, :n], pos[:, n:]
    health = s.unit_health / c.env.unit_type_health[s.unit_types]
    e_alive = s.unit_alive[:, n:]
    e_health = jnp.where(e_alive, health[:, n:], jnp.inf)
    a_alive = s.unit_alive[:, :n]
    diff = enemy[:, None, :, :] - ally[:, :, None, :]  # (B, N, M, 2)
    dist = jnp.linalg.norm(diff, axis=-1)
    dist = jnp.where(e_alive[:, None, :], dist, jnp.inf)
    can_hit = avail[:, :, N_MOVES + 1 :]
    k_rand, k_eps = jax.random.split(key)
    logits = jnp.where(avail, 0.0, -jnp.inf)
    random_act = jax.random.categorical(k_rand, logits, axis=-1)
    if behaviour == "random":
        return random_act.astype(jnp.int32)
    if behaviour == "closest":
        pick = jnp.argmin(jnp.where(can_hit, dist, jnp.inf), axis=-1)
        goal = jnp.argmin(dist, axis=-1)
    else:  # focus
        score = jnp.where(can_hit, e_health[:, None, :] * 1e3 + dist, jnp.inf)
        pick = jnp.argmin(score, axis=-1)
        weakest = jnp.argmin(e_health, axis=-1)  # (B,)
        goal = jnp.broadcast_to(weakest[:, None], pick.shape)
    attack = N_MOVES + 1 + pick
    to_goal = jnp.take_along_axis(diff, goal[..., None, None].repeat(2, -1), axis=2)[:, :, 0]
    move = jnp.argmax(to_goal @ jnp.asarray(MOVES).T, axis=-1)
    move = jnp.where(e_alive.any(-1)[:, None], move, STOP)
    act = jnp.where(can_hit.any(-1), attack, move)
    act = jnp.where(jnp.take_along_axis(avail, act[..., None], axis=-1)[..., 0], act, random_act)
    act = jnp.where(a_alive, act, STOP)
    explore = jax.random.uniform(k_eps, act.shape) < epsilon
    return jnp.where(explore, random_act, act).astype(jnp.int32)


CHUNK = 16  # env steps per jitted scan; the batch stops once every episode has ended


@functools.lru_cache(maxsize=32)
def _rollout_fns(map_name: str, max_steps: int, behaviour: str, batch: int):
    """Jitted (start, chunk) for a batch of episodes; epsilon is an argument (no recompile)."""
    c = core(map_name, max_steps)
    return batch_rollout_fns(
        c,
        batch,
        lambda key, o, m, state, epsilon: scripted_actions(c, key, state, m, behaviour, epsilon),
    )


def batch_rollout_fns(c: SmaxCore, batch: int, act):
    """Jitted ``start(key)`` and ``chunk(carry, *args)`` stepping ``batch`` games ``CHUNK``
    steps with ``act(key, obs, avail, state, *args) -> actions (B, N)``; the layout
    :func:`_collect_batch` turns into store columns."""
    jax, jnp = c.jax, c.jnp

    def start(key):
        k_reset, k_loop = jax.random.split(key)
        o, w, m, state = c.reset_batch(jax.random.split(k_reset, batch))
        return (
            o,
            w,
            m,
            state,
            jnp.ones((batch, c.n_agents), bool),
            jnp.ones((batch,), bool),
            k_loop,
        )

    def chunk(carry, *args):
        def body(carry, _):
            o, w, m, state, alive, running, key = carry
            key, k_act, k_step = jax.random.split(key, 3)
            a = act(k_act, o, m, state, *args)
            o2, w2, m2, r, done, won, timeout, a_alive, _, state2 = c.step_batch(
                jax.random.split(k_step, batch), state, a
            )
            out = dict(
                obs=o,
                state=w,
                avail_actions=m,
                actions=a,
                rewards=r,
                alive=alive,
                valid=running,
                won=won,
                timeout=timeout,
            )
            return (o2, w2, m2, state2, a_alive, running & ~done, key), out

        return jax.lax.scan(body, carry, None, length=CHUNK)

    return jax.jit(start), jax.jit(chunk)


def rollout(
    map_name: str,
    policy: str,
    episodes: int,
    *,
    seed: int = 0,
    batch: int = 256,
    max_steps: int = 100,
    progress: Any = None,
):
    """Yield (columns, lengths, won) for ``episodes`` episodes of a scripted policy, batched."""
    behaviour, epsilon = policy_spec(policy)
    c = core(map_name, max_steps)
    batch = max(1, min(int(batch), int(episodes)))
    start, chunk = _rollout_fns(map_name, max_steps, behaviour, batch)
    yield from run_batches(
        c,
        start,
        chunk,
        (c.jnp.float32(epsilon),),
        episodes,
        seed=seed,
        batch=batch,
        max_steps=max_steps,
        progress=progress,
    )


def run_batches(
    c: SmaxCore,
    start,
    chunk,
    args: tuple,
    episodes: int,
    *,
    seed: int,
    batch: int,
    max_steps: int,
    progress: Any = None,
):
    """Yield (columns, lengths, won) batch by batch until ``episodes`` episodes, with the
    jitted ``start`` / ``chunk`` of :func:`batch_rollout_fns` (``chunk`` gets ``args``)."""
    done = 0
    for key in c.keys(seed, -(-episodes // batch)):
        take = min(batch, episodes - done)
        yield _collect_batch(start, lambda carry: chunk(carry, *args), key, max_steps, take)
        done += take
        if progress is not None:
            progress(take)


def _collect_batch(start, chunk, key, max_steps: int, take: int):
    """Run one batch of episodes with jitted ``start(key)`` and ``chunk(carry)`` (``CHUNK``
    steps each, stopping once every episode has ended); return the first ``take`` episodes as
    (columns, lengths, won) in store layout."""
    carry = start(key)
    parts = []
    for _ in range(-(-max_steps // CHUNK)):
        carry, out = chunk(carry)
        parts.append({k: np.asarray(v) for k, v in out.items()})
        if not bool(np.asarray(carry[5]).any()):  # every episode of the batch has ended
            break
    traj = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}  # (T, B, ...)
    valid = traj["valid"][:, :take].T  # (B, T)
    lengths = valid.sum(1)
    cols = {
        k: np.swapaxes(traj[k][:, :take], 0, 1)[valid]
        for k in ("obs", "state", "avail_actions", "actions", "rewards", "alive")
    }
    last = np.zeros_like(valid)
    last[np.arange(take), lengths - 1] = True
    ends = last[valid]
    timeout = np.swapaxes(traj["timeout"][:, :take], 0, 1)[last]
    won = np.swapaxes(traj["won"][:, :take], 0, 1)[last]
    cols["truncated"] = np.zeros(ends.shape[0], bool)
    cols["terminated"] = np.zeros(ends.shape[0], bool)
    end_rows = np.flatnonzero(ends)
    cols["truncated"][end_rows[timeout]] = True
    cols["terminated"][end_rows[~timeout]] = True
    cols["actions"] = cols["actions"].astype(np.int32)
    return cols, lengths.astype(np.int64), won


def collect(
    env_id: str,
    out,
    *,
    quality: str = "medium",
    episodes: int = 1000,
    seed: int = 0,
    batch: int = 256,
    max_steps: int = 100,
    overwrite: bool = False,
    progress: Any = None,
):
    """Collect ``episodes`` episodes of a scripted policy on ``smax:<map>`` into a new store."""

    backend, map_name = split_id(env_id)
    if backend != "smax":
        raise ConfigError(
            f"collect runs scripted policies on smax:<map> only, got {env_id!r}; "
            f"record PettingZoo envs with 'marl-augment record'"
        )
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    behaviour, epsilon = policy_spec(quality)
    check_output_path(out, overwrite=overwrite)
    c = core(map_name, max_steps)
    spec = Spec(
        env_id=env_id,
        agent_ids=tuple(f"agent_{i}" for i in range(c.n_agents)),
        obs_dim=c.obs_dim,
        n_actions=c.n_actions,
        state_dim=c.state_dim,
        has_avail_actions=True,
        has_alive=True,
        reward_mode="given",
        extras={"max_steps": max_steps, "max_return": MAX_RETURN},
    )
    config = {
        "env_id": env_id,
        "policy": quality,
        "behaviour": behaviour,
        "epsilon": epsilon,
        "episodes": episodes,
        "max_steps": max_steps,
        "batch": batch,
    }
    try:
        from importlib.metadata import version

        jm = version("jaxmarl")
    except Exception:  # pragma: no cover
        jm = None
    source = {"adapter": "collect", "jaxmarl_version": jm, **config, "seed": seed}
    prov = [make_provenance_entry(step=1, method="collect", config=config, seed=seed)]
    with StoreWriter(out, spec, overwrite=overwrite, source=source, provenance=prov) as w:
        for cols, lengths, won in rollout(
            map_name,
            quality,
            episodes,
            seed=seed,
            batch=batch,
            max_steps=max_steps,
            progress=progress,
        ):
            w.append_episodes(cols, lengths, won=won.tolist())
    return w.result
