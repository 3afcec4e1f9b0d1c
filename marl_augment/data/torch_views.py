"""torch views of a dataset: an ``IterableDataset`` of ready-made batches and its DataLoader.

Batches are gathered with numpy fancy indexing from the in-memory columns, so a batch costs one
gather per field; nothing is materialised for the whole dataset (windows are index pairs).
Shuffling is seeded by ``(seed, epoch)``; the loader advances the epoch on every ``iter()``.
With several DataLoader workers, every worker takes a disjoint, strided share of the epoch's
batches, so each unit is seen exactly once per epoch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import ConfigError
from .windows import gather_windows, sequence_starts


class EpisodeSource(Protocol):
    """What a torch view reads of a :class:`~marl_augment.data.dataset.Dataset` (its columns
    and episode bounds), so this module does not import the one that imports it."""

    columns: Mapping[str, np.ndarray]
    episode_offsets: np.ndarray
    episode_lengths: np.ndarray
    num_transitions: int

    def check_fields(self, fields: Sequence[str] | None) -> list[str]: ...


VIEWS = ("transitions", "sequences", "episodes")
_NEXT = ("obs", "state", "avail_actions", "alive")


class EpisodeIterable(IterableDataset):
    """Yields dicts of tensors, one dict per batch, for one of three views of a dataset."""

    def __init__(
        self,
        ds: EpisodeSource,
        view: str = "transitions",
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        length: int = 20,
        period: int | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        if view not in VIEWS:
            raise ConfigError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.view = view
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        self.fields = ds.check_fields(fields)
        self._cols = {n: ds.columns[n] for n in self.fields}
        self._offsets = ds.episode_offsets
        self._lengths = ds.episode_lengths
        if view == "transitions":
            self._n = ds.num_transitions
            self._next = [f for f in _NEXT if f in self._cols]
            self._is_last = np.zeros(self._n, dtype=bool)
            self._is_last[self._offsets[1:] - 1] = True
        elif view == "sequences":
            self.length = int(length)
            self._ep, self._start = sequence_starts(self._lengths, self.length, period)
            self._n = int(self._ep.shape[0])
        else:
            self.length = int(self._lengths.max())
            self._n = len(ds)

    def set_epoch(self, epoch: int) -> None:
        """Choose the next iteration's shuffle (the loader from ``Dataset.torch`` does this)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of batches in one epoch (over all workers)."""
        full, rest = divmod(self._n, self.batch_size)
        return full + (0 if self.drop_last or rest == 0 else 1)

    def _order(self) -> np.ndarray:
        if self.shuffle:
            return np.random.default_rng([self.seed, self.epoch]).permutation(self._n)
        return np.arange(self._n)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        order = self._order()
        batches = [order[i : i + self.batch_size] for i in range(0, self._n, self.batch_size)]
        if self.drop_last and batches and batches[-1].shape[0] < self.batch_size:
            batches.pop()
        info = get_worker_info()
        if info is not None:
            batches = batches[info.id :: info.num_workers]
        for idx in batches:
            yield {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.batch(idx).items()}

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """The numpy batch for the given unit indices (rows, windows or episodes)."""
        if self.view == "transitions":
            out = {n: a[idx] for n, a in self._cols.items()}
            last = self._is_last[idx]
            nxt = np.where(last, idx, idx + 1)
            for n in self._next:
                a = self._cols[n][nxt]
                a[last] = 0
                out["next_" + n] = a
            out["index"] = idx
            return out
        if self.view == "sequences":
            ep, start = self._ep[idx], self._start[idx]
        else:
            ep, start = idx, np.zeros(idx.shape[0], dtype=np.int64)
        return gather_windows(
            self._cols, self._offsets, self._lengths, ep, start, self.length, self.fields
        )


class _EpochLoader(DataLoader):
    """A DataLoader that advances its dataset's shuffle epoch on every ``iter()``."""

    def __init__(self, dataset: EpisodeIterable, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=None, **kwargs)
        self._epoch = 0

    def __iter__(self):
        self.dataset.set_epoch(self._epoch)
        self._epoch += 1
        return super().__iter__()


def make_loader(ds: EpisodeSource, view: str, *, num_workers: int = 0, **kwargs: Any) -> DataLoader:
    loader_keys = {
        "pin_memory",
        "persistent_workers",
        "prefetch_factor",
        "timeout",
        "multiprocessing_context",
        "worker_init_fn",
    }
    loader_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in loader_keys}
    if loader_kwargs.get("persistent_workers"):
        raise ConfigError("persistent_workers would freeze the shuffle order; leave it off")
    if num_workers and "multiprocessing_context" not in loader_kwargs and "jax" in sys.modules:
        # forking a process that runs JAX's threads can deadlock: start workers from a server
        loader_kwargs["multiprocessing_context"] = "forkserver"
    return _EpochLoader(
        EpisodeIterable(ds, view, **kwargs), num_workers=num_workers, **loader_kwargs
    )
