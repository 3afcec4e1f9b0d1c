"""One error hierarchy for everything marl-augment raises on purpose.

Every error a user can cause derives from :class:`MarlAugmentError` (itself a ``ValueError``), and
each subclass also inherits the builtin it refines, so ``except FileNotFoundError`` keeps working.
Messages are one line: what is wrong, where, and what to do about it. The CLI prints them in red
and exits with code 2, without a traceback.
"""

from __future__ import annotations


class MarlAugmentError(ValueError):
    """Base class of the errors marl-augment raises for bad input or a bad environment."""


class SchemaError(MarlAugmentError):
    """An episode store (or data about to be written to one) breaks the store contract."""


class NotFound(MarlAugmentError, FileNotFoundError):
    """A file, store, dataset, adapter or other named thing does not exist."""


class AlreadyExists(MarlAugmentError, FileExistsError):
    """An output exists already and overwriting was not asked for."""


class FormatError(MarlAugmentError):
    """An input file (log, archive, vault, config) is malformed."""


class UnsupportedError(MarlAugmentError):
    """The input is well formed but uses something marl-augment does not support (yet)."""


class MissingDependency(MarlAugmentError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(
            f"{package} is not installed{what}; install it with: pip install "
            f"'marl-augment[{extra}]'"
        )
        self.package = package
        self.extra = extra


class ConfigError(MarlAugmentError, TypeError):
    """A component was given options it does not have, or values of the wrong kind."""


class EnvError(MarlAugmentError, RuntimeError):
    """An environment kept failing in a way marl-augment cannot work around (e.g. StarCraft II
    losing its connection episode after episode)."""


__all__ = [
    "AlreadyExists",
    "ConfigError",
    "EnvError",
    "FormatError",
    "MarlAugmentError",
    "MissingDependency",
    "NotFound",
    "SchemaError",
    "UnsupportedError",
]
