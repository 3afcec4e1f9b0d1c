"""``behaviour``: learned behaviour policies on SMAX and datasets recorded from them (OG-MARL's way)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import console, parse_options, print_json, progress_bar, user_errors

app = typer.Typer(help="Learned behaviour policies on SMAX and datasets recorded from them "
                       "(OG-MARL's recipe: online training, ε-greedy rollouts, quality levels).",
                  no_args_is_help=True)

OPTION_HELP = ("MAPPO option key=value (repeatable), e.g. -o num_envs=32; see "
               "docs/behaviour.md for the list.")


def _config(options: list[str] | None, steps: int | None):
    from ..envs.behaviour import PpoConfig
    from ..errors import ConfigError

    opts = parse_options(options, "option")
    known = {f.name for f in dataclasses.fields(PpoConfig)}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ConfigError(f"unknown MAPPO option(s) {unknown}; known: {', '.join(sorted(known))}")
    if steps is not None:
        opts["total_steps"] = steps
    try:
        return PpoConfig(**opts).check()
    except TypeError as e:
        raise ConfigError(str(e)) from None


def _show_checkpoint(row: dict[str, Any]) -> None:
    console.print(f"{row['env_steps']:>10,} steps  return {row['return_mean']:.3f} "
                  f"({row['normalised_return']:.2f} of max)  win rate {row['win_rate']:.2f}  "
                  f"[dim]{row['checkpoint']}[/]")


@app.command("train")
@user_errors
def train(
    env_id: Annotated[str, typer.Argument(help="SMAX environment, e.g. smax:3m.")],
    out: Annotated[Path, typer.Option("--out", help="Folder of checkpoints (resumed if it exists).")] = Path("behaviour"),
    steps: Annotated[int | None, typer.Option(help="Environment steps to train for (default 1,000,000).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the networks and the games.")] = 0,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help=OPTION_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Train a MAPPO behaviour policy on SMAX, saving and evaluating checkpoints as it learns."""
    from ..envs.behaviour import train_behaviour

    cfg = _config(option, steps)
    with progress_bar(f"training behaviour on {env_id}", total=cfg.total_steps) as advance:
        res = train_behaviour(env_id, out, config=cfg, seed=seed, progress=advance,
                              log=None if as_json else _show_checkpoint)
    if as_json:
        print_json(res)
        return
    console.print(f"[green]wrote[/] {res['folder']}: {len(res['checkpoints'])} checkpoints, "
                  f"{res['train_seconds']:.0f} s of training")


@app.command("list")
@user_errors
def list_checkpoints(
    folder: Annotated[Path, typer.Argument(help="A folder made by 'behaviour train'.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The checkpoints of a behaviour folder with their measured ε-greedy returns and qualities."""
    from ..envs.behaviour import QUALITY_BANDS, read_checkpoints

    rows = read_checkpoints(folder)
    for r in rows:
        r["quality"] = next((q for q, (lo, hi) in QUALITY_BANDS.items()
                             if lo <= r["normalised_return"] <= hi), None)
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    t = Table(title=str(folder))
    for col in ("checkpoint", "env steps", "return", "normalised", "win rate", "quality"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["checkpoint"], f"{r['env_steps']:,}", f"{r['return_mean']:.3f}",
                  f"{r['normalised_return']:.3f}", f"{r['win_rate']:.2f}", r["quality"] or "-")
    console.print(t)


@app.command("record")
@user_errors
def record(
    folder: Annotated[Path, typer.Argument(help="A folder made by 'behaviour train'.")],
    out: Annotated[str, typer.Argument(help="Output episode store.")],
    quality: Annotated[str | None, typer.Option(help="poor, medium or good: the checkpoint whose measured return lies in OG-MARL's band.")] = None,
    checkpoint: Annotated[str | None, typer.Option(help="A checkpoint file name instead of a quality.")] = None,
    transitions: Annotated[int, typer.Option(min=1, help="Steps to record, in whole episodes (OG-MARL: ~1M).")] = 1_000_000,
    epsilon: Annotated[float | None, typer.Option(help="ε of the ε-greedy behaviour (default: the folder's, 0.05).")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
) -> None:
    """Record a dataset with a learned behaviour policy, with provenance (checkpoint, ε, return)."""
    from ..envs.behaviour import record_behaviour

    with progress_bar("recording", total=transitions) as advance:
        ds = record_behaviour(folder, out, quality=quality, checkpoint=checkpoint,
                              transitions=transitions, epsilon=epsilon, seed=seed,
                              overwrite=overwrite, progress=advance)
    s, src = ds.attrs["summary"], ds.attrs["source"]
    console.print(f"[green]wrote[/] {ds.path}: {s['episodes']} episodes, {s['transitions']} "
                  f"transitions, return {s['return_mean']:.3f} ± {s['return_std']:.3f} "
                  f"(checkpoint {src['checkpoint']}, ε {src['epsilon']})")


@app.command("datasets")
@user_errors
def datasets(
    env_id: Annotated[str, typer.Argument(help="SMAX environment, e.g. smax:3m.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the policies and datasets (resumed if it exists).")],
    seed: Annotated[int, typer.Option()] = 0,
    quality: Annotated[list[str] | None, typer.Option(help="Qualities to record (repeatable; default poor, medium, good).")] = None,
    transitions: Annotated[int, typer.Option(min=1, help="Steps per full dataset (OG-MARL: ~1M).")] = 1_000_000,
    fraction: Annotated[float, typer.Option(help="Share of whole episodes kept (the EAQ paper's 3%).")] = 0.03,
    steps: Annotated[int | None, typer.Option(help="Environment steps of behaviour training.")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help=OPTION_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Reproduce a map's datasets from a seed: train, record each quality, keep the 3% subsample."""
    from ..envs.behaviour import behaviour_datasets

    cfg = _config(option, steps)
    with progress_bar(f"training behaviour on {env_id}", total=cfg.total_steps) as advance:
        res = behaviour_datasets(env_id, out, seed=seed, qualities=tuple(quality or ("poor", "medium", "good")),
                                 transitions=transitions, fraction=fraction, config=cfg,
                                 progress=advance, log=None if as_json else _show_checkpoint)
    if as_json:
        print_json(res)
        return
    for q, d in res["datasets"].items():
        console.print(f"[green]{q}[/]: {d['subsample']} — {d['episodes']} episodes, "
                      f"{d['transitions']} transitions, return {d['return_mean']:.3f} "
                      f"(from {d['full_episodes']} episodes, checkpoint {d['checkpoint']} at "
                      f"{d['measured_normalised_return']:.2f} of max)")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="behaviour")
