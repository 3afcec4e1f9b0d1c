"""``marl-augment datasets``: what datasets exist locally and in the catalog, and the adapters."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from ..adapters import ADAPTERS
from ..catalog import cards, download
from ..config import datasets_dir
from ..data.chunks import open_group
from ..errors import MarlAugmentError
from ._common import console, err_console, print_json, progress_bar, registry_table, user_errors

app = typer.Typer(help="Datasets: local stores, the catalog, adapters.", no_args_is_help=True)


def local_stores() -> list[dict]:
    """Named stores in the data root with their summary (read from attributes only)."""

    root = datasets_dir()
    rows = []
    if not root.is_dir():
        return rows
    for p in sorted(root.glob("*.zarr")):
        row = {"name": p.name[: -len(".zarr")].replace("__", "/"), "path": str(p)}
        try:
            attrs = dict(open_group(p).attrs)
            summary = attrs.get("summary", {})
            row.update(
                env_id=attrs.get("spec", {}).get("env_id"),
                episodes=summary.get("episodes"),
                transitions=summary.get("transitions"),
                return_mean=summary.get("return_mean"),
            )
        except MarlAugmentError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows


@app.command("list")
@user_errors
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the catalog's datasets and the stores in the local data root."""

    local = local_stores()
    local_names = {r["name"] for r in local}
    catalog = [{**card, "local": card["id"] in local_names} for card in cards().values()]
    if as_json:
        print_json({"data_root": str(datasets_dir()), "local": local, "catalog": catalog})
        return
    t = Table(title=f"local stores in {datasets_dir()}", title_justify="left")
    for col in ("name", "env", "episodes", "transitions", "mean return"):
        t.add_column(col)
    for r in local:
        if "error" in r:
            t.add_row(r["name"], f"[red]{r['error']}[/]", "", "", "")
            continue
        ret = r.get("return_mean")
        t.add_row(
            r["name"],
            str(r.get("env_id")),
            str(r.get("episodes")),
            str(r.get("transitions")),
            "" if ret is None else f"{ret:.3f}",
        )
    console.print(
        t if local else f"no local stores in {datasets_dir()} (set MARL_AUGMENT_HOME to move it)"
    )
    if catalog:
        c = Table(
            title="catalog (download with: marl-augment datasets download <scenario id>)",
            title_justify="left",
        )
        c.add_column("id", no_wrap=True)
        for col in ("agents", "obs", "state", "actions", "episodes", "return", "local"):
            c.add_column(col)
        for card in catalog:
            pub = card.get("published") or {}
            ret = (
                f"{pub['return_mean']:.2f} ± {pub['return_std']:.2f}"
                if pub.get("return_mean") is not None
                else ""
            )
            acts = str(card.get("n_actions") or "")
            if card.get("action_kind") == "continuous":
                acts += " (cont.)"
            c.add_row(
                card["id"],
                str(card.get("agents") or ""),
                str(card.get("obs_dim") or ""),
                str(card.get("state_dim") or ""),
                acts,
                f"{pub['episodes']:,}" if pub.get("episodes") else "",
                ret,
                "[green]yes[/]" if card["local"] else "no",
            )
        console.print(c)
    else:
        console.print("the catalog has no cards in this version")


@app.command("adapters")
@user_errors
def adapters_() -> None:
    """List the registered dataset adapters (for 'marl-augment convert --from')."""

    console.print(registry_table(ADAPTERS, "adapters", "name", "reads"))


@app.command("download")
@user_errors
def download_(
    dataset_id: Annotated[
        str,
        typer.Argument(
            help="Catalog id: a scenario (og-marl/smac_v1/3m, every uid) or one dataset "
            "(og-marl/smac_v1/3m/Good)."
        ),
    ],
    url: Annotated[
        str, typer.Option(help="Download from this URL instead of the card's (a mirror).")
    ] = "",
    sha256: Annotated[
        str, typer.Option(help="Expected SHA-256 of the archive (checked after download).")
    ] = "",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Convert again even if the store exists.")
    ] = False,
    keep_archive: Annotated[
        bool, typer.Option("--keep-archive", help="Keep the downloaded .zip after unpacking.")
    ] = False,
) -> None:
    """Download an OG-MARL dataset (resumable, checked, safely unpacked) and convert it."""

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    ) as prog:
        task = prog.add_task(f"downloading {dataset_id}", total=None)

        def on_bytes(done: int, total: int | None) -> None:
            prog.update(task, completed=done, total=total)

        with progress_bar("converting", unit="transitions") as advance:
            got = download(
                dataset_id,
                url=url or None,
                sha256=sha256 or None,
                overwrite=overwrite,
                keep_archive=keep_archive,
                progress_bytes=on_bytes,
                progress_rows=advance,
            )
    for ds in got:
        s = ds.attrs["summary"]
        console.print(
            f"[green]ready[/] {ds.path.name[:-5].replace('__', '/')}: {s['episodes']} episodes, "
            f"{s['transitions']} transitions, return {s['return_mean']:.3f} ± {s['return_std']:.3f}"
        )
