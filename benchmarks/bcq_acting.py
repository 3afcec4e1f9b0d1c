"""QMIX+BCQ's trained policies evaluated both ways of acting: among the behaviour-allowed actions
(Fujimoto et al.'s discrete BCQ, this project's default) and among all legal actions (OG-MARL's
implementation). A control for the benchmark's QMIX+BCQ rows: does a method's gain come from the
acting filter or from the Q-network?

    python benchmarks/bcq_acting.py docs/results/smax-paper-small --out docs/results/bcq-acting

Reads the rows of a benchmark's results.jsonl whose run folders exist on this machine (the
benchmark's cells), evaluates each QMIX+BCQ policy with the rows' own final protocol (episodes and
seed: the run's final evaluation is repeated exactly for the default way, a check), and writes
one row per run and a table of mean normalised returns per dataset and method.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from marl_augment.algos import load_policy
from marl_augment.envs import max_return
from marl_augment.envs.evaluate import evaluate
from marl_augment.training import EVAL_SEED_BASE


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="a benchmark folder (or kept folder) with results.jsonl")
    p.add_argument("--out", required=True, help="folder for rows.jsonl and table.md")
    p.add_argument("--episodes", type=int, default=320)
    p.add_argument("--dataset", nargs="*", help="only these datasets (e.g. 'smax:3m poor')")
    args = p.parse_args()

    src = Path(args.results)
    rows = [json.loads(line) for line in (src / "results.jsonl").read_text().splitlines() if line]
    rows = [
        r
        for r in rows
        if r["algo"] == "qmix-bcq"
        and Path(r["run"]).is_dir()
        and (not args.dataset or r["dataset"] in args.dataset)
    ]
    if not rows:
        raise SystemExit(f"no QMIX+BCQ run of {src}/results.jsonl is on this machine")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done = {}
    path = out / "rows.jsonl"
    if path.exists():  # resumable: runs already evaluated are kept
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[r["key"]] = r
    with open(path, "a") as f:
        for r in rows:
            if r["key"] in done:
                continue
            policy = load_policy(r["run"], device="cpu")
            top = max_return(r["env_id"])
            got = {}
            for way, flag in (("allowed", True), ("legal", False)):
                policy.algo.config.act_allowed_only = flag
                res = evaluate(
                    policy,
                    r["env_id"],
                    episodes=args.episodes,
                    seed=EVAL_SEED_BASE + int(r["seed"]),
                )
                got[way] = res["return_mean"] / top
            row = {
                "key": r["key"],
                "dataset": r["dataset"],
                "method": r["method"],
                "seed": r["seed"],
                "row_final": r["normalised_return"],
                "allowed": got["allowed"],
                "legal": got["legal"],
            }
            done[r["key"]] = row
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(json.dumps(row), flush=True)
    table: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in done.values():
        table[r["dataset"], r["method"]].append(r)
    lines = [
        "| dataset | method | runs | acting among allowed (default) | among all legal (OG-MARL) "
        "| difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for (d, m), rs in sorted(table.items()):
        a = float(np.mean([r["allowed"] for r in rs]))
        g = float(np.mean([r["legal"] for r in rs]))
        lines.append(f"| {d} | {m} | {len(rs)} | {a:.3f} | {g:.3f} | {g - a:+.3f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
