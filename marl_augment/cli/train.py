"""``marl-augment train``: an offline MARL baseline on a dataset, evaluated in an environment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..algos import ALGORITHMS
from ..errors import ConfigError
from ._common import (
    console,
    counting_bars,
    kv_table,
    metrics_bar,
    options_table,
    parse_options,
    parse_seeds,
    print_json,
    registry_table,
    user_errors,
)


def register(app: typer.Typer) -> None:
    app.command("train")(train)


@user_errors
def train(
    dataset: Annotated[
        str | None, typer.Argument(help="Dataset to learn from (path or dataset name).")
    ] = None,
    algo: Annotated[
        str, typer.Option(help="Algorithm: qmix-cql, qmix-bcq, bc (see --list).")
    ] = "qmix-cql",
    out: Annotated[
        Path | None, typer.Option(help="Run folder (metrics, checkpoints, policy, plot).")
    ] = None,
    env: Annotated[
        str | None, typer.Option(help="Environment to evaluate in (default: the dataset's env id).")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Gradient updates.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, batches and evaluation.")] = 0,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Several seeds, e.g. 0-4: one run each in OUT/seed-<s>/, each exactly as with "
            "--seed."
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(min=1, help="With --seeds: runs at once, in processes of one torch thread."),
    ] = 1,
    eval_every: Annotated[
        int, typer.Option(min=0, help="Evaluate every this many updates (0: only at the end).")
    ] = 1000,
    eval_episodes: Annotated[
        int, typer.Option(min=1, help="Episodes per periodic evaluation.")
    ] = 32,
    final_episodes: Annotated[
        int, typer.Option(min=1, help="Episodes of the final evaluation.")
    ] = 128,
    log_every: Annotated[
        int, typer.Option(min=1, help="Write the training losses every this many updates.")
    ] = 100,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="Algorithm option key=value (repeatable), e.g. -o cql_alpha=1.0."
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="Torch device: auto, cpu, cuda, cuda:1.")
    ] = None,
    no_eval: Annotated[
        bool, typer.Option("--no-eval", help="Train without an environment (no returns reported).")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the run in --out.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the algorithms and exit.")] = False,
    options_: Annotated[
        bool,
        typer.Option(
            "--options", help="List --algo's options (-o key=value) with defaults and exit."
        ),
    ] = False,
) -> None:
    """Train QMIX+CQL, QMIX+BCQ or BC on a dataset; evaluate as it learns; save the policy."""
    from ..training import train as run

    if list_:
        console.print(registry_table(ALGORITHMS, "offline algorithms", "algo", "what it does"))
        return
    if options_:
        console.print(options_table(ALGORITHMS, algo, "algorithm"))
        return
    if dataset is None or out is None:
        raise ConfigError("give DATASET and --out RUN (or --list)")
    options = parse_options(option, "algorithm option")
    if device is not None:
        options["device"] = device
    if seeds is not None:
        if seed != 0:
            raise ConfigError("give --seed or --seeds, not both")
        _train_seeds(
            dataset,
            algo,
            out,
            parse_seeds(seeds),
            workers,
            steps=steps,
            env_id=env,
            eval_every=eval_every,
            eval_episodes=eval_episodes,
            final_episodes=final_episodes,
            log_every=log_every,
            options=options,
            resume=resume,
            overwrite=overwrite,
            evaluate=not no_eval,
            as_json=as_json,
        )
        return
    with metrics_bar(f"training {algo}", steps, ("loss", "eval_return")) as advance:
        summary = run(
            dataset,
            algo,
            out=out,
            env_id=env,
            steps=steps,
            seed=seed,
            eval_every=eval_every,
            eval_episodes=eval_episodes,
            final_episodes=final_episodes,
            log_every=log_every,
            options=options,
            resume=resume,
            overwrite=overwrite,
            evaluate=not no_eval,
            progress=advance,
        )
    if as_json:
        print_json(summary)
        return
    rows = {
        "algo": summary["algo"],
        "dataset": summary["dataset"]["name"],
        "dataset return": summary["dataset"]["return_mean"],
        "updates": summary["steps"],
        "updates/s": summary["updates_per_s"],
        "train seconds": summary["train_seconds"],
    }
    for k, v in (summary.get("eval") or {}).items():
        rows[f"eval {k}"] = v
    console.print(kv_table(f"{algo} → {out}", rows))
    console.print(
        f"policy: {out / 'policy'}  learning curve: {out / 'learning_curve.png'}  "
        f"metrics: {out / 'metrics.jsonl'}"
    )


def _train_seeds(
    dataset: str, algo: str, out: Path, seed_list: list[int], workers: int, as_json: bool, **kwargs
) -> None:

    from ..training import train_seeds

    with counting_bars() as prog:
        bars = {s: prog.add_task(f"{algo} seed {s}", total=kwargs["steps"]) for s in seed_list}

        def progress(seed: int, step: int) -> None:
            prog.update(bars[seed], completed=step)

        res = train_seeds(
            dataset, algo, out=out, seeds=seed_list, workers=workers, progress=progress, **kwargs
        )
    if as_json:
        print_json(res)
        return

    t = Table(title=f"{algo} → {out}", title_justify="left")
    for col in ("seed", "updates/s", "eval return", "win rate", "run"):
        t.add_column(col)
    for sm in res["runs"]:
        ev = sm.get("eval") or {}
        t.add_row(
            str(sm["seed"]),
            f"{sm['updates_per_s']:.1f}",
            _num(ev.get("return_mean")),
            _num(ev.get("win_rate")),
            str(out / f"seed-{sm['seed']}"),
        )
    console.print(t)
    if res["return_mean"] is not None:
        console.print(
            f"final return over {len(res['runs'])} seeds: {res['return_mean']:.3f} ± "
            f"{res['return_std']:.3f} (mean ± std); {out / 'seeds.json'}"
        )


def _num(v) -> str:
    return "–" if v is None else f"{v:.3f}"
