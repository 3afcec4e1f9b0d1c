"""Reading and writing episode stores (Zarr v3 groups).

Writing streams: rows are buffered up to one block (a whole number of chunks of every array),
compressed and written, so memory is bounded by a block, not by the dataset. Everything goes to a
hidden temporary sibling of the output, which is renamed into place only when complete; an
interrupted write leaves no output and never touches its input.

Reading validates: on open, every array is checked against the contract in :mod:`.schema` and the
content fingerprint recorded at write time is recomputed, so a truncated, corrupted or edited
store is refused with one :class:`SchemaError` line instead of yielding silent zeros.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import package_version
from ..errors import AlreadyExists, SchemaError
from ..outputs import check_output, deferred_interrupt, partial_path, swap_into_place
from .chunks import (
    DEFAULT_CHUNK_BYTES,
    RowReader,
    array_of,
    chunk_layout,
    chunk_path,
    chunk_rows_for,
    codec_for,
    encoder_for,
    open_group,
    read_array,
    thread_pool,
)
from .fingerprint import SPEC_FINGERPRINT, Fingerprint
from .remote import check_remote_output, is_url, local_path, mirror, mirror_dir, upload
from .schema import (
    FORMAT_NAME,
    OFFSETS,
    SCHEMA_VERSION,
    Spec,
    check_columns,
    check_episode_ends,
    check_offsets,
    episode_returns,
    episode_stats,
    normalise_columns,
)


def check_output_path(
    out: str | os.PathLike, *, overwrite: bool, inputs: Sequence[str | os.PathLike] = ()
) -> Path:
    """Refuse a store output that exists (unless overwrite), is not a marl-augment store, or is,
    contains or lies inside an input (:func:`marl_augment.outputs.check_output`).

    For an fsspec URL, checks the remote location and returns its local mirror's path.
    """

    if is_url(out):
        check_remote_output(str(out), overwrite)
        return mirror_dir(str(out))
    return check_output(local_path(out), "store", overwrite=overwrite, inputs=inputs)


class EpisodeWriter:
    """Streams episodes into a new episode store (the folder; the public
    :class:`~marl_augment.data.dataset.StoreWriter` also opens the result as a Dataset).

    Use as a context manager::

        with EpisodeWriter("out.zarr", spec) as w:
            w.append_episode({"obs": ..., "actions": ..., "rewards": ..., ...})
        w.path   # the finished, validated store

    If the block raises, nothing is left behind. ``provenance`` is the history to record
    (parent's entries plus the new one), ``source`` where the data came from.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        spec: Spec,
        *,
        overwrite: bool = False,
        source: Mapping[str, Any] | None = None,
        provenance: Sequence[Mapping[str, Any]] = (),
        inputs: Sequence[str | os.PathLike] = (),
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        compression: str = "lz4",
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        spec.check()

        self.url = str(path) if is_url(path) else None
        self.url_overwrite = overwrite
        if self.url is not None:  # written locally (as the URL's mirror), uploaded on close
            check_remote_output(self.url, overwrite)
            path = mirror_dir(self.url)
            overwrite = True
        self.path = check_output_path(path, overwrite=overwrite, inputs=inputs)
        self.spec = spec
        self.overwrite = overwrite
        self.source = dict(source or {})
        self.provenance = [dict(p) for p in provenance]
        self.extra_attrs = dict(attrs or {})
        codec_for("num", compression)  # refuse an unknown compression before anything is written
        self.compression = compression
        self.names = spec.arrays()
        row_bytes = {
            n: spec.dtype(n).itemsize * int(np.prod(spec.row_shape(n), dtype=np.int64))
            for n in self.names
        }
        # one chunk length for every array, set by the widest row: blocks of whole chunks can then
        # be written without read-modify-write, and the write buffer is one block of all arrays
        self.block_rows = chunk_rows_for(max(row_bytes.values()), chunk_bytes)
        self.chunk_rows = {n: self.block_rows for n in self.names}
        self._buf: dict[str, list[np.ndarray]] = {n: [] for n in self.names}
        self._buf_rows = 0
        self._rows = 0
        self._offsets: list[int] = [0]
        self._origin: list[int] = []
        self._won: list[bool | None] = []
        self._max_len = 0
        self._returns: list[float] = []
        self._ends: list[bool] = []  # per episode: terminated (True) or truncated
        self._fp = Fingerprint([*self.names, OFFSETS, "episode_origin"])
        self._tmp: Path | None = None
        self._group = None
        self._arrays: dict[str, Any] = {}
        self._layouts: dict[str, Any] = {}
        self._encoders: dict[str, Any] = {}
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> EpisodeWriter:
        try:
            self.open()
        except BaseException:  # Ctrl-C while the folder is being laid out: nothing is left
            self.abort()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        import zarr

        # a store's marker is its root attribute ``format`` (no extra file: stores stay pure Zarr)
        self._tmp = partial_path(self.path)
        self._tmp.mkdir()
        with deferred_interrupt():  # zarr writes metadata on its own thread: let it finish
            self._create_arrays(zarr)

    def _create_arrays(self, zarr) -> None:
        self._group = zarr.open_group(str(self._tmp), mode="w", zarr_format=3)
        for n in self.names:
            dtype = self.spec.dtype(n)
            shape = self.spec.row_shape(n)
            self._arrays[n] = self._group.create_array(
                n,
                shape=(0, *shape),
                chunks=(self.chunk_rows[n], *shape),
                dtype=dtype,
                compressors=codec_for("bool" if dtype == np.bool_ else "num", self.compression),
                fill_value=0,
            )
            layout = chunk_layout(self._tmp, n, (0, *shape))
            if layout is None:  # pragma: no cover - our own metadata always has this layout
                raise RuntimeError(f"unexpected Zarr layout for array {n!r}")
            self._layouts[n] = layout
            self._encoders[n] = encoder_for(layout["blosc"], dtype.itemsize)

    def abort(self) -> None:
        self._closed = True  # queued chunk writes see this and write nothing
        if self._tmp is not None and self._tmp.exists():
            shutil.rmtree(self._tmp, ignore_errors=True)

    # -- appending -------------------------------------------------------------------------
    def append_episode(
        self, columns: Mapping[str, Any], *, origin: int = 0, won: bool | None = None
    ) -> None:
        """Append one episode given as per-transition columns (``obs`` (T, N, O), ...)."""
        cols = normalise_columns(columns, self.spec)
        n = cols["obs"].shape[0] if "obs" in cols else 0
        self.append_episodes(cols, np.array([n], dtype=np.int64), origins=[origin], won=[won])

    def append_episodes(
        self,
        columns: Mapping[str, Any],
        lengths: Sequence[int],
        *,
        origins: Sequence[int] | int = 0,
        won: Sequence[bool | None] | None = None,
    ) -> None:
        """Append several consecutive episodes: columns hold their rows back to back."""
        if self._group is None:
            raise RuntimeError("the writer is used outside 'with' (call open() first)")
        cols = normalise_columns(columns, self.spec)
        lengths = np.asarray(lengths, dtype=np.int64)
        ep = len(self._origin)
        where = f"(episodes {ep}..{ep + len(lengths) - 1} being written)"
        check_columns(cols, self.spec, where=where, row0=self._rows + self._buf_rows)
        n_rows = next(iter(cols.values())).shape[0]
        if (lengths <= 0).any():
            raise SchemaError(f"an episode has no transitions {where}; episodes need >= 1 step")
        if int(lengths.sum()) != n_rows:
            raise SchemaError(
                f"episode lengths sum to {int(lengths.sum())} but {n_rows} rows were given {where}"
            )
        local = np.concatenate([[0], np.cumsum(lengths)])
        check_episode_ends(local, cols["terminated"], cols["truncated"])
        if isinstance(origins, int):
            origins = [origins] * len(lengths)
        if len(origins) != len(lengths):
            raise SchemaError(f"got {len(origins)} origins for {len(lengths)} episodes {where}")
        won = [None] * len(lengths) if won is None else list(won)
        if len(won) != len(lengths):
            raise SchemaError(f"got {len(won)} win flags for {len(lengths)} episodes {where}")
        start = self._offsets[-1]
        self._offsets.extend((start + local[1:]).tolist())
        self._origin.extend(int(o) for o in origins)
        self._won.extend(won)
        self._returns.extend(episode_returns(local, cols["rewards"]).tolist())
        self._ends.extend(cols["terminated"][local[1:] - 1].tolist())
        self._max_len = max(self._max_len, int(lengths.max()))
        for n in self.names:
            self._buf[n].append(cols[n])
        self._buf_rows += n_rows
        while self._buf_rows >= self.block_rows:
            self._flush(self.block_rows)

    def _flush(self, rows: int) -> None:
        """Write the first ``rows`` buffered rows: chunks encoded and hashed in the pool.

        ``rows`` is a whole number of chunks except at close. Chunk files are written where
        zarr expects them (see :func:`chunk_layout`); the arrays' shapes are set at close.
        """
        if rows == 0:
            return
        tasks = []
        for n in self.names:
            parts = self._buf[n]
            data = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
            head, tail = data[:rows], data[rows:]
            layout = self._layouts[n]
            step = layout["rows"]
            first = self._rows // step
            for k, lo in enumerate(range(0, rows, step)):
                tasks.append(
                    thread_pool().submit(
                        self._write_chunk, n, layout, first + k, head[lo : lo + step]
                    )
                )
            tasks.append(thread_pool().submit(self._fp.update, n, head))
            self._buf[n] = [tail] if tail.shape[0] else []
        try:
            for t in tasks:
                t.result()
        except BaseException:  # Ctrl-C or a failed chunk: let no writer outlive the cleanup
            for t in tasks:
                t.cancel()

            wait(tasks)
            raise
        self._rows += rows
        self._buf_rows -= rows

    def _write_chunk(self, name: str, layout: Mapping[str, Any], c: int, rows: np.ndarray) -> None:
        if self._closed:  # aborted while this task was queued
            return
        step = layout["rows"]
        if rows.shape[0] < step:  # zarr stores edge chunks at full size, padded with fill
            full = np.zeros((step, *rows.shape[1:]), dtype=rows.dtype)
            full[: rows.shape[0]] = rows
            rows = full
        data = np.ascontiguousarray(rows)
        encoded = self._encoders[name].encode(data)
        path = chunk_path(layout, c)
        if not layout["dir"].is_dir():  # the partial store was removed (aborted): write nothing
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded)

    # -- finishing -------------------------------------------------------------------------
    @property
    def n_episodes(self) -> int:
        return len(self._origin)

    @property
    def n_rows(self) -> int:
        return self._rows + self._buf_rows

    def close(self):
        """Flush, write episode arrays and attributes, then atomically move into place."""

        if self._closed:
            return self.path
        try:
            if not self._origin:
                raise SchemaError("no episodes were written; refusing to create an empty store")
            self._flush(self._buf_rows)
            # zarr writes this metadata on its own thread: a Ctrl-C waits for it, so the
            # clean-up below never races a late write
            with deferred_interrupt():
                for n in self.names:  # metadata only: every chunk file is on disk already
                    arr = self._arrays[n]
                    arr.resize((self._rows, *arr.shape[1:]))
                offsets = np.asarray(self._offsets, dtype=np.int64)
                origin = np.asarray(self._origin, dtype=np.uint8)
                known = [w for w in self._won if w is not None]
                won = None
                if known and len(known) == len(self._won):
                    won = np.asarray(self._won, dtype=bool)
                ep_arrays = {OFFSETS: offsets, "episode_origin": origin}
                if won is not None:
                    ep_arrays["episode_won"] = won
                    self._fp.add("episode_won")
                for n, a in ep_arrays.items():
                    self._group.create_array(
                        n,
                        data=a,
                        chunks=(max(1, min(a.shape[0], 1 << 16)),),
                        compressors=codec_for(
                            "bool" if a.dtype == np.bool_ else "num", self.compression
                        ),
                    )
                    self._fp.update(n, a)
                shapes = {n: self._arrays[n].shape for n in self.names}
                shapes.update({n: a.shape for n, a in ep_arrays.items()})
                dtypes = {n: self.spec.dtype(n) for n in self.names}
                dtypes.update({n: a.dtype for n, a in ep_arrays.items()})
                summary = episode_stats(
                    np.diff(offsets),
                    np.asarray(self._returns),
                    origin,
                    won,
                    np.asarray(self._ends, dtype=bool),
                )
                spec = self.spec.replace(max_episode_len=self._max_len)
                spec_json = json.loads(json.dumps(spec.to_json()))  # as a reader will see it
                attrs = {
                    "format": FORMAT_NAME,
                    "schema_version": SCHEMA_VERSION,
                    "spec": spec_json,
                    "source": self.source,
                    "provenance": self.provenance,
                    "summary": summary,
                    "fingerprint": self._fp.hexdigest(shapes, dtypes, spec_json),
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    "marl_augment_version": package_version(),
                    "chunk_rows": self.chunk_rows,
                    **self.extra_attrs,
                }
                self._group.attrs.update(attrs)
            self._move_into_place()
            if self.url is not None:
                upload(self.path, self.url, self.url_overwrite)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def _move_into_place(self) -> None:

        assert self._tmp is not None
        if self.path.exists() and not self.overwrite:  # appeared while we were writing
            raise AlreadyExists(f"output {str(self.path)!r} appeared while writing; not replaced")
        swap_into_place(self._tmp, self.path, "store")
        self._tmp = None


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


@dataclass
class StoreContents:
    """Everything read from a store: attributes, spec, and (if kept) the arrays."""

    path: Path
    attrs: dict[str, Any]
    spec: Spec
    offsets: np.ndarray
    origin: np.ndarray
    won: np.ndarray | None
    columns: dict[str, np.ndarray] | None


def read_store(
    path: str | os.PathLike, *, validate: bool = True, keep: bool = True, progress: Any = None
) -> StoreContents:
    """Read (and by default fully validate) a store.

    With ``keep=False`` the arrays are streamed through validation and not retained (for
    ``info`` on datasets larger than memory). ``path`` may be an fsspec URL (read through a
    local mirror, :mod:`marl_augment.data.remote`).
    """

    path = mirror(str(path)) if is_url(path) else local_path(path)
    group = open_group(path)
    attrs = dict(group.attrs)
    if attrs.get("format") != FORMAT_NAME:
        raise SchemaError(
            f"{str(path)!r} is a Zarr group but not an episode store (format attribute missing)"
        )
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise SchemaError(
            f"store schema version {attrs.get('schema_version')} is not supported by this "
            f"marl-augment (which reads version {SCHEMA_VERSION}); upgrade marl-augment"
        )
    spec = Spec.from_json(attrs.get("spec", {}))
    names = spec.arrays()
    try:
        present = set(group.array_keys())
    except Exception as exc:  # an array's zarr.json is damaged
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SchemaError(
            f"store {str(path)!r} has damaged array metadata ({first}); re-create "
            f"it from its source"
        ) from None
    for n in [*names, OFFSETS, "episode_origin"]:
        if n not in present:
            raise SchemaError(f"array {n!r} is missing from store {str(path)!r}")
    arrays = {n: array_of(group, n) for n in names}
    n_rows = arrays["obs"].shape[0]
    for n, arr in arrays.items():
        dtype = spec.dtype(n)
        if arr.dtype != dtype:
            raise SchemaError(f"array {n!r} has dtype {arr.dtype}, expected {dtype}")
        if tuple(arr.shape[1:]) != spec.row_shape(n):
            raise SchemaError(
                f"array {n!r} has rows of shape {tuple(arr.shape[1:])}, expected "
                f"{spec.row_shape(n)}"
            )
        if arr.shape[0] != n_rows:
            raise SchemaError(
                f"array {n!r} has {arr.shape[0]} rows but 'obs' has {n_rows} (an array is "
                "truncated)"
            )
    offsets = read_array(array_of(group, OFFSETS), OFFSETS)
    check_offsets(offsets, n_rows)
    n_eps = offsets.shape[0] - 1
    origin = read_array(array_of(group, "episode_origin"), "episode_origin")
    if origin.shape != (n_eps,) or origin.dtype != np.uint8:
        raise SchemaError(
            f"array 'episode_origin' must be uint8 of shape ({n_eps},), got {origin.dtype} "
            f"{origin.shape}"
        )
    won = None
    if "episode_won" in present:
        won = read_array(array_of(group, "episode_won"), "episode_won")
        if won.shape != (n_eps,) or won.dtype != np.bool_:
            raise SchemaError(f"array 'episode_won' must be bool of shape ({n_eps},)")
    ep_arrays = {OFFSETS: offsets, "episode_origin": origin}
    if won is not None:
        ep_arrays["episode_won"] = won
    fp = Fingerprint([*names, *ep_arrays])
    reader = RowReader(Path(path), group, names)
    block = max(int(arrays[n].chunks[0]) for n in names)
    columns = None
    if keep:
        # everything at once (most parallel decode), then checks block by block on views while
        # the per-array hashes run in the thread pool (hashlib releases the GIL)
        columns = reader.read(0, n_rows)
        if validate:
            hashing = [thread_pool().submit(fp.update, n, columns[n]) for n in names]
            for lo in range(0, n_rows, block):
                hi = min(n_rows, lo + block)
                check_columns({n: c[lo:hi] for n, c in columns.items()}, spec, row0=lo)
                if progress is not None:
                    progress(hi - lo)
            for f in hashing:
                f.result()
        elif progress is not None:
            progress(n_rows)
    elif validate:
        step = block * max(1, (64 << 20) // max(1, block * _row_bytes(spec)))  # ~64 MiB at a time
        for lo in range(0, n_rows, step):
            hi = min(n_rows, lo + step)
            cols = reader.read(lo, hi)
            check_columns(cols, spec, row0=lo)
            for n in names:
                fp.update(n, cols[n])
            if progress is not None:
                progress(hi - lo)
    if validate:
        if columns is not None:
            check_episode_ends(offsets, columns["terminated"], columns["truncated"])
        else:
            term = read_array(arrays["terminated"], "terminated")
            trunc = read_array(arrays["truncated"], "truncated")
            check_episode_ends(offsets, term, trunc)
        for n, a in ep_arrays.items():
            fp.update(n, a)
        shapes = {n: tuple(arrays[n].shape) for n in names}
        shapes.update({n: a.shape for n, a in ep_arrays.items()})
        dtypes = {n: spec.dtype(n) for n in names}
        dtypes.update({n: a.dtype for n, a in ep_arrays.items()})
        recorded = str(attrs.get("fingerprint"))
        digest = fp.hexdigest(
            shapes, dtypes, attrs.get("spec") if recorded.startswith(SPEC_FINGERPRINT) else None
        )
        if recorded != digest:
            raise SchemaError(
                f"store {str(path)!r} content does not match its fingerprint (a chunk is missing, "
                f"truncated or was edited); re-create it from its source"
            )
    return StoreContents(Path(path), attrs, spec, offsets, origin, won, columns)


def _row_bytes(spec: Spec) -> int:
    return sum(
        spec.dtype(n).itemsize * int(np.prod(spec.row_shape(n), dtype=np.int64))
        for n in spec.arrays()
    )


def iter_blocks(
    columns: Mapping[str, np.ndarray], offsets: np.ndarray, block_rows: int
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray, slice]]:
    """Split in-memory columns into groups of whole episodes of about ``block_rows`` rows.

    Yields (columns block, episode lengths, episode slice).
    """
    n_eps = offsets.shape[0] - 1
    e = 0
    while e < n_eps:
        target = offsets[e] + block_rows
        e2 = int(np.searchsorted(offsets, target, side="right") - 1)
        e2 = max(e2, e + 1)
        e2 = min(e2, n_eps)
        lo, hi = int(offsets[e]), int(offsets[e2])
        yield (
            {n: a[lo:hi] for n, a in columns.items()},
            np.diff(offsets[e : e2 + 1]),
            slice(e, e2),
        )
        e = e2
