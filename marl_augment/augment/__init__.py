"""Augmenters: make synthetic episodes from a dataset and write D_real ∪ D_syn.

    aug = marl_augment.make_augmenter("rad-s", alpha=0.8, beta=1.2)
    new = aug.fit(ds).augment(ds, scale=5.0, seed=0, out="3m-rad-s.zarr")

Registered lazily by name; ``keys()`` lists them. Write your own by subclassing
:class:`~marl_augment.augment.base.Augmenter`; test it with
:class:`marl_augment.testing.AugmenterTests`.
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry

AUGMENTERS: Registry[Any] = Registry("augmenter")
AUGMENTERS.register(
    "rad-s",
    "marl_augment.augment.rad:RadS",
    doc="RAD-s: copies of real episodes, observations and state scaled by one z ~ U[alpha, beta] "
    "per episode",
)
AUGMENTERS.register(
    "rad-m",
    "marl_augment.augment.rad:RadM",
    doc="RAD-m: copies of real episodes, one z ~ U[alpha, beta] per observation / state dimension",
)
AUGMENTERS.register(
    "return-replicate",
    "marl_augment.augment.replicate:ReturnReplicate",
    doc="DOM2's augmentation: episodes replicated once per return threshold they reach",
)
AUGMENTERS.register(
    "eaq",
    "marl_augment.augment.eaq.augmenter:EAQ",
    doc="EAQ: Conv1D diffusion over whole episodes, guided by the Q_tot loss (lam > 0)",
)
AUGMENTERS.register(
    "eaq-q",
    "marl_augment.augment.eaq.augmenter:EAQNoQ",
    doc="EAQ without Q_tot guidance (lam = 0): the paper's EAQ⁻Q ablation",
)


def keys() -> list[str]:
    return AUGMENTERS.keys()


def keys_for(action_kind: str) -> list[str]:
    """The augmenters that handle data of ``action_kind`` (``discrete``/``continuous``)."""
    return [k for k in AUGMENTERS.keys() if action_kind in AUGMENTERS.get(k).action_kinds]


def make_augmenter(name: str, **config: Any):
    """An augmenter; ``config`` fills its ``Config`` dataclass (unknown options refused)."""
    return AUGMENTERS.get(name)(**config)


def load_augmenter(directory):
    """A fitted augmenter saved with ``Augmenter.save``."""
    from .base import Augmenter

    return Augmenter.load(directory)


__all__ = ["AUGMENTERS", "keys", "keys_for", "load_augmenter", "make_augmenter"]
