"""Conformance checks that every adapter's (and later augmenter's) tests reuse.

Like PettingZoo's ``parallel_api_test``, these are shipped with the package so third-party
adapters can be held to the same contract::

    from marl_augment.testing import AdapterTests

    class TestMyAdapter(AdapterTests):
        adapter = "my-format"
        def make_source(self, tmp_path): ...      # write a small input, return its path
        def expected_episodes(self, source): ...  # the episodes it holds, as column dicts
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from .data.dataset import Dataset
from .data.schema import TRANSITION_ARRAYS
from .errors import AlreadyExists


def assert_datasets_equal(a: Dataset, b: Dataset, *, check_origin: bool = True) -> None:
    """Same spec (ignoring extras), same episodes, bit for bit."""
    assert a.spec.agent_ids == b.spec.agent_ids, (a.spec.agent_ids, b.spec.agent_ids)
    assert a.spec.arrays() == b.spec.arrays(), (a.spec.arrays(), b.spec.arrays())
    np.testing.assert_array_equal(a.episode_offsets, b.episode_offsets)
    for n in a.spec.arrays():
        np.testing.assert_array_equal(a.columns[n], b.columns[n], err_msg=f"array {n!r} differs")
    if check_origin:
        np.testing.assert_array_equal(a.episode_origin, b.episode_origin)


def store_roundtrip_test(ds: Dataset, tmp_path: Path) -> Dataset:
    """Save ``ds`` to a new store, reopen it with full validation and compare everything."""
    out = Path(tmp_path) / "roundtrip.zarr"
    saved = ds.save(out)
    reopened = Dataset.open(out, validate=True)
    assert_datasets_equal(ds, reopened)
    assert reopened.fingerprint == saved.fingerprint
    # the same content written again has the same fingerprint
    again = ds.save(Path(tmp_path) / "roundtrip-again.zarr")
    assert again.fingerprint == saved.fingerprint
    return reopened


def file_digest(path: Path) -> str:
    """Hash of a file, or of every file under a folder (to prove inputs stay untouched)."""
    h = hashlib.sha256()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


class AdapterTests(ABC):
    """pytest mix-in: subclass, set ``adapter`` and implement the two hooks."""

    adapter: str = ""
    options: dict[str, Any] = {}

    @abstractmethod
    def make_source(self, tmp_path: Path) -> Path:
        """Write a small input for the adapter under ``tmp_path`` and return its path."""

    @abstractmethod
    def expected_episodes(self, source: Path) -> list[dict[str, np.ndarray]]:
        """The episodes ``source`` holds, as dicts of per-transition arrays (any subset)."""

    def _convert(self, src: Path, out: Path, **kw: Any) -> Dataset:
        from . import adapters

        return adapters.convert(self.adapter, src, out, **self.options, **kw)

    def test_converts_exactly(self, tmp_path: Path) -> None:
        src = self.make_source(tmp_path)
        ds = self._convert(src, tmp_path / "out.zarr")
        expected = self.expected_episodes(src)
        assert len(ds) == len(expected)
        for ep, want in zip(ds.episodes(), expected):
            for name, value in want.items():
                got = getattr(ep, name)
                assert got is not None, f"store lacks {name!r}"
                np.testing.assert_array_equal(
                    got, np.asarray(value, dtype=TRANSITION_ARRAYS[name][0]),
                    err_msg=f"episode {ep.index} array {name!r}")

    def test_output_validates_and_roundtrips(self, tmp_path: Path) -> None:
        src = self.make_source(tmp_path)
        ds = self._convert(src, tmp_path / "out.zarr")
        store_roundtrip_test(Dataset.open(ds.path, validate=True), tmp_path)

    def test_refuses_existing_output_and_keeps_input(self, tmp_path: Path) -> None:
        src = self.make_source(tmp_path)
        before = file_digest(src)
        out = tmp_path / "out.zarr"
        first = self._convert(src, out)
        try:
            self._convert(src, out)
        except AlreadyExists:
            pass
        else:  # pragma: no cover - the failure being tested for
            raise AssertionError("converting onto an existing output did not raise AlreadyExists")
        again = self._convert(src, out, overwrite=True)
        assert again.fingerprint == first.fingerprint
        assert file_digest(src) == before

    def test_deterministic(self, tmp_path: Path) -> None:
        src = self.make_source(tmp_path)
        a = self._convert(src, tmp_path / "a.zarr")
        b = self._convert(src, tmp_path / "b.zarr")
        assert a.fingerprint == b.fingerprint
