"""The ``marl-augment`` command line (Typer + rich).

Commands are thin: parse, call the library, print. Each command group lives in its own module.
User errors print one red line and exit with code 2.
"""

from __future__ import annotations

import typer

from .. import __version__
from . import augment as _augment
from . import behaviour as _behaviour
from . import bench as _bench
from . import data as _data
from . import datasets as _datasets
from . import envs as _envs
from . import train as _train
from ._common import EXIT_INTERRUPTED, say_interrupted

app = typer.Typer(
    name="marl-augment",
    help="Offline multi-agent RL data: convert, inspect, record, subsample, augment, train and "
    "evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"marl-augment {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    """Offline multi-agent RL data: convert, inspect, record, subsample, augment episode stores."""


_data.register(app)
_envs.register(app)
_augment.register(app)
_train.register(app)
_bench.register(app)
app.add_typer(_datasets.app, name="datasets")
_behaviour.register(app)


def main() -> None:
    try:
        app()
    except SystemExit as e:
        # Typer turns a Ctrl-C outside a command (while parsing, or importing) into a silent
        # exit 130; say what it means there too
        if e.code == EXIT_INTERRUPTED:
            say_interrupted()
        raise


__all__ = ["app", "main"]
