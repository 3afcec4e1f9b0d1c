"""EAQ fidelity: are synthetic returns closer to the real ones than a shuffled-feature baseline?

Issue 5's check. On ``smax:3m`` stores collected with the scripted ``poor`` and ``medium``
policies (300 episodes each), EAQ and EAQ⁻Q are fitted with their default (CPU) config for each
seed, 5x the dataset is sampled (the paper's scale), and the synthetic return and length
distributions are compared with the real ones (1-Wasserstein). The same sampled features are
also decoded without reward calibration, so its effect is measured on identical samples. The
reference is ``fidelity.shuffled_baseline`` (every feature's series from a different random real
episode) at the same number of episodes, over the same seeds.

    python benchmarks/eaq_fidelity.py                       # poor + medium, eaq + eaq-q, seeds 0-2
    python benchmarks/eaq_fidelity.py --qualities poor --methods eaq --seeds 0

Needs the project installed with the ``smax`` extra. About 3 min per fit on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from marl_augment.config import machine_summary

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def returns_of(cols: dict, lengths: np.ndarray) -> np.ndarray:
    from marl_augment.data.schema import episode_returns

    return episode_returns(np.concatenate([[0], np.cumsum(lengths)]), cols["rewards"])


def run(
    qualities: list[str],
    methods: list[str],
    seeds: list[int],
    episodes: int,
    scale: float,
    train_steps: int | None,
) -> list[dict]:
    import marl_augment as ma
    from marl_augment.augment.eaq import features as F
    from marl_augment.augment.fidelity import shuffled_baseline, wasserstein1
    from marl_augment.envs.smax import collect

    tmp = Path(tempfile.mkdtemp())
    rows = []
    for quality in qualities:
        ds = ma.load(
            collect(
                "smax:3m", tmp / f"3m-{quality}.zarr", quality=quality, episodes=episodes, seed=0
            ).path
        )
        real_r, real_l = ds.episode_returns, ds.episode_lengths
        n = int(round(scale * len(ds)))
        for seed in seeds:
            base = shuffled_baseline(ds, n, seed=seed)
            rows.append(
                {
                    "quality": quality,
                    "method": "shuffled-baseline",
                    "seed": seed,
                    "return_w1": wasserstein1(real_r, base.episode_returns),
                    "length_w1": wasserstein1(real_l, base.episode_lengths),
                    "return_mean": float(base.episode_returns.mean()),
                    "real_return_mean": float(real_r.mean()),
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        for method in methods:
            for seed in seeds:
                opts = {"seed": seed, "device": "cpu"}
                if train_steps:
                    opts["train_steps"] = train_steps
                aug = ma.make_augmenter(method, **opts)
                t0 = time.perf_counter()
                aug.fit(ds)
                fit_s = time.perf_counter() - t0
                x = aug.generate(n, seed=seed)
                syn = aug.decode(x)
                report = aug.last_report
                raw, raw_len, _ = F.decode(x, aug.layout, aug.spec, aug.structure)
                rows.append(
                    {
                        "quality": quality,
                        "method": method,
                        "seed": seed,
                        "return_w1": wasserstein1(real_r, syn.episode_returns),
                        "return_w1_uncalibrated": wasserstein1(real_r, returns_of(raw, raw_len)),
                        "length_w1": wasserstein1(real_l, syn.episode_lengths),
                        "return_mean": float(syn.episode_returns.mean()),
                        "return_mean_uncalibrated": float(returns_of(raw, raw_len).mean()),
                        "real_return_mean": float(real_r.mean()),
                        "legal_before_masking": report["legal_before_masking"],
                        "q_mean": report["q_mean"],
                        "fit_s": round(fit_s, 1),
                        "train_steps": aug.config.train_steps,
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    """Mean (min-max) over seeds per dataset and method, as a markdown table."""

    def cell(vals):
        vals = np.asarray(vals, float)
        return (
            f"{vals.mean():.4f} ({vals.min():.4f}-{vals.max():.4f})"
            if len(vals) > 1
            else f"{vals[0]:.4f}"
        )

    out = [
        "| data | method | return W1 | return W1, uncalibrated | length W1 | mean return (real) |"
        " legal before masking |",
        "|---|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(r["quality"], r["method"]) for r in rows},
        key=lambda k: (k[0], k[1] != "shuffled-baseline", k[1]),
    )
    for q, m in keys:
        rs = [r for r in rows if r["quality"] == q and r["method"] == m]
        unc = (
            cell([r["return_w1_uncalibrated"] for r in rs])
            if "return_w1_uncalibrated" in rs[0]
            else "—"
        )
        legal = (
            cell([r["legal_before_masking"] for r in rs])
            if "legal_before_masking" in rs[0]
            else "—"
        )
        out.append(
            f"| 3m {q} | {m} | {cell([r['return_w1'] for r in rs])} | {unc} | "
            f"{cell([r['length_w1'] for r in rs])} | {np.mean([r['return_mean'] for r in rs]):.3f} "
            f"({rs[0]['real_return_mean']:.3f}) | {legal} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qualities", nargs="+", default=["poor", "medium"])
    ap.add_argument("--methods", nargs="+", default=["eaq", "eaq-q"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--scale", type=float, default=5.0)
    ap.add_argument("--train-steps", type=int, default=None, help="default: the config's")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = run(
        args.qualities, args.methods, args.seeds, args.episodes, args.scale, args.train_steps
    )
    res = {
        "machine": machine_summary(),
        "rows": rows,
    }
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
