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

import dataclasses
import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from . import adapters
from .augment import load_augmenter, make_augmenter
from .data.dataset import Dataset
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

        return adapters.convert(self.adapter, src, out, **self.options, **kw)

    def test_is_an_adapter(self) -> None:
        """The registered class has the adapter interface (name, Config, convert)."""

        cls = adapters.ADAPTERS.get(self.adapter)
        assert cls.name == self.adapter and dataclasses.is_dataclass(cls.Config)
        assert isinstance(cls(), adapters.Adapter)

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
                    got,
                    np.asarray(value, dtype=ds.spec.dtype(name)),
                    err_msg=f"episode {ep.index} array {name!r}",
                )

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


class AugmenterTests:
    """pytest mix-in every augmenter's tests reuse: subclass, set ``method`` (and ``options``,
    ``scale``), and provide a ``dataset`` fixture (a small saved store)."""

    method: str = ""
    options: dict[str, Any] = {}
    scale: float | None = 2.0

    def make(self):

        return make_augmenter(self.method, **self.options)

    def test_a_learned_augmenter_has_the_learned_settings(self):
        """What the CLI and the benchmark set on a learned augmenter (fit steps, the fit's seed,
        the torch device) are fields of its Config."""
        aug = self.make()
        if aug.learned:
            names = {f.name for f in dataclasses.fields(aug.Config)}
            assert {"train_steps", "seed", "device"} <= names, names

    def test_output_validates_and_keeps_the_spec(self, dataset, tmp_path):
        out = self.make().augment(dataset, scale=self.scale, seed=0, out=tmp_path / "aug.zarr")
        reopened = Dataset.open(out.path, validate=True)
        assert reopened.spec.arrays() == dataset.spec.arrays()
        for f in ("env_id", "agent_ids", "obs_dim", "n_actions", "state_dim"):
            assert getattr(reopened.spec, f) == getattr(dataset.spec, f), f
        for n in dataset.spec.arrays():
            assert reopened.columns[n].shape[1:] == dataset.columns[n].shape[1:]

    def test_origin_marks_and_provenance(self, dataset, tmp_path):
        out = self.make().augment(dataset, scale=self.scale, seed=3, out=tmp_path / "aug.zarr")
        step = len(dataset.provenance) + 1
        n_real = len(dataset)
        assert (out.episode_origin[:n_real] == dataset.episode_origin).all()
        assert (out.episode_origin[n_real:] == step).all()
        if self.scale is not None:
            assert len(out) - n_real == max(1, round(self.scale * n_real))
        real = out.where("real")
        for n in dataset.spec.arrays():  # the real episodes are kept exactly
            np.testing.assert_array_equal(real.columns[n], dataset.columns[n])
        entry = out.provenance[-1]
        assert entry["method"] == self.method and entry["seed"] == 3 and entry["step"] == step
        assert entry["parent_fingerprint"] == dataset.fingerprint
        assert entry["config"] == self.make().config_dict()

    def test_seeds_reproduce(self, dataset, tmp_path):
        a = self.make().augment(dataset, scale=self.scale, seed=1, out=tmp_path / "a.zarr")
        b = self.make().augment(dataset, scale=self.scale, seed=1, out=tmp_path / "b.zarr")
        assert a.fingerprint == b.fingerprint
        s1 = self.make().fit(dataset).sample(6, seed=1)
        s2 = self.make().fit(dataset).sample(6, seed=2)
        assert len(s1) == 6 and (s1.episode_origin == 1).all()
        differs = any(
            not np.array_equal(s1.columns[n], s2.columns[n])
            if s1.columns[n].shape == s2.columns[n].shape
            else True
            for n in dataset.spec.arrays()
        )
        assert differs, "different seeds gave identical synthetic episodes"

    def test_save_and_load(self, dataset, tmp_path):

        aug = self.make().fit(dataset)
        aug.save(tmp_path / "model")
        again = load_augmenter(tmp_path / "model")
        assert type(again) is type(aug) and again.config_dict() == aug.config_dict()
        a = aug.augment(dataset, scale=self.scale, seed=5, out=tmp_path / "a.zarr")
        b = again.augment(dataset, scale=self.scale, seed=5, out=tmp_path / "b.zarr")
        assert a.fingerprint == b.fingerprint
