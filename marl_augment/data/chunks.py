"""The episode store's contract with Zarr's on-disk layout: codecs, chunk sizes, and the fast
chunk reader.

Our writer (:class:`~marl_augment.data.store.StoreWriter`) creates each array's metadata with
zarr-python and then writes the chunk files itself; :class:`RowReader` decodes them straight into
numpy. Both rely on one layout, which every store we write has and :func:`chunk_layout` checks
before the fast path is taken:

- Zarr v3 arrays with a ``regular`` chunk grid chunked along axis 0 only (every other axis whole);
- codecs ``bytes`` (little-endian) then ``blosc`` (:func:`codec_for`: LZ4 or zstd, bit shuffle for
  booleans), no other;
- the ``default`` chunk key encoding with ``/``: chunk ``i`` of an array of rank r is the file
  ``<array>/c/<i>/0/…/0`` (r − 1 zeros);
- fill value 0; an absent chunk file holds only the fill value; edge chunks are written whole,
  padded with the fill value.

Anything else (another layout, a big-endian host, a remote store) goes through zarr-python, so
stores stay plain Zarr v3 that any Zarr reader opens. ``tests/test_store.py`` reads every array
of written stores both ways and compares, so a zarr-python upgrade that changed this layout would
fail there, not corrupt data silently.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, NotFound, SchemaError

#: Target uncompressed bytes per chunk of the widest array; chunk rows are the power of two
#: nearest to this. Chosen by ``benchmarks/store_io.py --codecs`` (see docs/performance.md).
DEFAULT_CHUNK_BYTES = 1 << 23
#: Blosc compressor per store: ``lz4`` (default: fastest to read) or ``zstd`` (smaller, slower);
#: ``+shuffle`` byte-shuffles numeric arrays first (helps dense float data, hurts sparse data).
COMPRESSIONS = ("lz4", "zstd", "lz4+shuffle", "zstd+shuffle")
MIN_CHUNK_ROWS = 1 << 10
MAX_CHUNK_ROWS = 1 << 17


def codec_for(kind: str, compression: str = "lz4"):
    """Blosc: bit shuffle for booleans; numbers unshuffled unless ``+shuffle`` is asked for."""
    from zarr.codecs import BloscCodec

    if compression not in COMPRESSIONS:
        raise ConfigError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    cname, _, extra = compression.partition("+")
    shuffle = "bitshuffle" if kind == "bool" else ("shuffle" if extra == "shuffle" else "noshuffle")
    return BloscCodec(cname=cname, clevel=5 if cname == "lz4" else 3, shuffle=shuffle)


def chunk_rows_for(row_bytes: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Rows per chunk: a power of two giving about ``chunk_bytes`` uncompressed bytes."""
    rows = max(1, chunk_bytes // max(1, row_bytes))
    rows = 1 << int(round(np.log2(rows)))
    return int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, rows)))


def array_of(group, name: str):
    """Array ``name`` of a store's group; one line when it is missing or its metadata is bad."""
    try:
        arr = group[name]
        _ = (arr.shape, arr.dtype, arr.chunks)
    except KeyError:
        raise SchemaError(
            f"array {name!r} is missing from the store; re-create it from its source"
        ) from None
    except Exception as exc:  # zarr's own errors for damaged metadata are of many kinds
        raise unreadable(name, exc) from None
    return arr


def read_array(arr, name: str, sl=slice(None)) -> np.ndarray:
    try:
        return np.asarray(arr[sl])
    except Exception as exc:  # corrupted chunk bytes, unreadable files
        raise unreadable(name, exc) from None


def unreadable(name: str, exc: BaseException, chunk: int | None = None) -> SchemaError:
    first = str(exc).splitlines()[0] if str(exc) else ""
    where = f" (chunk {chunk})" if chunk is not None else ""
    return SchemaError(
        f"array {name!r}{where} could not be read ({type(exc).__name__}: {first}); "
        f"the store is corrupted or truncated: re-create it from its source"
    )


_POOL = None


def chunk_layout(root: Path, name: str, shape: Sequence[int]) -> dict[str, Any] | None:
    """Where the chunk files of array ``name`` are, if it has the layout our writer produces.

    That layout: regular chunks along axis 0 only, ``bytes`` (little-endian) then ``blosc``
    codecs, default ``c/<i>/0/...`` chunk keys, fill value 0. None for anything else (the caller
    then goes through zarr-python).
    """
    meta_path = Path(root) / name / "zarr.json"
    if sys.byteorder != "little" or not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        codecs = meta["codecs"]
        grid = meta["chunk_grid"]
        keys = meta["chunk_key_encoding"]
        chunk_shape = grid["configuration"]["chunk_shape"]
        ok = (
            grid["name"] == "regular"
            and list(chunk_shape[1:]) == list(shape[1:])
            and keys["name"] == "default"
            and keys.get("configuration", {}).get("separator", "/") == "/"
            and len(codecs) == 2
            and codecs[0]["name"] == "bytes"
            and codecs[0].get("configuration", {}).get("endian", "little") == "little"
            and codecs[1]["name"] == "blosc"
            and meta.get("fill_value") in (0, False, 0.0)
        )
        blosc = codecs[1].get("configuration", {})
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if not ok:
        return None
    return {
        "rows": int(chunk_shape[0]),
        "suffix": "/0" * (len(shape) - 1),
        "blosc": blosc,
        "dir": Path(root) / name,
    }


def chunk_path(layout: Mapping[str, Any], c: int) -> Path:
    return layout["dir"] / f"c/{c}{layout['suffix']}"


def encoder_for(blosc: Mapping[str, Any], itemsize: int):
    from numcodecs import Blosc

    shuffle = {
        "noshuffle": Blosc.NOSHUFFLE,
        "shuffle": Blosc.SHUFFLE,
        "bitshuffle": Blosc.BITSHUFFLE,
    }[blosc.get("shuffle", "shuffle")]
    return Blosc(
        cname=blosc.get("cname", "lz4"),
        clevel=int(blosc.get("clevel", 5)),
        shuffle=shuffle,
        blocksize=int(blosc.get("blocksize", 0)),
    )


def thread_pool():
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(
            max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="marl-augment-read"
        )
    return _POOL


class RowReader:
    """Reads row ranges of a store's arrays into numpy.

    For local stores in the layout our writer produces (regular chunks along axis 0,
    little-endian ``bytes`` + ``blosc`` codecs, default ``c/i/0/...`` chunk keys) it decodes
    chunk files straight into the destination array, several chunks at once in a thread pool
    (Blosc releases the GIL): faster than going through zarr-python, which decodes into a
    temporary and copies (docs/performance.md, "Episode store I/O"). Any other layout or store
    goes through zarr-python unchanged.
    """

    def __init__(self, root: Path, group, names: Sequence[str]) -> None:
        self.root = Path(root)
        self.arrays = {n: array_of(group, n) for n in names}
        self._fast = {n: chunk_layout(self.root, n, a.shape) for n, a in self.arrays.items()}

    def read(self, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        """Rows [lo, hi) of every array."""
        out: dict[str, np.ndarray] = {}
        tasks = []
        for name, arr in self.arrays.items():
            end = arr.shape[0] if hi is None else min(hi, arr.shape[0])  # as numpy slices
            layout = self._fast[name]
            if layout is None:
                out[name] = read_array(arr, name, slice(lo, end))
                continue
            dest = np.empty((end - lo, *arr.shape[1:]), dtype=arr.dtype)
            out[name] = dest
            rows = layout["rows"]
            for c in range(lo // rows, -(-end // rows)):
                tasks.append((name, arr, layout, c, dest, lo, end))
        if tasks:
            for f in [thread_pool().submit(self._decode, *t) for t in tasks]:
                f.result()
        return out

    def _decode(self, name, arr, layout, c, dest, lo, end) -> None:
        from numcodecs import Blosc

        rows = layout["rows"]
        c_lo, c_hi = c * rows, (c + 1) * rows
        a, b = max(c_lo, lo), min(c_hi, end, arr.shape[0])
        path = chunk_path(layout, c)
        try:
            buf = path.read_bytes()
        except FileNotFoundError:  # zarr does not write chunks holding only the fill value
            dest[a - lo : b - lo] = 0
            return
        except OSError as exc:
            raise unreadable(name, exc, c) from None
        try:
            if a == c_lo and b == c_hi:
                Blosc().decode(buf, out=dest[a - lo : b - lo])
            else:
                full = np.empty((rows, *arr.shape[1:]), dtype=arr.dtype)
                Blosc().decode(buf, out=full)
                dest[a - lo : b - lo] = full[a - c_lo : b - c_lo]
        except Exception as exc:
            raise unreadable(name, exc, c) from None


def open_group(path: str | os.PathLike):
    """Open a store's Zarr group read-only, with clear errors for missing / foreign paths."""
    import zarr

    p = Path(path)
    if not p.exists():
        raise NotFound(f"no episode store at {str(p)!r}")
    if not (p / "zarr.json").exists():
        raise SchemaError(
            f"{str(p)!r} is not a Zarr v3 episode store (no zarr.json); "
            f"convert your data first: marl-augment convert --help"
        )
    try:
        group = zarr.open_group(str(p), mode="r")
    except Exception as exc:
        raise SchemaError(f"{str(p)!r} is not a readable Zarr group: {exc}") from None
    return group
