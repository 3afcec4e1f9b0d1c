from __future__ import annotations

from pathlib import Path

import pytest

from marl_augment.data.synthetic import smac_like_dataset


@pytest.fixture(autouse=True)
def _data_root(tmp_path_factory, monkeypatch):
    """Every test gets its own empty data root."""
    root = tmp_path_factory.mktemp("marl-augment-home")
    monkeypatch.setenv("MARL_AUGMENT_HOME", str(root))
    return root


@pytest.fixture(scope="session")
def smac_store(tmp_path_factory) -> Path:
    """A generated SMAC-3m-shaped store of 300 episodes (session-wide, read-only)."""
    path = tmp_path_factory.mktemp("stores") / "3m.zarr"
    smac_like_dataset(300, path, seed=0)
    return path


@pytest.fixture
def smac_ds(smac_store):
    from marl_augment import load

    return load(smac_store)
