"""A small registry of named, lazily imported components (adapters, augmenters, envs, ...).

Entries are registered either as objects or as ``"module.path:attribute"`` strings, so optional
dependencies are only imported when the entry is actually used (the Minari / Gymnasium pattern).
A miss lists what exists.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import inspect
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import ConfigError, MissingDependency, NotFound

T = TypeVar("T")


def config_from_options(
    kind: str,
    name: str,
    config_cls: type,
    config: Any = None,
    options: dict[str, Any] | None = None,
) -> Any:
    """A component's config: the object given, or its dataclass filled from ``options``.

    Unknown options are refused with the list of known ones (no silent typos).
    """

    options = options or {}
    if config is not None and options:
        raise ConfigError("give a config object or options, not both")
    if config is not None:
        return config
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"{kind} {name!r} has no option(s) {unknown}; its options are {sorted(fields)}"
        )
    try:
        return config_cls(**options)
    except TypeError as e:
        raise ConfigError(f"{kind} {name!r}: {e}") from None


def option_docs(config_cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, description) of every field of a config dataclass, the description being
    the docstring written under the field in its class (or a base class) source."""

    docs: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        try:
            body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        except (OSError, TypeError, IndexError, AttributeError):
            continue
        for stmt, nxt in zip(body, body[1:]):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(getattr(nxt, "value", None), ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(nxt.value.value.split())
    out = []
    for f in dataclasses.fields(config_cls):
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else (f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        )
        out.append((f.name, default, docs.get(f.name, "")))
    return out


def import_string(path: str):
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


class Registry(Generic[T]):
    """Maps names to components; values may be lazy ``"module:attr"`` strings.

    ``extras`` optionally names, per entry, the pip extra that provides its dependencies, so an
    ``ImportError`` while loading becomes a :class:`MissingDependency` saying what to install.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        self._extras: dict[str, str] = {}
        self._docs: dict[str, str] = {}

    def register(
        self, name: str, target: T | str, *, extra: str = "", doc: str = "", overwrite: bool = False
    ) -> None:
        if name in self._entries and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is registered already (pass overwrite=True)")
        self._entries[name] = target
        if extra:
            self._extras[name] = extra
        if doc:
            self._docs[name] = doc

    def __call__(self, name: str, *, extra: str = "", doc: str = "") -> Callable[[T], T]:
        """Decorator form: ``@registry("name")``."""

        def deco(obj: T) -> T:
            self.register(name, obj, extra=extra, doc=doc)
            return obj

        return deco

    def keys(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def doc(self, name: str) -> str:
        return self._docs.get(name, "")

    def get(self, name: str) -> T:
        """The registered object, importing it on first use."""
        if name not in self._entries:
            close = difflib.get_close_matches(name, self.keys(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise NotFound(
                f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.keys()) or 'none'}"
            )
        target = self._entries[name]
        if isinstance(target, str):
            try:
                target = import_string(target)
            except ImportError as exc:
                extra = self._extras.get(name)
                if extra:
                    raise MissingDependency(
                        exc.name or str(exc), extra, f"{self.kind} {name!r}"
                    ) from exc
                raise
            self._entries[name] = target
        return target  # type: ignore[return-value]

    def make(self, name: str, *args, **kwargs):
        """Call the registered factory/class with the given arguments."""
        return self.get(name)(*args, **kwargs)
