"""Offline baselines on the scripted SMAX quality ladder (issue 6's learning check).

    python benchmarks/baselines.py --map 3m --qualities good medium --steps 5000 --seeds 0

For every quality: collect ``--episodes`` episodes with ``marl-augment collect``'s code path
(seed 0), train each algorithm (default config, ``--steps`` updates) and evaluate it on 128
episodes of the same map. Prints a Markdown table: dataset mean return, each algorithm's mean
return and its ratio to the dataset's. Runs are kept in ``--work`` (resumable: a finished run is
not trained again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map", default="3m")
    p.add_argument("--qualities", nargs="+", default=["good", "medium"])
    p.add_argument("--algos", nargs="+", default=["qmix-cql", "qmix-bcq", "bc"])
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--work", type=Path, default=Path("bench-baselines"))
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = p.parse_args()

    import numpy as np
    import torch

    from marl_augment import load
    from marl_augment.envs.smax import collect
    from marl_augment.training import SUMMARY_FILE, train

    if args.threads:
        torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    t_all = time.perf_counter()
    for q in args.qualities:
        store = args.work / f"{args.map}-{q}.zarr"
        ds = (
            load(store)
            if store.exists()
            else collect(f"smax:{args.map}", store, quality=q, episodes=args.episodes, seed=0)
        )
        row = {
            "dataset": f"smax:{args.map} {q}",
            "episodes": len(ds),
            "data_return": float(ds.episode_returns.mean()),
        }
        for algo in args.algos:
            rets, ups = [], []
            for seed in args.seeds:
                out = args.work / f"{args.map}-{q}-{algo}-s{seed}"
                if (out / SUMMARY_FILE).exists():
                    s = json.loads((out / SUMMARY_FILE).read_text())
                else:
                    s = train(
                        ds,
                        algo,
                        out=out,
                        steps=args.steps,
                        seed=seed,
                        eval_every=1000,
                        resume=out.exists(),
                    )
                rets.append(s["eval"]["return_mean"])
                ups.append(s["updates_per_s"])
                print(
                    f"{q} {algo} seed {seed}: return {rets[-1]:.3f} ({s['train_seconds']:.0f} s)",
                    flush=True,
                )
            row[algo] = (float(np.mean(rets)), float(np.std(rets)), float(np.mean(ups)))
        rows.append(row)
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; {args.steps} updates per run, "
        f"seeds {args.seeds}; total {time.perf_counter() - t_all:.0f} s\n"
    )
    head = (
        "| dataset | episodes | data return | "
        + " | ".join(f"{a} return (× data)" for a in args.algos)
        + " |"
    )
    print(head)
    print("|" + "---|" * (3 + len(args.algos)))
    for r in rows:
        cells = [
            f"{r[a][0]:.3f} ± {r[a][1]:.3f} ({r[a][0] / r['data_return']:.2f}×)" for a in args.algos
        ]
        print(
            f"| {r['dataset']} | {r['episodes']} | {r['data_return']:.3f} | "
            + " | ".join(cells)
            + " |"
        )


if __name__ == "__main__":
    main()
