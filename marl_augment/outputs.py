"""Output folders: what marl-augment may create, replace and delete — and what it never touches.

Every folder marl-augment creates as an output (a store, a training run, a saved model, a fit's
checkpoints, a report, a benchmark, a Vault dataset) carries a small marker file,
``.marl-augment.json``, naming its *kind*; an episode store's marker is its root ``format``
attribute instead, so that stores stay plain Zarr. The rules, enforced here for every command:

- an output is never an input, never inside an input and never above one;
- an existing output is replaced only with ``overwrite`` and only when it carries the marker of
  the same kind (an empty folder holds nothing to lose and is taken as new); anything else is
  refused with one line naming the folder;
- a replacement is written beside the old output and swapped in when complete, so a crash
  mid-overwrite leaves the old output whole (:func:`swap_into_place`).

Folders written by marl-augment before markers existed are recognised by their own contents
(:func:`kind_of`), so older stores and runs can still be replaced.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import json
import os
import re
import shutil
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .config import package_version
from .errors import AlreadyExists, ConfigError

MARKER = ".marl-augment.json"
#: the ``format`` attribute of an episode store's root (``data.schema.FORMAT_NAME``): how a store
#: written before markers existed is still recognised as ours
STORE_FORMAT = "marl-augment/episode-store"
#: The kinds of folder marl-augment makes; each is replaced only by an output of the same kind.
KINDS = (
    "store",
    "run",
    "runs",
    "model",
    "fit",
    "report",
    "benchmark",
    "vault-dataset",
    "behaviour",
    "behaviour-datasets",
    "benchmark-kept",
)
PARTIAL_MARK = ".partial-"
OLD_MARK = ".old-"


def write_marker(folder: str | os.PathLike, kind: str, **facts: Any) -> None:
    """Mark ``folder`` as a marl-augment output of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown output kind {kind!r}")

    data = {
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "marl_augment_version": package_version(),
        **facts,
    }
    (Path(folder) / MARKER).write_text(json.dumps(data, indent=2) + "\n")


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def kind_of(folder: str | os.PathLike) -> str | None:
    """The kind of marl-augment output ``folder`` is, or None when marl-augment did not make it."""
    p = Path(folder)
    if not p.is_dir() or p.is_symlink():
        return None
    marker = _json(p / MARKER)
    if isinstance(marker, dict) and marker.get("kind") in KINDS:
        return str(marker["kind"])
    # made before markers existed: recognised by what only marl-augment writes there
    root = _json(p / "zarr.json")
    if isinstance(root, dict) and isinstance(root.get("attributes"), dict):
        if root["attributes"].get("format") == STORE_FORMAT:
            return "store"
    run = _json(p / "run.json")
    if isinstance(run, dict) and {"run", "algo_config", "package_version"} <= set(run):
        return "run"
    state = _json(p / "augmenter.json")
    if isinstance(state, dict) and {"method", "fitted_on", "marl_augment_version"} <= set(state):
        return "model"
    bench = _json(p / "benchmark.json")
    if isinstance(bench, dict) and (p / "cells").is_dir():
        return "benchmark"
    if p.name.endswith(".train") and {x.name for x in p.iterdir()} <= {
        "train.safetensors",
        "train_state.json",
    }:
        return "fit"
    vault = _json(p / "metadata.json")
    if isinstance(vault, dict) and isinstance(vault.get("marl_augment"), dict):
        return "vault-dataset"
    return None


def _resolved(p: Path) -> Path:
    try:
        return p.expanduser().resolve()
    except (OSError, RuntimeError):
        return p.expanduser().absolute()


def check_output(
    out: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool,
    inputs: Sequence[str | os.PathLike | None] = (),
    what: str = "output",
    reuse: bool = False,
) -> Path:
    """Refuse an output that would lose or touch data marl-augment did not make; return its path.

    ``reuse`` accepts an existing output of the same kind without ``overwrite`` (for outputs
    that resume, such as benchmarks and training runs).
    """
    out = Path(out).expanduser()
    r_out = _resolved(out)
    for src in inputs:
        if src is None:
            continue
        r_src = _resolved(Path(src))
        if r_out == r_src or r_src in r_out.parents:
            raise AlreadyExists(
                f"{what} {str(out)!r} is the input {str(src)!r} or inside it; inputs are never "
                f"written to: choose a path outside the input"
            )
        if r_out in r_src.parents:
            raise AlreadyExists(
                f"{what} {str(out)!r} contains the input {str(src)!r}; replacing it could delete "
                f"the input: choose a path beside the input, not above it"
            )
    if out.is_symlink():
        raise AlreadyExists(
            f"{what} {str(out)!r} is a symbolic link; marl-augment does not write "
            f"through links: give the real path"
        )
    if out.exists() and not out.is_dir():
        raise AlreadyExists(
            f"{what} {str(out)!r} is a file, not a folder; choose another path "
            f"(marl-augment never replaces a file it did not make)"
        )
    if out.is_dir():
        try:
            empty = not any(out.iterdir())
        except OSError as exc:
            raise ConfigError(
                f"{what} {str(out)!r} cannot be read ({exc.strerror}); choose another path"
            ) from None
        if not empty:
            found = kind_of(out)
            if found != kind:
                held = f"holds a marl-augment {found}" if found else "was not made by marl-augment"
                does = (
                    "marl-augment resumes only its own"
                    if reuse and not overwrite
                    else "--overwrite replaces only a marl-augment"
                )
                raise AlreadyExists(
                    f"{what} {str(out)!r} exists and {held}; {does} {kind} folder"
                    f"{'s' if reuse and not overwrite else ''}: choose another path or remove "
                    f"it yourself"
                )
            if not overwrite and not reuse:
                raise AlreadyExists(
                    f"{what} {str(out)!r} exists already; pass --overwrite to replace it"
                )
    _check_writable(out.parent, what, out)
    return out


def _check_writable(parent: Path, what: str, out: Path) -> None:
    """The nearest existing ancestor must be a folder we may write in."""
    p = parent if str(parent) else Path(".")
    while not p.exists():
        if p.is_symlink() or p == p.parent:
            break
        p = p.parent
    if p.exists() and not p.is_dir():
        raise ConfigError(
            f"{what} {str(out)!r} cannot be created: {str(p)!r} is a file, "
            f"not a folder; choose another path"
        )
    if p.exists() and not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{what} {str(out)!r} cannot be created: no permission to write in "
            f"{str(p)!r}; choose a folder you can write to"
        )


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then raise it.

    For short steps that hand work to other threads: zarr-python creates a store's metadata
    on its own event-loop thread, so a KeyboardInterrupt in the waiting main thread would let
    that thread write files *after* the clean-up removed the folder. Outside the main thread
    (where signals are never delivered) this does nothing.
    """

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def partial_path(out: Path) -> Path:
    """The path of a new hidden sibling of ``out`` to build it in, not created yet: a caller
    holds the name *before* ``mkdir``, so its clean-up covers an interrupt at any moment."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    return out.parent / f".{out.name}{PARTIAL_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def partial_dir(out: Path) -> Path:
    """A new hidden sibling of ``out`` to build it in (removed when its process is gone)."""
    tmp = partial_path(out)
    tmp.mkdir()
    return tmp


def remove_stale(out: Path) -> None:
    """Clean up after killed writers of ``out``: their partial siblings, and a swap cut short.

    Only hidden siblings named after ``out`` whose writer process is gone are touched; an old
    output left by a swap cut short is put back when ``out`` is missing.
    """
    if not out.parent.is_dir():
        return
    prefix = f".{out.name}"
    ours = re.compile(
        re.escape(prefix + PARTIAL_MARK) + r"(\d+)-[0-9a-f]{8}"
    )  # partial_dir's names
    for p in out.parent.glob(prefix + PARTIAL_MARK + "*"):
        m = ours.fullmatch(p.name)
        if (
            m
            and p.is_dir()
            and not p.is_symlink()
            and int(m[1]) != os.getpid()
            and not _pid_alive(int(m[1]))
        ):
            shutil.rmtree(p, ignore_errors=True)
    for p in out.parent.glob(prefix + OLD_MARK + "*"):
        if kind_of(p) is None:
            continue
        if out.exists():
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.replace(p, out)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RENAME_EXCHANGE = 2
_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2); False where that is not available."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        fn = _libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), _RENAME_EXCHANGE)
    return rc == 0


@contextmanager
def new_output(
    out: str | os.PathLike,
    kind: str,
    *,
    overwrite: bool,
    inputs: Sequence[str | os.PathLike | None] = (),
    what: str = "output",
    **facts: Any,
) -> Iterator[Path]:
    """Build an output folder beside ``out`` and swap it in when the block ends without error.

    Yields the folder to write in; on any error (Ctrl-C too) it is removed and ``out`` is as
    it was.
    """
    out = check_output(out, kind, overwrite=overwrite, inputs=inputs, what=what)
    tmp = partial_path(out)
    try:
        tmp.mkdir()
        write_marker(tmp, kind, **facts)
        yield tmp
        swap_into_place(tmp, out, kind)
    except BaseException:
        remove_partial(tmp)
        raise


def remove_partial(tmp: Path, patience: float = 5.0) -> None:
    """Remove a partial output, again while it reappears: on Ctrl-C a writer thread (zarr's
    event loop) may still finish a chunk into it after a first removal, and a file created
    during ``rmtree`` makes its last ``rmdir`` fail, which would leave the folder behind."""
    deadline = time.monotonic() + patience
    gone = 0
    while gone < 2 and time.monotonic() < deadline:  # gone, and still gone a moment later
        shutil.rmtree(tmp, ignore_errors=True)
        gone = gone + 1 if not os.path.lexists(tmp) else 0
        time.sleep(0.05)


def swap_into_place(tmp: Path, out: Path, kind: str) -> None:
    """Move the finished ``tmp`` to ``out``, replacing an old output of the same kind atomically.

    On Linux the two folders are exchanged in one step; elsewhere the old output is renamed
    aside first, and a crash between the two renames is undone by :func:`remove_stale`.
    """
    if out.exists() or out.is_symlink():
        if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
            out.rmdir()
        else:
            found = kind_of(out)
            if found != kind:  # it changed while we were writing
                raise AlreadyExists(
                    f"{str(out)!r} changed while writing and is no longer a "
                    f"marl-augment {kind}; it was not replaced"
                )
            old = out.parent / f".{out.name}{OLD_MARK}{uuid.uuid4().hex[:8]}"
            if _exchange(tmp, out):
                os.replace(tmp, old)  # tmp now holds the old output
            else:
                os.replace(out, old)
                os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
            return
    os.replace(tmp, out)


__all__ = [
    "KINDS",
    "MARKER",
    "check_output",
    "kind_of",
    "new_output",
    "partial_dir",
    "remove_stale",
    "swap_into_place",
    "write_marker",
]


#: the PNG text field that marks a figure as marl-augment's (see :func:`save_figure`)
FIGURE_SOFTWARE = "marl-augment"


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 110) -> Path:
    """Save a matplotlib figure as a PNG marked as ours (and close it); replace only a PNG that
    marl-augment saved.

    Plots go inside folders marl-augment made, but the plotting functions are public, so a
    caller may point one at any path: a file there that is not our figure is never replaced.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise AlreadyExists(f"plot {str(path)!r} exists and is not a file; choose another path")
    if path.exists() and not _our_figure(path):
        raise AlreadyExists(
            f"plot {str(path)!r} exists and was not made by marl-augment; "
            f"choose another path or remove it yourself"
        )
    _check_writable(path.parent, "plot", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{PARTIAL_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        fig.savefig(tmp, dpi=dpi, format="png", metadata={"Software": FIGURE_SOFTWARE})
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path


def _our_figure(path: Path) -> bool:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.format == "PNG" and str(im.info.get("Software", "")).startswith(
                FIGURE_SOFTWARE
            )
    except Exception:  # noqa: BLE001 - not an image, unreadable: not ours
        return False
