"""Windows of consecutive steps inside episodes: where they start and which rows they hold.

The one windowing rule of the package: :meth:`Dataset.sequences`, the torch ``sequences`` view
and the learners' :class:`~marl_augment.algos.common.SequenceSampler` all use these functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import ConfigError


def sequence_starts(
    lengths: np.ndarray, length: int, period: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(episode, start) of every window of ``length`` steps, one every ``period`` steps (default
    ``length``: disjoint windows); an episode's last window is aligned to its end, so every step
    is in some window. Episodes shorter than ``length`` get one window (masked past their end)."""
    if length < 1:
        raise ConfigError(f"sequence length must be >= 1, got {length}")
    period = length if period is None else int(period)
    if period < 1:
        raise ConfigError(f"sequence period must be >= 1, got {period}")
    lengths = np.asarray(lengths, dtype=np.int64)
    span = np.maximum(lengths - length, 0)
    k = span // period + 1
    ep = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), k)
    local = np.arange(int(k.sum()), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
    start = local * period
    tail = (lengths > length) & (span % period != 0)
    if tail.any():
        te = np.flatnonzero(tail)
        ep = np.concatenate([ep, te])
        start = np.concatenate([start, lengths[te] - length])
        order = np.lexsort((start, ep))
        ep, start = ep[order], start[order]
    return ep, start


def window_rows(
    offsets: np.ndarray, lengths: np.ndarray, ep: np.ndarray, start: np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The transition rows (W, length) of windows of ``length`` steps from (episode, start) and
    their mask (True on steps of the episode; steps past it repeat its last row). The one
    windowing rule of the package: :func:`gather_windows` and the learners' sampler use it."""
    steps = start[:, None] + np.arange(length, dtype=np.int64)[None, :]
    mask = steps < lengths[ep][:, None]
    rows = offsets[ep][:, None] + np.minimum(steps, lengths[ep][:, None] - 1)
    return rows, mask


def gather_windows(
    cols: Mapping[str, np.ndarray],
    offsets: np.ndarray,
    lengths: np.ndarray,
    ep: np.ndarray,
    start: np.ndarray,
    length: int,
    fields: Sequence[str],
) -> dict[str, np.ndarray]:
    """Windows of ``length`` steps from (episode, start); steps past the end are zero, masked."""
    rows, mask = window_rows(offsets, lengths, ep, start, length)
    out: dict[str, np.ndarray] = {}
    for n in fields:
        a = cols[n][rows]
        if not mask.all():
            a[~mask] = 0
        out[n] = a
    out["mask"] = mask
    out["episode"] = ep
    out["start"] = start
    out["first"] = start == 0
    return out
