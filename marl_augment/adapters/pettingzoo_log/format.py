"""The on-disk format of PettingZoo logs (``marl-augment/pettingzoo-log`` v1, documented in
``docs/formats.md``): JSON Lines, optionally gzip-compressed (``.jsonl.gz``), one header line,
then one line per ``reset`` and per ``step`` in the order they happened; the writer and the
reader."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import (
    AlreadyExists,
    FormatError,
    NotFound,
)

LOG_FORMAT = "marl-augment/pettingzoo-log"
LOG_VERSION = 1
REWARD_MODES = ("sum", "mean", "max")
#: Sizes a header may declare; larger ones are refused before anything is allocated.
MAX_AGENTS = 10_000
MAX_OBS_DIM = 1 << 22
MAX_ACTIONS = 1 << 20
WIN_KEYS = ("battle_won", "won")


def _jsonable(x: Any) -> Any:
    """Infos made JSON-safe: numpy to lists/scalars, unknown objects to their repr."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items() if k != "action_mask"}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


# ---------------------------------------------------------------------------------------------
# writing logs
# ---------------------------------------------------------------------------------------------


def _open_text(path: Path, mode: str, *, gz: bool | None = None):
    """Open a log for text I/O; gzip when writing a ``.gz`` name or reading gzip magic bytes."""
    if gz is None:
        if mode == "r":
            with open(path, "rb") as f:
                gz = f.read(2) == b"\x1f\x8b"
        else:
            gz = path.name.endswith(".gz")
    if gz:
        return io.TextIOWrapper(gzip.open(path, mode + "b", compresslevel=6), encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _is_our_log(path: Path) -> bool:
    """Whether ``path`` starts with a marl-augment log header (so it is ours to replace)."""
    try:
        with _open_text(path, "r") as f:
            first = json.loads(f.readline(1 << 20))
    except (OSError, EOFError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(first, dict) and first.get("format") == LOG_FORMAT


class LogWriter:
    """Writes a log file to ``<path>.partial`` and renames it into place on :meth:`close`."""

    def __init__(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        self.path = Path(path)
        if self.path.is_dir() or self.path.is_symlink():
            raise AlreadyExists(
                f"log {str(self.path)!r} is a folder or a link; give a file path "
                f"such as run.jsonl.gz"
            )
        if self.path.exists() and not overwrite:
            raise AlreadyExists(
                f"log {str(self.path)!r} exists already; pass --overwrite to replace it"
            )
        if self.path.exists() and not _is_our_log(self.path):
            raise AlreadyExists(
                f"log {str(self.path)!r} exists and is not a marl-augment log; "
                f"--overwrite replaces only a marl-augment log: choose another path"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(self.path.name + ".partial")
        if self.partial.exists() and (self.partial.is_dir() or not _is_our_log(self.partial)):
            raise AlreadyExists(
                f"{str(self.partial)!r} exists and is not a marl-augment log; it "
                f"is never replaced: move it or choose another --log path"
            )
        if self.partial.exists() and not overwrite:
            raise AlreadyExists(
                f"{str(self.partial)!r} is the log of an interrupted recording, readable up to its "
                f"last complete episode: convert it with 'marl-augment convert {self.partial} "
                f"OUT.zarr', or pass --overwrite to record anew"
            )
        self._f = _open_text(self.partial, "w", gz=self.path.name.endswith(".gz"))
        self.closed = False

    def write(self, record: Mapping[str, Any]) -> None:
        self._f.write(json.dumps(record, separators=(",", ":"), allow_nan=False))
        self._f.write("\n")

    def flush(self) -> None:
        """Push what was written to disk (gzip: a sync flush), so a crash keeps it readable."""
        self._f.flush()

    def close(self) -> None:
        if not self.closed:
            self._f.close()
            os.replace(self.partial, self.path)
            self.closed = True

    def abort(self) -> None:
        """Close and delete the partial log (nothing is left at the target path)."""
        if not self.closed:
            self._f.close()
            self.partial.unlink(missing_ok=True)
            self.closed = True


def read_log(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, record) of a log, with one-line errors for malformed lines."""
    path = Path(path)
    if not path.exists():
        raise NotFound(f"no log file at {str(path)!r}")
    crashed = path.name.endswith(".partial")  # a recording that did not close: its tail may be cut
    lineno = 0
    try:
        with _open_text(path, "r") as f:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                if crashed and not line.endswith("\n"):
                    return  # the line being written when the recorder stopped
                try:
                    rec = json.loads(line)
                except RecursionError:
                    raise FormatError(
                        f"{path.name} line {lineno} is nested too deeply to be a log record"
                    ) from None
                except json.JSONDecodeError as exc:
                    raise FormatError(
                        f"{path.name} line {lineno} is not valid JSON ({exc.msg} at column "
                        f"{exc.colno}); the log is corrupted or truncated"
                    ) from None
                if not isinstance(rec, dict):
                    raise FormatError(f"{path.name} line {lineno} is not a JSON object")
                yield lineno, rec
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        if crashed and lineno > 0 and isinstance(exc, (EOFError, UnicodeDecodeError)):
            return  # the compressed stream ends mid-block: what came before is kept
        if isinstance(exc, FileNotFoundError):
            raise NotFound(f"no log file at {str(path)!r}") from None
        raise FormatError(f"{path.name} cannot be read as a (gzip) text log: {exc}") from None


def interrupted(infos: Mapping[str, Any]) -> bool:
    """An episode the environment cut short (``info["interrupted"]``, e.g. SMAC losing the
    game): neither a win nor a loss, and not data."""
    return any(isinstance(i, Mapping) and i.get("interrupted") is True for i in infos.values())


def temp_log_path(directory: Path) -> Path:
    """A log that lives only until it is converted: plain JSON lines (compressing it cost a
    sixth of a MaMuJoCo recording's time)."""
    return directory / f"record-{uuid.uuid4().hex[:8]}.jsonl"
