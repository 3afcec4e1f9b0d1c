"""Learned behaviour policies on SMAX, and datasets recorded from them (OG-MARL's recipe).

OG-MARL's SMAC datasets come from policies trained online to a target level and rolled out
ε-greedily (ε = 0.05). This module does the same on SMAX, fast enough for a 2-core CPU:

- :func:`train_behaviour` trains a shared-parameter MAPPO (actor on each agent's observation and
  id, centralised critic on SMAX's world state) with every rollout, advantage and update step
  jitted and vectorised over ``num_envs`` SMAX games. Why MAPPO in JAX rather than online QMIX
  in torch: the whole training step (64 games × 64 steps, four epochs) is one compiled call with
  no host round-trips, the environment itself is JAX, and PPO needs no replay buffer; on this
  CPU it reaches a good 3m policy in minutes (docs/performance.md). Which learner made the data
  does not matter to the offline learners downstream, only the data's quality does.
- Every ``checkpoint_every`` environment steps the policy is saved (``ckpt-<steps>.npz``) and
  evaluated *as a behaviour policy* (ε-greedy over its greedy actions, the way it will record
  data); the results go to ``checkpoints.jsonl``. Training resumes from the last checkpoint.
- :func:`record_behaviour` picks the checkpoint whose measured return falls in a quality band
  (OG-MARL's poor / medium / good, as fractions of the maximum return) and records episodes
  with it, with provenance (checkpoint, ε, measured return).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import StoreWriter, make_provenance_entry
from ..data.schema import Spec
from ..data.store import check_output_path
from ..errors import ConfigError, FormatError, NotFound
from ..outputs import check_output, kind_of, write_marker
from . import split_id
from .smax import MAX_RETURN, batch_rollout_fns, core, run_batches

#: OG-MARL's SMAC dataset qualities as fractions of the maximum return: the published means of
#: the ``datasets/og-marl/smac_v1/*`` cards (poor ≈ 0.23-0.37, medium ≈ 0.50-0.63, good ≈
#: 0.82-0.92); a checkpoint qualifies when its ε-greedy return lies in the band
QUALITY_BANDS = {"poor": (0.23, 0.37), "medium": (0.50, 0.63), "good": (0.82, 0.92)}
CHECKPOINTS = "checkpoints.jsonl"
CONFIG_FILE = "behaviour.json"


@dataclass
class PpoConfig:
    """MAPPO's hyper-parameters (PureJaxRL / JaxMARL defaults, sized for a CPU)."""

    total_steps: int = 1_000_000
    """Environment steps of training, counted per game (64 games × 64 steps = 4,096 per update)."""
    num_envs: int = 64
    """SMAX games stepped together."""
    rollout: int = 64
    """Steps per game between updates."""
    epochs: int = 4
    minibatches: int = 4
    lr: float = 2.5e-3
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 128
    checkpoint_every: int = 16_384
    """Environment steps between checkpoints (each evaluated as a behaviour policy)."""
    dense_until: int = 65_536
    """Before this many environment steps a checkpoint follows every update: SMAX policies
    pass OG-MARL's poor band (0.23-0.37 of the maximum) within the first few updates."""
    eval_episodes: int = 256
    epsilon: float = 0.05
    """ε of the ε-greedy behaviour policy the checkpoints are evaluated (and record) with."""
    max_steps: int = 100
    """SMAX's time limit per episode."""

    def check(self) -> PpoConfig:
        if self.dense_until < 0:
            raise ConfigError(f"dense_until must be >= 0, got {self.dense_until}")
        for f in (
            "total_steps",
            "num_envs",
            "rollout",
            "epochs",
            "minibatches",
            "hidden",
            "checkpoint_every",
            "eval_episodes",
            "max_steps",
        ):
            if getattr(self, f) < 1:
                raise ConfigError(f"{f} must be >= 1, got {getattr(self, f)}")
        if (self.num_envs * self.rollout) % self.minibatches:
            raise ConfigError("num_envs × rollout must be a multiple of minibatches")
        if not 0 <= self.epsilon <= 1 or not 0 < self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ConfigError("epsilon and gae_lambda must be in [0, 1], gamma in (0, 1]")
        if self.lr <= 0 or self.clip <= 0:
            raise ConfigError("lr and clip must be > 0")
        return self

    @property
    def steps_per_update(self) -> int:
        return self.num_envs * self.rollout


# -- networks (plain JAX: two MLPs) ------------------------------------------------------------


def _init_mlp(jax, key, sizes, last_scale):
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        scale = last_scale if i == len(sizes) - 2 else np.sqrt(2.0)
        w = jax.nn.initializers.orthogonal(scale)(k, (n_in, n_out))
        params.append({"w": w, "b": np.zeros(n_out, np.float32)})
    return params


def _mlp(jnp, params, x):
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


class _Nets:
    """The actor (obs + one-hot id → logits) and critic (world state → value) of one map."""

    def __init__(self, c, hidden: int) -> None:
        self.c, self.jax, self.jnp = c, c.jax, c.jnp
        self.in_dim = c.obs_dim + c.n_agents
        self.hidden = hidden

    def init(self, key):
        k1, k2 = self.jax.random.split(key)
        return {
            "actor": _init_mlp(
                self.jax, k1, [self.in_dim, self.hidden, self.hidden, self.c.n_actions], 0.01
            ),
            "critic": _init_mlp(self.jax, k2, [self.c.state_dim, self.hidden, self.hidden, 1], 1.0),
        }

    def logits(self, params, obs, avail):
        """obs (..., N, O), avail (..., N, A) → masked logits (..., N, A)."""
        jnp = self.jnp
        ids = jnp.broadcast_to(
            jnp.eye(self.c.n_agents, dtype=obs.dtype), obs.shape[:-1] + (self.c.n_agents,)
        )
        raw = _mlp(jnp, params["actor"], jnp.concatenate([obs, ids], -1))
        return jnp.where(avail, raw, -1e9)

    def value(self, params, state):
        return _mlp(self.jnp, params["critic"], state)[..., 0]


def behaviour_actions(nets: _Nets, params, key, obs, avail, epsilon):
    """ε-greedy over the policy's greedy actions (OG-MARL's behaviour policies): (B, N) ints."""
    jax, jnp = nets.jax, nets.jnp
    logits = nets.logits(params, obs, avail)
    greedy = jnp.argmax(logits, -1)
    k_rand, k_eps = jax.random.split(key)
    rand = jax.random.categorical(k_rand, jnp.where(avail, 0.0, -jnp.inf), -1)
    explore = jax.random.uniform(k_eps, greedy.shape) < epsilon
    return jnp.where(explore, rand, greedy).astype(jnp.int32)


# -- training ----------------------------------------------------------------------------------

_UPDATES: dict[tuple, Any] = {}


def _make_update(c, nets: _Nets, cfg: PpoConfig, num_updates: int):
    """Jitted (start, update) for a map and config, compiled once per process."""
    unused = (
        "total_steps",
        "checkpoint_every",
        "dense_until",
        "eval_episodes",
        "epsilon",
    )  # not compiled in
    key = (
        c.map_name,
        c.max_steps,
        num_updates,
        tuple(v for k, v in dataclasses.asdict(cfg).items() if k not in unused),
    )
    if key not in _UPDATES:
        _UPDATES[key] = _build_update(c, nets, cfg, num_updates)
    return _UPDATES[key]


def _build_update(c, nets: _Nets, cfg: PpoConfig, num_updates: int):
    """One jitted PPO iteration: roll out ``rollout`` steps of every game, then update."""
    import optax

    jax, jnp = c.jax, c.jnp
    b, t = cfg.num_envs, cfg.rollout

    def lr_at(count):
        frac = 1.0 - (count // (cfg.epochs * cfg.minibatches)) / num_updates
        return cfg.lr * (frac if cfg.anneal_lr else 1.0)

    tx = optax.chain(
        optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(learning_rate=lr_at, eps=1e-5)
    )

    def env_step(carry, _):
        params, env, key = carry
        o, w, m, state, ep_ret = env
        key, k_act, k_step, k_reset = jax.random.split(key, 4)
        logits = nets.logits(params, o, m)
        act = jax.random.categorical(k_act, logits, -1).astype(jnp.int32)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), act[..., None], -1)[..., 0]
        value = nets.value(params, w)
        o2, w2, m2, r, done, won, _, alive, _, state2 = c.step_batch(
            jax.random.split(k_step, b), state, act
        )
        ro, rw, rm, rstate = c.reset_batch(jax.random.split(k_reset, b))

        def pick(x_reset, x_next):
            d = done.reshape((b,) + (1,) * (x_next.ndim - 1))
            return jnp.where(d, x_reset, x_next)

        nxt = (
            pick(ro, o2),
            pick(rw, w2),
            pick(rm, m2),
            jax.tree_util.tree_map(pick, rstate, state2),
        )
        out = dict(
            obs=o,
            state=w,
            avail=m,
            act=act,
            logp=logp,
            value=value,
            reward=r,
            done=done,
            ep_return=ep_ret + r,
            won=won,
        )
        ep_ret = jnp.where(done, 0.0, ep_ret + r)
        return (params, (*nxt, ep_ret), key), out

    def loss_fn(params, mb):
        logits = nets.logits(params, mb["obs"], mb["avail"])
        logp_all = jax.nn.log_softmax(logits, -1)
        logp = jnp.take_along_axis(logp_all, mb["act"][..., None], -1)[..., 0]
        ratio = jnp.exp(logp - mb["logp"])  # (M, N)
        adv = mb["adv"][:, None]
        pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip, 1 + cfg.clip) * adv).mean()
        probs = jnp.exp(logp_all)
        entropy = -(jnp.where(mb["avail"], probs * logp_all, 0.0)).sum(-1).mean()
        v = nets.value(params, mb["state"])
        v_clip = mb["value"] + jnp.clip(v - mb["value"], -cfg.clip, cfg.clip)
        vf = 0.5 * jnp.maximum((v - mb["target"]) ** 2, (v_clip - mb["target"]) ** 2).mean()
        total = pg + cfg.vf_coef * vf - cfg.ent_coef * entropy
        return total, (pg, vf, entropy)

    def update(runner):
        params, opt_state, env, key = runner
        (params, env, key), traj = jax.lax.scan(env_step, (params, env, key), None, length=t)
        last_v = nets.value(params, env[1])

        def gae(carry, x):
            adv, next_v = carry
            not_done = 1.0 - x["done"].astype(jnp.float32)
            delta = x["reward"] + cfg.gamma * next_v * not_done - x["value"]
            adv = delta + cfg.gamma * cfg.gae_lambda * not_done * adv
            return (adv, x["value"]), adv

        _, adv = jax.lax.scan(
            gae,
            (jnp.zeros(b), last_v),
            {k: traj[k] for k in ("done", "reward", "value")},
            reverse=True,
        )
        target = adv + traj["value"]
        adv_n = (adv - adv.mean()) / (adv.std() + 1e-8)
        flat = {
            k: traj[k].reshape((t * b,) + traj[k].shape[2:])
            for k in ("obs", "state", "avail", "act", "logp", "value")
        }
        flat["adv"], flat["target"] = adv_n.reshape(-1), target.reshape(-1)

        def epoch(carry, _):
            params, opt_state, key = carry
            key, k_perm = jax.random.split(key)
            perm = jax.random.permutation(k_perm, t * b)
            mbs = jax.tree_util.tree_map(
                lambda x: x[perm].reshape((cfg.minibatches, -1) + x.shape[1:]), flat
            )

            def step(carry, mb):
                params, opt_state = carry
                (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, mb)
                upd, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, upd), opt_state), (loss, *aux)

            (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), mbs)
            return (params, opt_state, key), losses

        (params, opt_state, key), losses = jax.lax.scan(
            epoch, (params, opt_state, key), None, length=cfg.epochs
        )
        ended = traj["done"]
        n_ended = ended.sum()
        stats = {
            "loss": losses[0].mean(),
            "pg_loss": losses[1].mean(),
            "vf_loss": losses[2].mean(),
            "entropy": losses[3].mean(),
            "episodes": n_ended,
            "return_sum": jnp.where(ended, traj["ep_return"], 0.0).sum(),
            "won_sum": (ended & traj["won"]).sum(),
        }
        return (params, opt_state, env, key), stats

    def start(key):
        k_param, k_env, key = jax.random.split(key, 3)
        params = nets.init(k_param)
        o, w, m, state = c.reset_batch(jax.random.split(k_env, b))
        return params, tx.init(params), (o, w, m, state, jnp.zeros(b)), key

    return jax.jit(start), jax.jit(update)


@dataclass
class _Eval:
    return_mean: float
    return_std: float
    win_rate: float
    episodes: int


def evaluate_params(
    map_name: str,
    params,
    *,
    hidden: int,
    epsilon: float,
    episodes: int,
    seed: int,
    max_steps: int = 100,
    batch: int = 256,
) -> _Eval:
    """Roll out the ε-greedy behaviour policy of ``params`` (batched, jitted)."""
    rets, wins = [], []
    for cols, lengths, won in behaviour_rollout(
        map_name,
        params,
        hidden=hidden,
        epsilon=epsilon,
        episodes=episodes,
        seed=seed,
        max_steps=max_steps,
        batch=batch,
    ):
        off = np.r_[0, np.cumsum(lengths)]
        rets += np.add.reduceat(cols["rewards"].astype(np.float64), off[:-1]).tolist()
        wins += won.tolist()
    r = np.asarray(rets)
    return _Eval(float(r.mean()), float(r.std()), float(np.mean(wins)), len(rets))


def behaviour_rollout(
    map_name: str,
    params,
    *,
    hidden: int,
    epsilon: float,
    episodes: int,
    seed: int,
    max_steps: int = 100,
    batch: int = 256,
    progress: Any = None,
):
    """Yield (columns, lengths, won) of ``episodes`` episodes of a learned behaviour policy,
    in the layout of :func:`marl_augment.envs.smax.rollout`."""

    c = core(map_name, max_steps)
    batch = max(1, min(int(batch), int(episodes)))
    start, chunk = _behaviour_fns(map_name, max_steps, hidden, batch)
    yield from run_batches(
        c,
        start,
        chunk,
        (params, c.jnp.float32(epsilon)),
        episodes,
        seed=seed,
        batch=batch,
        max_steps=max_steps,
        progress=progress,
    )


_FNS: dict[tuple, Any] = {}


def _behaviour_fns(map_name: str, max_steps: int, hidden: int, batch: int):
    k = (map_name, max_steps, hidden, batch)
    if k in _FNS:
        return _FNS[k]

    c = core(map_name, max_steps)
    nets = _Nets(c, hidden)
    _FNS[k] = batch_rollout_fns(
        c,
        batch,
        lambda key, o, m, state, params, epsilon: behaviour_actions(
            nets, params, key, o, m, epsilon
        ),
    )
    return _FNS[k]


def _save_params(path: Path, tree) -> None:
    import jax

    leaves = jax.tree_util.tree_leaves(tree)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, *[np.asarray(x) for x in leaves])
    tmp.replace(path)


def _load_params(path: Path, like):
    import jax

    try:
        with np.load(path, allow_pickle=False) as z:
            leaves = [z[f"arr_{i}"] for i in range(len(z.files))]
    except (OSError, ValueError, KeyError) as e:
        raise FormatError(f"unreadable checkpoint {path} ({e}); train again") from None
    ref, treedef = jax.tree_util.tree_flatten(like)
    if len(leaves) != len(ref) or any(a.shape != np.shape(r) for a, r in zip(leaves, ref)):
        raise FormatError(
            f"checkpoint {path} does not match its behaviour.json (shapes differ); train again"
        )
    return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(x) for x in leaves])


def read_checkpoints(folder: str | Path) -> list[dict[str, Any]]:
    """The evaluated checkpoints of a behaviour training folder, in training order."""
    p = Path(folder) / CHECKPOINTS
    if not p.is_file():
        raise NotFound(
            f"no behaviour checkpoints in {folder} (expected {CHECKPOINTS}); train "
            f"them with 'marl-augment behaviour train'"
        )
    rows = []
    for ln in p.read_text().splitlines():
        if ln.strip():
            try:
                rows.append(json.loads(ln))
            except json.JSONDecodeError:  # a torn last line after a crash
                continue
    return rows


def train_behaviour(
    env_id: str,
    out: str | Path,
    *,
    config: PpoConfig | None = None,
    seed: int = 0,
    progress: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train MAPPO on ``smax:<map>`` into ``out`` (resumable); see the module docstring."""

    cfg = (config or PpoConfig()).check()
    backend, map_name = split_id(env_id)
    if backend != "smax":
        raise ConfigError(f"behaviour policies are trained on smax:<map>, got {env_id!r}")
    out = check_output(out, "behaviour", overwrite=False, reuse=True, what="behaviour folder")
    meta = {"env_id": env_id, "seed": seed, "config": dataclasses.asdict(cfg)}
    if (out / CONFIG_FILE).is_file():
        old = json.loads((out / CONFIG_FILE).read_text())
        if {k: v for k, v in old.items() if k != "config"} != {
            k: v for k, v in meta.items() if k != "config"
        } or {k: v for k, v in old["config"].items() if k != "total_steps"} != {
            k: v for k, v in meta["config"].items() if k != "total_steps"
        }:
            raise ConfigError(
                f"{out} holds a behaviour run with other settings; choose another "
                f"folder (only total_steps may change on resume)"
            )
    out.mkdir(parents=True, exist_ok=True)
    if kind_of(out) != "behaviour":
        write_marker(out, "behaviour")
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2))

    c = core(map_name, cfg.max_steps)
    nets = _Nets(c, cfg.hidden)
    num_updates = max(1, cfg.total_steps // cfg.steps_per_update)
    start, update = _make_update(c, nets, cfg, num_updates)
    runner = start(c.jax.random.PRNGKey(seed))
    done_updates = 0
    state_file = out / "train_state.npz"
    if state_file.is_file():
        runner = _load_params(state_file, runner)
        done_updates = int(json.loads((out / "train_state.json").read_text())["updates"])
        # a checkpoint row written after the last saved state (killed in between) is redone
        rows = [r for r in read_checkpoints(out) if r["updates"] <= done_updates]
        (out / CHECKPOINTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif (out / CHECKPOINTS).exists():
        (out / CHECKPOINTS).unlink()
    every = max(1, cfg.checkpoint_every // cfg.steps_per_update)
    t0 = time.perf_counter()
    train_seconds = 0.0
    recent: list[dict[str, float]] = []
    for u in range(done_updates, num_updates):
        t1 = time.perf_counter()
        runner, stats = update(runner)
        stats = {k: float(v) for k, v in stats.items()}
        train_seconds += time.perf_counter() - t1
        recent.append(stats)
        if progress is not None:
            progress(cfg.steps_per_update)
        dense = (u + 1) * cfg.steps_per_update <= cfg.dense_until
        if dense or (u + 1) % every == 0 or u + 1 == num_updates:
            steps = (u + 1) * cfg.steps_per_update
            ev = evaluate_params(
                map_name,
                runner[0],
                hidden=cfg.hidden,
                epsilon=cfg.epsilon,
                episodes=cfg.eval_episodes,
                seed=seed + 10_000 + u,
                max_steps=cfg.max_steps,
            )
            name = f"ckpt-{steps:09d}.npz"
            _save_params(out / name, runner[0])
            eps_done = sum(s["episodes"] for s in recent)
            row = {
                "checkpoint": name,
                "env_steps": steps,
                "updates": u + 1,
                "return_mean": ev.return_mean,
                "return_std": ev.return_std,
                "normalised_return": ev.return_mean / MAX_RETURN,
                "win_rate": ev.win_rate,
                "eval_episodes": ev.episodes,
                "epsilon": cfg.epsilon,
                "train_return": (
                    sum(s["return_sum"] for s in recent) / eps_done if eps_done else None
                ),
                "entropy": float(np.mean([s["entropy"] for s in recent])),
                "seconds": round(time.perf_counter() - t0, 2),
            }
            recent = []
            with open(out / CHECKPOINTS, "a") as f:
                f.write(json.dumps(row) + "\n")
            _save_params(state_file, runner)
            (out / "train_state.json").write_text(json.dumps({"updates": u + 1}))
            if log is not None:
                log(row)
    return {
        "folder": str(out),
        "checkpoints": read_checkpoints(out),
        "train_seconds": train_seconds,
        "updates": num_updates,
    }


def pick_checkpoint(folder: str | Path, quality: str) -> dict[str, Any]:
    """The checkpoint whose ε-greedy return lies in ``quality``'s band (the one nearest the
    band's middle), or a clear error naming the returns that were reached."""
    if quality not in QUALITY_BANDS:
        raise ConfigError(f"unknown quality {quality!r}; use one of {sorted(QUALITY_BANDS)}")
    lo, hi = QUALITY_BANDS[quality]
    rows = read_checkpoints(folder)
    inside = [r for r in rows if lo <= r["normalised_return"] <= hi]
    if not inside:
        got = ", ".join(f"{r['normalised_return']:.2f}" for r in rows) or "none"
        raise NotFound(
            f"no checkpoint in {folder} reaches {quality} ({lo:.2f}-{hi:.2f} of the "
            f"maximum return; checkpoints reached: {got}); train longer or with "
            f"checkpoints more often"
        )
    mid = (lo + hi) / 2
    return min(inside, key=lambda r: (abs(r["normalised_return"] - mid), r["env_steps"]))


def load_behaviour(folder: str | Path, checkpoint: str):
    """(map name, params, config) of one checkpoint of a behaviour folder."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
        cfg = PpoConfig(**meta["config"]).check()
        map_name = meta["env_id"].split(":", 1)[1]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, IndexError) as e:
        raise FormatError(f"unreadable {CONFIG_FILE} in {folder} ({e}); train again") from None
    c = core(map_name, cfg.max_steps)
    nets = _Nets(c, cfg.hidden)
    like = nets.init(c.jax.random.PRNGKey(0))
    return map_name, _load_params(folder / checkpoint, like), cfg


def record_behaviour(
    folder: str | Path,
    out: str | Path,
    *,
    quality: str | None = None,
    checkpoint: str | None = None,
    transitions: int = 1_000_000,
    epsilon: float | None = None,
    seed: int = 0,
    batch: int = 256,
    overwrite: bool = False,
    progress: Any = None,
):
    """Record about ``transitions`` steps (whole episodes) of a checkpoint's ε-greedy policy."""

    if (quality is None) == (checkpoint is None):
        raise ConfigError("give a quality (poor, medium, good) or a checkpoint name, not both")
    if transitions < 1:
        raise ConfigError(f"transitions must be >= 1, got {transitions}")
    row = (
        pick_checkpoint(folder, quality)
        if quality
        else next((r for r in read_checkpoints(folder) if r["checkpoint"] == checkpoint), None)
    )
    if row is None:
        raise NotFound(f"no checkpoint {checkpoint!r} in {folder}; see {CHECKPOINTS}")
    check_output_path(out, overwrite=overwrite, inputs=[folder])
    map_name, params, cfg = load_behaviour(folder, row["checkpoint"])
    eps = cfg.epsilon if epsilon is None else float(epsilon)
    c = core(map_name, cfg.max_steps)
    env_id = f"smax:{map_name}"
    spec = Spec(
        env_id=env_id,
        agent_ids=tuple(f"agent_{i}" for i in range(c.n_agents)),
        obs_dim=c.obs_dim,
        n_actions=c.n_actions,
        state_dim=c.state_dim,
        has_avail_actions=True,
        has_alive=True,
        reward_mode="given",
        extras={"max_steps": cfg.max_steps, "max_return": MAX_RETURN},
    )
    behaviour = {
        "folder": str(Path(folder).resolve()),
        "checkpoint": row["checkpoint"],
        "env_steps": row["env_steps"],
        "epsilon": eps,
        "quality": quality,
        "measured_return": row["return_mean"],
        "measured_normalised_return": row["normalised_return"],
        "learner": "mappo",
    }
    config = {"env_id": env_id, "transitions": transitions, "batch": batch, **behaviour}
    source = {"adapter": "behaviour", **config, "seed": seed}
    prov = [make_provenance_entry(step=1, method="record-behaviour", config=config, seed=seed)]
    written = 0
    k = 0
    with StoreWriter(out, spec, overwrite=overwrite, source=source, provenance=prov) as w:
        while written < transitions:
            for cols, lengths, won in behaviour_rollout(
                map_name,
                params,
                hidden=cfg.hidden,
                epsilon=eps,
                episodes=batch,
                seed=seed * 1_000_003 + k,
                max_steps=cfg.max_steps,
                batch=batch,
            ):
                keep = int(np.searchsorted(np.cumsum(lengths), transitions - written) + 1)
                keep = min(keep, len(lengths))
                rows = int(lengths[:keep].sum())
                part = {key: v[:rows] for key, v in cols.items()}
                w.append_episodes(part, lengths[:keep], won=won[:keep].tolist())
                written += rows
                if progress is not None:
                    progress(rows)
            k += 1
    return w.result
