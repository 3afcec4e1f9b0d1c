"""Online MATD3 behaviour policies for continuous-action envs (MaMuJoCo, MPE, any Box
PettingZoo env), and the quality levels their checkpoints are picked by.

OG-MARL and OMAR made their continuous datasets by training policies online and recording them
with Gaussian action noise at several stages of learning. :func:`train_matd3` does the same
here: TD3 (Fujimoto et al., 2018) with a centralised twin critic of the team reward over the
global state and the joint action, and one feed-forward actor shared by the agents (one-hot
agent id appended to the observation), acting on its own observation only:

    critic:  Σ_j (Q_j(s, a) − y)²,   y = r + γ (1 − term) min_j Q'_j(s', π'(o') + ε),
             ε = clip(N(0, σ²), −c, c)                    (target policy smoothing)
    actor:   − mean Q_1(s, π(o_1), …, π(o_N))              every ``policy_delay`` updates

MATD3 (Ackermann et al., 2019) with a team reward, where every agent's critic is the same
function; time limits bootstrap (only a true termination ends the return). Exploration: uniform
random actions for ``start_steps`` steps, then Gaussian noise of std ``exploration_noise``
(normalised units). One update per environment step after ``start_steps``, done in blocks of
``update_every``.

Every ``checkpoint_every`` steps the actor is saved as a policy folder (``ckpt-<steps>/``, which
``record --policy`` and ``evaluate --policy`` take) and evaluated twice: as the behaviour policy
it would record with (Gaussian noise ``behaviour_noise``, OG-MARL's 0.2) and greedily. Rows go to
``checkpoints.jsonl``; training resumes from the last checkpoint (networks, optimisers, replay
buffer and counters; the interrupted episode starts over, so a resumed run is not bit-identical
to an uninterrupted one).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FormatError, NotFound
from ..outputs import check_output, kind_of, write_marker
from ..spaces import flat_obs, obs_dim
from ..torch_state import (
    has_training_state,
    load_training_state,
    resolve_device,
    save_training_state,
    torch_threads,
)
from . import make_env, team_reward
from .behaviour import CHECKPOINTS, CONFIG_FILE, QUALITY_BANDS, read_checkpoints
from .evaluate import action_bounds_of
from .recording import no_bars, record_env

STATE_DIR = "train-state"
#: settings a resumed run may change
RESUMABLE = ("total_steps", "device", "threads")

#: published quality levels of continuous datasets as (level, mean return, source): a
#: checkpoint qualifies when its behaviour return lies within ±``LEVEL_TOLERANCE`` (relative)
#: of the mean. Envs not listed use :data:`RELATIVE_BANDS`.
PUBLISHED_LEVELS: dict[str, list[tuple[str, float, str]]] = {
    "mamujoco:2x3-HalfCheetah": [
        ("poor", 400.45, "og-marl/mamujoco/2halfcheetah-Poor"),
        ("medium", 1485.0, "og-marl/mamujoco/2halfcheetah-Medium"),
        ("good", 6924.11, "og-marl/mamujoco/2halfcheetah-Good"),
        ("omar-medium", 1568.87, "omar/mamujoco/2halfcheetah-Medium"),
        ("omar-expert", 3338.69, "omar/mamujoco/2halfcheetah-Expert"),
    ],
}
LEVEL_TOLERANCE = 0.2
#: where no comparable published return exists (mpe2's rewards differ from OMAR's MPE), the
#: qualities are bands of the normalised score (R − R_random) / (R_best − R_random), R_best the
#: run's best checkpoint and R_random uniformly random actions' (both measured precisely by
#: :func:`pick`; training-time listings use the first checkpoint for R_random): OG-MARL's SMAC
#: fractions (poor ≈ 0.23–0.37, medium ≈ 0.50–0.63, good ≈ 0.82–0.92 of the maximum)
RELATIVE_BANDS = QUALITY_BANDS


@dataclass
class Td3OnlineConfig:
    """MATD3's hyper-parameters (TD3's defaults; sizes for a CPU)."""

    total_steps: int = 200_000
    """Environment steps of training."""
    start_steps: int = 10_000
    """Uniform random actions for this many steps before the actor acts (and learning starts)."""
    batch_size: int = 256
    hidden: int = 256
    """Width of the actor's and the critics' two hidden layers."""
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    policy_noise: float = 0.2
    """Std of the target actions' smoothing noise (normalised units)."""
    noise_clip: float = 0.5
    policy_delay: int = 2
    exploration_noise: float = 0.1
    """Std of the Gaussian exploration noise while training (normalised units)."""
    update_every: int = 50
    """Updates are made in blocks: this many steps, then this many updates."""
    buffer_size: int = 1_000_000
    checkpoint_every: int = 10_000
    dense_until: int = 0
    """Before this many steps a checkpoint also follows every ``dense_every`` steps: a
    learner that passes a quality band quickly (HalfCheetah's poor) gets a checkpoint in it."""
    dense_every: int = 2_000
    eval_episodes: int = 5
    behaviour_noise: float = 0.2
    """Std of the noise checkpoints are evaluated (and datasets recorded) with: OG-MARL's
    2halfcheetah card, "Gaussian noise with standard deviation of 0.2 was added"."""
    device: str = "cpu"
    threads: int = 0
    """torch threads while training (0: torch's default); 1 is fastest beside other jobs."""

    def check(self) -> Td3OnlineConfig:
        if self.threads < 0:
            raise ConfigError(f"threads must be >= 0, got {self.threads}")
        if self.dense_until < 0:
            raise ConfigError(f"dense_until must be >= 0, got {self.dense_until}")
        for f in (
            "total_steps",
            "batch_size",
            "hidden",
            "policy_delay",
            "update_every",
            "buffer_size",
            "checkpoint_every",
            "dense_every",
            "eval_episodes",
        ):
            if getattr(self, f) < 1:
                raise ConfigError(f"{f} must be >= 1, got {getattr(self, f)}")
        if self.start_steps < 0:
            raise ConfigError(f"start_steps must be >= 0, got {self.start_steps}")
        if self.lr <= 0 or not 0 < self.tau <= 1 or not 0 < self.gamma <= 1:
            raise ConfigError("need lr > 0, 0 < tau <= 1 and 0 < gamma <= 1")
        for f in ("policy_noise", "noise_clip", "exploration_noise", "behaviour_noise"):
            if not 0 <= getattr(self, f) <= 1:
                raise ConfigError(f"{f} must be in [0, 1], got {getattr(self, f)}")
        return self


class _EnvIO:
    """One PettingZoo env seen as arrays: padded observations (N, O), state (S), Box bounds."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]) -> None:

        self.env = make_env(env_id, **env_kwargs)
        self.agents = list(self.env.possible_agents)
        bounds = action_bounds_of(self.env)
        if bounds is None:
            self.env.close()
            raise ConfigError(
                f"{env_id} takes discrete actions; MATD3 behaviour policies are "
                f"for continuous ones (SMAX maps train with MAPPO: "
                f"'marl-augment behaviour train smax:<map>')"
            )
        self.spaces = [self.env.observation_space(a) for a in self.agents]
        self.flat_obs = flat_obs
        self.obs_dim = max(obs_dim(s) for s in self.spaces)
        self.dims = [int(bounds[a][0].size) for a in self.agents]
        n, a_max = len(self.agents), max(self.dims)
        self.low, self.high = np.zeros((n, a_max), np.float32), np.zeros((n, a_max), np.float32)
        for i, a in enumerate(self.agents):
            self.low[i, : self.dims[i]], self.high[i, : self.dims[i]] = bounds[a]
        self.combine = np.mean if team_reward(env_id) == "mean" else np.sum
        self.obs, _ = self.env.reset(seed=0)  # the state's width needs a reset
        self.state_dim = int(np.asarray(self._state()).size)

    def _state(self) -> np.ndarray:
        try:
            return np.asarray(self.env.state(), np.float32).ravel()
        except (NotImplementedError, AttributeError):  # no global state: the joint observation
            return self.observe().ravel()

    def observe(self) -> np.ndarray:
        o = np.zeros((len(self.agents), self.obs_dim), np.float32)
        for i, a in enumerate(self.agents):
            if a in self.obs:
                v = self.flat_obs(self.spaces[i], self.obs[a])
                o[i, : v.shape[0]] = v
        return o

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self.obs, _ = self.env.reset(seed=seed)
        return self.observe(), self._state()

    def step(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, bool, bool]:
        """Normalised actions (N, A) → (obs, state, team reward, terminated, episode over)."""
        act = (self.low + (np.clip(u, -1, 1) + 1) / 2 * (self.high - self.low)).astype(np.float32)
        live = list(self.env.agents)
        acts = {
            a: act[i, : self.dims[i]].reshape(self.env.action_space(a).shape)
            for i, a in enumerate(self.agents)
            if a in live
        }
        self.obs, rewards, terms, truncs, _ = self.env.step(acts)
        r = float(self.combine([float(v) for v in rewards.values()])) if rewards else 0.0
        terminated = any(bool(terms.get(a)) and not bool(truncs.get(a)) for a in live)
        over = not self.env.agents or all(bool(terms.get(a)) or bool(truncs.get(a)) for a in live)
        return self.observe(), self._state(), r, terminated, over


class _Replay:
    """A ring buffer of transitions (float32 arrays), saved and restored as one .npz."""

    FIELDS = ("obs", "state", "action", "reward", "next_obs", "next_state", "term")

    def __init__(self, size: int, n: int, o: int, a: int, s: int) -> None:
        shapes = {
            "obs": (n, o),
            "state": (s,),
            "action": (n, a),
            "reward": (),
            "next_obs": (n, o),
            "next_state": (s,),
            "term": (),
        }
        self.data = {k: np.zeros((size, *v), np.float32) for k, v in shapes.items()}
        self.size, self.count = size, 0

    def add(self, **row: Any) -> None:
        i = self.count % self.size
        for k, v in row.items():
            self.data[k][i] = v
        self.count += 1

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, np.ndarray]:
        idx = rng.integers(0, min(self.count, self.size), batch)
        return {k: v[idx] for k, v in self.data.items()}

    def save(self, path: Path) -> None:
        n = min(self.count, self.size)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, count=self.count, **{k: v[:n] for k, v in self.data.items()})
        tmp.replace(path)

    def load(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as z:
            self.count = int(z["count"])
            for k in self.FIELDS:
                self.data[k][: len(z[k])] = z[k]


class Matd3:
    """The networks and the update of MATD3 (see the module docstring)."""

    def __init__(
        self, n: int, o: int, a: int, s: int, dims: list[int], cfg: Td3OnlineConfig, seed: int
    ) -> None:
        import torch

        from ..algos.feedforward import MlpActor
        from ..algos.maddpg_cql import TwinJointCritic

        self.torch, self.cfg = torch, cfg
        self.device = resolve_device(cfg.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.actor = MlpActor(n, o, a, cfg.hidden, dims)
            self.critic = TwinJointCritic(s, n * a, cfg.hidden)
        self.target_actor = copy.deepcopy(self.actor)
        self.target_critic = copy.deepcopy(self.critic)
        for m in (self.actor, self.critic, self.target_actor, self.target_critic):
            m.to(self.device)
        for p in [*self.target_actor.parameters(), *self.target_critic.parameters()]:
            p.requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(seed)
        self.updates = 0

    def modules(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "critic": self.critic,
            "target_actor": self.target_actor,
            "target_critic": self.target_critic,
        }

    def optimizers(self) -> dict[str, Any]:
        return {"actor": self.actor_opt, "critic": self.critic_opt}

    def act(self, obs: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.no_grad():
            return self.actor(torch.from_numpy(obs).to(self.device)).cpu().numpy()

    def update(self, b: dict[str, np.ndarray]) -> dict[str, float]:
        torch, cfg = self.torch, self.cfg
        t = {k: torch.from_numpy(v).to(self.device) for k, v in b.items()}
        rows = t["reward"].shape[0]
        dims = self.actor.dims
        with torch.no_grad():
            nxt = self.target_actor(t["next_obs"])
            noise = (
                torch.randn(nxt.shape, generator=self.gen, device=self.device) * cfg.policy_noise
            ).clamp(-cfg.noise_clip, cfg.noise_clip)
            nxt = (nxt + noise).clamp(-1, 1) * dims
            q_next = self.target_critic(t["next_state"], nxt.reshape(rows, -1)).min(0).values
            y = t["reward"] + cfg.gamma * (1 - t["term"]) * q_next
        q = self.critic(t["state"], t["action"].reshape(rows, -1))
        critic_loss = ((q - y) ** 2).mean(1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        self.updates += 1
        info = {"critic_loss": float(critic_loss.detach()), "q": float(q[0].mean().detach())}
        if self.updates % cfg.policy_delay == 0:
            pi = self.actor(t["obs"])
            actor_loss = -self.critic(t["state"], pi.reshape(rows, -1))[0].mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            with torch.no_grad():
                for net, target in (
                    (self.actor, self.target_actor),
                    (self.critic, self.target_critic),
                ):
                    for p, tp in zip(net.parameters(), target.parameters()):
                        tp.lerp_(p, cfg.tau)
            info["actor_loss"] = float(actor_loss.detach())
        return info


def _evaluate(
    io: _EnvIO, actor: Any, *, episodes: int, noise: float, seed: int
) -> tuple[list[float], list[int]]:
    """Returns and lengths of ``episodes`` episodes of ``actor`` (an ``MlpActor``) with
    Gaussian ``noise``; ``actor=None`` acts uniformly at random (the policy of MATD3's
    ``start_steps``)."""
    import torch

    rng = np.random.default_rng(seed)
    if actor is None:
        dims = np.zeros((len(io.agents), max(io.dims)), np.float32)
        for i, d in enumerate(io.dims):
            dims[i, :d] = 1.0
    else:
        device = actor.dims.device
        dims = actor.dims.cpu().numpy()  # read once, and off the device
    rets, lens = [], []
    for e in range(episodes):
        obs, _ = io.reset(seed + e)
        ret, length, over = 0.0, 0, False
        while not over:
            if actor is None:
                u = rng.uniform(-1, 1, dims.shape) * dims
            else:
                with torch.no_grad():
                    u = actor(torch.from_numpy(obs).to(device)).cpu().numpy()
            if actor is not None and noise > 0:
                u = np.clip(u + rng.normal(0.0, noise, u.shape), -1, 1) * dims
            obs, _, r, _, over = io.step(u)
            ret += r
            length += 1
        rets.append(ret)
        lens.append(length)
    return rets, lens


def train_matd3(
    env_id: str,
    out: str | Path,
    *,
    config: Td3OnlineConfig | None = None,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    progress: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train MATD3 on a continuous-action env into ``out`` (resumable); see the module
    docstring. ``env_kwargs`` go to the env (e.g. ``max_cycles`` of MPE)."""
    from ..algos.feedforward import save_feedforward_policy

    cfg = (config or Td3OnlineConfig()).check()
    env_kwargs = dict(env_kwargs or {})
    out = check_output(out, "behaviour", overwrite=False, reuse=True, what="behaviour folder")
    meta = {
        "env_id": env_id,
        "seed": seed,
        "learner": "matd3",
        "env_kwargs": env_kwargs,
        "config": dataclasses.asdict(cfg),
    }
    if (out / CONFIG_FILE).is_file():
        old = json.loads((out / CONFIG_FILE).read_text())
        if {k: v for k, v in old.items() if k != "config"} != {
            k: v for k, v in meta.items() if k != "config"
        } or not _same_settings(old.get("config", {}), meta["config"]):
            raise ConfigError(
                f"{out} holds a behaviour run with other settings; choose another "
                f"folder (only {', '.join(RESUMABLE)} may change on resume)"
            )
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    io = _EnvIO(env_id, env_kwargs)
    eval_io = _EnvIO(env_id, env_kwargs)
    out.mkdir(parents=True, exist_ok=True)
    if kind_of(out) != "behaviour":
        write_marker(out, "behaviour")
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    n, o, a, s = len(io.agents), io.obs_dim, max(io.dims), io.state_dim
    algo = Matd3(n, o, a, s, io.dims, cfg, seed)
    replay = _Replay(min(cfg.buffer_size, cfg.total_steps), n, o, a, s)
    rng = np.random.default_rng(seed)
    steps, episodes = 0, 0
    state_dir = out / STATE_DIR
    if has_training_state(state_dir) and (state_dir / "replay.npz").is_file():
        st = load_training_state(state_dir, algo.modules(), algo.optimizers(), algo.device)
        replay.load(state_dir / "replay.npz")
        steps, episodes, algo.updates = st["steps"], st["episodes"], st["updates"]
        rng = np.random.default_rng([seed, steps])
        algo.gen.manual_seed(seed * 1_000_003 + steps)
        rows = [r for r in read_checkpoints(out) if r["env_steps"] <= steps]
        (out / CHECKPOINTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif (out / CHECKPOINTS).exists():
        (out / CHECKPOINTS).unlink()
    if progress is not None and steps:
        progress(steps)
    dims = algo.actor.dims.cpu().numpy()
    t0 = time.perf_counter()
    recent: list[float] = []
    obs, state = io.reset(seed * 100_003 + episodes)
    ep_ret = 0.0
    pending = 0
    while steps < cfg.total_steps:
        if steps < cfg.start_steps:
            u = rng.uniform(-1, 1, (n, a)).astype(np.float32) * dims
        else:
            u = algo.act(obs)
            u = np.clip(u + rng.normal(0.0, cfg.exploration_noise, u.shape), -1, 1) * dims
        nobs, nstate, r, term, over = io.step(u)
        replay.add(
            obs=obs,
            state=state,
            action=u,
            reward=r,
            next_obs=nobs,
            next_state=nstate,
            term=float(term),
        )
        obs, state, ep_ret = nobs, nstate, ep_ret + r
        steps += 1
        pending += steps > cfg.start_steps  # one update per step once the actor acts
        if over:
            recent.append(ep_ret)
            episodes += 1
            obs, state = io.reset(seed * 100_003 + episodes)
            ep_ret = 0.0
        if pending >= cfg.update_every:
            for _ in range(pending):
                algo.update(replay.sample(rng, cfg.batch_size))
            pending = 0
        if progress is not None:
            progress(1)
        dense = steps <= cfg.dense_until and steps % cfg.dense_every == 0
        if dense or steps % cfg.checkpoint_every == 0 or steps == cfg.total_steps:
            name = f"ckpt-{steps:09d}"
            ev_seed = 1_000_000 + seed * 1_000_003 + steps
            rets, lens = _evaluate(
                eval_io,
                algo.actor,
                episodes=cfg.eval_episodes,
                noise=cfg.behaviour_noise,
                seed=ev_seed,
            )
            greedy, _ = _evaluate(
                eval_io, algo.actor, episodes=cfg.eval_episodes, noise=0.0, seed=ev_seed
            )
            save_feedforward_policy(
                out / name,
                algo.actor,
                low=io.low,
                high=io.high,
                action_dims=io.dims,
                hidden=cfg.hidden,
                name="matd3",
                meta={
                    "env_id": env_id,
                    "env_kwargs": env_kwargs,
                    "env_steps": steps,
                    "seed": seed,
                    "behaviour_noise": cfg.behaviour_noise,
                },
            )
            row = {
                "checkpoint": name,
                "env_steps": steps,
                "updates": algo.updates,
                "return_mean": float(np.mean(rets)),
                "return_std": float(np.std(rets)),
                "greedy_return": float(np.mean(greedy)),
                "length_mean": float(np.mean(lens)),
                "eval_episodes": len(rets),
                "noise": cfg.behaviour_noise,
                "train_return": float(np.mean(recent)) if recent else None,
                "episodes": episodes,
                "seconds": round(time.perf_counter() - t0, 2),
            }
            recent = []
            with open(out / CHECKPOINTS, "a") as f:
                f.write(json.dumps(row) + "\n")
            save_training_state(
                state_dir,
                algo.modules(),
                algo.optimizers(),
                {"steps": steps, "episodes": episodes, "updates": algo.updates},
            )
            replay.save(state_dir / "replay.npz")
            if log is not None:
                log(row)
    io.env.close()
    eval_io.env.close()
    return {
        "folder": str(out),
        "checkpoints": read_checkpoints(out),
        "seconds": round(time.perf_counter() - t0, 2),
        "updates": algo.updates,
    }


def _same_settings(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a folder trained with ``old`` may resume with ``new``: equal but for
    :data:`RESUMABLE`; an option added after the folder was made counts as equal at its
    default (the folder was trained as that default trains)."""
    defaults = dataclasses.asdict(Td3OnlineConfig())
    for k in set(old) | set(new):
        if k in RESUMABLE:
            continue
        if k not in old:
            if new[k] != defaults.get(k):
                return False
        elif old[k] != new.get(k):
            return False
    return True


def quality_bands(
    env_id: str, rows: list[dict[str, Any]], low: float | None = None
) -> dict[str, tuple[float, float]]:
    """Each quality's band of behaviour returns for ``env_id``: around the published levels
    (:data:`PUBLISHED_LEVELS`), else :data:`RELATIVE_BANDS` of the range from ``low`` (the
    random policy's return; without it, the first checkpoint's stands in) to the best
    checkpoint's."""
    if env_id in PUBLISHED_LEVELS:
        return {
            q: (m - LEVEL_TOLERANCE * abs(m), m + LEVEL_TOLERANCE * abs(m))
            for q, m, _ in PUBLISHED_LEVELS[env_id]
        }
    if len(rows) < (1 if low is not None else 2):
        return {}
    lo = rows[0]["return_mean"] if low is None else low
    hi = max(r["return_mean"] for r in rows)
    if hi <= lo:
        return {}
    return {q: (lo + f0 * (hi - lo), lo + f1 * (hi - lo)) for q, (f0, f1) in RELATIVE_BANDS.items()}


#: env steps of a precise evaluation. The checkpoints a quality's pick depends on are evaluated
#: again with about this many steps (simple_spread: 800 episodes), since the
#: few episodes evaluated while training are noisier than the bands are wide (simple_spread:
#: ±3.4 at 20 episodes against bands 2.5 wide, which once labelled a checkpoint "good" whose
#: data came out below "medium")
PRECISE_STEPS = 20_000
#: and at least this many episodes (HalfCheetah: 50 of 1,000 steps)
PRECISE_MIN_EPISODES = 50
#: at most this many checkpoints are evaluated precisely for one side of a pick
PRECISE_MAX = 16


def standard_error(row: dict[str, Any]) -> float:
    """The standard error of a checkpoint row's mean behaviour return."""
    n = max(1, int(row.get("eval_episodes") or 1))
    return float(row.get("return_std") or 0.0) / math.sqrt(n)


def precise_row(folder: str | Path, row: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """``row`` with its behaviour return measured again over about :data:`PRECISE_STEPS` env
    steps, with the folder's behaviour noise and seeds of its own (deterministic; the folder is
    only read)."""
    from ..algos.feedforward import POLICY_FILE, load_feedforward_policy

    if row["checkpoint"] == RANDOM:
        actor = None
    else:
        d = Path(folder) / row["checkpoint"]
        if not (d / POLICY_FILE).is_file():
            raise NotFound(f"checkpoint {row['checkpoint']} of {folder} has no policy; train again")
        actor = load_feedforward_policy(d, json.loads((d / POLICY_FILE).read_text())).actor
    per = max(1.0, float(row.get("length_mean") or 1.0))
    episodes = max(PRECISE_MIN_EPISODES, int(row.get("eval_episodes") or 1))
    episodes = min(1000, max(episodes, math.ceil(PRECISE_STEPS / per)))
    io = _EnvIO(meta["env_id"], meta.get("env_kwargs") or {})
    try:
        with torch_threads(1):
            rets, lens = _evaluate(
                io,
                actor,
                episodes=episodes,
                noise=float(meta["config"]["behaviour_noise"]),
                seed=2_000_000_000 + int(row["env_steps"]),
            )
    finally:
        io.env.close()
    return {
        **row,
        "return_mean": float(np.mean(rets)),
        "return_std": float(np.std(rets)),
        "length_mean": float(np.mean(lens)),
        "eval_episodes": episodes,
        "training_return": None if actor is None else row["return_mean"],
        "precise": True,
    }


#: the name of the uniformly random policy among a behaviour folder's measured rows
RANDOM = "random"


class PreciseReturns:
    """Precise returns of a behaviour folder's checkpoints (:func:`precise_row`), each measured
    once: share one between :func:`pick` and :func:`behaviour_range`. ``measure`` replaces
    :func:`precise_row` (tests)."""

    def __init__(self, folder: str | Path, measure: Any = None) -> None:
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / CONFIG_FILE).read_text())
        self.measure = measure or (lambda r: precise_row(self.folder, r, self.meta))
        self.done: dict[str, dict[str, Any]] = {}

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["checkpoint"] not in self.done:
            self.done[row["checkpoint"]] = self.measure(row)
        return self.done[row["checkpoint"]]

    def ends(self, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The uniformly random policy and the best checkpoint, measured precisely: the best
        among those whose training-time return lies within two standard errors of the best
        one's."""
        top = max(r["return_mean"] - 2 * standard_error(r) for r in rows)
        best = [r for r in rows if r["return_mean"] + 2 * standard_error(r) >= top]
        best.sort(key=lambda r: -r["return_mean"])
        random = self(
            {
                "checkpoint": RANDOM,
                "env_steps": 0,
                "return_mean": rows[0]["return_mean"],
                "length_mean": rows[0].get("length_mean"),
                "eval_episodes": 1,
            }
        )
        return random, max((self(r) for r in best[:PRECISE_MAX]), key=lambda r: r["return_mean"])


def behaviour_range(folder: str | Path, precise: PreciseReturns | None = None) -> dict[str, Any]:
    """The behaviour run's range of returns, measured precisely: the uniformly random policy's
    and the best checkpoint's (with the behaviour noise). Continuous benchmark scenarios
    normalise returns by it, (R − low) / (high − low), as SMAX's by the maximum return (0: the
    random policy, as D4RL's normalised scores)."""
    precise = precise or PreciseReturns(folder)
    rows = read_checkpoints(folder)
    if not rows:
        raise NotFound(f"{folder} has no checkpoints yet; train first")
    first, best = precise.ends(rows)
    return {
        "low": first["return_mean"],
        "high": best["return_mean"],
        "low_checkpoint": first["checkpoint"],
        "high_checkpoint": best["checkpoint"],
        "episodes": best["eval_episodes"],
        "how": "precise returns of uniformly random actions and of the best checkpoint "
        "(behaviour noise)",
    }


def pick(
    folder: str | Path,
    quality: str,
    *,
    precise: bool = True,
    measure: Any = None,
) -> dict[str, Any]:
    """The checkpoint whose behaviour return lies in ``quality``'s band (nearest its middle).

    With ``precise`` (the default), every checkpoint the answer depends on is measured again
    (:func:`precise_row`): for bands of the run's own range, the first checkpoint and those that
    may be the best (within two standard errors of it); then every checkpoint whose mean could lie
    in the band (within two standard errors), nearest the middle first. The pick is made on the
    precise returns only. ``measure`` is a :class:`PreciseReturns` to share, or a function that
    replaces :func:`precise_row` (tests)."""
    meta = json.loads((Path(folder) / CONFIG_FILE).read_text())
    env_id = meta["env_id"]
    rows = read_checkpoints(folder)
    bands = quality_bands(env_id, rows)
    if quality not in bands and not (quality in RELATIVE_BANDS and env_id not in PUBLISHED_LEVELS):
        known = sorted(bands) or sorted(RELATIVE_BANDS)
        raise ConfigError(
            f"unknown quality {quality!r} for {env_id}; use one of {', '.join(known)}"
        )
    again = measure if isinstance(measure, PreciseReturns) else PreciseReturns(folder, measure)
    if precise and env_id not in PUBLISHED_LEVELS and rows:
        random, _ = again.ends(rows)
        bands = quality_bands(
            env_id, [again.done.get(r["checkpoint"], r) for r in rows], low=random["return_mean"]
        )
    if quality not in bands:
        raise NotFound(
            f"no checkpoint of {folder} returns more than random actions, so there are no "
            f"quality bands yet; train longer"
        )
    lo, hi = bands[quality]
    mid = (lo + hi) / 2
    if precise:
        maybe = [
            r
            for r in rows
            if r["return_mean"] + 2 * standard_error(r) >= lo
            and r["return_mean"] - 2 * standard_error(r) <= hi
        ]
        maybe.sort(key=lambda r: (abs(r["return_mean"] - mid), r["env_steps"]))
        for r in maybe[:PRECISE_MAX]:
            again(r)
        rows = [again.done[r["checkpoint"]] for r in rows if r["checkpoint"] in again.done]
    inside = [r for r in rows if lo <= r["return_mean"] <= hi]
    if not inside:
        got = ", ".join(f"{r['return_mean']:.1f}" for r in rows) or "none"
        how = "measured precisely" if precise else "reached"
        raise NotFound(
            f"no checkpoint in {folder} reaches {quality} (behaviour return "
            f"{lo:.1f} to {hi:.1f}; checkpoints {how}: {got}); train longer or "
            f"with checkpoints more often"
        )
    best_row = min(inside, key=lambda r: (abs(r["return_mean"] - mid), r["env_steps"]))
    return {**best_row, "band": [lo, hi]}


def episodes_for(row: dict[str, Any], transitions: int) -> int:
    """Whole episodes for about ``transitions`` steps at the checkpoint's episode length."""
    return max(1, math.ceil(transitions / max(1.0, float(row.get("length_mean") or 1.0))))


def load_meta(folder: str | Path) -> dict[str, Any]:
    """``behaviour.json`` of a behaviour folder (any learner)."""

    p = Path(folder) / CONFIG_FILE
    if not p.is_file():
        raise NotFound(
            f"{folder} is not a behaviour folder (no {CONFIG_FILE}); make one with "
            f"'marl-augment behaviour train'"
        )
    try:
        meta = json.loads(p.read_text())
        meta["env_id"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise FormatError(f"unreadable {CONFIG_FILE} in {folder} ({e}); train again") from None
    return meta


def record_matd3(
    folder: str | Path,
    out: str,
    *,
    quality: str | None = None,
    checkpoint: str | None = None,
    transitions: int = 1_000_000,
    noise: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
    bars: Any = None,
):
    """Record about ``transitions`` steps (whole episodes) with a MATD3 checkpoint picked by
    quality or by name, acting with Gaussian noise (the folder's ``behaviour_noise``)."""

    if (quality is None) == (checkpoint is None):
        raise ConfigError("give a quality or a checkpoint name, not both")
    if transitions < 1:
        raise ConfigError(f"transitions must be >= 1, got {transitions}")
    meta = load_meta(folder)
    precise = PreciseReturns(folder)
    row = (
        pick(folder, quality, measure=precise)
        if quality
        else next((r for r in read_checkpoints(folder) if r["checkpoint"] == checkpoint), None)
    )
    if row is None:
        raise NotFound(f"no checkpoint {checkpoint!r} in {folder}; see {CHECKPOINTS}")
    reference = behaviour_range(folder, precise)
    level = meta["config"]["behaviour_noise"] if noise is None else float(noise)
    source = {
        "behaviour_checkpoint": row["checkpoint"],
        "behaviour_env_steps": row["env_steps"],
        "quality": quality,
        "measured_return": row["return_mean"],
        "measured_episodes": row.get("eval_episodes"),
        "quality_band": row.get("band"),
        "reference_returns": reference,
        "behaviour_learner": "matd3",
        "transitions_asked": transitions,
    }
    return record_env(
        meta["env_id"],
        out,
        episodes=episodes_for(row, transitions),
        policy=str(Path(folder) / row["checkpoint"]),
        noise=level,
        seed=seed,
        env_kwargs=meta.get("env_kwargs") or {},
        overwrite=overwrite,
        source=source,
        bars=bars or no_bars,
    )
