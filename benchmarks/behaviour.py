"""How long OG-MARL-style datasets take on this machine: behaviour training, recording, subsample.

    python benchmarks/behaviour.py smax:3m --out ~/bench/og-smax/3m-s0 [--transitions 1000000]
    python benchmarks/behaviour.py mamujoco:2x3-HalfCheetah --out ~/bench/og-hc --steps 300000 \
        --quality poor --quality medium -o threads=2
    python benchmarks/behaviour.py mpe:simple_spread --out ~/bench/og-spread --steps 100000

Runs ``marl-augment behaviour datasets`` (resumable: a rerun measures only what is left) and
prints, per quality band, the first checkpoint that reached it and the training time to it, the
time to record each full dataset, and what the 3% subsamples hold. Results go to
``OUT/benchmark.json`` too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from marl_augment.config import machine_summary
from marl_augment.envs import split_id
from marl_augment.envs.behaviour import QUALITY_BANDS, PpoConfig, read_checkpoints
from marl_augment.envs.datasets import behaviour_datasets
from marl_augment.envs.online import Td3OnlineConfig, quality_bands


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("env_id")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--quality", action="append", default=None)
    ap.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        help="learner option key=value (ints and floats as such)",
    )
    ap.add_argument("-e", "--env-arg", action="append", default=[])
    a = ap.parse_args()

    def parse(items):
        out = {}
        for item in items:
            k, v = item.split("=", 1)
            out[k] = json.loads(v) if v.replace(".", "", 1).lstrip("-").isdigit() else v
        return out

    smax = split_id(a.env_id)[0] == "smax"
    cls = PpoConfig if smax else Td3OnlineConfig
    opts = parse(a.option)
    if a.steps is not None:
        opts["total_steps"] = a.steps
    cfg = cls(**opts)
    t0 = time.perf_counter()

    def log(row):
        got = (
            f"{row['normalised_return']:.3f} of max (win {row['win_rate']:.2f})"
            if smax
            else f"behaviour return {row['return_mean']:.1f} (greedy {row['greedy_return']:.1f})"
        )
        print(f"{row['env_steps']:>9,} steps {got} at {time.perf_counter() - t0:.0f} s", flush=True)

    res = behaviour_datasets(
        a.env_id,
        a.out,
        seed=a.seed,
        transitions=a.transitions,
        config=cfg,
        env_kwargs=parse(a.env_arg),
        qualities=tuple(a.quality or ("poor", "medium", "good")),
        log=log,
    )
    total = time.perf_counter() - t0
    rows = read_checkpoints(a.out / "policies")
    key = "normalised_return" if smax else "return_mean"
    bands = {}
    for q, (lo, hi) in (QUALITY_BANDS if smax else quality_bands(a.env_id, rows)).items():
        hit = [r for r in rows if lo <= r[key] <= hi]
        bands[q] = {
            "checkpoints_in_band": len(hit),
            "first_env_steps": hit[0]["env_steps"] if hit else None,
            "first_seconds": hit[0]["seconds"] if hit else None,
        }
    report = {
        "env_id": a.env_id,
        "seed": a.seed,
        "transitions": a.transitions,
        "machine": machine_summary(),
        "train_seconds": res["train_seconds"],
        "total_seconds": total,
        "best": max(r[key] for r in rows),
        "measure": key,
        "bands": bands,
        "datasets": res["datasets"],
    }
    (a.out / "benchmark.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
