"""EAQ's ways to pass the fidelity gates, side by side (issue 19, item 2), with their cost.

For each dataset (by default the two learned-behaviour 3% stores of the paper-protocol grid, kept
in docs/results/smax-paper-small/data/), EAQ is fitted once to the largest fit budget, with the
EMA weights snapshot at every budget on the way. Then:

- the **fit-budget curve**: every snapshot samples from pure noise (the paper's way) and is gated;
- the **options** at the largest budget: pure noise (the reference), partial noising (SDEdit) at
  several levels, dynamics filtering (×3), and filtering with partial noising.

Each sample is gated with ``fidelity.fidelity_gates`` against the real episodes (distances next
to the shuffled-feature baseline's and the real data's own noise), its novelty measured
(``fidelity.novelty``: nearest-real distance over the real data's own, and the share of copies:
fidelity is cheap for copies), and timed (CPU seconds of this
process: fitting, sampling, gating apart). Samples are ``--scale`` × the real episodes (1 by
default, to keep it cheap; the gates scale their noise allowance to the sizes compared).

Resumable: rows go to ``OUT/rows.jsonl`` as they are made, snapshots to ``OUT/<dataset>/``, the
fit checkpoints every 500 steps; a rerun skips what is done. ``--report`` only writes the table
and the plot from the rows.

    python benchmarks/eaq_options.py --out ~/bench/eaq-options
    python benchmarks/eaq_options.py --out ~/bench/eaq-options --stores A.zarr --budgets 500 2000

Needs the project installed. About 40 min per dataset on 2 CPU cores at the defaults.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from marl_augment.config import machine_summary

ROOT = Path(__file__).resolve().parent.parent
KEPT = ROOT / "docs" / "results" / "smax-paper-small" / "data"

#: (name, options) of the ways of sampling compared at the largest budget
OPTIONS = [
    ("pure noise", {}),
    ("partial 0.5", {"partial_noise": 0.5}),
    ("partial 0.3", {"partial_noise": 0.3}),
    ("partial 0.2", {"partial_noise": 0.2}),
    ("partial 0.1", {"partial_noise": 0.1}),
    ("filter x3", {"filter_factor": 3.0}),
    ("filter x3 + partial 0.3", {"filter_factor": 3.0, "partial_noise": 0.3}),
]
DEFAULT_DIMS = (32, 64, 128)
GATES = ("return_w1", "length_w1", "action_tv", "focus_fire", "dynamics")


def default_stores() -> list[Path]:
    return sorted(KEPT.glob("data-*/store.zarr"))


def name_of(store: Path) -> str:
    import marl_augment as ma

    ds = ma.load(store)
    cell = store.parent / "cell.json"  # a benchmark data cell names its quality
    quality = json.loads(cell.read_text())["config"].get("quality") if cell.exists() else None
    return f"{ds.spec.env_id} {quality or store.stem}"


def load_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fit(ds, folder: Path, lam: float, budgets: list[int], seed: int, dims: list[int]):
    """The EAQ fitted to the largest budget, its EMA state at every budget (files in ``folder``)
    and the fit's cost; a finished fit is loaded, an interrupted one resumes."""
    import torch

    import marl_augment as ma
    from marl_augment.augment.base import Augmenter
    from marl_augment.augment.fidelity import DynamicsModel

    folder.mkdir(parents=True, exist_ok=True)
    model_dir = folder / "model"
    snaps = {b: folder / f"ema-{b}.pt" for b in budgets}
    timing = folder / "fit.json"
    if model_dir.is_dir() and all(p.exists() for p in snaps.values()):
        aug = Augmenter.load(model_dir)
        return aug, snaps, json.loads(timing.read_text())
    aug = ma.make_augmenter(
        "eaq",
        lam=lam,
        dims=dims,
        train_steps=max(budgets),
        seed=seed,
        device="cpu",
        checkpoint_every=500,
    )
    ck = folder / "fit"
    done = 0
    if (ck / "train_state.json").exists():
        done = int(json.loads((ck / "train_state.json").read_text())["step"])
    step = [done]

    def on_step(n, loss):
        step[0] += n
        if step[0] in snaps:
            torch.save({k: v.clone() for k, v in aug.ema.state_dict().items()}, snaps[step[0]])

    t0, c0 = time.perf_counter(), time.process_time()
    aug.fit(ds, progress=on_step, checkpoint_dir=ck, resume=True)
    # the dynamics model filtering needs (fitted whatever filter_factor was at fit time)
    aug.dynamics = DynamicsModel.fit(ds, seed=seed)
    cost = {
        "fit_wall_s": time.perf_counter() - t0,
        "fit_cpu_s": time.process_time() - c0,
        "steps_run": max(budgets) - done,
    }
    aug.save(model_dir, overwrite=True)
    timing.write_text(json.dumps(cost))
    return aug, snaps, cost


def gate(aug, ds, n: int, seed: int, options: dict) -> dict:
    from marl_augment.augment.fidelity import fidelity_gates

    saved = {k: getattr(aug.config, k) for k in options}
    for k, v in options.items():
        setattr(aug.config, k, v)
    try:
        aug.sources = ds
        c0, t0 = time.process_time(), time.perf_counter()
        syn = aug.sample(n, seed=seed)
        sample_cpu, sample_wall = time.process_time() - c0, time.perf_counter() - t0
        report = dict(aug.last_report)
    finally:
        for k, v in saved.items():
            setattr(aug.config, k, v)
    c0 = time.process_time()
    g = fidelity_gates(ds, syn, seed=0)
    return {
        "gates": {
            k: {kk: v[kk] for kk in ("synthetic", "shuffled", "pass") if kk in v}
            for k, v in g["gates"].items()
        },
        "passes": g["passes"],
        "novelty": g["novelty"],
        "action_types": g.get("action_types"),
        "legal_before_masking": report.get("legal_before_masking"),
        "filter": report.get("filter"),
        "return_mean": float(syn.episode_returns.mean()),
        "real_return_mean": float(ds.episode_returns.mean()),
        "length_mean": float(syn.episode_lengths.mean()),
        "real_length_mean": float(ds.episode_lengths.mean()),
        "sample_cpu_s": sample_cpu,
        "sample_wall_s": sample_wall,
        "gate_cpu_s": time.process_time() - c0,
    }


def run(args) -> None:
    import torch

    import marl_augment as ma

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.jsonl"
    done = {(*fit_of(r), r["fit_steps"], r["option"]) for r in load_rows(rows_path)}
    dims = list(args.dims)
    options = [(o, opts) for o, opts in OPTIONS if not args.options or o in args.options]
    budgets = sorted(set(args.budgets))
    for store in args.stores or default_stores():
        ds = ma.load(store)
        name = name_of(store)
        digest = ds.fingerprint.split(":")[-1][:16]
        folder = args.out / (
            f"{digest}-lam{args.lam:g}-seed{args.seed}-dims{'x'.join(map(str, dims))}"
        )
        todo = [(b, "pure noise", {}) for b in budgets[:-1]]
        todo += [(budgets[-1], o, opts) for o, opts in options]
        todo = [t for t in todo if (name, args.lam, tuple(dims), t[0], t[1]) not in done]
        if not todo:
            continue
        aug, snaps, cost = fit(ds, folder, args.lam, budgets, args.seed, dims)
        final = {k: v.clone() for k, v in aug.ema.state_dict().items()}
        n = max(1, int(round(args.scale * len(ds))))
        for b, option, opts in todo:
            aug.ema.load_state_dict(torch.load(snaps[b]) if b != budgets[-1] else final)
            aug.reward_maps = {}  # each snapshot calibrates its own rewards
            row = {
                "dataset": name,
                "store_fingerprint": ds.fingerprint,
                "fit_steps": b,
                "dims": dims,
                "parameters": aug.parameter_count(),
                "option": option,
                "options": opts,
                "lam": args.lam,
                "seed": args.seed,
                "episodes": len(ds),
                "synthetic": n,
                "fit_cpu_s_full_budget": cost["fit_cpu_s"],
                **gate(aug, ds, n, args.seed, opts),
                "machine": machine_summary(),
            }
            with rows_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{name} · {b} steps · {option}: passes={row['passes']} "
                + " ".join(f"{k}={v['synthetic']:.3g}" for k, v in row["gates"].items()),
                flush=True,
            )


def dims_of(row: dict) -> tuple[int, ...]:
    """A row's U-Net channels (rows from before the option have the default's)."""
    return tuple(row.get("dims", DEFAULT_DIMS))


def fit_of(row: dict) -> tuple:
    """Which fit a row's model came from: dataset, lambda, U-Net channels."""
    return (row["dataset"], row["lam"], dims_of(row))


def fit_name(fit: tuple) -> str:
    return f"{fit[0]}, λ {fit[1]:g}, channels {'-'.join(map(str, fit[2]))}"


def fmt(g: dict | None) -> str:
    if g is None:
        return "—"
    return f"{g['synthetic']:.3g} / {g['shuffled']:.3g} {'✓' if g['pass'] else '✗'}"


def report(out: Path) -> str:
    rows = load_rows(out / "rows.jsonl")
    if not rows:
        return "no rows yet"
    head = (
        "| dataset | λ | U-Net channels | fit steps | option | "
        + " | ".join(GATES)
        + " | all | novelty (copies) | return (real) | length (real) | sample CPU s |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in sorted(rows, key=lambda r: (*fit_of(r), r["fit_steps"], r["option"])):
        lines.append(
            f"| {r['dataset']} | {r['lam']:g} | {'-'.join(map(str, dims_of(r)))} | "
            f"{r['fit_steps']} | {r['option']} | "
            + " | ".join(fmt(r["gates"].get(g)) for g in GATES)
            + f" | {'pass' if r['passes'] else 'fail'} | {r['novelty']['nn_ratio']:.2f} "
            f"({r['novelty']['copies']:.0%}) | {r['return_mean']:.3f} "
            f"({r['real_return_mean']:.3f}) | {r['length_mean']:.1f} ({r['real_length_mean']:.1f})"
            f" | {r['sample_cpu_s']:.0f} |"
        )
    fits = sorted({(fit_of(r), max_steps(rows, r), r["fit_cpu_s_full_budget"]) for r in rows})
    lines.append("")
    lines += [f"- fit of {fit_name(f)}, {n} steps: {s / 60:.1f} CPU min" for f, n, s in fits]
    plot(rows, out / "fit_budget.png")
    return "\n".join(lines)


def max_steps(rows: list[dict], row: dict) -> int:
    """The largest budget of the fit a row's snapshot came from."""
    return max(r["fit_steps"] for r in rows if fit_of(r) == fit_of(row))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = [r for r in rows if r["option"] == "pure noise"]
    if not curve:
        return
    fits = sorted({fit_of(r) for r in curve})
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, g in zip(axes, ("dynamics", "return_w1", "length_w1")):
        for f in fits:
            rs = sorted((r for r in curve if fit_of(r) == f), key=lambda r: r["fit_steps"])
            x = [r["fit_steps"] for r in rs]
            (line,) = ax.plot(x, [r["gates"][g]["synthetic"] for r in rs], "o-", label=fit_name(f))
            ax.axhline(
                rs[-1]["gates"][g]["shuffled"],
                color=line.get_color(),
                ls=":",
                lw=1,
            )
        ax.set_xscale("log")
        ticks = sorted({r["fit_steps"] for r in curve})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("EAQ fit steps")
        ax.set_title(f"{g} (dotted: shuffled baseline)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--stores", type=Path, nargs="*", help="default: the kept paper-grid stores")
    ap.add_argument("--budgets", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--dims", type=int, nargs="+", default=list(DEFAULT_DIMS), help="U-Net")
    ap.add_argument("--options", nargs="*", help="only these of the options compared")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true", help="only write the table and plot")
    args = ap.parse_args()
    if not args.report:
        run(args)
    text = report(args.out)
    (args.out / "report.md").write_text(text + "\n")
    print(text)
    print(machine_summary())


if __name__ == "__main__":
    main()
