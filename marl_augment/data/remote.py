"""Episode stores on fsspec URLs (``s3://``, ``gs://``, ``az://``, ``memory://``, ...).

The store's reader and writer work on local files (our own chunk codec, see
docs/store-format.md), so a remote store is used through a local mirror:

- **reading** ``load("s3://bucket/3m.zarr")`` copies the store into the cache
  (``$MARL_AUGMENT_HOME/cache/remote/<hash of the URL>/``) unless the cached copy's root
  ``zarr.json`` — which holds the content fingerprint — equals the remote one, then opens and
  validates the copy as any local store (the fingerprint is recomputed from the chunks);
- **writing** a store to a URL writes it locally first (the usual temp-then-rename), then uploads
  every file, the root ``zarr.json`` last: until that arrives the remote folder is not a store,
  so an interrupted upload is never mistaken for one. ``overwrite`` deletes the remote store
  first (object stores have no atomic rename).

Credentials and options come from fsspec's usual configuration (environment variables,
``~/.config/fsspec``); the filesystem's package must be installed (``s3fs``, ``gcsfs``, ...).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..config import home
from ..errors import AlreadyExists, MissingDependency, NotFound
from .schema import FORMAT_NAME

ROOT_META = "zarr.json"


def is_url(path: str | os.PathLike) -> bool:
    """True for ``scheme://...`` locations other than plain local paths and ``file://``."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def local_path(path: str | os.PathLike) -> Path:
    """A local path for ``path`` (``file://`` URLs included)."""
    text = str(path)
    return Path(text[len("file://") :] if text.startswith("file://") else text).expanduser()


def _fs(url: str) -> tuple[Any, str]:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        raise MissingDependency("fsspec", "all", f"store URL {url!r}") from None
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:
        raise MissingDependency(
            str(e).split("'")[1] if "'" in str(e) else "an fsspec filesystem",
            "all",
            f"store URL {url!r}; install the filesystem's package, e.g. s3fs",
        ) from None
    return fs, root.rstrip("/")


def mirror_dir(url: str) -> Path:
    """Where the local copy of ``url`` lives."""

    name = url.rstrip("/").rsplit("/", 1)[-1] or "store.zarr"
    return home() / "cache" / "remote" / hashlib.sha256(url.encode()).hexdigest()[:16] / name


def mirror(url: str) -> Path:
    """A validated-on-open local copy of the store at ``url`` (downloaded when it changed)."""
    fs, root = _fs(url)
    meta = f"{root}/{ROOT_META}"
    if not fs.exists(meta):
        raise NotFound(f"no episode store at {url!r} (no {ROOT_META} there)")
    remote_meta = fs.cat_file(meta)
    local = mirror_dir(url)
    if (local / ROOT_META).is_file() and (local / ROOT_META).read_bytes() == remote_meta:
        return local
    tmp = local.parent / f".{local.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        for path in fs.find(root):
            rel = path[len(root) :].lstrip("/")
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(path, str(dest))
        if local.exists():
            shutil.rmtree(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, local)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return local


def check_remote_output(url: str, overwrite: bool) -> None:
    """Refuse a remote output that exists (unless overwrite) or is not a marl-augment store."""
    fs, root = _fs(url)
    if fs.exists(root):
        if not overwrite:
            raise AlreadyExists(f"output {url!r} exists already; pass --overwrite to replace it")
        _check_ours(fs, root, url)


def _check_ours(fs, root: str, url: str) -> None:

    try:
        meta = json.loads(fs.cat_file(f"{root}/{ROOT_META}"))
        ours = meta.get("attributes", {}).get("format") == FORMAT_NAME
    except Exception:  # noqa: BLE001 - absent, unreadable or not JSON: not ours
        ours = False
    if not ours:
        raise AlreadyExists(
            f"output {url!r} exists and is not a marl-augment store; --overwrite "
            f"replaces only a marl-augment store: choose another URL"
        )


def upload(local: Path, url: str, overwrite: bool) -> None:
    """Copy the local store to ``url``, the root metadata last (see the module docstring)."""
    fs, root = _fs(url)
    if fs.exists(root):
        if not overwrite:
            raise AlreadyExists(f"output {url!r} appeared while writing; not replaced")
        _check_ours(fs, root, url)
        fs.rm(root, recursive=True)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    last = local / ROOT_META
    for p in [f for f in files if f != last] + [last]:
        fs.put_file(str(p), f"{root}/{p.relative_to(local).as_posix()}")
