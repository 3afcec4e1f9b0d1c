"""How long OG-MARL-style datasets take on this machine: behaviour training, recording, subsample.

    python benchmarks/behaviour.py smax:3m --out ~/bench/og-smax/3m-s0 [--transitions 1000000]

Runs ``marl-augment behaviour datasets`` (resumable: a rerun measures only what is left) and
prints, per quality band, the first checkpoint that reached it and the training time to it, the
time to record each full dataset, and what the 3% subsamples hold. Results go to
``OUT/benchmark.json`` too.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from marl_augment.envs.behaviour import (
    QUALITY_BANDS,
    PpoConfig,
    behaviour_datasets,
    read_checkpoints,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("env_id")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=PpoConfig.total_steps)
    a = ap.parse_args()

    cfg = PpoConfig(total_steps=a.steps)
    t0 = time.perf_counter()
    stamps: dict[str, float] = {}

    def log(row):
        stamps.setdefault("first_checkpoint", time.perf_counter() - t0)
        print(f"{row['env_steps']:>9,} steps {row['normalised_return']:.3f} of max "
              f"(win {row['win_rate']:.2f}) at {time.perf_counter() - t0:.0f} s", flush=True)

    res = behaviour_datasets(a.env_id, a.out, seed=a.seed, transitions=a.transitions,
                             config=cfg, log=log)
    total = time.perf_counter() - t0
    rows = read_checkpoints(a.out / "policies")
    bands = {}
    for q, (lo, hi) in QUALITY_BANDS.items():
        hit = [r for r in rows if lo <= r["normalised_return"] <= hi]
        bands[q] = {"checkpoints_in_band": len(hit),
                    "first_env_steps": hit[0]["env_steps"] if hit else None,
                    "first_seconds": hit[0]["seconds"] if hit else None}
    report = {"env_id": a.env_id, "seed": a.seed, "transitions": a.transitions,
              "machine": f"{platform.machine()}, {platform.python_version()}",
              "train_seconds": res["train_seconds"], "total_seconds": total,
              "best_normalised_return": max(r["normalised_return"] for r in rows),
              "bands": bands, "datasets": res["datasets"]}
    (a.out / "benchmark.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
