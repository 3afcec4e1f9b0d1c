"""Commands on environments: collect datasets with scripted policies, evaluate policies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..algos import load_policy
from ..envs import recorded_settings
from ..envs.evaluate import evaluate as run
from ._common import console, kv_table, parse_options, print_json, progress_bar, user_errors


def register(app: typer.Typer) -> None:
    app.command("collect")(collect)
    app.command("evaluate")(evaluate)


@user_errors
def collect(
    env_id: Annotated[
        str,
        typer.Argument(help="Environment, e.g. smax:3m (SMAX maps: 3m, 8m, 2s3z, 5m_vs_6m, ...)."),
    ],
    out: Annotated[str, typer.Argument(help="Output episode store (.zarr path or fsspec URL).")],
    quality: Annotated[
        str,
        typer.Option(help="Behaviour policy: poor|medium|good|random, or closest|focus[:epsilon]."),
    ] = "medium",
    episodes: Annotated[
        int, typer.Option("--episodes", "-n", min=1, help="Episodes to collect.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the environments and the policy.")] = 0,
    batch: Annotated[int, typer.Option(min=1, help="Episodes run in parallel (jit + vmap).")] = 256,
    max_steps: Annotated[
        int, typer.Option(min=1, help="Episode time limit (SMAX's default: 100).")
    ] = 100,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
) -> None:
    """Collect a dataset on SMAX with a scripted policy of a chosen quality (fast, batched)."""
    from ..envs.smax import collect as collect_smax

    with progress_bar(f"collecting {env_id} ({quality})", total=episodes) as advance:
        ds = collect_smax(
            env_id,
            out,
            quality=quality,
            episodes=episodes,
            seed=seed,
            batch=batch,
            max_steps=max_steps,
            overwrite=overwrite,
            progress=advance,
        )
    s = ds.attrs["summary"]
    console.print(
        f"[green]wrote[/] {ds.path}: {s['episodes']} episodes, {s['transitions']} transitions, "
        f"return {s['return_mean']:.3f} ± {s['return_std']:.3f}, win rate "
        f"{s.get('win_rate', 0):.2f}"
    )


@user_errors
def evaluate(
    env_id: Annotated[
        str,
        typer.Argument(
            help="Environment: smax:<map>, smac:<map>, mpe:<env> or pettingzoo:<module>."
        ),
    ],
    policy: Annotated[
        str,
        typer.Option(
            help="A trained run folder (marl-augment train --out), or a scripted policy: "
            "random|poor|medium|good|closest[:eps]|focus[:eps] (scripted ones on smax:* only)."
        ),
    ] = "random",
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=1)] = 32,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[
        str, typer.Option(help="Torch device of a trained policy: cpu, auto, cuda.")
    ] = "cpu",
    env_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--env-arg",
            "-e",
            help="Env argument key=value (repeatable), e.g. -e max_cycles=50; a trained "
            "policy's own env gets the settings its data was recorded with unless overridden.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Evaluate a policy (trained or scripted): return, normalised return, win rate, length."""

    actor = policy
    kwargs = parse_options(env_arg, "env argument")
    if Path(policy).is_dir():
        actor = load_policy(policy, device=device)
        if actor.spec is not None:  # the data's spec (an online checkpoint has none)
            kwargs = {**recorded_settings(actor.spec, env_id), **kwargs}
    with progress_bar(f"evaluating {policy} on {env_id}", total=episodes) as advance:
        res = run(actor, env_id, episodes=episodes, seed=seed, progress=advance, **kwargs)
    res["policy"] = policy
    if as_json:
        print_json(res)
        return
    console.print(kv_table(f"{policy} on {env_id}", res))
