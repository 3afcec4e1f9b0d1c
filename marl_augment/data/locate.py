"""Finding an episode store: a path, an fsspec URL, or a dataset's name in the data root."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import datasets_dir, store_name
from ..errors import NotFound
from .dataset import Dataset
from .remote import is_url, local_path


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
