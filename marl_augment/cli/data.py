"""Commands on episode stores: info, convert, record, subsample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from .. import adapters
from ..adapters.ogmarl_vault import export_vault
from ..data.locate import describe, load, local_copy, transitions_in
from ..data.store import check_output_path
from ..envs.recording import record_env
from ..errors import ConfigError
from ._common import _fmt, console, kv_table, parse_options, print_json, progress_bar, user_errors


def register(app: typer.Typer) -> None:
    app.command("info")(info)
    app.command("convert")(convert)
    app.command("record")(record)
    app.command("subsample")(subsample)
    app.command("export")(export)


@user_errors
def info(
    path: Annotated[str, typer.Argument(help="Episode store (.zarr) path or dataset name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    validate: Annotated[bool, typer.Option(help="Check every value and the fingerprint.")] = True,
) -> None:
    """Show a store's spec, statistics, source and provenance (validating it first)."""

    p = local_copy(path)  # URLs: the local copy (fetched if it changed)
    total = transitions_in(p) if validate else None
    with progress_bar(f"validating {p.name}", total=total) as advance:
        c = describe(path, validate=validate, progress=advance, local=p)
    if as_json:
        print_json(c.to_json())
        return
    attrs, stats = c.attrs, c.stats
    spec = c.spec.to_json()
    rows = {
        k: spec[k]
        for k in (
            "env_id",
            "agent_ids",
            "obs_dim",
            "obs_dims",
            "state_dim",
            "n_actions",
            "agent_n_actions",
            "has_avail_actions",
            "has_alive",
            "has_agent_rewards",
            "reward_mode",
            "max_episode_len",
        )
        if spec.get(k) is not None
    }
    if c.spec.continuous:
        rows["n_actions"] = f"{c.spec.n_actions} (continuous: action dimensions)"
        rows["action bounds"] = "; ".join(
            f"{a}: [{', '.join(f'{x:g}' for x in lo)}] .. [{', '.join(f'{x:g}' for x in hi)}]"
            for a, lo, hi in zip(c.spec.agent_ids, c.spec.action_low, c.spec.action_high)
        )
    rows["fingerprint"] = str(attrs.get("fingerprint")) + (" (verified)" if validate else "")
    rows["created"] = f"{attrs.get('created')} by marl-augment {attrs.get('marl_augment_version')}"
    console.print(kv_table(str(c.local), rows))
    console.print(kv_table("statistics", stats))
    if attrs.get("source"):
        console.print(kv_table("source", attrs["source"]))
    prov = attrs.get("provenance", [])
    if not prov:
        console.print("provenance: none (original data, not derived from another store)")
        return
    pt = Table(
        title=f"provenance ({len(prov)} step{'s' if len(prov) != 1 else ''})", title_justify="left"
    )
    for col in ("step", "method", "config", "seed", "parent", "time"):
        pt.add_column(col)
    for e in prov:
        parent = e.get("parent_fingerprint")
        parent = (
            ", ".join(x[:20] for x in parent if x) if isinstance(parent, list) else str(parent)[:20]
        )
        pt.add_row(
            str(e.get("step")),
            str(e.get("method")),
            _fmt(e.get("config", {})),
            str(e.get("seed")),
            parent,
            str(e.get("time")),
        )
    console.print(pt)


@user_errors
def convert(
    src: Annotated[Path, typer.Argument(help="Input to convert (a log file, a vault, ...).")],
    out: Annotated[str, typer.Argument(help="Output episode store (.zarr path or fsspec URL).")],
    from_: Annotated[
        str, typer.Option("--from", help="Adapter: see 'marl-augment datasets adapters'.")
    ] = "pettingzoo-log",
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="Adapter option key=value (repeatable), e.g. -o reward=mean."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
) -> None:
    """Convert a dataset into an episode store with one of the registered adapters."""

    adapter = adapters.make(from_, **parse_options(option, "adapter option"))
    with progress_bar(f"converting {src.name}", unit="transitions") as advance:
        ds = adapter.convert(src, out, overwrite=overwrite, progress=advance)
    _done(ds)


@user_errors
def record(
    env_module: Annotated[
        str,
        typer.Argument(
            help="PettingZoo env module (e.g. mpe2.simple_spread_v3) or env id (e.g. "
            "mpe:simple_spread)."
        ),
    ],
    out: Annotated[str, typer.Argument(help="Output episode store (.zarr path or fsspec URL).")],
    episodes: Annotated[
        int, typer.Option("--episodes", "-n", min=1, help="Episodes to record.")
    ] = 10,
    policy: Annotated[
        str,
        typer.Option(
            help="Behaviour policy: random (uniform over legal actions), or a trained run "
            "folder (marl-augment train --out) acting with --noise."
        ),
    ] = "random",
    noise: Annotated[
        float | None,
        typer.Option(
            help="With a trained policy: Gaussian action noise (std, in units of half the bound "
            "range) for continuous actions, ε-greedy for discrete ones; "
            "default OG-MARL's 0.2 / 0.05."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of episode e is seed+e; also seeds the policy.")
    ] = 0,
    env_arg: Annotated[
        list[str] | None,
        typer.Option(
            "--env-arg",
            "-e",
            help="parallel_env() argument key=value (repeatable), e.g. -e max_cycles=25.",
        ),
    ] = None,
    log: Annotated[
        Path | None,
        typer.Option(help="Also keep the raw JSON Lines log here (.jsonl or .jsonl.gz)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT (and --log) if they exist.")
    ] = False,
) -> None:
    """Record episodes of a PettingZoo ParallelEnv with a built-in policy into a store."""
    from ..envs.pettingzoo import env_id_for

    env_id = env_module if ":" in env_module else env_id_for(env_module)
    ds = record_env(
        env_id,
        out,
        episodes=episodes,
        policy=policy,
        noise=noise,
        seed=seed,
        env_kwargs=parse_options(env_arg, "env argument"),
        log=log,
        overwrite=overwrite,
        bars=progress_bar,
    )
    _done(ds)


@user_errors
def subsample(
    src: Annotated[str, typer.Argument(help="Input store (path or dataset name).")],
    out: Annotated[str, typer.Argument(help="Output episode store (.zarr path or fsspec URL).")],
    fraction: Annotated[
        float | None, typer.Option(help="Share of episodes to keep, in (0, 1] (EAQ paper: 0.03).")
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(
            "--episodes", "-n", help="Number of episodes to keep (instead of --fraction)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random choice of episodes.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT if it exists.")
    ] = False,
) -> None:
    """Keep a seeded random subset of whole episodes (as the EAQ paper's 3% datasets)."""

    if (fraction is None) == (episodes is None):
        raise ConfigError("give exactly one of --fraction or --episodes")
    ds = load(src)
    check_output_path(out, overwrite=overwrite, inputs=[ds.path] if ds.path else [])
    sub = ds.subsample(fraction, n_episodes=episodes, seed=seed)
    with progress_bar("writing store", total=sub.num_transitions) as advance:
        new = sub.save(out, overwrite=overwrite, progress=advance)
    _done(new)


def _done(ds) -> None:
    s = ds.attrs["summary"]  # written with the store: no need to load its arrays
    console.print(
        f"[green]wrote[/] {ds.path}: {s['episodes']} episodes, {s['transitions']} transitions, "
        f"return {s['return_mean']:.3f} ± {s['return_std']:.3f} ({ds.spec.env_id})"
    )


@user_errors
def export(
    src: Annotated[str, typer.Argument(help="Store to export (path or dataset name).")],
    out: Annotated[
        Path,
        typer.Argument(help="Output Vault folder, e.g. 3m-aug.vlt (the dataset goes to OUT/UID)."),
    ],
    to: Annotated[str, typer.Option("--to", help="Target format: ogmarl-vault.")] = "ogmarl-vault",
    uid: Annotated[
        str, typer.Option(help="Dataset name inside the Vault (OG-MARL uses Good/Medium/Poor).")
    ] = "Medium",
    truncation_as_terminal: Annotated[
        bool,
        typer.Option(
            "--truncation-as-terminal", help="Write time-outs as terminals, as SMAC reports them."
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT/UID if it exists.")
    ] = False,
) -> None:
    """Export a store for another library: an OG-MARL / flashbax Vault."""

    if to != "ogmarl-vault":
        raise ConfigError(f"unknown export format {to!r}; available: ogmarl-vault")
    ds = load(src)
    with progress_bar(
        f"exporting {ds.path.name if ds.path else src}", total=ds.num_transitions
    ) as advance:
        target = export_vault(
            ds,
            out,
            uid=uid,
            overwrite=overwrite,
            truncation_as_terminal=truncation_as_terminal,
            progress=advance,
        )
    console.print(
        f"[green]wrote[/] Vault {target}: {ds.num_transitions} transitions, "
        f"{len(ds)} episodes (read it with flashbax: Vault(vault_name={out.name!r}, "
        f"rel_dir={str(out.parent)!r}, vault_uid={uid!r}).read())"
    )
