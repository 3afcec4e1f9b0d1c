"""marl-augment: offline multi-agent RL data — adapters, a chunked Zarr episode store,
augmenters (EAQ, EAQ⁻Q, RAD-s, RAD-m, ...) and offline MARL baselines.

The public API is small and imported lazily, so ``import marl_augment`` is cheap::

    import marl_augment as ma
    ds = ma.load("runs/3m-medium.zarr")
    ds.stats(); ds.sequences(length=20); ds.torch(view="sequences")
"""

from __future__ import annotations

from importlib import import_module
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
    "load": "marl_augment.data.locate:load",
    "open_store": "marl_augment.data.locate:open_store",
    "resolve": "marl_augment.data.locate:resolve",
    "train": "marl_augment.training:train",
    "algos": "marl_augment.algos",
    "training": "marl_augment.training",
    "envs": "marl_augment.envs",
    "augment": "marl_augment.augment",
}

if TYPE_CHECKING:  # pragma: no cover
    from . import adapters, algos, augment, envs, training
    from .algos import load_policy, make_algorithm
    from .augment import load_augmenter, make_augmenter
    from .data.dataset import Dataset, Episode, StoreWriter, concat
    from .data.locate import load, open_store, resolve
    from .data.schema import Spec
    from .envs import make_env
    from .envs.evaluate import evaluate
    from .training import train


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


__all__ = [
    "AlreadyExists",
    "Dataset",
    "Episode",
    "FormatError",
    "MarlAugmentError",
    "MissingDependency",
    "NotFound",
    "SchemaError",
    "Spec",
    "StoreWriter",
    "UnsupportedError",
    "__version__",
    "adapters",
    "algos",
    "augment",
    "concat",
    "training",
    "envs",
    "evaluate",
    "load",
    "load_augmenter",
    "load_policy",
    "make_algorithm",
    "make_augmenter",
    "make_env",
    "open_store",
    "resolve",
    "train",
]
