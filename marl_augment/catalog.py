"""The dataset catalog: download a card's dataset (resumably, checked, unpacked safely) and
convert it with its adapter. The cards themselves are read by :mod:`marl_augment.cards`."""

from __future__ import annotations

from typing import Any

from . import adapters
from .cards import cards, catalog_dir, scenario_cards
from .config import datasets_dir, home, store_name
from .data.dataset import Dataset
from .download import fetch, safe_extract
from .errors import FormatError


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


__all__ = ["cards", "catalog_dir", "download", "scenario_cards"]
