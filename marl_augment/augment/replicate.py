"""DOM2-style return replication (Li et al. 2023, "Beyond Conservatism", Algorithm 1).

Each real episode is replicated once for every threshold of a list that its return reaches,
so better episodes appear more often. Thresholds are given, or taken as quantiles of the
dataset's returns. ``augment(ds, scale=None)`` writes exactly that multiset (the method's own
size); with a ``scale`` it draws that many episodes from the multiset (seeded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..data.dataset import Dataset, _episode_rows
from ..errors import ConfigError
from .base import Augmenter


@dataclass
class ReturnReplicateConfig:
    """Options of return-replicate."""

    thresholds: list[float] | None = None
    """Return thresholds; None: the dataset's return quantiles below."""
    quantiles: list[float] = field(default_factory=lambda: [0.5, 0.75, 0.9])
    """Quantiles of the returns used as thresholds when none are given."""


class ReturnReplicate(Augmenter):
    name = "return-replicate"
    Config: ClassVar[type] = ReturnReplicateConfig
    refit_on_augment = True

    def check_config(self) -> None:
        q = self.config.quantiles
        if self.config.thresholds is None and (not q or any(not 0 <= x <= 1 for x in q)):
            raise ConfigError(f"quantiles must be in [0, 1], got {q}")

    def _fit(self, ds: Dataset, progress: Any = None) -> None:
        returns = ds.episode_returns
        th = self.config.thresholds
        self.thresholds = (
            np.asarray(th, dtype=np.float64)
            if th is not None
            else np.quantile(returns, self.config.quantiles)
        )
        copies = (returns[:, None] >= self.thresholds[None, :]).sum(1)
        self.multiset = np.repeat(np.arange(len(ds)), copies)
        if self.multiset.size == 0:
            raise ConfigError(
                f"no episode reaches any threshold {self.thresholds.tolist()}; lower them"
            )
        self._ds = ds

    def natural_size(self) -> int | None:
        return int(self.multiset.size)

    def _sample(self, n_episodes: int, rng: np.random.Generator, seed: int) -> Dataset:
        ds = self._ds
        if n_episodes == self.multiset.size:
            idx = self.multiset
        else:
            idx = rng.choice(self.multiset, size=n_episodes, replace=True)
        lengths = ds.episode_lengths[idx]
        rows = _episode_rows(ds.episode_offsets, idx)
        cols = {k: v[rows] for k, v in ds.columns.items()}
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        won = None if ds.episode_won is None else ds.episode_won[idx]
        return Dataset(
            ds.spec, cols, offsets, np.ones(n_episodes, np.uint8), won=won, attrs=ds.attrs
        )

    def _facts(self) -> dict[str, Any]:
        return {"thresholds": self.thresholds.tolist()}
