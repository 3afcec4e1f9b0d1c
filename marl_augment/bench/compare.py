"""Comparisons behind ``marl-augment compare``: datasets side by side (statistics, return
histograms, the fidelity of the second against the first) and two benchmark result sets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..augment.fidelity import fidelity_report
from ..data.locate import load
from ..errors import ConfigError
from ..outputs import new_output, save_figure
from .grid import read_results


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def compare_datasets(items: list[str], out: Path | None, overwrite: bool = False) -> dict[str, Any]:
    """Stats of every dataset; for two, the fidelity of the second against the first.

    Plots go to the new folder ``out`` (built beside it and swapped in when complete).
    """
    dss = [load(i) for i in items]
    if out is None:
        return _compare_into(items, dss, None)
    with new_output(
        out, "report", overwrite=overwrite, inputs=[d.path for d in dss], what="report folder"
    ) as tmp:
        res = _compare_into(items, dss, tmp)

    def moved(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: moved(x) for k, x in v.items()}
        return str(out / Path(v).name) if isinstance(v, str) and v.startswith(str(tmp)) else v

    return moved(res)


def _compare_into(items: list[str], dss: list[Any], out: Path | None) -> dict[str, Any]:
    res: dict[str, Any] = {"datasets": items, "stats": [d.stats() for d in dss]}
    if out is not None:
        res["returns_plot"] = str(
            _histograms(dss, [Path(i).name for i in items], out / "returns.png")
        )
    if len(dss) == 2:
        real = dss[0].where("real") if (dss[0].episode_origin == 0).any() else dss[0]
        other = dss[1].where("synthetic") if (dss[1].episode_origin != 0).any() else dss[1]
        try:
            res["fidelity"] = fidelity_report(real, other, out_dir=out)
        except Exception as e:  # different specs: stats only
            if not isinstance(e, ConfigError):
                raise
    return res


def _histograms(dss, names: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    allr = np.concatenate([d.episode_returns for d in dss])
    bins = np.linspace(float(allr.min()), float(allr.max()) + 1e-9, 30)
    for d, n in zip(dss, names):
        ax.hist(d.episode_returns, bins=bins, alpha=0.5, density=True, label=n)
    ax.set_xlabel("episode return")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path


def compare_results(a: str, b: str) -> dict[str, Any]:
    """Per (dataset, algorithm, method): mean final return over seeds in A and B, and B − A."""
    ra, rb = read_results(a), read_results(b)
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: {"a": [], "b": []})
    for tag, rows in (("a", ra), ("b", rb)):
        for r in rows:
            groups[r["dataset"], r["algo"], r["method"]][tag].append(r["return_mean"])
    lines = [
        f"| dataset | algorithm | method | A ({Path(a).name}) | B ({Path(b).name}) | B − A |",
        "|---|---|---|---:|---:|---:|",
    ]
    rows = []
    for (d, al, m), v in groups.items():
        ma_ = float(np.mean(v["a"])) if v["a"] else None
        mb = float(np.mean(v["b"])) if v["b"] else None
        delta = mb - ma_ if ma_ is not None and mb is not None else None
        rows.append(
            {
                "dataset": d,
                "algo": al,
                "method": m,
                "a": ma_,
                "b": mb,
                "delta": delta,
                "seeds_a": len(v["a"]),
                "seeds_b": len(v["b"]),
            }
        )
        lines.append(
            f"| {d} | {al} | {m} | {_fmt(ma_)} | {_fmt(mb)} | "
            f"{'–' if delta is None else f'{delta:+.3f}'} |"
        )
    return {"rows": rows, "table": "\n".join(lines)}
