"""``marl-augment augment``: make D_real ∪ D_syn with a registered augmenter."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._common import console, parse_options, progress_bar, user_errors


def register(app: typer.Typer) -> None:
    app.command("augment")(augment)


@user_errors
def augment(
    src: Annotated[str | None, typer.Argument(help="Input store (path or dataset name).")] = None,
    out: Annotated[Path | None, typer.Argument(help="Output store: the real episodes followed by the synthetic ones.")] = None,
    method: Annotated[str, typer.Option(help="Augmenter (see --list).")] = "rad-s",
    scale: Annotated[float, typer.Option(help="Synthetic episodes per real one (EAQ paper: 5); 0 = the method's own size (return-replicate).")] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic episodes.")] = 0,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="Augmenter option key=value (repeatable), e.g. -o alpha=0.8.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="Use a saved, fitted augmenter (from --save-model) instead of --method/-o.")] = None,
    save_model: Annotated[Path | None, typer.Option(help="Save the fitted augmenter here (config JSON + safetensors).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT (and --save-model) if they exist.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the augmenters and exit.")] = False,
) -> None:
    """Augment a dataset: write D_real ∪ D_syn with provenance (method, config, seed, parent)."""
    from .. import load
    from ..augment import AUGMENTERS, load_augmenter, make_augmenter
    from ..data.store import check_output_path
    from ..errors import ConfigError

    if list_:
        t = Table(title="augmenters", title_justify="left")
        t.add_column("method")
        t.add_column("what it does")
        for k in AUGMENTERS.keys():
            t.add_row(k, AUGMENTERS.doc(k))
        console.print(t)
        return
    if src is None or out is None:
        raise ConfigError("give SRC and OUT (or --list)")
    ds = load(src)
    check_output_path(out, overwrite=overwrite, inputs=[ds.path] if ds.path else [])
    if checkpoint is not None:
        if option:
            raise ConfigError("--checkpoint fixes the augmenter's options; drop -o")
        aug = load_augmenter(checkpoint)
    else:
        aug = make_augmenter(method, **parse_options(option, "augmenter option"))
    if save_model is not None:
        if aug.fitted_on is None or aug.refit_on_augment:
            aug.fit(ds)
        aug.save(save_model, overwrite=overwrite)
    with progress_bar(f"augmenting with {aug.name}", unit="transitions") as advance:
        new = aug.augment(ds, scale=scale or None, seed=seed, out=out, overwrite=overwrite,
                          progress=advance)
    s = new.attrs["summary"]
    console.print(f"[green]wrote[/] {new.path}: {s['real_episodes']} real + {s['synthetic_episodes']} "
                  f"synthetic episodes ({aug.name}, seed {seed}), return {s['return_mean']:.3f} ± {s['return_std']:.3f}")
