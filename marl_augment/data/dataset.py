"""The dataset API: what augmenters, offline algorithms and other libraries consume.

A :class:`Dataset` is an immutable, in-memory view of an episode store (or of a selection /
concatenation of stores). Everything that derives a new dataset (``subsample``, ``where``,
``concat``) returns a new object and records the operation, and :meth:`Dataset.save` writes it
to a new store with that operation appended to the provenance.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import package_version
from ..errors import ConfigError, SchemaError
from .schema import TRANSITION_ARRAYS, Spec, episode_returns, episode_stats
from .store import EpisodeWriter, iter_blocks, read_store
from .windows import gather_windows, sequence_starts

ORIGIN_REAL = 0


@dataclass(frozen=True)
class Episode:
    """One episode as numpy views: arrays have the episode's length T on axis 0."""

    index: int
    origin: int
    won: bool | None
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    state: np.ndarray | None = None
    avail_actions: np.ndarray | None = None
    alive: np.ndarray | None = None
    agent_rewards: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def return_(self) -> float:
        """Undiscounted team return."""
        return float(self.rewards.astype(np.float64).sum())

    def columns(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n) for n in TRANSITION_ARRAYS if getattr(self, n) is not None}


class Dataset:
    """Episodes of a multi-agent dataset, with views for every kind of learner.

    Build one with :func:`marl_augment.load` (a store path or a dataset name) or
    :meth:`Dataset.open`. All arrays are read-only.
    """

    def __init__(
        self,
        spec: Spec,
        columns: Mapping[str, np.ndarray],
        offsets: np.ndarray,
        origin: np.ndarray,
        *,
        won: np.ndarray | None = None,
        attrs: Mapping[str, Any] | None = None,
        path: Path | None = None,
        pending: Sequence[Mapping[str, Any]] = (),
        inputs: Sequence[Path] = (),
    ) -> None:
        self._spec = spec
        # columns may be a zero-argument loader: the arrays are then read on first use
        self._loader = columns if callable(columns) else None
        self._cols_data = (
            None if callable(columns) else {n: _readonly(a) for n, a in columns.items()}
        )
        self._offsets = _readonly(np.asarray(offsets, dtype=np.int64))
        self._origin = _readonly(np.asarray(origin, dtype=np.uint8))
        self._won = None if won is None else _readonly(np.asarray(won, dtype=bool))
        self._attrs = dict(attrs or {})
        self._path = path
        self._pending = [dict(p) for p in pending]
        # stores this dataset was read from: a save() never writes over any of them
        self._inputs = tuple(inputs) or ((path,) if path else ())

    @property
    def _cols(self) -> dict[str, np.ndarray]:
        if self._cols_data is None:
            self._cols_data = {n: _readonly(a) for n, a in self._loader().items()}
            self._loader = None
        return self._cols_data

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        *,
        validate: bool = True,
        lazy: bool = False,
        progress: Any = None,
    ) -> Dataset:
        """Read a store into memory; with ``validate`` (default) check it fully first.

        ``lazy=True`` (only without validation) reads the per-transition arrays on first use:
        episode counts, offsets, provenance and summary are available without loading them.
        """
        if lazy and not validate:
            c = read_store(path, validate=False, keep=False)

            def load() -> dict[str, np.ndarray]:
                return read_store(path, validate=False, keep=True).columns or {}

            return cls(c.spec, load, c.offsets, c.origin, won=c.won, attrs=c.attrs, path=c.path)
        c = read_store(path, validate=validate, keep=True, progress=progress)
        return cls(
            c.spec, c.columns or {}, c.offsets, c.origin, won=c.won, attrs=c.attrs, path=c.path
        )

    # -- basic facts -----------------------------------------------------------------------
    @property
    def spec(self) -> Spec:
        return self._spec

    def __len__(self) -> int:
        return int(self._offsets.shape[0] - 1)

    @property
    def num_transitions(self) -> int:
        return int(self._offsets[-1])

    @property
    def path(self) -> Path | None:
        """Where the store lives (None for a derived dataset not saved yet)."""
        return self._path

    @property
    def sources(self) -> tuple[Path, ...]:
        """The stores this dataset was read from (a derived dataset keeps its parents'):
        nothing marl-augment writes may land in or over them."""
        return self._inputs

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._attrs)

    @property
    def provenance(self) -> list[dict[str, Any]]:
        return list(self._attrs.get("provenance", []))

    @property
    def source(self) -> dict[str, Any]:
        return dict(self._attrs.get("source", {}))

    @property
    def fingerprint(self) -> str | None:
        """Content fingerprint of the store (None for a derived dataset not saved yet)."""
        return None if self._pending else self._attrs.get("fingerprint")

    @property
    def columns(self) -> Mapping[str, np.ndarray]:
        """The per-transition arrays (rows of all episodes back to back)."""
        return dict(self._cols)

    @property
    def episode_offsets(self) -> np.ndarray:
        return self._offsets

    @property
    def episode_origin(self) -> np.ndarray:
        return self._origin

    @property
    def episode_won(self) -> np.ndarray | None:
        return self._won

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self._offsets)

    @property
    def episode_returns(self) -> np.ndarray:
        return episode_returns(self._offsets, self._cols["rewards"])

    def __repr__(self) -> str:
        where = f" at {str(self._path)!r}" if self._path else ""
        return (
            f"Dataset({self._spec.env_id!r}, episodes={len(self)}, "
            f"transitions={self.num_transitions}, agents={self._spec.n_agents}{where})"
        )

    # -- episodes --------------------------------------------------------------------------
    def episode(self, i: int) -> Episode:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range for a dataset of {n} episodes")
        i %= n
        lo, hi = int(self._offsets[i]), int(self._offsets[i + 1])
        cols = {k: v[lo:hi] for k, v in self._cols.items()}
        return Episode(
            index=i,
            origin=int(self._origin[i]),
            won=None if self._won is None else bool(self._won[i]),
            **cols,
        )

    def episodes(self) -> Iterator[Episode]:
        """Iterate over episodes in store order."""
        for i in range(len(self)):
            yield self.episode(i)

    __iter__ = episodes

    # -- whole-episode view ----------------------------------------------------------------
    def padded(
        self,
        max_len: int | None = None,
        *,
        multiple_of: int = 1,
        fields: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """All episodes as (E, T_max, ...) arrays, zero padded, with ``mask`` (E, T_max).

        ``max_len`` defaults to the longest episode; longer episodes are refused rather than cut.
        ``multiple_of`` rounds T_max up (e.g. to what a U-Net's down-sampling needs).
        """
        lengths = self.episode_lengths
        longest = int(lengths.max()) if lengths.size else 0
        t_max = longest if max_len is None else int(max_len)
        if t_max < longest:
            raise ConfigError(f"max_len={t_max} is shorter than the longest episode ({longest})")
        if multiple_of > 1:
            t_max = -(-t_max // multiple_of) * multiple_of
        return _windows(
            self, np.arange(len(self)), np.zeros(len(self), dtype=np.int64), t_max, fields
        )

    def check_fields(self, fields: Sequence[str] | None) -> list[str]:
        """``fields`` (all of them when None), or one line naming those this dataset lacks."""
        if fields is None:
            return list(self._cols)
        unknown = [f for f in fields if f not in self._cols]
        if unknown:
            raise ConfigError(f"unknown field(s) {unknown}; this dataset has {list(self._cols)}")
        return list(fields)

    # -- recurrent-learner view ------------------------------------------------------------
    def sequence_index(
        self, length: int, period: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(episode, start step) of every window :meth:`sequences` yields."""
        return sequence_starts(self.episode_lengths, length, period)

    def sequences(
        self, length: int = 20, period: int | None = None, *, fields: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Fixed-length windows for recurrent learners: (W, length, ...) arrays plus ``mask``.

        Windows start every ``period`` steps (default: ``length``, no overlap) inside each
        episode; the last window of an episode is aligned to its end so every step is covered
        and only episodes shorter than ``length`` are padded. ``episode`` and ``start`` say where
        each window comes from, ``first`` whether it begins at the episode's first step (where a
        recurrent state should start from zeros).
        """
        ep, start = self.sequence_index(length, period)
        return _windows(self, ep, start, int(length), fields)

    # -- torch -----------------------------------------------------------------------------
    def torch(
        self,
        view: str = "transitions",
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        length: int = 20,
        period: int | None = None,
        fields: Sequence[str] | None = None,
        num_workers: int = 0,
        **loader_kwargs: Any,
    ):
        """A ``torch.utils.data.DataLoader`` yielding dicts of tensors.

        ``view``: ``"transitions"`` (rows, with ``next_*`` fields), ``"sequences"`` (windows
        of ``length`` every ``period`` steps, with ``mask``), or ``"episodes"`` (padded whole
        episodes with ``mask``). Shuffling is seeded and changes each epoch; with
        ``num_workers > 0`` each worker gets a disjoint share of every epoch.
        """
        from .torch_views import make_loader

        return make_loader(
            self,
            view,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            length=length,
            period=period,
            fields=fields,
            num_workers=num_workers,
            **loader_kwargs,
        )

    def torch_dataset(self, view: str = "transitions", **kwargs: Any):
        """The ``IterableDataset`` behind :meth:`torch` (for use in your own DataLoader)."""
        from .torch_views import EpisodeIterable

        return EpisodeIterable(self, view, **kwargs)

    # -- derivation ------------------------------------------------------------------------
    def select(
        self, episodes: Sequence[int] | np.ndarray, *, op: Mapping[str, Any] | None = None
    ) -> Dataset:
        """A new dataset made of the given episodes (in the given order)."""
        idx = np.asarray(episodes, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"episode index out of range for a dataset of {len(self)} episodes")
        if idx.size == 0:
            raise ConfigError("the selection is empty: a dataset needs at least one episode")
        lengths = self.episode_lengths[idx]
        rows = _episode_rows(self._offsets, idx)
        cols = {n: a[rows] for n, a in self._cols.items()}
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        pending = [*self._pending, *([dict(op)] if op else [])]
        return Dataset(
            self._spec,
            cols,
            offsets,
            self._origin[idx],
            won=None if self._won is None else self._won[idx],
            attrs=self._attrs,
            path=None,
            pending=pending,
            inputs=self._inputs,
        )

    def subsample(
        self, fraction: float | None = None, *, n_episodes: int | None = None, seed: int = 0
    ) -> Dataset:
        """A random subset of whole episodes (kept in their original order), seeded.

        Give ``fraction`` (0 < f <= 1; at least one episode is kept) or ``n_episodes``.
        """
        if (fraction is None) == (n_episodes is None):
            raise ConfigError("give exactly one of fraction= or n_episodes=")
        if fraction is not None:
            if not 0.0 < float(fraction) <= 1.0:
                raise ConfigError(f"fraction must be in (0, 1], got {fraction}")
            n = max(1, int(round(float(fraction) * len(self))))
        else:
            n = int(n_episodes)  # type: ignore[arg-type]
            if not 1 <= n <= len(self):
                raise ConfigError(f"n_episodes must be in 1..{len(self)}, got {n}")
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(self), size=n, replace=False))
        op = {
            "method": "subsample",
            "config": {"fraction": fraction, "n_episodes": n},
            "seed": int(seed),
            "parent_fingerprint": self.fingerprint,
        }
        return self.select(idx, op=op)

    def where(self, origin: str | int = "real") -> Dataset:
        """Episodes of one origin: ``"real"``, ``"synthetic"``, or a provenance step number."""
        if origin == "real":
            keep = self._origin == ORIGIN_REAL
        elif origin == "synthetic":
            keep = self._origin != ORIGIN_REAL
        elif isinstance(origin, (int, np.integer)) and not isinstance(origin, bool):
            keep = self._origin == int(origin)
        else:
            raise ConfigError(f"origin must be 'real', 'synthetic' or an int, got {origin!r}")
        if not keep.any():
            raise ConfigError(f"no episodes have origin {origin!r} in {self!r}")
        return self.select(
            np.flatnonzero(keep),
            op={
                "method": "where",
                "config": {"origin": origin},
                "parent_fingerprint": self.fingerprint,
            },
        )

    # -- statistics ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Episode count, transitions, return and length distribution, win rate when known."""
        ends = self._cols["terminated"][self._offsets[1:] - 1]
        return episode_stats(
            self.episode_lengths, self.episode_returns, self._origin, self._won, ends
        )

    # -- writing ---------------------------------------------------------------------------
    def save(
        self,
        path: str | os.PathLike,
        *,
        overwrite: bool = False,
        provenance: Mapping[str, Any] | None = None,
        block_rows: int = 1 << 16,
        progress: Any = None,
    ) -> Dataset:
        """Write this dataset to a new store and return it opened from there.

        Derivation steps (subsample, where, concat) and ``provenance`` (a new entry, e.g. an
        augmentation) are appended to the parent's provenance.
        """
        entries = [*self._pending, *([dict(provenance)] if provenance else [])]
        history = self.provenance
        for entry in entries:
            history.append(make_provenance_entry(step=len(history) + 1, **entry))
        with StoreWriter(
            path,
            self._spec,
            overwrite=overwrite,
            source=self.source,
            provenance=history,
            inputs=self._inputs,
        ) as w:
            for cols, lengths, eps in iter_blocks(self._cols, self._offsets, block_rows):
                w.append_episodes(
                    cols,
                    lengths,
                    origins=self._origin[eps].tolist(),
                    won=None if self._won is None else self._won[eps].tolist(),
                )
                if progress is not None:
                    progress(int(lengths.sum()))
        return w.result


def make_provenance_entry(
    *,
    step: int,
    method: str,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    parent_fingerprint: Any = None,
    **extra: Any,
) -> dict[str, Any]:
    """One provenance record: what was done, with which config and seed, to which parent."""
    entry = {
        "step": int(step),
        "method": method,
        "config": dict(config or {}),
        "seed": seed,
        "parent_fingerprint": parent_fingerprint,
        "marl_augment_version": package_version(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    entry.update(extra)
    return entry


def concat(datasets: Sequence[Dataset]) -> Dataset:
    """Episodes of several datasets with the same spec, one after another."""
    datasets = list(datasets)
    if not datasets:
        raise ConfigError("concat needs at least one dataset")
    first = datasets[0]
    for i, d in enumerate(datasets[1:], start=1):
        a, b = first.spec, d.spec
        for f in (
            "env_id",
            "agent_ids",
            "obs_dim",
            "n_actions",
            "state_dim",
            "has_avail_actions",
            "has_alive",
            "has_agent_rewards",
            "action_kind",
            "agent_n_actions",
            "action_low",
            "action_high",
        ):
            if getattr(a, f) != getattr(b, f):
                raise SchemaError(
                    f"cannot concat: dataset {i} has {f}={getattr(b, f)!r} but dataset 0 has "
                    f"{getattr(a, f)!r}"
                )
    cols = {n: np.concatenate([d._cols[n] for d in datasets]) for n in first._cols}
    lengths = np.concatenate([d.episode_lengths for d in datasets])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    origin = np.concatenate([d._origin for d in datasets])
    won = None
    if all(d._won is not None for d in datasets):
        won = np.concatenate([d._won for d in datasets])
    spec = first.spec.replace(max_episode_len=int(lengths.max()))
    inputs = tuple(p for d in datasets for p in d._inputs)
    op = {
        "method": "concat",
        "config": {"episodes": [len(d) for d in datasets]},
        "parent_fingerprint": [d.fingerprint for d in datasets],
    }
    pending = [*first._pending, op]
    return Dataset(
        spec, cols, offsets, origin, won=won, attrs=first._attrs, pending=pending, inputs=inputs
    )


# ---------------------------------------------------------------------------------------------
# helpers shared by the views
# ---------------------------------------------------------------------------------------------


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


def _episode_rows(offsets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Row indices of the given episodes, concatenated."""
    starts = offsets[idx]
    lengths = offsets[idx + 1] - starts
    total = int(lengths.sum())
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + shift


def _windows(
    ds: Dataset, ep: np.ndarray, start: np.ndarray, length: int, fields: Sequence[str] | None
) -> dict[str, np.ndarray]:
    fields = ds.check_fields(fields)
    return gather_windows(ds._cols, ds._offsets, ds.episode_lengths, ep, start, length, fields)


class StoreWriter(EpisodeWriter):
    """Streams episodes into a new episode store and gives it back as a :class:`Dataset`::

        with StoreWriter("out.zarr", spec) as w:
            w.append_episode({"obs": ..., "actions": ..., "rewards": ..., ...})
        ds = w.result   # the finished, validated store opened as a Dataset

    If the block raises, nothing is left behind. ``provenance`` is the history to record
    (parent's entries plus the new one), ``source`` where the data came from; see
    :class:`~marl_augment.data.store.EpisodeWriter` for the rest.
    """

    result: Dataset | None = None

    def close(self) -> Dataset:
        path = super().close()
        if self.result is None:
            # validated as it was written; arrays are read only if the caller uses them
            self.result = Dataset.open(path, validate=False, lazy=True)
        return self.result
