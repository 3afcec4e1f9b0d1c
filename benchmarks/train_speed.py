"""Training speed of the offline baselines (issue 6's target: >= 100 updates/s for QMIX+CQL).

    python benchmarks/train_speed.py                  # 3m, default configs, batch 32 x 20
    python benchmarks/train_speed.py --updates 500 --threads 1 2
    python benchmarks/train_speed.py --maps smax:3m smax:2s3z smax:8m --threads 1   # map costs

Data: 1,000 smax:3m medium episodes collected with ``marl-augment collect``'s code path. Every
algorithm runs its default config (batch 32 windows of 20 steps, 3 agents, 75-dim observations,
72-dim state) on the CPU; the clock covers ``--updates`` full updates (batch gathering, forward,
backward, Adam, target sync) after 20 warm-up updates, in ``--repeats`` blocks whose median is
reported (this 2-core VM's speed drifts by ±30% between minutes; the best block is shown too). A
breakdown of one QMIX+CQL update is printed too, so it is clear where the time goes. The agent
networks run as one stacked pass with the C++ GRU step where it builds; ``--no-cpp`` measures
the fallback (``nn.GRU``, network by network).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from marl_augment.config import machine_summary


def timed(fn, n: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=300, help="updates per timed block")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks; the median is reported")
    p.add_argument("--threads", type=int, nargs="+", default=[2])
    p.add_argument("--algos", nargs="+", default=["qmix-cql", "qmix-bcq", "bc"])
    p.add_argument(
        "--maps",
        nargs="+",
        default=["smax:3m"],
        help="SMAX maps whose data shapes are timed (1,000 scripted episodes each)",
    )
    p.add_argument(
        "--no-cpp",
        action="store_true",
        help="PyTorch's nn.GRU net by net instead of the C++ kernels (the fallback's speed)",
    )
    args = p.parse_args()

    import torch

    from marl_augment.algos import make_algorithm
    from marl_augment.algos.agent_stack import run_agent_stack
    from marl_augment.algos.common import SequenceSampler, legal_or_all, state_dim_of
    from marl_augment.algos.kernels import NO_CPP_ENV, cpu_kernels
    from marl_augment.algos.qmix_cql import sample_legal
    from marl_augment.envs.smax import collect

    if args.no_cpp:
        os.environ[NO_CPP_ENV] = "1"

    tmp = Path(tempfile.mkdtemp())
    recurrence = (
        "stacked, C++ step" if cpu_kernels(torch.zeros(1)) is not None else "nn.GRU net by net"
    )
    results: dict = {"machine": machine_summary(), "agent_networks": recurrence, "runs": []}
    sets = {}
    for env_id in args.maps:
        name = env_id.split(":")[-1]
        sets[env_id] = collect(
            env_id, tmp / f"{name}-medium.zarr", quality="medium", episodes=1000, seed=0
        )
    for env_id, data in sets.items():
        for threads in args.threads:
            torch.set_num_threads(threads)
            for name in args.algos:
                algo = make_algorithm(name, data.spec, state_dim_of(data.spec), device="cpu")
                c = algo.config
                sampler = SequenceSampler(data, c.seq_len, c.period, c.batch_size, 0, algo.device)
                step = iter(range(10**9))

                def one(algo=algo, sampler=sampler, step=step) -> None:
                    k = next(step)
                    algo.update(sampler.batch(k), torch.Generator().manual_seed(k))

                for _ in range(20):
                    one()
                blocks = sorted(timed(one, args.updates) for _ in range(args.repeats))
                dt = blocks[len(blocks) // 2]
                row = {
                    "map": env_id,
                    "agents": data.spec.n_agents,
                    "obs_dim": data.spec.obs_dim,
                    "algo": name,
                    "threads": threads,
                    "updates_per_s": round(1 / dt, 1),
                    "ms_per_update": round(dt * 1000, 2),
                    "best_updates_per_s": round(1 / blocks[0], 1),
                }
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
    ds = sets[args.maps[0]]
    # where one QMIX+CQL update spends its time
    torch.set_num_threads(args.threads[0])
    algo = make_algorithm("qmix-cql", ds.spec, state_dim_of(ds.spec), device="cpu")
    sampler = SequenceSampler(ds, 20, 10, 32, 0, algo.device)
    b = sampler.batch(0)
    g = torch.Generator().manual_seed(0)

    def agents_fb() -> None:
        run_agent_stack([algo.agent, algo.target_agent], b["obs"])[0].sum().backward()

    def agents_fwd() -> None:
        run_agent_stack([algo.agent, algo.target_agent], b["obs"])

    q, tq = (v.detach() for v in run_agent_stack([algo.agent, algo.target_agent], b["obs"]))
    q.requires_grad_()

    def mix_cql_fb() -> None:
        ood = sample_legal(b["avail"], 20, g)
        joint = torch.cat([b["actions"].unsqueeze(-1), ood], -1)
        tots = algo.mixer.mix(q.gather(-1, joint), algo.mixer.weights(b["state"]))
        torch.logsumexp(tots, -1).sum().backward()

    def td_targets() -> None:
        algo.td_loss(b, q, q[..., 0, 0], legal_or_all(b["avail"]), tq)

    results["breakdown_ms"] = {
        "batch gather": round(timed(lambda: sampler.batch(1), 50) * 1000, 2),
        "online + target agent nets fwd": round(timed(agents_fwd, 50) * 1000, 2),
        "the same, fwd + bwd": round(timed(agents_fb, 50) * 1000, 2),
        "mixer over 1+20 joint actions fwd+bwd": round(timed(mix_cql_fb, 50) * 1000, 2),
        "TD targets (target mixer)": round(timed(td_targets, 50) * 1000, 2),
        "Adam step": round(timed(algo.optimizer.step, 50) * 1000, 2),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
