"""RAD-s and RAD-m (Laskin et al. 2020, as used in the EAQ paper §4.2).

Synthetic episodes are copies of real ones (drawn uniformly with replacement) whose
observations and global state are multiplied by z ~ U[alpha, beta]: one scalar per episode
(RAD-s) or one value per observation / state dimension (RAD-m), shared by every agent and time
step of the episode. Actions, rewards, masks and episode ends are unchanged. Zero-padded
observation dimensions and dead agents' zero rows stay zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..data.dataset import Dataset, _episode_rows
from ..errors import ConfigError
from .base import Augmenter


@dataclass
class RadConfig:
    """Options of RAD-s / RAD-m."""

    alpha: float = 0.8
    """Lower bound of the scaling factor z (paper: 0.8)."""
    beta: float = 1.2
    """Upper bound of the scaling factor z (paper: 1.2)."""
    scale_state: bool = True
    """Also scale the global state (RAD scales 'the state' the agents see)."""


class _Rad(Augmenter):
    Config: ClassVar[type] = RadConfig
    refit_on_augment = True
    per_dimension: ClassVar[bool] = False

    def check_config(self) -> None:
        c = self.config
        if not 0 < c.alpha <= c.beta:
            raise ConfigError(f"need 0 < alpha <= beta, got alpha={c.alpha}, beta={c.beta}")

    def _fit(self, ds: Dataset, progress: Any = None) -> None:
        self._ds = ds

    def _sample(self, n_episodes: int, rng: np.random.Generator, seed: int) -> Dataset:
        ds = self._source()
        c = self.config
        idx = rng.integers(0, len(ds), size=n_episodes)
        lengths = ds.episode_lengths[idx]
        rows = _episode_rows(ds.episode_offsets, idx)
        cols = {k: v[rows] for k, v in ds.columns.items()}
        ep_of_row = np.repeat(np.arange(n_episodes), lengths)
        o_dim = ds.spec.obs_dim
        if self.per_dimension:
            z_obs = rng.uniform(c.alpha, c.beta, size=(n_episodes, o_dim)).astype(np.float32)
            z_obs_rows = z_obs[ep_of_row][:, None, :]
        else:
            z = rng.uniform(c.alpha, c.beta, size=n_episodes).astype(np.float32)
            z_obs_rows = z[ep_of_row][:, None, None]
        cols["obs"] = (cols["obs"] * z_obs_rows).astype(np.float32)
        if ds.spec.has_state and c.scale_state:
            if self.per_dimension:
                z_state = rng.uniform(c.alpha, c.beta, size=(n_episodes, ds.spec.state_dim)).astype(
                    np.float32
                )
                cols["state"] = (cols["state"] * z_state[ep_of_row]).astype(np.float32)
            else:
                cols["state"] = (cols["state"] * z[ep_of_row][:, None]).astype(np.float32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        won = None if ds.episode_won is None else ds.episode_won[idx]
        self.last_source_episodes = idx
        return Dataset(
            ds.spec, cols, offsets, np.ones(n_episodes, np.uint8), won=won, attrs=ds.attrs
        )

    def _source(self) -> Dataset:
        ds = getattr(self, "_ds", None)
        if ds is None:
            raise ConfigError(
                f"{self.name} copies real episodes: fit it on the dataset in this "
                f"process (a saved RAD augmenter keeps only its config)"
            )
        return ds


class RadS(_Rad):
    """RAD-s: one scaling factor per episode."""

    name = "rad-s"
    per_dimension = False


class RadM(_Rad):
    """RAD-m: one scaling factor per observation / state dimension."""

    name = "rad-m"
    per_dimension = True
