"""Finding an episode store: a path, an fsspec URL, or a dataset's name in the data root."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import datasets_dir, store_name
from ..errors import NotFound
from .chunks import array_of, open_group, read_array
from .dataset import Dataset
from .remote import is_url, local_path, mirror
from .schema import Spec, episode_returns, episode_stats
from .store import read_store


def resolve(source: str | os.PathLike) -> Path | str:
    """A store path from a path, an fsspec URL (``s3://...``, returned as is) or a dataset name in
    the data root (``marl-augment datasets list``)."""
    if is_url(source):
        return str(source)
    p = local_path(source)
    if p.exists():
        return p
    text = str(source)
    if not text.endswith(".zarr"):
        named = datasets_dir() / store_name(text.strip("/"))
        if named.exists():
            return named
    raise NotFound(
        f"no episode store at {text!r} (and no dataset of that name in {datasets_dir()}); "
        f"see 'marl-augment datasets list'"
    )


def load(source: str | os.PathLike, *, validate: bool = True) -> Dataset:
    """Open an episode store (path or dataset name) as a :class:`Dataset`, validating it."""
    return Dataset.open(resolve(source), validate=validate)


def open_store(source: str | os.PathLike, *, validate: bool = True) -> Dataset:
    """Alias of :func:`load`."""
    return load(source, validate=validate)


def local_copy(source: str | os.PathLike) -> Path:
    """The local store for a path, a dataset name or an fsspec URL (its mirror, fetched when
    the remote store changed)."""
    where = resolve(source)
    return mirror(where) if isinstance(where, str) else where


def transitions_in(path: str | os.PathLike) -> int:
    """A local store's number of transitions, from its metadata alone."""
    return int(array_of(open_group(path), "obs").shape[0])


@dataclass
class StoreInfo:
    """What ``marl-augment info`` shows: a store's spec, statistics, source and provenance."""

    path: str
    """The store as given (path, name or URL), resolved."""
    local: Path
    """Where it was read (a URL's mirror)."""
    spec: Spec
    stats: dict[str, Any]
    attrs: dict[str, Any]
    validated: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "spec": self.spec.to_json(),
            "stats": self.stats,
            "source": self.attrs.get("source", {}),
            "provenance": self.attrs.get("provenance", []),
            "fingerprint": self.attrs.get("fingerprint"),
            "validated": self.validated,
        }


def describe(
    source: str | os.PathLike,
    *,
    validate: bool = True,
    progress: Any = None,
    local: Path | None = None,
) -> StoreInfo:
    """A store's facts and statistics, streamed: its arrays are validated (every value and the
    fingerprint, unless ``validate=False``) block by block and never held whole, so datasets
    larger than memory are described too. ``progress(n)`` is called with transitions read;
    ``local``: the :func:`local_copy` already made of ``source``."""
    where = resolve(source)
    local = local or local_copy(where)
    c = read_store(local, validate=validate, keep=False, progress=progress)
    group = open_group(local)
    rewards = read_array(array_of(group, "rewards"), "rewards")
    terminated = read_array(array_of(group, "terminated"), "terminated")
    stats = episode_stats(
        np.diff(c.offsets),
        episode_returns(c.offsets, rewards),
        c.origin,
        c.won,
        terminated[c.offsets[1:] - 1],
    )
    return StoreInfo(str(where), local, c.spec, stats, dict(c.attrs), validate)
