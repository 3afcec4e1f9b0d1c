"""``marl-augment augment``: make D_real ∪ D_syn with a registered augmenter."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..augment import AUGMENTERS, load_augmenter, make_augmenter
from ..augment.base import fit_beside
from ..augment.fidelity import fidelity_report, gates_rows
from ..data.locate import load
from ..data.store import check_output_path
from ..errors import ConfigError
from ..outputs import check_output, new_output
from ._common import (
    console,
    kv_table,
    metrics_bar,
    options_table,
    parse_options,
    print_json,
    progress_bar,
    registry_table,
    user_errors,
)


def register(app: typer.Typer) -> None:
    app.command("augment")(augment)
    app.command("fidelity")(fidelity)


@user_errors
def augment(
    src: Annotated[str | None, typer.Argument(help="Input store (path or dataset name).")] = None,
    out: Annotated[
        str | None,
        typer.Argument(
            help="Output store (path or fsspec URL): the real episodes followed by the "
            "synthetic ones."
        ),
    ] = None,
    method: Annotated[str, typer.Option(help="Augmenter (see --list).")] = "rad-s",
    scale: Annotated[
        float,
        typer.Option(
            help="Synthetic episodes per real one (EAQ paper: 5); 0 = the method's own size "
            "(return-replicate)."
        ),
    ] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic episodes.")] = 0,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option", "-o", help="Augmenter option key=value (repeatable), e.g. -o alpha=0.8."
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Use a saved, fitted augmenter (from --save-model) instead of --method/-o."
        ),
    ] = None,
    save_model: Annotated[
        Path | None,
        typer.Option(help="Save the fitted augmenter here (config JSON + safetensors)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace OUT (and --save-model) if they exist.")
    ] = False,
    device: Annotated[
        str | None,
        typer.Option(
            help="Torch device for learned augmenters (eaq, eaq-q): auto, cpu, cuda, cuda:1."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted fit from OUT's training checkpoint (eaq, eaq-q).",
        ),
    ] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the augmenters and exit.")] = False,
    options_: Annotated[
        bool,
        typer.Option(
            "--options", help="List --method's options (-o key=value) with defaults and exit."
        ),
    ] = False,
) -> None:
    """Augment a dataset: write D_real ∪ D_syn with provenance (method, config, seed, parent)."""

    if list_:
        console.print(registry_table(AUGMENTERS, "augmenters", "method", "what it does"))
        return
    if options_:
        console.print(options_table(AUGMENTERS, method, "augmenter"))
        return
    if src is None or out is None:
        raise ConfigError("give SRC and OUT (or --list)")
    ds = load(src)
    out_path = check_output_path(out, overwrite=overwrite, inputs=[ds.path])
    if save_model is not None:
        check_output(
            save_model,
            "model",
            overwrite=overwrite,
            inputs=[ds.path, out_path],
            what="model folder",
        )
    options = parse_options(option, "augmenter option")
    if device is not None:
        options["device"] = device
    if checkpoint is not None:
        if options:
            raise ConfigError("--checkpoint fixes the augmenter's options; drop -o / --device")
        aug = load_augmenter(checkpoint)
    else:
        aug = make_augmenter(method, **options)
    aug.check_fittable(ds)  # data it cannot learn from: one line, before any folder exists
    fitting = aug.learned and aug.fitted_on is None
    with (
        metrics_bar(f"fitting {aug.name}", aug.config.train_steps, ("loss",))
        if fitting
        else contextlib.nullcontext()
    ) as advance:
        fit_beside(aug, ds, out_path, resume=resume, progress=advance)
    if save_model is not None:
        if aug.fitted_on is None or aug.refit_on_augment:
            aug.fit(ds)
        aug.save(save_model, overwrite=overwrite)
    with progress_bar(f"augmenting with {aug.name}", unit="transitions") as advance:
        new = aug.augment(
            ds, scale=scale or None, seed=seed, out=out, overwrite=overwrite, progress=advance
        )
    s = new.attrs["summary"]
    console.print(
        f"[green]wrote[/] {new.path}: {s['real_episodes']} real + {s['synthetic_episodes']} "
        f"synthetic episodes ({aug.name}, seed {seed}), return {s['return_mean']:.3f} ± "
        f"{s['return_std']:.3f}"
    )


@user_errors
def fidelity(
    real: Annotated[str, typer.Argument(help="Real dataset (path or name).")],
    augmented: Annotated[
        str,
        typer.Argument(
            help="Augmented store (its synthetic episodes are compared) or a synthetic-only store."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="New folder for the plots (t-SNE map, return histogram).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace --out if it holds an earlier fidelity report."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare synthetic with real episodes: returns, lengths, features, legality, t-SNE."""

    r = load(real)
    a = load(augmented)
    syn = a.where("synthetic") if (a.episode_origin != 0).any() else a
    real_part = r.where("real") if (r.episode_origin == 0).any() else r
    if out is None:
        rep = fidelity_report(real_part, syn)
    else:
        with new_output(
            out, "report", overwrite=overwrite, inputs=[r.path, a.path], what="report folder"
        ) as tmp:
            rep = fidelity_report(real_part, syn, out_dir=tmp)
        rep["plots"] = {k: str(out / Path(v).name) for k, v in rep.get("plots", {}).items()}
    if as_json:
        print_json(rep)
        return
    gates = rep.pop("gates", None)
    console.print(kv_table(f"fidelity: {augmented} vs {real}", rep))
    if gates:
        t = Table(
            title=f"fidelity gates: {'all pass' if gates['passes'] else 'not all pass'} "
            f"(pass: ≤ {gates['ratio']:g} × the shuffled baseline, or within the real "
            f"data's own noise)",
            title_justify="left",
        )
        for col in ("gate", "synthetic", "shuffled baseline", "real noise / held-out", ""):
            t.add_column(col)
        for row in gates_rows(gates):
            t.add_row(*row)
        console.print(t)
        nov = gates.get("novelty")
        if nov:
            console.print(
                f"novelty: nearest-real distance {nov['nn_ratio']:.2f} × the real episodes' own "
                f"({nov['copies']:.0%} near copies of a real episode)"
            )
