"""Dataset cards: one JSON card per known public dataset, shipped inside the wheel.

Cards live in the repository's ``datasets/`` folder (packaged as ``marl_augment/_catalog``).
A card names the dataset (``og-marl/smac_v1/3m``), where to download it, and what it holds.
Reading them needs nothing but the standard library, so adapters can consult them; fetching
and converting a card's dataset is :mod:`marl_augment.catalog`.
"""

from __future__ import annotations

import json
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import FormatError, NotFound


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


def scenario_cards(dataset_id: str) -> list[dict[str, Any]]:
    """Cards matching a scenario id (``og-marl/smac_v1/3m``: every uid) or one card id."""

    all_cards = cards()
    if dataset_id in all_cards:
        return [all_cards[dataset_id]]
    found = [c for i, c in sorted(all_cards.items()) if i.startswith(dataset_id.rstrip("/") + "/")]
    if not found:
        scenarios = sorted({i.rsplit("/", 1)[0] for i in all_cards})
        close = get_close_matches(dataset_id, scenarios + sorted(all_cards), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise NotFound(f"no catalog dataset {dataset_id!r}.{hint} Known: {', '.join(scenarios)}")
    return found
