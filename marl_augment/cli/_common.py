"""What every command shares: one-line errors, rich output, progress bars, key=value options."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ..errors import MarlAugmentError
from ..registry import option_docs

console = Console()
err_console = Console(stderr=True)

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
INTERRUPTED = (
    "interrupted: each output is complete or absent, never half-made (a training run "
    "or EAQ fit keeps its last checkpoint: rerun with --resume)"
)


def fail(message: str) -> typer.Exit:
    """Print one red line on stderr and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_USER_ERROR)


_interrupt_said: list[bool] = []


def say_interrupted() -> None:
    """Tell the user what a Ctrl-C left behind, once. A plain write, not rich: a Ctrl-C during
    an import can leave modules rich would load half-initialised."""
    if not _interrupt_said:
        _interrupt_said.append(True)
        sys.stderr.write(INTERRUPTED + "\n")
        sys.stderr.flush()


def user_errors(fn: Callable) -> Callable:
    """Turn marl-augment's own errors into one red line and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any):
        try:
            return fn(*args, **kwargs)
        except MarlAugmentError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt:
            say_interrupted()
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


@contextmanager
def progress_bar(
    description: str, total: int | None = None, unit: str = ""
) -> Iterator[Callable[[int], None]]:
    """A rich progress bar; yields ``advance(n)``. Without a total it shows a counter."""
    columns: list[Any] = [SpinnerColumn(), TextColumn("[progress.description]{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn(), TaskProgressColumn(), TimeRemainingColumn()]
    else:
        columns += [TextColumn("{task.completed:,} " + unit)]
    columns.append(TimeElapsedColumn())
    with Progress(
        *columns, console=err_console, transient=False, disable=not err_console.is_terminal
    ) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


def counting_bars(description: str = "{task.description}") -> Progress:
    """Several counted bars in one display (stages of a benchmark, seeds of a training run)."""
    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not err_console.is_terminal,
    )


@contextmanager
def metrics_bar(
    description: str, total: int, fields: tuple[str, ...]
) -> Iterator[Callable[..., None]]:
    """A progress bar that also shows running numbers; yields ``advance(n, *values, **named)``.

    Positional values fill ``fields`` in order; named ones fill fields by name; None shows "-".
    """
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(f"{f.replace('_', ' ')} {{task.fields[{f}]}}") for f in fields]
    columns += [TimeRemainingColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=err_console, disable=not err_console.is_terminal) as prog:
        task = prog.add_task(description, total=total, **dict.fromkeys(fields, "-"))

        def advance(n: int = 1, *values: Any, **named: Any) -> None:
            shown = dict(zip(fields, values))
            shown.update({k: v for k, v in named.items() if k in fields})
            prog.update(
                task, advance=n, **{k: "-" if v is None else f"{v:.4g}" for k, v in shown.items()}
            )

        yield advance


def parse_seeds(text: str) -> list[int]:
    """Seeds written as ``0-4``, ``0,2,5`` or ``0-2,7`` (ranges inclusive)."""
    seeds: list[int] = []
    try:
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            seeds += list(range(int(lo), int(hi) + 1)) if sep and lo else [int(part)]
    except ValueError:
        raise MarlAugmentError(f"seeds {text!r}: write them as 0-4, 0,2,5 or 0-2,7") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise MarlAugmentError(f"seeds {text!r}: give at least one seed, each once (e.g. 0-4)")
    return seeds


def parse_options(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """``key=value`` pairs; values are parsed as JSON when they can be (numbers, true, lists)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise MarlAugmentError(f"{what} {pair!r} is not of the form key=value")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


def kv_table(title: str, rows: dict[str, Any]):
    """A two-column key / value table."""

    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("key", style="bold cyan")
    t.add_column("value")
    for k, v in rows.items():
        t.add_row(str(k), _fmt(v))
    return t


def options_table(registry, name: str, kind: str):
    """The options of one registry entry: name, default and description, for -o key=value."""

    t = Table(title=f"options of {kind} {name!r} (-o key=value)", title_justify="left")
    for col in ("option", "default", "what it does"):
        t.add_column(col)
    for key, default, doc in option_docs(registry.get(name).Config):
        t.add_row(key, _fmt(default), doc)
    return t


def registry_table(registry, title: str, key: str, doc: str):
    """The entries of a registry and their one-line descriptions."""

    t = Table(title=title, title_justify="left")
    t.add_column(key)
    t.add_column(doc)
    for name in registry.keys():
        t.add_row(name, registry.doc(name))
    return t
