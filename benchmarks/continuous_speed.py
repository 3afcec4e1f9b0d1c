"""Continuous control on this CPU: MaMuJoCo collection and TD3+BC updates (issue 20's targets).

    python benchmarks/continuous_speed.py                       # both parts, 1 and 2 threads
    python benchmarks/continuous_speed.py --part collect --steps 20000
    python benchmarks/continuous_speed.py --part td3 --threads 1
    python benchmarks/continuous_speed.py --part matd3 --threads 1 2

- ``collect``: steps per second of ``mamujoco:2x3-HalfCheetah`` (Gymnasium-Robotics'
  mamujoco_v1) with uniform random actions, (a) stepping the PettingZoo env alone, (b) the
  whole ``marl-augment record`` path (env + JSON-lines log + conversion to a store), and
  (c) the single-agent Gymnasium env underneath (``HalfCheetah``), the floor any wrapper adds
  to. Target: 5,000 steps/s.
- ``td3``: updates per second of ``td3-bc`` on data of 2x3-HalfCheetah's sizes (2 agents,
  observations 12, state 17, 3 action dimensions, 1,000-step episodes), at OG-MARL's settings
  (batch 32 windows × 20 steps) and at a transition-batch setting (256 windows × 2 steps, as
  TD3+BC's own feed-forward batch of 256), per torch thread count; ``maddpg-cql`` and ``omar``
  at OG-MARL's settings beside it, ``dom2`` and ``omsd`` at their defaults with the time their
  policies take to act for both agents of one env (DOM2: N = 5 solver steps; OMSD: one MLP
  pass). Targets: TD3+BC 300 updates/s, a diffusion-policy decentralised step under 5 ms.
- ``matd3``: the online behaviour learner (``behaviour train mamujoco:2x3-HalfCheetah``):
  updates per second of MATD3 at its defaults (batch 256, 256-256 networks) from a filled replay
  buffer, and environment steps per second of the whole training loop (acting, stepping,
  storing, one update per step) over a short run.

Results print as JSON; docs/performance.md records them with the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from marl_augment.config import machine_summary


def collect(steps: int) -> dict:
    from marl_augment.envs import make_env

    env = make_env("mamujoco:2x3-HalfCheetah")
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    n, t0 = 0, time.perf_counter()
    while n < steps:
        env.step({a: rng.uniform(-1, 1, 3).astype(np.float32) for a in env.agents})
        n += 1
        if not env.agents:
            env.reset()
    wrapper = n / (time.perf_counter() - t0)

    single = env.unwrapped.single_agent_env
    single.reset(seed=0)
    n, t0 = 0, time.perf_counter()
    while n < steps:
        _, _, term, trunc, _ = single.step(rng.uniform(-1, 1, 6).astype(np.float32))
        n += 1
        if term or trunc:
            single.reset()
    raw = n / (time.perf_counter() - t0)

    from marl_augment.adapters.pettingzoo_log import PettingZooLogAdapter
    from marl_augment.envs.recording import record

    episodes = max(1, steps // 1000)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        log = record(
            make_env("mamujoco:2x3-HalfCheetah"),
            Path(tmp) / "log.jsonl",
            episodes=episodes,
            env_id="mamujoco:2x3-HalfCheetah",
        )
        t_log = time.perf_counter() - t0
        ds = PettingZooLogAdapter(PettingZooLogAdapter.Config(reward="mean")).convert(
            log, Path(tmp) / "out.zarr"
        )
        t_all = time.perf_counter() - t0
        rows = ds.num_transitions
    return {
        "pettingzoo_env_steps_per_s": round(wrapper),
        "gymnasium_env_steps_per_s": round(raw),
        "record_log_steps_per_s": round(rows / t_log),
        "record_and_convert_steps_per_s": round(rows / t_all),
        "steps": steps,
    }


def td3(threads: int, updates: int) -> dict:
    import torch

    import marl_augment as ma
    from marl_augment.algos import make_algorithm
    from marl_augment.algos.common import SequenceSampler, state_dim_of
    from marl_augment.data.dataset import StoreWriter
    from marl_augment.data.schema import Spec

    torch.set_num_threads(threads)
    spec = Spec(
        env_id="mamujoco:2x3-HalfCheetah",
        agent_ids=("agent_0", "agent_1"),
        obs_dim=12,
        n_actions=3,
        state_dim=17,
        action_kind="continuous",
        action_low=((-1.0,) * 3,) * 2,
        action_high=((1.0,) * 3,) * 2,
    )
    rng = np.random.default_rng(0)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        with StoreWriter(Path(tmp) / "hc.zarr", spec) as w:
            for _ in range(20):
                t = 1000
                ep = {
                    "obs": rng.normal(size=(t, 2, 12)).astype(np.float32),
                    "state": rng.normal(size=(t, 17)).astype(np.float32),
                    "actions": rng.uniform(-1, 1, (t, 2, 3)).astype(np.float32),
                    "rewards": rng.normal(size=t).astype(np.float32),
                    "terminated": np.zeros(t, bool),
                    "truncated": np.zeros(t, bool),
                }
                ep["truncated"][-1] = True
                w.append_episode(ep)
        ds = ma.load(Path(tmp) / "hc.zarr")
        for name, label, batch, seq in (
            ("td3-bc", "td3-bc, og-marl: 32 windows x 20 steps", 32, 20),
            ("td3-bc", "td3-bc, transitions: 256 windows x 2 steps", 256, 2),
            ("maddpg-cql", "maddpg-cql, og-marl: 32 windows x 20 steps", 32, 20),
            ("omar", "omar, og-marl: 32 windows x 20 steps", 32, 20),
            ("dom2", "dom2, defaults: 256 windows x 2 steps, 5 solver steps", 256, 2),
            ("omsd", "omsd, defaults: 512 windows x 2 steps", 512, 2),
        ):
            algo = make_algorithm(
                name,
                spec,
                state_dim_of(spec),
                batch_size=batch,
                seq_len=seq,
                period=1,
                device="cpu",
            )
            sampler = SequenceSampler(ds, seq, 1, batch, 0, algo.device)
            gen = torch.Generator().manual_seed(0)
            for k in range(10):
                algo.update(sampler.batch(k), gen)
            t0 = time.perf_counter()
            for k in range(updates):
                algo.update(sampler.batch(k), gen)
            out[label] = round(updates / (time.perf_counter() - t0), 1)
            if name in ("dom2", "omsd"):  # a decentralised step: one env, every agent's action
                pol = algo.policy()
                obs = np.zeros((1, 2, 12), np.float32)
                avail, first = np.ones((1, 2, 3), bool), np.ones(1, bool)
                for _ in range(20):
                    pol(obs, avail, first)
                t0 = time.perf_counter()
                for _ in range(500):
                    pol(obs, avail, first)
                out[f"{name} act latency per step, ms"] = round(
                    (time.perf_counter() - t0) / 500 * 1000, 3
                )
    return {"threads": threads, "updates_per_s": out, "updates": updates}


def matd3(threads: int, updates: int) -> dict:
    import shutil

    import torch

    from marl_augment.envs.online import Matd3, Td3OnlineConfig, _EnvIO, _Replay, train_matd3

    torch.set_num_threads(threads)
    cfg = Td3OnlineConfig(threads=threads)
    io = _EnvIO("mamujoco:2x3-HalfCheetah", {})
    n, o, a, s = len(io.agents), io.obs_dim, max(io.dims), io.state_dim
    algo = Matd3(n, o, a, s, io.dims, cfg, 0)
    replay = _Replay(20_000, n, o, a, s)
    rng = np.random.default_rng(0)
    obs, state = io.reset(0)
    for i in range(20_000):  # a replay buffer of real steps
        u = rng.uniform(-1, 1, (n, a)).astype(np.float32)
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
        obs, state = io.reset(i) if over else (nobs, nstate)
    for _ in range(10):
        algo.update(replay.sample(rng, cfg.batch_size))
    t0 = time.perf_counter()
    for _ in range(updates):
        algo.update(replay.sample(rng, cfg.batch_size))
    ups = updates / (time.perf_counter() - t0)
    tmp = Path(tempfile.mkdtemp())
    steps = 1_000 + updates
    t0 = time.perf_counter()
    train_matd3(
        "mamujoco:2x3-HalfCheetah",
        tmp / "beh",
        seed=0,
        config=Td3OnlineConfig(
            total_steps=steps,
            start_steps=1_000,
            checkpoint_every=steps,
            eval_episodes=1,
            threads=threads,
        ),
    )
    loop = steps / (time.perf_counter() - t0)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "threads": threads,
        "updates_per_s": round(ups, 1),
        "training_loop_steps_per_s": round(loop, 1),
        "note": "the loop includes 1,000 random steps and two 1-episode evaluations",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("collect", "td3", "matd3", "all"), default="all")
    ap.add_argument("--steps", type=int, default=10_000, help="env steps per collection measure")
    ap.add_argument("--updates", type=int, default=200, help="TD3+BC updates per measure")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    res = {"machine": machine_summary()}
    if args.part in ("collect", "all"):
        res["collect"] = collect(args.steps)
    if args.part in ("td3", "all"):
        res["td3"] = [td3(t, args.updates) for t in args.threads]
    if args.part in ("matd3", "all"):
        res["matd3"] = [matd3(t, args.updates) for t in args.threads]
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
