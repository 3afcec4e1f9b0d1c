"""Episode stores on fsspec URLs: written locally then uploaded root-metadata-last, read through a
validated local mirror (tested on fsspec's in-memory filesystem)."""

from __future__ import annotations

import fsspec
import pytest

import marl_augment as ma
from marl_augment.data.synthetic import smac_like_dataset
from marl_augment.errors import AlreadyExists, NotFound, SchemaError
from marl_augment.testing import assert_datasets_equal

from .test_cli import assert_user_error, run


@pytest.fixture
def mem():
    fs = fsspec.filesystem("memory")
    yield fs
    if fs.exists("/bucket"):
        fs.rm("/bucket", recursive=True)


def test_save_load_roundtrip_and_overwrite(tmp_path, mem):
    ds = smac_like_dataset(12, tmp_path / "a.zarr", seed=0)
    ds.save("memory://bucket/a.zarr")
    assert mem.exists("/bucket/a.zarr/zarr.json") and mem.exists("/bucket/a.zarr/obs/zarr.json")
    back = ma.load("memory://bucket/a.zarr")
    assert_datasets_equal(ds, back)
    assert back.fingerprint == ds.fingerprint
    with pytest.raises(AlreadyExists, match="--overwrite"):
        ds.save("memory://bucket/a.zarr")
    other = smac_like_dataset(5, tmp_path / "b.zarr", seed=1)
    other.save("memory://bucket/a.zarr", overwrite=True)
    assert len(ma.load("memory://bucket/a.zarr")) == 5  # the changed remote store is fetched again
    assert len(ma.load(f"file://{tmp_path / 'a.zarr'}")) == 12


def test_incomplete_or_corrupted_remote_store_is_refused(tmp_path, mem, monkeypatch):
    ds = smac_like_dataset(12, tmp_path / "a.zarr", seed=0)
    ds.save("memory://bucket/a.zarr")
    chunk = next(p for p in mem.find("/bucket/a.zarr/obs") if "/c/" in p)
    data = bytearray(mem.cat_file(chunk))
    data[len(data) // 2] ^= 0xFF
    mem.pipe_file(chunk, bytes(data))
    monkeypatch.setenv("MARL_AUGMENT_HOME", str(tmp_path / "fresh-home"))  # no cached copy
    with pytest.raises(SchemaError):
        ma.load("memory://bucket/a.zarr")
    mem.rm("/bucket/a.zarr/zarr.json")  # an upload that never finished
    with pytest.raises(NotFound, match="no episode store"):
        ma.load("memory://bucket/a.zarr")


def test_cli_reads_and_writes_urls(tmp_path, mem):
    smac_like_dataset(10, tmp_path / "a.zarr", seed=0)
    r = run(
        "augment",
        tmp_path / "a.zarr",
        "memory://bucket/aug.zarr",
        "--method",
        "rad-s",
        "--scale",
        "1",
    )
    assert r.exit_code == 0, r.output
    r = run("info", "memory://bucket/aug.zarr", "--json")
    assert r.exit_code == 0, r.output
    assert '"episodes": 20' in r.output
    assert_user_error(run("info", "memory://bucket/none.zarr"), "no episode store")


def test_overwrite_never_deletes_a_remote_folder_that_is_not_ours(tmp_path, mem):
    mem.pipe("/bucket/papers/draft.tex", b"years of work")
    smac_like_dataset(3, tmp_path / "a.zarr", seed=0)
    ds = ma.load(tmp_path / "a.zarr")
    with pytest.raises(AlreadyExists, match="not a marl-augment store"):
        ds.save("memory://bucket/papers", overwrite=True)
    assert mem.cat_file("/bucket/papers/draft.tex") == b"years of work"
