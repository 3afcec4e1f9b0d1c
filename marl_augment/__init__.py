"""marl-augment: offline multi-agent RL data — adapters, a chunked Zarr episode store,
augmenters (EAQ, EAQ⁻Q, RAD-s, RAD-m, ...) and offline MARL baselines.

The public API is small and imported lazily, so ``import marl_augment`` is cheap::

    import marl_augment as ma
    ds = ma.load("runs/3m-medium.zarr")
    ds.stats(); ds.sequences(length=20); ds.torch(view="sequences")
"""

from __future__ import annotations

import os
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import (
    AlreadyExists,
    FormatError,
    MarlAugmentError,
    MissingDependency,
    NotFound,
    SchemaError,
    UnsupportedError,
)

__version__ = "0.1.0"

_LAZY = {
    "Dataset": "marl_augment.data.dataset:Dataset",
    "Episode": "marl_augment.data.dataset:Episode",
    "Spec": "marl_augment.data.schema:Spec",
    "StoreWriter": "marl_augment.data.dataset:StoreWriter",
    "concat": "marl_augment.data.dataset:concat",
    "adapters": "marl_augment.adapters",
    "make_env": "marl_augment.envs:make_env",
    "evaluate": "marl_augment.envs.evaluate:evaluate",
    "make_augmenter": "marl_augment.augment:make_augmenter",
    "load_augmenter": "marl_augment.augment:load_augmenter",
    "make_algorithm": "marl_augment.algos:make_algorithm",
    "load_policy": "marl_augment.algos:load_policy",
    "algos": "marl_augment.algos",
    "envs": "marl_augment.envs",
    "augment": "marl_augment.augment",
}

if TYPE_CHECKING:  # pragma: no cover
    from . import adapters, algos, augment, envs
    from .algos import load_policy, make_algorithm
    from .augment import load_augmenter, make_augmenter
    from .data.dataset import Dataset, Episode, StoreWriter, concat
    from .data.schema import Spec
    from .envs import make_env
    from .envs.evaluate import evaluate


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'marl_augment' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = import_module(module)
    if attr:
        value = getattr(value, attr)
    globals()[name] = value
    return value


def resolve(source: str | os.PathLike) -> Path | str:
    """A store path from a path, an fsspec URL (``s3://...``, returned as is) or a dataset name in
    the data root (``marl-augment datasets list``)."""
    from .config import datasets_dir
    from .data.remote import is_url, local_path

    if is_url(source):
        return str(source)
    p = local_path(source)
    if p.exists():
        return p
    text = str(source)
    if not text.endswith(".zarr"):
        from .catalog import store_name

        named = datasets_dir() / store_name(text.strip("/"))
        if named.exists():
            return named
    raise NotFound(
        f"no episode store at {text!r} (and no dataset of that name in {datasets_dir()}); "
        f"see 'marl-augment datasets list'"
    )


def load(source: str | os.PathLike, *, validate: bool = True) -> Dataset:
    """Open an episode store (path or dataset name) as a :class:`Dataset`, validating it."""
    from .data.dataset import Dataset

    return Dataset.open(resolve(source), validate=validate)


def open_store(source: str | os.PathLike, *, validate: bool = True) -> Dataset:
    """Alias of :func:`load`."""
    return load(source, validate=validate)


__all__ = [
    "AlreadyExists", "Dataset", "Episode", "FormatError", "MarlAugmentError", "MissingDependency",
    "NotFound", "SchemaError", "Spec", "StoreWriter", "UnsupportedError", "__version__",
    "adapters", "algos", "augment", "concat", "envs", "evaluate", "load", "load_augmenter",
    "load_policy", "make_algorithm", "make_augmenter", "make_env", "open_store", "resolve",
]
