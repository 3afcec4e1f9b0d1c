"""Benchmark reporting: a table shaped like the EAQ paper's Table 1, robust aggregates, plots.

- **Table 1**: rows dataset (scenario-quality), columns algorithm × method, mean ± std of the
  final evaluation return over seeds, the best method per (row, algorithm) in bold; ``AVG``
  rows per quality average the normalised return (return / the env's maximum) over scenarios,
  and a row gives each method's improvement of that average over ``original``, in percent.
- **Aggregates**: per (algorithm, method), the interquartile mean (IQM) of normalised returns
  over all runs with a 95% stratified-bootstrap confidence interval (runs resampled with
  replacement within each dataset, 2,000 resamples; Agarwal et al. 2021, as rliable computes it).
- **Plots**: ``iqm.png`` (IQM bars with CIs) and ``learning_curves.png`` (mean evaluation return
  over seeds against updates, one panel per dataset × algorithm).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..augment.fidelity import GATE_NAMES
from ..outputs import save_figure
from .config import ORIGINAL, split_method

REPORT_FILE = "report.md"


def _order(values: list[str], preferred: list[str] | None) -> list[str]:
    seen = list(dict.fromkeys(values))
    if preferred:
        return [v for v in preferred if v in seen] + [v for v in seen if v not in preferred]
    return seen


def table1(
    rows: list[dict[str, Any]], methods: list[str] | None = None, algos: list[str] | None = None
) -> str:
    """The Markdown table (see the module docstring)."""
    datasets = _order([r["dataset"] for r in rows], None)
    methods = _order([r["method"] for r in rows], methods)
    algos = _order([r["algo"] for r in rows], algos)
    cell: dict[tuple, list[float]] = defaultdict(list)
    norm: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        cell[r["dataset"], r["algo"], r["method"]].append(r["return_mean"])
        if r.get("normalised_return") is not None:
            norm[r["dataset"], r["algo"], r["method"]].append(r["normalised_return"])
    cols = [(a, m) for a in algos for m in methods]
    head = "| dataset | " + " | ".join(f"{a} · {m}" for a, m in cols) + " |"
    lines = [head, "|---|" + "---:|" * len(cols)]
    for d in datasets:
        cells = []
        for a in algos:
            means = {m: float(np.mean(cell[d, a, m])) for m in methods if cell[d, a, m]}
            best = max(means.values()) if means else None
            for m in methods:
                v = cell[d, a, m]
                if not v:
                    cells.append("–")
                    continue
                text = f"{np.mean(v):.3f} ± {np.std(v):.3f}"
                cells.append(f"**{text}**" if len(means) > 1 and means[m] == best else text)
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    # AVG rows per quality (the dataset label's last word), on normalised returns
    groups: dict[str, list[str]] = defaultdict(list)
    for d in datasets:
        groups[d.split()[-1] if " " in d else "all"].append(d)
    for g, ds_in in groups.items():
        avg = {}
        for a in algos:
            for m in methods:
                per_ds = [float(np.mean(norm[d, a, m])) for d in ds_in if norm[d, a, m]]
                avg[a, m] = float(np.mean(per_ds)) if len(per_ds) == len(ds_in) else None
        if all(v is None for v in avg.values()):
            continue
        lines.append(
            f"| AVG {g} (normalised) | "
            + " | ".join("–" if avg[a, m] is None else f"{avg[a, m]:.3f}" for a, m in cols)
            + " |"
        )
        if ORIGINAL in methods:
            cells = []
            for a, m in cols:
                base, v = avg.get((a, ORIGINAL)), avg[a, m]
                cells.append(
                    "–"
                    if base in (None, 0) or v is None or m == ORIGINAL
                    else f"{v - base:+.3f} ({100 * (v - base) / base:+.1f}%)"
                )
            lines.append(f"| vs original, {g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def best_variant_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The paper's way of reporting a method with variants (EAQ with λ ∈ {0.5, 0.1, 0.01}): per
    (dataset, algorithm), the variant of highest mean final return, as rows of a pseudo-method
    ``<name> (best variant)``. It is chosen on the test measure itself — an oracle — and shown
    beside each variant fixed in advance. Returns (rows, pseudo-method names)."""

    families: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        name, variant = split_method(r["method"])
        if variant:
            families[name].add(r["method"])
    out: list[dict[str, Any]] = []
    names = []
    for name, variants in families.items():
        if len(variants) < 2:
            continue
        label = f"{name} (best variant)"
        names.append(label)
        for d, a in dict.fromkeys((r["dataset"], r["algo"]) for r in rows):
            means = {
                m: np.mean(
                    [
                        r["return_mean"]
                        for r in rows
                        if (r["dataset"], r["algo"], r["method"]) == (d, a, m)
                    ]
                )
                for m in variants
                if any((r["dataset"], r["algo"], r["method"]) == (d, a, m) for r in rows)
            }
            if not means:
                continue
            pick = max(means, key=means.get)
            out += [
                {**r, "method": label, "picked": pick}
                for r in rows
                if (r["dataset"], r["algo"], r["method"]) == (d, a, pick)
            ]
    return out, names


def run_measures(row: dict[str, Any]) -> dict[str, float] | None:
    """A training run's three normalised returns, so "augmentation prevents collapse" and
    "augmentation raises the peak" can be told apart: ``final`` (the paper's measure), ``best``
    (the best periodic evaluation or the final one: an oracle early stop) and ``last_third``
    (mean of the evaluations in the last third of training, the final one included)."""
    norm, ret = row.get("normalised_return"), row.get("return_mean")
    if norm is None:
        return None
    ref = row.get("reference_returns")
    if ref and ref[1] is not None and ref[1] > ref[0]:  # (R - low) / (high - low)
        low, top = float(ref[0]), float(ref[1]) - float(ref[0])
    elif not ret:
        low, top = 0.0, 1.0
    else:  # rows from before reference_returns: R / top
        low, top = 0.0, ret / norm
    curve = [(int(s), float(v)) for s, v in row.get("curve") or []]
    end = max([s for s, _ in curve], default=0)
    final = float(norm)
    points = [(v - low) / top for _, v in curve]
    late = [(v - low) / top for s, v in curve if s >= 2 * end / 3] + [final]
    return {"final": final, "best": max(points + [final]), "last_third": float(np.mean(late))}


def measures_table(
    rows: list[dict[str, Any]], methods: list[str] | None = None, algos: list[str] | None = None
) -> str:
    """Per algorithm and method, over every dataset and seed: mean normalised final, best and
    last-third return, each with its change from ``original`` in absolute normalised points
    (the EAQ paper's AVG-row measure) and relatively."""
    methods = _order([r["method"] for r in rows], methods)
    algos = _order([r["algo"] for r in rows], algos)
    got: dict[tuple, list[dict[str, float]]] = defaultdict(list)
    for r in rows:
        m = run_measures(r)
        if m is not None:
            got[r["algo"], r["method"]].append(m)
    if not got:
        return ""
    kinds = ("final", "best", "last_third")
    lines = [
        "| algorithm · method | runs | "
        + " | ".join(f"{k.replace('_', ' ')} | Δ {k.replace('_', ' ')} vs original" for k in kinds)
        + " |",
        "|---|---:|" + "---:|---:|" * len(kinds),
    ]
    for a in algos:
        base = got.get((a, ORIGINAL))
        for m in methods:
            runs = got.get((a, m))
            if not runs:
                continue
            cells = [str(len(runs))]
            for k in kinds:
                v = float(np.mean([x[k] for x in runs]))
                cells.append(f"{v:.3f}")
                if base and m != ORIGINAL:
                    b = float(np.mean([x[k] for x in base]))
                    rel = f" ({100 * (v - b) / b:+.1f}%)" if b else ""
                    cells.append(f"{v - b:+.3f}{rel}")
                else:
                    cells.append("–")
            lines.append(f"| {a} · {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean after cutting int(n/4) values from each end (as
    ``scipy.stats.trim_mean(x, 0.25)``, which rliable uses)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = x.shape[0]
    if n == 0:
        return float("nan")
    cut = int(0.25 * n)
    return float(x[cut : n - cut].mean())


def stratified_bootstrap_ci(
    groups: list[np.ndarray], stat=iqm, reps: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of ``stat`` over runs resampled with replacement within each group."""
    rng = np.random.default_rng(seed)
    vals = np.empty(reps)
    for i in range(reps):
        vals[i] = stat(
            np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups if len(g)])
        )
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def probability_of_improvement(x: list[np.ndarray], y: list[np.ndarray]) -> float:
    """P(X > Y) of rliable (Agarwal et al., 2021): per task the Mann-Whitney statistic (a run
    of X beats a run of Y: 1, ties: 1/2), averaged over tasks. ``x[k]``, ``y[k]``: the runs of
    task ``k`` under the two methods."""
    per_task = []
    for a, b in zip(x, y):
        if len(a) and len(b):
            d = np.asarray(a)[:, None] - np.asarray(b)[None, :]
            per_task.append(float(((d > 0) + 0.5 * (d == 0)).mean()))
    return float(np.mean(per_task)) if per_task else float("nan")


def probability_of_improvement_ci(
    x: list[np.ndarray], y: list[np.ndarray], reps: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of :func:`probability_of_improvement`, both methods' runs resampled with
    replacement within each task (stratified bootstrap)."""
    rng = np.random.default_rng(seed)
    vals = np.empty(reps)
    for i in range(reps):
        xs = [a[rng.integers(0, len(a), len(a))] if len(a) else a for a in x]
        ys = [b[rng.integers(0, len(b), len(b))] if len(b) else b for b in y]
        vals[i] = probability_of_improvement(xs, ys)
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def _by_dataset(rows: list[dict[str, Any]], algo: str, method: str) -> dict[str, np.ndarray]:
    by_ds: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["algo"] == algo and r["method"] == method and r.get("normalised_return") is not None:
            by_ds[r["dataset"]].append(r["normalised_return"])
    return {d: np.asarray(v) for d, v in by_ds.items()}


def aggregates(
    rows: list[dict[str, Any]], methods: list[str] | None = None, algos: list[str] | None = None
) -> list[dict[str, Any]]:
    """IQM, mean and 95% CI of normalised returns per (algorithm, method)."""
    out = []
    for a in _order([r["algo"] for r in rows], algos):
        for m in _order([r["method"] for r in rows], methods):
            sel = [
                r
                for r in rows
                if r["algo"] == a and r["method"] == m and r.get("normalised_return") is not None
            ]
            if not sel:
                continue
            by_ds: dict[str, list[float]] = defaultdict(list)
            for r in sel:
                by_ds[r["dataset"]].append(r["normalised_return"])
            groups = [np.asarray(v) for v in by_ds.values()]
            allv = np.concatenate(groups)
            lo, hi = stratified_bootstrap_ci(groups)
            g = {
                "algo": a,
                "method": m,
                "runs": int(allv.shape[0]),
                "iqm": iqm(allv),
                "mean": float(allv.mean()),
                "ci_low": lo,
                "ci_high": hi,
            }
            base = _by_dataset(rows, a, ORIGINAL)
            shared = sorted(set(by_ds) & set(base))
            if m != ORIGINAL and shared:
                xs = [np.asarray(by_ds[d]) for d in shared]
                ys = [base[d] for d in shared]
                g["p_improve"] = probability_of_improvement(xs, ys)
                g["p_improve_ci"] = probability_of_improvement_ci(xs, ys)
            out.append(g)
    return out


def aggregates_table(aggs: list[dict[str, Any]]) -> str:
    lines = [
        "| algorithm | method | runs | IQM (95% CI) | mean | P(better than original) (95% CI) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for g in aggs:
        p = (
            f"{g['p_improve']:.2f} ({g['p_improve_ci'][0]:.2f}–{g['p_improve_ci'][1]:.2f})"
            if "p_improve" in g
            else "–"
        )
        lines.append(
            f"| {g['algo']} | {g['method']} | {g['runs']} | {g['iqm']:.3f} "
            f"({g['ci_low']:.3f}–{g['ci_high']:.3f}) | {g['mean']:.3f} | {p} |"
        )
    return "\n".join(lines)


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Fraction of runs whose normalised return exceeds each threshold τ (rliable's run-score
    distribution)."""
    scores = np.asarray(scores, dtype=np.float64)
    return (scores[None, :] > np.asarray(taus)[:, None]).mean(axis=1)


def plot_profiles(
    rows: list[dict[str, Any]],
    out: Path,
    methods: list[str] | None = None,
    algos: list[str] | None = None,
) -> Path:
    """Performance profiles: one panel per algorithm, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("normalised_return") is not None]
    algos = _order([r["algo"] for r in rows], algos)
    methods = _order([r["method"] for r in rows], methods)
    top = max([r["normalised_return"] for r in rows] + [1.0])
    taus = np.linspace(0.0, top, 101)
    fig, axes = plt.subplots(1, len(algos), figsize=(4.2 * len(algos), 3.4), squeeze=False)
    for ax, a in zip(axes[0], algos):
        for m in methods:
            sc = [r["normalised_return"] for r in rows if r["algo"] == a and r["method"] == m]
            if sc:
                ax.plot(taus, performance_profile(np.asarray(sc), taus), label=m)
        ax.set_title(a)
        ax.set_xlabel("normalised return τ")
        ax.set_ylabel("fraction of runs > τ")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    return out


def plot_iqm(aggs: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(dict.fromkeys(g["algo"] for g in aggs))
    methods = list(dict.fromkeys(g["method"] for g in aggs))
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(algos) * len(methods) / 2), 3.6))
    for j, m in enumerate(methods):
        xs, ys, err = [], [], [[], []]
        for i, a in enumerate(algos):
            g = next((g for g in aggs if g["algo"] == a and g["method"] == m), None)
            if g is None:
                continue
            xs.append(i + (j - (len(methods) - 1) / 2) * width)
            ys.append(g["iqm"])
            err[0].append(g["iqm"] - g["ci_low"])
            err[1].append(g["ci_high"] - g["iqm"])
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=m)
    ax.set_xticks(range(len(algos)), algos)
    ax.set_ylabel("IQM normalised return")
    ax.legend(fontsize=8, ncols=min(5, len(methods)))
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    return out


def plot_curves(rows: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["dataset"], r["algo"]) for r in rows))
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False)
    for ax, (d, a) in zip(axes.flat, panels):
        for m in dict.fromkeys(r["method"] for r in rows):
            curves = [
                r["curve"]
                for r in rows
                if r["dataset"] == d and r["algo"] == a and r["method"] == m and r.get("curve")
            ]
            if not curves:
                continue
            steps = [s for s, _ in curves[0]]
            ys = np.array([[v for _, v in c] for c in curves if len(c) == len(steps)])
            (line,) = ax.plot(steps, ys.mean(0), label=m, lw=1.2)
            if len(ys) > 1:  # the spread over seeds, ±1 std
                ax.fill_between(
                    steps,
                    ys.mean(0) - ys.std(0),
                    ys.mean(0) + ys.std(0),
                    color=line.get_color(),
                    alpha=0.12,
                    lw=0,
                )
        data_returns = [
            r["dataset_return"]
            for r in rows
            if r["dataset"] == d
            and r["algo"] == a
            and r["method"] == ORIGINAL
            and r.get("dataset_return") is not None
        ]
        if data_returns:
            ax.axhline(data_returns[0], ls="--", c="grey", lw=0.8, label="data (original)")
        ax.set_title(f"{d} · {a}", fontsize=9)
        ax.set_xlabel("updates")
        ax.set_ylabel("return")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    return out


def fidelity_table(augmented: list[dict[str, Any]]) -> str:
    """Markdown: per augmented dataset (dataset, method, seed), each gate's synthetic distance
    against the shuffled baseline's, and whether it passes."""

    names = list(dict.fromkeys(n for r in augmented for n in r["fidelity"]["gates"]))
    head = (
        "| dataset | method | seed | "
        + " | ".join(GATE_NAMES.get(n, n) for n in names)
        + " | all |"
    )
    lines = [head, "|---|---|---:|" + "---|" * len(names) + "---|"]
    for r in sorted(augmented, key=lambda r: (r["dataset"], str(r["method"]), r["seed"])):
        g = r["fidelity"]["gates"]
        cells = [
            (
                "–"
                if n not in g
                else f"{g[n]['synthetic']:.3g} / {g[n]['shuffled']:.3g} "
                f"{'✓' if g[n]['pass'] else '✗'}"
            )
            for n in names
        ]
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['seed']} | "
            + " | ".join(cells)
            + f" | {'pass' if r['fidelity']['passes'] else 'fail'} |"
        )
    return "\n".join(lines)


def write_report(
    rows: list[dict[str, Any]],
    work: Path,
    cfg: Any = None,
    *,
    timing: str | None = None,
    fidelity: list[dict[str, Any]] | None = None,
) -> Path:
    """``report.md`` with the tables and the plots next to it (``timing``: a markdown table of
    where the grid's time goes, appended as its own section)."""
    work = Path(work)
    methods = list(cfg.methods) if cfg is not None else None
    algos = list(cfg.algos) if cfg is not None else None
    aggs = aggregates(rows, methods, algos)
    parts = [
        "# Benchmark report",
        "",
        f"{len(rows)} training runs; final evaluation return, mean ± std over seeds "
        f"({len({r['seed'] for r in rows})} seeds).",
        "",
        table1(rows, methods, algos),
        "",
    ]
    if aggs:
        plot_iqm(aggs, work / "iqm.png")
        plot_profiles(rows, work / "profiles.png", methods, algos)
        parts += [
            "## Normalised return, all datasets",
            "",
            "Interquartile mean with a 95% stratified-bootstrap interval, and the "
            "probability that a run of the method beats a run of `original` on the same "
            "dataset (rliable's probability of improvement, averaged over datasets). "
            "Computed with numpy here, by rliable's definitions.",
            "",
            aggregates_table(aggs),
            "",
            "![IQM](iqm.png)",
            "",
            "Performance profiles (fraction of runs above each normalised return):",
            "",
            "![profiles](profiles.png)",
            "",
        ]
    oracle, names = best_variant_rows(rows)
    if oracle:
        fixed = [m for m in (methods or []) if ":" in m] or None
        shown = [ORIGINAL, *names, *(fixed or [])]
        parts += [
            "## The paper's way: the best variant per cell",
            "",
            "Per dataset and algorithm, the variant (e.g. EAQ's λ) with the highest mean final "
            "return — chosen on the measure it is judged by, so an oracle; the variants fixed "
            "in advance are the honest columns" + (f" ({', '.join(fixed)})" if fixed else "") + ".",
            "",
            table1([r for r in rows + oracle if r["method"] in shown], shown, algos),
            "",
        ]
    shifted = [
        {**r, "return_mean": r["shifted"]["return_mean"], "normalised_return": None}
        for r in rows
        if r.get("shifted")
    ]
    if shifted:
        args = sorted({json.dumps(r["shifted"]["env_args"], sort_keys=True) for r in shifted})
        parts += [
            "## Shifted environments",
            "",
            "The same policies' final return in a shifted env (DOM2's generalisation "
            f"test; env arguments {', '.join(args)}), mean ± std over seeds.",
            "",
            table1(shifted, methods, algos),
            "",
        ]
    measures = measures_table(rows, methods, algos)
    if measures:
        parts += [
            "## Final, best and last-third return",
            "",
            "Normalised returns averaged over datasets and seeds. *best* is the best "
            "periodic evaluation (an oracle early stop); *last third* averages the "
            "evaluations of the last third of training. Δ is the change from `original` "
            "in absolute normalised points, with the relative change in brackets.",
            "",
            measures,
            "",
        ]
    if any(r.get("curve") for r in rows):
        plot_curves(rows, work / "learning_curves.png")
        parts += ["## Learning curves", "", "![learning curves](learning_curves.png)", ""]
    if fidelity:
        parts += [
            "## Fidelity gates of the augmented datasets",
            "",
            "Each cell: the synthetic episodes' distance to the real ones / the shuffled "
            "baseline's (real episodes with every feature shuffled across episodes); ✓ when "
            "at most half the baseline's or within the real data's own sampling noise. "
            "Dynamics: a one-step model fitted on real steps, its error above the held-out "
            "real steps' (docs/cli.md, `fidelity`).",
            "",
            fidelity_table(fidelity),
            "",
        ]
    if timing:
        parts += [
            "## Where the time goes",
            "",
            "Wall seconds per cell (each cell runs in one process with one torch thread).",
            "",
            timing,
            "",
        ]
    path = work / REPORT_FILE
    path.write_text("\n".join(parts))
    return path
