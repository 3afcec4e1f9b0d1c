"""Resumable downloads and safe archive extraction (standard library only).

``fetch`` downloads to ``<dest>.part`` and continues from where an interrupted transfer stopped
(HTTP ``Range``), verifies the size and, when known, the SHA-256, and only then renames the file
into place. ``safe_extract`` refuses archive members that would land outside the target folder
(absolute paths, ``..``), links and device files, and extracts into a temporary sibling that is
renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import urllib.error
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from .errors import FormatError, MarlAugmentError

CHUNK = 1 << 20
#: Limits of an archive's unpacked contents (a zip bomb fills the disk otherwise). The largest
#: OG-MARL SMAC archives unpack to a few GB; raise these through the environment for larger ones.
MAX_UNPACKED_BYTES = int(os.environ.get("MARL_AUGMENT_MAX_UNPACKED_BYTES", 64 << 30))
MAX_MEMBERS = int(os.environ.get("MARL_AUGMENT_MAX_MEMBERS", 1_000_000))
MAX_RATIO = float(os.environ.get("MARL_AUGMENT_MAX_RATIO", 1000))
USER_AGENT = "marl-augment (+https://github.com/marl-augment)"


class DownloadError(MarlAugmentError):
    """A download failed or delivered something other than what was expected."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    timeout: float = 60.0,
    progress: Callable[[int, int | None], None] | None = None,
    retries: int = 3,
) -> Path:
    """Download ``url`` to ``dest``, resuming a previous partial download of the same file.

    ``progress(bytes_so_far, total_or_None)`` is called as data arrives. A size or checksum
    mismatch deletes the partial file and raises :class:`DownloadError`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch_once(url, part, timeout=timeout, progress=progress)
            break
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            if isinstance(exc, urllib.error.HTTPError) and exc.code not in (
                408,
                429,
                500,
                502,
                503,
                504,
            ):
                raise DownloadError(
                    f"download of {url} failed: HTTP {exc.code} {exc.reason}"
                ) from None
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"download of {url} failed after {retries} retries ({exc}); run the same "
                    "command again to resume from "
                    f"{part.stat().st_size if part.exists() else 0} bytes"
                ) from None
    if sha256:
        got = sha256_file(part)
        if got != sha256.lower().removeprefix("sha256:"):
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"download of {url} is corrupted (sha256 {got[:16]}… expected "
                f"{sha256.removeprefix('sha256:')[:16]}…); it was deleted, run the command again"
            )
    os.replace(part, dest)
    return dest


def _fetch_once(url: str, part: Path, *, timeout: float, progress) -> None:
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - URL from catalog/user
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to fetch: the partial file is complete
            return
        raise
    with resp:
        if have and resp.status == 206:
            total = _total_from_range(resp.headers.get("Content-Range"))
            mode = "ab"
        else:  # server ignored the range (or fresh start): begin again
            have = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
            mode = "wb"
        with open(part, mode) as f:
            got = have
            if progress:
                progress(got, total)
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                f.write(block)
                got += len(block)
                if progress:
                    progress(got, total)
    if total is not None and got != total:
        raise ConnectionError(f"connection closed after {got} of {total} bytes")


def _total_from_range(header: str | None) -> int | None:
    # "bytes 100-999/1000"
    if not header or "/" not in header:
        return None
    tail = header.rsplit("/", 1)[1]
    return int(tail) if tail.isdigit() else None


def check_zip(path: Path) -> None:
    """Refuse a zip that is not one or whose members fail their CRC check."""
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile as exc:
        raise FormatError(
            f"{path.name} is not a valid zip archive ({exc}); delete it and download again"
        ) from None
    except (zlib.error, EOFError, OSError, ValueError) as exc:  # damaged compressed data
        raise FormatError(
            f"{path.name} is corrupted ({exc}); delete it and download again"
        ) from None
    if bad is not None:
        raise FormatError(f"{path.name} is corrupted: member {bad!r} fails its CRC check")


def safe_extract(
    zip_path: str | os.PathLike, dest: str | os.PathLike, *, max_bytes: int | None = None
) -> list[Path]:
    """Extract a zip into ``dest`` (which must not exist yet), refusing unsafe members.

    Refuses archives over the size, member-count and compression-ratio limits
    (:data:`MAX_UNPACKED_BYTES`, :data:`MAX_MEMBERS`, :data:`MAX_RATIO`) and stops when the
    bytes actually written pass ``max_bytes``, whatever the archive's headers declare.

    Returns the top-level entries created.
    """
    zip_path, dest = Path(zip_path), Path(dest)
    if dest.exists():
        raise FormatError(f"extraction target {str(dest)!r} exists already")
    check_zip(zip_path)
    max_bytes = MAX_UNPACKED_BYTES if max_bytes is None else max_bytes
    fix = (
        "if the archive is genuine, raise the limit with MARL_AUGMENT_MAX_UNPACKED_BYTES, "
        "MARL_AUGMENT_MAX_MEMBERS or MARL_AUGMENT_MAX_RATIO"
    )
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise FormatError(
            f"{zip_path.name} has {len(infos):,} members, more than the limit "
            f"{MAX_MEMBERS:,}; refused ({fix})"
        )
    declared = sum(i.file_size for i in infos)
    packed = max(1, sum(i.compress_size for i in infos))
    if declared > max_bytes:
        raise FormatError(
            f"{zip_path.name} unpacks to {declared:,} bytes, more than the limit "
            f"{max_bytes:,}; refused ({fix})"
        )
    if declared > (64 << 20) and declared / packed > MAX_RATIO:
        raise FormatError(
            f"{zip_path.name} unpacks {declared / packed:.0f}x its packed size "
            f"(limit {MAX_RATIO:g}x): a zip bomb? refused ({fix})"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if declared > free:
        raise FormatError(
            f"{zip_path.name} unpacks to {declared:,} bytes but only {free:,} are "
            f"free at {str(dest.parent)!r}; free some space and run again"
        )
    tmp = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    written = 0
    try:
        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                name = info.filename
                pure = PurePosixPath(name.replace("\\", "/"))
                mode = info.external_attr >> 16
                if (
                    pure.is_absolute()
                    or ".." in pure.parts
                    or (pure.parts and pure.parts[0].endswith(":"))
                ):
                    raise FormatError(
                        f"{zip_path.name}: member {name!r} would be written outside the target "
                        "folder; refused"
                    )
                kind = stat.S_IFMT(mode)  # 0 when the archiver recorded no file type
                if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                    raise FormatError(
                        f"{zip_path.name}: member {name!r} is a link or special file; refused"
                    )
                target = tmp.joinpath(*pure.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    while block := src.read(CHUNK):  # counted as written: headers can lie
                        written += len(block)
                        if written > max_bytes:
                            raise FormatError(
                                f"{zip_path.name} unpacks to more than the limit "
                                f"{max_bytes:,} bytes; refused ({fix})"
                            )
                        out.write(block)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(dest.iterdir())
