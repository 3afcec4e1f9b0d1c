"""SMAX collection and evaluation speed, and the scripted-policy quality ladder.

    python benchmarks/collect.py                 # speed on smax:3m (targets of issue 4)
    python benchmarks/collect.py --ladder 3m 8m 2s3z --episodes 1000

Speed: scripted-policy collection through ``marl-augment collect``'s code path (batched jit +
vmap rollouts, written to a store), counted in valid env steps per second after compilation;
evaluation of a small torch policy through the batched evaluator. Targets: >= 5,000 env steps/s
collecting, >= 500 env steps/s evaluating a torch policy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from marl_augment.config import machine_summary


def speed(episodes: int) -> dict:
    import torch

    from marl_augment.envs.evaluate import evaluate
    from marl_augment.envs.smax import collect, rollout

    for _ in rollout("3m", "medium", 256, seed=99, batch=256):  # compile (same batch shape)
        pass
    tmp = Path(tempfile.mkdtemp())
    try:
        t0 = time.perf_counter()
        ds = collect("smax:3m", tmp / "c.zarr", quality="medium", episodes=episodes, seed=0)
        t_collect = time.perf_counter() - t0
        steps = ds.num_transitions
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(75, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))

    def policy(obs, avail, first):
        with torch.no_grad():
            q = net(torch.from_numpy(obs)).masked_fill(~torch.from_numpy(avail), -1e9)
        return q.argmax(-1).numpy()

    evaluate(policy, "smax:3m", episodes=32, seed=99, batch=32)  # compile (same batch shape)
    t0 = time.perf_counter()
    res = evaluate(policy, "smax:3m", episodes=128, seed=0, batch=32)
    t_eval = time.perf_counter() - t0
    eval_steps = res["length_mean"] * res["episodes"]
    out = {
        "machine": machine_summary(),
        "collect_episodes": episodes,
        "collect_env_steps": steps,
        "collect_s": round(t_collect, 2),
        "collect_env_steps_per_s": round(steps / t_collect),
        "eval_episodes": 128,
        "eval_env_steps": int(eval_steps),
        "eval_s": round(t_eval, 2),
        "eval_torch_env_steps_per_s": round(eval_steps / t_eval),
    }
    out["targets"] = {
        ">= 5,000 env steps/s collecting": out["collect_env_steps_per_s"] >= 5000,
        ">= 500 env steps/s evaluating a torch policy": out["eval_torch_env_steps_per_s"] >= 500,
    }
    return out


def ladder(maps: list[str], episodes: int) -> list[dict]:
    from marl_augment.envs.evaluate import evaluate
    from marl_augment.envs.smax import QUALITIES

    rows = []
    for m in maps:
        for q in QUALITIES:
            r = evaluate(q, f"smax:{m}", episodes=episodes, seed=0, batch=250)
            rows.append(
                {
                    "map": m,
                    "quality": q,
                    "behaviour": f"{QUALITIES[q][0]}, eps {QUALITIES[q][1]:.2f}",
                    "return_mean": round(r["return_mean"], 3),
                    "return_std": round(r["return_std"], 3),
                    "normalised": round(r["normalised_return_mean"], 3),
                    "win_rate": round(r["win_rate"], 3),
                    "length": round(r["length_mean"], 1),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--ladder", nargs="*", help="maps for the quality ladder table")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.ladder:
        res = {"ladder": ladder(args.ladder, args.episodes)}
        print("| map | quality | behaviour | return | normalised | win rate | length |")
        print("|---|---|---|---|---|---|---|")
        for r in res["ladder"]:
            print(
                f"| {r['map']} | {r['quality']} | {r['behaviour']} | {r['return_mean']:.3f} ± "
                f"{r['return_std']:.3f} "
                f"| {r['normalised']:.3f} | {r['win_rate']:.3f} | {r['length']} |"
            )
    else:
        res = speed(args.episodes)
        print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if "targets" in res:
        sys.exit(0 if all(res["targets"].values()) else 1)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
