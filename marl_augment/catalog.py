"""The dataset catalog: one JSON card per known public dataset, shipped inside the wheel.

Cards live in the repository's ``datasets/`` folder (packaged as ``marl_augment/_catalog``).
A card names the dataset (``og-marl/smac_v1/3m``), where to download it, and what it holds.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import FormatError


def catalog_dir() -> Path | None:
    packaged = Path(__file__).parent / "_catalog"
    if packaged.is_dir():
        return packaged
    source_tree = Path(__file__).resolve().parent.parent / "datasets"
    return source_tree if source_tree.is_dir() else None


@lru_cache(maxsize=1)
def cards() -> dict[str, dict[str, Any]]:
    """All catalog cards by dataset id."""
    root = catalog_dir()
    out: dict[str, dict[str, Any]] = {}
    if root is None:
        return out
    for path in sorted(root.rglob("*.json")):
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise FormatError(f"catalog card {path.name} is not valid JSON: {exc}") from None
        if "id" not in card:
            raise FormatError(f"catalog card {path.name} has no 'id'")
        out[card["id"]] = card
    return out
