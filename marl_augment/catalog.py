"""The dataset catalog: one JSON card per known public dataset, shipped inside the wheel.

Cards live in the repository's ``datasets/`` folder (packaged as ``marl_augment/_catalog``).
A card names the dataset (``og-marl/smac_v1/3m``), where to download it, and what it holds.
"""

from __future__ import annotations

import json
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import adapters
from .config import datasets_dir, home, store_name
from .data.dataset import Dataset
from .download import fetch, safe_extract
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


def download(
    dataset_id: str,
    *,
    url: str | None = None,
    sha256: str | None = None,
    overwrite: bool = False,
    keep_archive: bool = False,
    progress_bytes=None,
    progress_rows=None,
) -> list[Any]:
    """Download a catalog scenario (or one uid), unpack it safely, convert each dataset.

    Resumable: an interrupted download continues where it stopped on the next call. Returns
    the converted datasets (already converted ones are reused unless ``overwrite``).
    """

    chosen = scenario_cards(dataset_id)
    first = chosen[0]
    if any(c["url"] != first["url"] for c in chosen):
        raise FormatError(f"catalog cards of {dataset_id!r} name different archives")
    out_paths = {c["id"]: datasets_dir() / store_name(c["id"]) for c in chosen}
    todo = [c for c in chosen if overwrite or not out_paths[c["id"]].exists()]
    results = []
    if todo:
        src_url = url or first["url"]
        scenario = f"{first['source']}/{first['env']}/{first['scenario']}"
        archive = home() / "downloads" / f"{scenario.replace('/', '__')}.zip"
        vault_root = home() / "vaults" / scenario.replace("/", "__")
        if not vault_root.exists():
            if not archive.exists():
                fetch(
                    src_url,
                    archive,
                    sha256=sha256 or first.get("archive_sha256"),
                    progress=progress_bytes,
                )
            vault_root.parent.mkdir(parents=True, exist_ok=True)
            safe_extract(archive, vault_root)
            if not keep_archive:
                archive.unlink(missing_ok=True)
        vlts = [p for p in vault_root.iterdir() if p.is_dir() and p.name.endswith(".vlt")]
        if len(vlts) != 1:
            raise FormatError(
                f"the archive of {scenario} should hold one '<name>.vlt' folder, found "
                f"{[p.name for p in vault_root.iterdir()]}"
            )
        for c in todo:
            adapter = adapters.make(
                c.get("adapter", "ogmarl-vault"),
                uid=c["uid"],
                env_id=c.get("env_id"),
                episode_limit=c.get("episode_limit"),
                **c.get("convert_options", {}),
            )
            adapter.convert(
                vlts[0],
                out_paths[c["id"]],
                overwrite=overwrite,
                progress=progress_rows,
                source={"catalog_id": c["id"], "url": src_url},
            )
    for c in chosen:
        results.append(Dataset.open(out_paths[c["id"]], validate=False, lazy=True))
    return results
