"""``benchmark``, ``compare`` and ``quickstart``: the EAQ paper's experiment, and the main job."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..bench import BenchConfig, load_config, plan, read_results, run_benchmark
from ..bench.compare import compare_datasets, compare_results
from ..bench.grid import keep_results, timing, timing_table
from ..bench.report import table1
from ..errors import ConfigError
from ._common import (
    console,
    counting_bars,
    err_console,
    kv_table,
    parse_seeds,
    print_json,
    user_errors,
)


def register(app: typer.Typer) -> None:
    app.command("benchmark")(benchmark)
    app.command("compare")(compare)
    app.command("quickstart")(quickstart)


@contextmanager
def stage_bars():
    """One progress bar per benchmark stage (data, augment, train), counting cells."""

    with counting_bars("{task.description:<9}") as prog:
        tasks: dict[str, Any] = {}

        def update(stage: str, n: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = prog.add_task(stage, total=total)
                prog.update(tasks[stage], completed=n)
            else:
                prog.advance(tasks[stage], n)

        yield update


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _run_and_print(
    cfg,
    out: Path,
    executor: str,
    workers: int,
    device: str | None,
    ray_address: str | None,
    as_json: bool,
    restore: Path | None = None,
    compute: bool = True,
) -> list[dict[str, Any]]:

    t0 = time.perf_counter()
    with stage_bars() as update:
        rows = run_benchmark(
            cfg,
            out,
            executor=executor,
            workers=workers,
            device=device,
            ray_address=ray_address,
            progress=update,
            restore=restore,
            compute=compute,
            notify=lambda m: err_console.print(f"[yellow]{m}[/]"),
        )
    if as_json:
        print_json(rows)
        return rows
    from rich.markdown import Markdown

    console.print(Markdown(table1(rows, list(cfg.methods), list(cfg.algos))))
    console.print(
        f"[green]{len(rows)} runs[/] in {time.perf_counter() - t0:.0f} s; report: "
        f"{out / 'report.md'} "
        f"(plots: {out / 'iqm.png'}, {out / 'learning_curves.png'}); results: "
        f"{out / 'results.jsonl'}"
    )
    return rows


@user_errors
def benchmark(
    config: Annotated[
        Path | None, typer.Argument(help="Benchmark config (TOML or JSON); flags override it.")
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Work folder: cached cells, results.jsonl, report.md, plots.")
    ] = Path("benchmark"),
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", help="smax:<map> to collect datasets on (repeatable)."),
    ] = None,
    quality: Annotated[
        list[str] | None, typer.Option("--quality", help="poor, medium, good (repeatable).")
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="An explicit dataset, path or name (repeatable)."),
    ] = None,
    episodes: Annotated[
        int | None, typer.Option(help="Episodes collected per scenario × quality.")
    ] = None,
    subsample: Annotated[
        float | None, typer.Option(help="Fraction of episodes kept (paper: 0.03).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", help="original or an augmenter (repeatable).")
    ] = None,
    algo: Annotated[
        list[str] | None, typer.Option("--algo", help="qmix-cql, qmix-bcq, bc (repeatable).")
    ] = None,
    seeds: Annotated[
        str | None, typer.Option(help="Seeds, e.g. 0-4 or 0,1,2 (paper: 5 seeds).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Updates per training run.")] = None,
    eval_episodes: Annotated[
        int | None, typer.Option(help="Episodes of each run's final evaluation.")
    ] = None,
    scale: Annotated[
        float | None, typer.Option(help="Synthetic episodes per real one (paper: 5).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Torch device: auto, cpu, cuda.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Cells run at once (worker processes or Ray CPUs).")
    ] = _default_workers(),
    executor: Annotated[str, typer.Option(help="local (worker processes) or ray.")] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster address (default: RAY_ADDRESS or a local instance)."),
    ] = None,
    restore: Annotated[
        Path | None,
        typer.Option(
            help="results.jsonl (or a folder holding it) of an earlier run: its rows count as "
            "finished runs; data cells kept beside it (--keep) are reused."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the grid and what is cached, run nothing.")
    ] = False,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="Run no cell: rewrite results.jsonl and the report from the finished ones.",
        ),
    ] = False,
    keep: Annotated[
        Path | None,
        typer.Option(
            help="After the run, copy results.jsonl, the report, its plots and the data cells "
            "into this folder (e.g. in a repository), for a later --restore."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result rows as JSON.")] = False,
) -> None:
    """Run the EAQ paper's experiment: datasets × augmenters × algorithms × seeds, resumable.

    Runs seed by seed; results.jsonl and report.md are rewritten after each seed's round.
    """

    seed_list = parse_seeds(seeds) if seeds is not None else None
    cfg = load_config(
        config,
        scenarios=scenario,
        qualities=quality,
        datasets=dataset,
        episodes=episodes,
        subsample=subsample,
        methods=method,
        algos=algo,
        seeds=seed_list,
        steps=steps,
        eval_episodes=eval_episodes,
        scale=scale,
    )
    if dry_run:
        from rich.markdown import Markdown

        stages = plan(cfg)
        for name, cells in zip(("data", "augment", "train"), stages):
            done = sum(c.done(out) for c in cells)
            console.print(f"{name:<8} {len(cells):4d} cells, {done} cached")
        if any(c.done(out) for cells in stages for c in cells):
            console.print(Markdown(timing_table(timing(*stages, out), workers)))
        if restore is not None:
            keys = {c.key for c in stages[2]}
            rows = read_results(restore)
            console.print(
                f"restore  {sum(r.get('key') in keys for r in rows)} of {len(rows)} rows "
                f"match this grid's training runs"
            )
        return
    _run_and_print(
        cfg, out, executor, workers, device, ray_address, as_json, restore, not report_only
    )
    if keep is not None:
        err_console.print(f"kept in {keep_results(out, keep)}")


@user_errors
def quickstart(
    out: Annotated[Path, typer.Option(help="Work folder of the run.")] = Path(
        "marl-augment-quickstart"
    ),
    episodes: Annotated[
        int, typer.Option(min=10, help="smax:3m medium episodes to collect.")
    ] = 300,
    steps: Annotated[int, typer.Option(min=1, help="QMIX+CQL updates per dataset.")] = 2000,
    fit_steps: Annotated[int, typer.Option(min=1, help="EAQ training steps.")] = 2000,
    workers: Annotated[int, typer.Option(min=1, help="Cells run at once.")] = _default_workers(),
    device: Annotated[str, typer.Option(help="Torch device: auto, cpu, cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the result rows as JSON.")] = False,
) -> None:
    """The main job on an embedded default: smax:3m data, EAQ and RAD-s, QMIX+CQL, comparison."""

    cfg = BenchConfig(
        scenarios=["smax:3m"],
        qualities=["medium"],
        episodes=episodes,
        subsample=1.0,
        methods=["original", "rad-s", "eaq"],
        algos=["qmix-cql"],
        seeds=[0],
        steps=steps,
        eval_every=500,
        eval_episodes=128,
        device=device,
        method_options={"eaq": {"train_steps": fit_steps}},
    ).check()
    if not as_json:
        console.print(
            f"quickstart: {episodes} smax:3m medium episodes → original, RAD-s and EAQ "
            f"(×{cfg.scale:g}, "
            f"{fit_steps} fit steps) → QMIX+CQL ({steps} updates each) → evaluation on 128 "
            "episodes; "
            f"work folder {out}"
        )
    _run_and_print(cfg, out, "local", workers, device, None, as_json)


@user_errors
def compare(
    items: Annotated[
        list[str],
        typer.Argument(
            help="Datasets (paths or names), or benchmark folders / results.jsonl files."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="New folder for plots (return histograms; t-SNE map for two datasets)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace --out if it holds an earlier report.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare datasets (stats, returns, fidelity, t-SNE) or two benchmark result sets."""

    kinds = {_kind(i) for i in items}
    if len(kinds) != 1:
        raise ConfigError(
            "compare datasets with datasets, or benchmark results with benchmark results, not both"
        )
    if kinds == {"results"}:
        if len(items) != 2:
            raise ConfigError(f"compare takes two benchmark result sets, got {len(items)}")

        res = compare_results(items[0], items[1])
        if as_json:
            print_json(res)
            return
        from rich.markdown import Markdown

        console.print(Markdown(res["table"]))
        return
    if len(items) < 2:
        raise ConfigError("give at least two datasets to compare")

    res = compare_datasets(items, out, overwrite=overwrite)
    if as_json:
        print_json(res)
        return

    t = Table(title="datasets", title_justify="left")
    t.add_column("")
    for i in items:
        t.add_column(Path(i).name)
    for key in (
        "episodes",
        "real_episodes",
        "synthetic_episodes",
        "transitions",
        "return_mean",
        "return_std",
        "length_mean",
        "win_rate",
    ):
        t.add_row(key, *[_fmt(s.get(key)) for s in res["stats"]])
    console.print(t)
    if "fidelity" in res:
        console.print(
            kv_table(f"fidelity: {Path(items[1]).name} vs {Path(items[0]).name}", res["fidelity"])
        )
    if out is not None:
        console.print(f"plots in {out}")


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _kind(item: str) -> str:
    p = Path(item)
    if p.suffix == ".jsonl" or (p.is_dir() and (p / "results.jsonl").is_file()):
        return "results"
    return "dataset"


__all__ = ["benchmark", "compare", "quickstart"]
