"""``behaviour``: learned behaviour policies (MAPPO on SMAX, MATD3 on continuous-action envs)
and datasets recorded from them (OG-MARL's way)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import console, parse_options, print_json, progress_bar, user_errors

app = typer.Typer(
    help="Learned behaviour policies (MAPPO on SMAX, MATD3 on MaMuJoCo / MPE) and "
    "datasets recorded from them (OG-MARL's recipe: online training, noisy "
    "rollouts, quality levels).",
    no_args_is_help=True,
)

OPTION_HELP = (
    "Learner option key=value (repeatable; MAPPO's on SMAX, MATD3's elsewhere), e.g. "
    "-o num_envs=32 or -o threads=1; see docs/behaviour.md for the lists."
)
ENV_ARG_HELP = (
    "Env argument key=value of a continuous env (repeatable), e.g. -e max_cycles=25; "
    "kept with the policies and the datasets."
)


def _show_matd3(row: dict[str, Any]) -> None:
    console.print(
        f"{row['env_steps']:>10,} steps  behaviour return {row['return_mean']:.1f} "
        f"(greedy {row['greedy_return']:.1f})  [dim]{row['checkpoint']}, "
        f"{row['seconds']:.0f} s[/]"
    )


def _show_checkpoint(row: dict[str, Any]) -> None:
    console.print(
        f"{row['env_steps']:>10,} steps  return {row['return_mean']:.3f} "
        f"({row['normalised_return']:.2f} of max)  win rate {row['win_rate']:.2f}  "
        f"[dim]{row['checkpoint']}[/]"
    )


@app.command("train")
@user_errors
def train(
    env_id: Annotated[
        str,
        typer.Argument(
            help="smax:<map> (MAPPO), or a continuous-action env, e.g. "
            "mamujoco:2x3-HalfCheetah, mpe:simple_spread (MATD3)."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder of checkpoints (resumed if it exists).")
    ] = Path("behaviour"),
    steps: Annotated[
        int | None,
        typer.Option(
            help="Environment steps to train for (default 1,000,000 on SMAX, 200,000 with MATD3)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the networks and the games.")] = 0,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help=OPTION_HELP)] = None,
    env_arg: Annotated[list[str] | None, typer.Option("--env-arg", "-e", help=ENV_ARG_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Train a behaviour policy (MAPPO on SMAX, MATD3 on continuous envs), saving and
    evaluating checkpoints as it learns."""
    from ..envs.datasets import learner_config, learner_of, train_learner

    cfg = learner_config(env_id, parse_options(option, "option"), steps)
    show = _show_checkpoint if learner_of(env_id) == "mappo" else _show_matd3
    with progress_bar(f"training behaviour on {env_id}", total=cfg.total_steps) as advance:
        res = train_learner(
            env_id,
            out,
            config=cfg,
            seed=seed,
            env_kwargs=parse_options(env_arg, "env argument"),
            progress=advance,
            log=None if as_json else show,
        )
    if as_json:
        print_json(res)
        return
    console.print(
        f"[green]wrote[/] {res['folder']}: {len(res['checkpoints'])} checkpoints, "
        f"{res['seconds']:.0f} s"
    )


@app.command("list")
@user_errors
def list_checkpoints(
    folder: Annotated[Path, typer.Argument(help="A folder made by 'behaviour train'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The checkpoints of a behaviour folder with their measured behaviour returns and qualities."""
    from ..envs.datasets import checkpoint_levels

    levels = checkpoint_levels(folder)
    rows, bands = levels["checkpoints"], levels["bands"]
    if levels["learner"] == "mappo":
        for r in rows:  # OG-MARL's bands do not overlap: one quality at most
            r["quality"] = (r.pop("qualities") or [None])[0]
    if as_json:
        print_json(rows if levels["learner"] == "mappo" else {"bands": bands, "checkpoints": rows})
        return
    t = Table(title=str(folder))
    if levels["learner"] == "mappo":
        for col in ("checkpoint", "env steps", "return", "normalised", "win rate", "quality"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                r["checkpoint"],
                f"{r['env_steps']:,}",
                f"{r['return_mean']:.3f}",
                f"{r['normalised_return']:.3f}",
                f"{r['win_rate']:.2f}",
                r["quality"] or "-",
            )
        console.print(t)
        return
    for col in ("checkpoint", "env steps", "behaviour return", "greedy return", "quality"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["checkpoint"],
            f"{r['env_steps']:,}",
            f"{r['return_mean']:.1f} ± {r['return_std']:.1f}",
            f"{r['greedy_return']:.1f}",
            ", ".join(r["qualities"]) or "-",
        )
    console.print(t)
    console.print(
        "bands: " + ", ".join(f"{q} {lo:.1f} to {hi:.1f}" for q, (lo, hi) in bands.items())
    )


@app.command("record")
@user_errors
def record(
    folder: Annotated[Path, typer.Argument(help="A folder made by 'behaviour train'.")],
    out: Annotated[str, typer.Argument(help="Output episode store.")],
    quality: Annotated[
        str | None,
        typer.Option(
            help="poor, medium or good (HalfCheetah also omar-medium, omar-expert): the "
            "checkpoint whose measured return lies in the quality's band."
        ),
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="A checkpoint file name instead of a quality.")
    ] = None,
    transitions: Annotated[
        int, typer.Option(min=1, help="Steps to record, in whole episodes (OG-MARL: ~1M).")
    ] = 1_000_000,
    epsilon: Annotated[
        float | None,
        typer.Option(help="SMAX: ε of the ε-greedy behaviour (default: the folder's, 0.05)."),
    ] = None,
    noise: Annotated[
        float | None,
        typer.Option(
            help="Continuous envs: std of the Gaussian action noise, in units of half the bound "
            "range (default: the folder's, 0.2)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
) -> None:
    """Record a dataset with a learned behaviour policy, with provenance (checkpoint, noise,
    return)."""
    from ..envs.datasets import learner_in, record_from

    # SMAX records in one batched loop (one bar here); the continuous recorder makes its own bars
    smax = learner_in(folder) == "mappo"
    bar = progress_bar("recording", total=transitions) if smax else contextlib.nullcontext()
    with bar as advance:
        ds = record_from(
            folder,
            out,
            quality=quality,
            checkpoint=checkpoint,
            transitions=transitions,
            epsilon=epsilon,
            noise=noise,
            seed=seed,
            overwrite=overwrite,
            progress=advance,
            bars=progress_bar,
        )
    s, src = ds.attrs["summary"], ds.attrs["source"]
    if "behaviour_noise" in src:  # continuous actions, Gaussian noise
        how = f"checkpoint {src['behaviour_checkpoint']}, noise {src['behaviour_noise']}"
        ret = f"{s['return_mean']:.1f} ± {s['return_std']:.1f}"
    else:
        how = f"checkpoint {src['checkpoint']}, ε {src['epsilon']}"
        ret = f"{s['return_mean']:.3f} ± {s['return_std']:.3f}"
    console.print(
        f"[green]wrote[/] {ds.path}: {s['episodes']} episodes, {s['transitions']} "
        f"transitions, return {ret} ({how})"
    )


@app.command("datasets")
@user_errors
def datasets(
    env_id: Annotated[
        str,
        typer.Argument(
            help="smax:<map>, or a continuous-action env, e.g. mamujoco:2x3-HalfCheetah."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for the policies and datasets (resumed if it exists)."),
    ],
    seed: Annotated[int, typer.Option()] = 0,
    quality: Annotated[
        list[str] | None,
        typer.Option(help="Qualities to record (repeatable; default poor, medium, good)."),
    ] = None,
    transitions: Annotated[
        int, typer.Option(min=1, help="Steps per full dataset (OG-MARL: ~1M).")
    ] = 1_000_000,
    fraction: Annotated[
        float, typer.Option(help="Share of whole episodes kept (the EAQ paper's 3%).")
    ] = 0.03,
    steps: Annotated[
        int | None, typer.Option(help="Environment steps of behaviour training.")
    ] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help=OPTION_HELP)] = None,
    env_arg: Annotated[list[str] | None, typer.Option("--env-arg", "-e", help=ENV_ARG_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Reproduce an env's datasets from a seed: train, record each quality, keep a 3% subsample."""
    from ..envs.datasets import behaviour_datasets, learner_config, learner_of

    cfg = learner_config(env_id, parse_options(option, "option"), steps)
    show = _show_checkpoint if learner_of(env_id) == "mappo" else _show_matd3
    with progress_bar(f"training behaviour on {env_id}", total=cfg.total_steps) as advance:
        res = behaviour_datasets(
            env_id,
            out,
            seed=seed,
            qualities=tuple(quality or ("poor", "medium", "good")),
            transitions=transitions,
            fraction=fraction,
            config=cfg,
            env_kwargs=parse_options(env_arg, "env argument"),
            progress=advance,
            log=None if as_json else show,
        )
    if as_json:
        print_json(res)
        return
    for q, d in res["datasets"].items():
        console.print(
            f"[green]{q}[/]: {d['subsample']} — {d['episodes']} episodes, "
            f"{d['transitions']} transitions, return {d['return_mean']:.3f} "
            f"(from {d['full_episodes']} episodes, checkpoint {d['checkpoint']}, "
            f"behaviour return {d['measured_return']:.3f})"
        )


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="behaviour")
