"""EAQ speed: our Conv1D U-Net against denoising-diffusion-pytorch's Unet1D, and the samplers.

Two parts (run both, or one with --part):

``peer`` — training-step throughput (episodes/s: forward, backward, Adam) of our
``TemporalUnet`` and of ``denoising_diffusion_pytorch.Unet1D`` sized to the same parameter
count, in the same process, on 3m-sized episode tensors (F features x T steps). Needs
``pip install denoising-diffusion-pytorch`` (it pulls torchvision; on this machine that means
its own venv with torch 2.14.1 + torchvision 0.29.1: see docs/performance.md). Only torch and
this repository's ``marl_augment/augment/eaq/denoiser.py`` are imported.

``samplers`` — EAQ fitted on a collected smax:3m dataset, then sampling throughput of the full
DDPM chain against DDIM, and how far each sampler's return distribution is from the real one
(1-Wasserstein). Needs the project installed with the ``smax`` extra.

    python benchmarks/eaq_speed.py --part peer
    python benchmarks/eaq_speed.py --part samplers
Targets (issue 5): our training step at least as fast as the peer at matched size; the fast
sampler >= 10x faster than the full chain with a return distance within 10% of it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from marl_augment.config import machine_summary

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def train_rate(net, x, steps: int = 15) -> float:
    import torch

    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    k = torch.randint(0, 100, (x.shape[0],))
    for _ in range(3):
        loss = ((net(x, k) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = ((net(x, k) - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return x.shape[0] * steps / (time.perf_counter() - t0)


def peer(features: int, horizons: list[int], batch: int) -> dict:
    import torch
    from denoising_diffusion_pytorch import Unet1D

    from marl_augment.augment.eaq.denoiser import TemporalUnet

    def count(m):
        return sum(p.numel() for p in m.parameters())

    torch.manual_seed(0)
    rows = []
    for dims in ((32, 64, 128), (64, 128, 256)):
        ours = TemporalUnet(features, dims)
        n_ours = count(ours)
        # the peer's size grows with its base width `dim`; pick the width closest in parameters
        best = min(
            range(8, 257, 4),
            key=lambda d: abs(
                count(Unet1D(dim=d, dim_mults=(1, 2, 4), channels=features)) - n_ours
            ),
        )
        theirs = Unet1D(dim=best, dim_mults=(1, 2, 4), channels=features)
        for t in horizons:
            x = torch.randn(batch, features, t)
            rows.append(
                {
                    "features": features,
                    "horizon": t,
                    "batch": batch,
                    "ours_dims": list(dims),
                    "ours_params": n_ours,
                    "peer_dim": best,
                    "peer_params": count(theirs),
                    "ours_episodes_per_s": round(train_rate(ours, x), 1),
                    "peer_episodes_per_s": round(train_rate(theirs, x), 1),
                }
            )
            r = rows[-1]
            r["speed_ratio"] = round(r["ours_episodes_per_s"] / r["peer_episodes_per_s"], 3)
            print(json.dumps(r), file=sys.stderr)
    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "rows": rows,
        "target_ours_at_least_as_fast": all(r["speed_ratio"] >= 1.0 for r in rows),
    }


def samplers(episodes: int, train_steps: int, n_samples: int) -> dict:
    import tempfile

    import marl_augment as ma
    from marl_augment.augment.fidelity import wasserstein1
    from marl_augment.envs.smax import collect

    tmp = Path(tempfile.mkdtemp())
    ds = collect("smax:3m", tmp / "3m.zarr", quality="medium", episodes=episodes, seed=0)
    ds = ma.load(ds.path)
    aug = ma.make_augmenter("eaq", train_steps=train_steps, device="cpu")
    t0 = time.perf_counter()
    aug.fit(ds)
    fit_s = time.perf_counter() - t0
    out = {
        "dataset_episodes": len(ds),
        "train_steps": train_steps,
        "fit_s": round(fit_s, 1),
        "params": aug.parameter_count(),
        "features": aug.layout.width,
        "horizon": aug.horizon,
    }
    for sampler in ("ddpm", "ddim"):
        aug.generate(8, seed=99, sampler=sampler)  # warm-up
        t0 = time.perf_counter()
        x = aug.generate(n_samples, seed=0, sampler=sampler)
        dt = time.perf_counter() - t0
        syn = aug.decode(x, sampler=sampler)  # as aug.sample decodes: calibrated, structured
        returns, report = syn.episode_returns, aug.last_report
        out[sampler] = {
            "episodes": n_samples,
            "seconds": round(dt, 2),
            "episodes_per_s": round(n_samples / dt, 1),
            "steps": aug.config.diffusion_steps if sampler == "ddpm" else aug.config.sample_steps,
            "return_w1_to_real": round(wasserstein1(ds.episode_returns, returns), 4),
            "legal_before_masking": round(report["legal_before_masking"], 3),
        }
        print(json.dumps({sampler: out[sampler]}), file=sys.stderr)
    t0 = time.perf_counter()
    aug.sample(5 * len(ds), seed=1)  # the default sampler, decoded into episodes
    out["fit_plus_sample_5x_s"] = round(fit_s + time.perf_counter() - t0, 1)
    out["speedup"] = round(out["ddim"]["episodes_per_s"] / out["ddpm"]["episodes_per_s"], 1)
    out["distance_ratio"] = round(
        out["ddim"]["return_w1_to_real"] / max(1e-9, out["ddpm"]["return_w1_to_real"]), 3
    )
    out["targets"] = {
        "default config fits and samples 5x in < 5 min": out["fit_plus_sample_5x_s"] < 300,
        "fast sampler >= 10x": out["speedup"] >= 10,
        "fast sampler return distance within 10%": out["distance_ratio"] <= 1.10,
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["peer", "samplers", "all"], default="all")
    ap.add_argument("--features", type=int, default=351, help="3m episode features (EAQ layout)")
    ap.add_argument("--horizons", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--train-steps", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    res = {"machine": machine_summary()}
    if args.part in ("peer", "all"):
        res["peer"] = peer(args.features, args.horizons, args.batch)
    if args.part in ("samplers", "all"):
        res["samplers"] = samplers(args.episodes, args.train_steps, args.samples)
    print(json.dumps(res, indent=2))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
