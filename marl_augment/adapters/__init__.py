"""Dataset adapters: turn data from where it lives into an episode store.

Adapters are registered lazily by name, so optional dependencies load only when used::

    from marl_augment import adapters
    adapters.keys()                      # ['pettingzoo-log', ...]
    ds = adapters.convert("pettingzoo-log", "run.jsonl", "run.zarr")

An adapter is a class with a ``Config`` dataclass and a ``convert(src, out, *, overwrite,
progress)`` method returning the new :class:`~marl_augment.data.Dataset`. Register your own
with :func:`register`; test it with :class:`marl_augment.testing.AdapterTests`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..errors import ConfigError
from ..registry import Registry


@runtime_checkable
class Adapter(Protocol):
    """What an adapter is: built from its ``Config``, it converts one source into a new store.

    ``convert`` refuses an existing ``out`` unless ``overwrite`` (and then only a marl-augment
    store), never touches ``src``, calls ``progress(n)`` as rows are written, adds ``source``
    facts to the store's provenance and returns the new :class:`~marl_augment.data.Dataset`.
    """

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any = None) -> None: ...

    def convert(
        self,
        src: str | os.PathLike,
        out: str | os.PathLike,
        *,
        overwrite: bool = False,
        progress: Any = None,
        source: Mapping[str, Any] | None = None,
    ) -> Any: ...


ADAPTERS: Registry[type[Adapter]] = Registry("adapter")
ADAPTERS.register(
    "pettingzoo-log",
    "marl_augment.adapters.pettingzoo_log:PettingZooLogAdapter",
    doc="JSON Lines logs of any PettingZoo ParallelEnv (see docs/formats.md)",
)
ADAPTERS.register(
    "ogmarl-vault",
    "marl_augment.adapters.ogmarl_vault:OgMarlVaultAdapter",
    extra="ogmarl",
    doc="OG-MARL / flashbax Vaults: '<name>.vlt/<uid>', a .vlt folder or its .zip",
)


def register(
    name: str, target: Any, *, extra: str = "", doc: str = "", overwrite: bool = False
) -> None:
    """Register an adapter class (or a lazy ``"module:Class"`` string) under ``name``."""
    ADAPTERS.register(name, target, extra=extra, doc=doc, overwrite=overwrite)


def keys() -> list[str]:
    return ADAPTERS.keys()


def make(name: str, **config: Any):
    """An adapter instance; ``config`` fills its ``Config`` dataclass (unknown keys refused)."""
    cls = ADAPTERS.get(name)
    return cls(make_config(cls.Config, config, what=f"adapter {name!r}"))


def convert(
    name: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Any = None,
    **config: Any,
):
    """Convert ``src`` with adapter ``name`` into a new store at ``out``."""
    return make(name, **config).convert(src, out, overwrite=overwrite, progress=progress)


def make_config(cls: type, values: dict[str, Any], *, what: str):
    """Build a config dataclass, refusing unknown fields with the list of known ones."""
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"{what} has no option(s) {unknown}; its options are {sorted(fields)}")
    return cls(**values)


__all__ = ["ADAPTERS", "Adapter", "convert", "keys", "make", "make_config", "register"]
