"""Where marl-augment keeps datasets it downloads or creates by name, and which version runs."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

ENV_VAR = "MARL_AUGMENT_HOME"


def home() -> Path:
    """The data root: ``$MARL_AUGMENT_HOME``, else ``$XDG_DATA_HOME/marl-augment``,
    else ``~/.local/share/marl-augment``."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "marl-augment"


def datasets_dir() -> Path:
    """Folder of named episode stores (``<name>.zarr``)."""
    return home() / "datasets"


def store_name(card_id: str) -> str:
    """A named dataset's store file name in the data root (``og-marl/x`` -> ``og-marl__x.zarr``)."""
    return card_id.replace("/", "__") + ".zarr"


def package_version() -> str:
    """The installed marl-augment's version (recorded in every output's provenance)."""
    try:
        from importlib.metadata import version

        return version("marl-augment")
    except Exception:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def machine_summary() -> str:
    """One line describing this machine for benchmark records: CPU, cores, Python (and torch)."""

    parts = [
        platform.processor() or platform.machine(),
        f"{os.cpu_count()} cores",
        f"Python {platform.python_version()}",
    ]
    if "torch" in sys.modules:
        parts.append(f"torch {sys.modules['torch'].__version__}")
    return ", ".join(parts)
