"""Would training k seeds in one process with batched parameters pay on this CPU? (issue 17, item 4)

    python benchmarks/seed_batching.py                 # k = 1, 2, 5; 1 torch thread
    python benchmarks/seed_batching.py --k 1 5 --threads 2

Measured before building it, part by part, on one QMIX+CQL update (default config: batch 32
windows × 20 steps, smax:3m shapes): for each part, the time of k seeds' work done as one
batched computation, divided by k, against the same part for one seed. The parts:

- ``agent nets``: the stacked agent-network pass (online + target forward, online backward) with
  2k networks instead of 2 — the kernel already batches networks, so this is exactly what
  seed-batching would run;
- ``mixer + CQL``: the mixer over the data's and 20 sampled joint actions, forward and backward,
  for k mixers at once with ``torch.func.vmap`` over stacked parameters
  (``torch.func.stack_module_state``);
- ``Adam``: one optimiser over k seeds' parameters (foreach kernels) against one seed's;
- ``batch gather`` and ``the rest`` of the update (TD targets, sampling legal actions, logging):
  per seed whatever is done, measured as the lone update minus the parts above.

The per-seed time of a k-batched update is estimated as the sum of the parts' per-seed times,
and the speed-up as (lone update) / (that sum). ``--check`` also runs both for real where they
can be compared. Results print as JSON; docs/performance.md records them.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import tempfile
import time
from pathlib import Path

from marl_augment.config import machine_summary


def timed(fn, n: int, repeats: int = 3) -> float:
    """Median seconds per call over ``repeats`` blocks of ``n`` calls, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    blocks = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        blocks.append((time.perf_counter() - t) / n)
    return sorted(blocks)[len(blocks) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", type=int, nargs="+", default=[1, 2, 5], help="seeds per batched update")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n", type=int, default=60, help="calls per timed block")
    args = p.parse_args()

    import torch
    from torch.func import functional_call, stack_module_state, vmap

    from marl_augment.algos import make_algorithm
    from marl_augment.algos.agent_stack import run_agent_stack
    from marl_augment.algos.common import SequenceSampler, state_dim_of
    from marl_augment.algos.kernels import cpu_kernels
    from marl_augment.algos.qmix_cql import sample_legal
    from marl_augment.envs.smax import collect

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp())
    ds = collect("smax:3m", tmp / "3m.zarr", quality="medium", episodes=300, seed=0)
    algo = make_algorithm("qmix-cql", ds.spec, state_dim_of(ds.spec), device="cpu")
    sampler = SequenceSampler(ds, 20, 10, 32, 0, algo.device)
    b = sampler.batch(0)
    g = torch.Generator().manual_seed(0)
    step = iter(range(10**9))

    def lone_update() -> None:
        k = next(step)
        algo.update(sampler.batch(k), torch.Generator().manual_seed(k))

    lone = timed(lone_update, args.n)
    gather = timed(lambda: sampler.batch(1), args.n)
    out: dict = {
        "machine": f"{machine_summary()}, {args.threads} thread(s)",
        "agent_networks": "stacked, C++ step"
        if cpu_kernels(torch.zeros(1)) is not None
        else "nn.GRU net by net",
        "lone_update_ms": round(lone * 1e3, 2),
        "batch_gather_ms": round(gather * 1e3, 2),
        "k": {},
    }

    def agents_part(k: int) -> float:
        online = [copy.deepcopy(algo.agent) for _ in range(k)]
        target = [copy.deepcopy(algo.target_agent) for _ in range(k)]

        def fb() -> None:
            qs = run_agent_stack([*online, *target], b["obs"])
            torch.stack(qs[:k]).sum().backward()

        return timed(fb, args.n) / k

    def mixer_part(k: int) -> float:
        losses = [_MixCql(copy.deepcopy(algo.mixer)) for _ in range(k)]
        params, buffers = stack_module_state(losses)
        base = copy.deepcopy(losses[0]).to("meta")
        q = torch.randn(k, *b["avail"].shape, requires_grad=True)

        def one(p, bu, qk, joint):
            return functional_call(base, (p, bu), (b["state"], qk, joint))

        def joint() -> torch.Tensor:
            return torch.cat([b["actions"].unsqueeze(-1), sample_legal(b["avail"], 20, g)], -1)

        if k == 1:  # the lone learner's own code path
            return timed(lambda: losses[0](b["state"], q[0], joint()).backward(), args.n)

        def fb() -> None:
            joints = torch.stack([joint() for _ in range(k)])
            vmap(one)(params, buffers, q, joints).sum().backward()

        return timed(fb, args.n) / k

    def adam_part(k: int) -> float:
        ps = [
            torch.nn.Parameter(p.detach().clone())
            for _ in range(k)
            for m in algo.trained_modules()
            for p in m.parameters()
        ]
        for p_ in ps:
            p_.grad = torch.randn_like(p_)
        opt = torch.optim.Adam(ps, lr=5e-4)
        return timed(opt.step, args.n) / k

    parts1 = None
    for k in args.k:
        parts = {
            "agent nets fwd+bwd": agents_part(k),
            "mixer + CQL fwd+bwd": mixer_part(k),
            "Adam": adam_part(k),
        }
        if parts1 is None:
            parts1 = dict(parts)
            rest = lone - gather - sum(parts.values())
        per_seed = gather + rest + sum(parts.values())
        out["k"][k] = {
            "per_seed_ms": {
                **{n: round(v * 1e3, 2) for n, v in parts.items()},
                "batch gather": round(gather * 1e3, 2),
                "the rest": round(rest * 1e3, 2),
            },
            "estimated_update_ms_per_seed": round(per_seed * 1e3, 2),
            "estimated_speedup": round(lone / per_seed, 2),
        }
        print(json.dumps({"k": k, **out["k"][k]}), flush=True)
    print(json.dumps(out, indent=2))


@functools.cache
def _mix_cql_module():
    import torch

    class MixCql(torch.nn.Module):
        """The mixer's part of a QMIX+CQL loss: logsumexp of Q_tot over 1 + 20 joint actions."""

        def __init__(self, mixer) -> None:
            super().__init__()
            self.m = mixer

        def forward(self, state, q, joint):
            tots = self.m.mix(q.gather(-1, joint), self.m.weights(state))
            return torch.logsumexp(tots, -1).sum()

    return MixCql


def _MixCql(mixer):  # noqa: N802 - a class made lazily, so --help needs no torch
    return _mix_cql_module()(mixer)


if __name__ == "__main__":
    main()
