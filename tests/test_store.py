"""The episode store: write/read round trips, atomicity, validation of corrupted stores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

import marl_augment as ma
from marl_augment.data.chunks import chunk_rows_for
from marl_augment.data.dataset import StoreWriter
from marl_augment.data.schema import Spec
from marl_augment.data.synthetic import smac_like_episodes, smac_like_spec
from marl_augment.errors import AlreadyExists, NotFound, SchemaError
from marl_augment.testing import file_digest, store_roundtrip_test


def _tiny_spec(**kw) -> Spec:
    base = dict(
        env_id="test:tiny",
        agent_ids=("a", "b"),
        obs_dim=3,
        n_actions=4,
        state_dim=2,
        has_avail_actions=True,
    )
    base.update(kw)
    return Spec(**base)


def _episode(t: int, seed: int = 0, *, terminated: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    avail = np.ones((t, 2, 4), bool)
    avail[:, :, 3] = False
    ep = {
        "obs": rng.normal(size=(t, 2, 3)).astype(np.float32),
        "state": rng.normal(size=(t, 2)).astype(np.float32),
        "avail_actions": avail,
        "actions": rng.integers(0, 3, size=(t, 2)).astype(np.int32),
        "rewards": rng.normal(size=t).astype(np.float32),
        "terminated": np.zeros(t, bool),
        "truncated": np.zeros(t, bool),
    }
    (ep["terminated"] if terminated else ep["truncated"])[-1] = True
    return ep


def _write_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_roundtrip_exact_and_attrs(tmp_path):
    eps = [_episode(t, s, terminated=s % 2 == 0) for s, t in enumerate([5, 1, 17, 3])]
    with StoreWriter(tmp_path / "s.zarr", _tiny_spec(), source={"adapter": "test"}) as w:
        for i, ep in enumerate(eps):
            w.append_episode(ep, won=bool(i % 2))
    ds = ma.load(tmp_path / "s.zarr")
    assert len(ds) == 4 and ds.num_transitions == 26
    for ep, want in zip(ds.episodes(), eps):
        for k, v in want.items():
            np.testing.assert_array_equal(getattr(ep, k), v)
    assert ds.spec.max_episode_len == 17
    assert ds.source == {"adapter": "test"}
    assert ds.fingerprint.startswith("sha256+spec:")
    np.testing.assert_array_equal(ds.episode_won, [False, True, False, True])
    s = ds.stats()
    assert s["terminated"] == 2 and s["truncated"] == 2 and s["win_rate"] == 0.5
    assert ds.attrs["summary"]["episodes"] == 4
    np.testing.assert_allclose(
        ds.episode_returns, [e["rewards"].astype(np.float64).sum() for e in eps]
    )


def test_streaming_writer_bounds_its_buffer(tmp_path):
    spec = smac_like_spec(3)
    with StoreWriter(tmp_path / "s.zarr", spec, chunk_bytes=1 << 14) as w:
        assert w.block_rows == 1 << 10  # 16 KiB of 360-byte obs rows, at the floor of 1024 rows
        peak = 0
        for cols, lengths, won in smac_like_episodes(400, seed=1, batch=20):
            w.append_episodes(cols, lengths, won=won.tolist())
            peak = max(peak, w._buf_rows)
        # rows held in memory never reach a block: everything else is on disk already
        assert peak < w.block_rows
        assert w.n_rows > 4 * w.block_rows
    ds = ma.load(tmp_path / "s.zarr")
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert g["obs"].chunks[0] == w.chunk_rows["obs"]
    assert g["obs"].shape[0] == ds.num_transitions


def test_fingerprint_independent_of_chunking(tmp_path):
    spec = smac_like_spec(3)
    batches = list(smac_like_episodes(120, seed=3, batch=40))
    fps = []
    for i, chunk_bytes in enumerate((1 << 12, 1 << 22)):
        with StoreWriter(tmp_path / f"s{i}.zarr", spec, chunk_bytes=chunk_bytes) as w:
            for cols, lengths, won in batches:
                w.append_episodes(cols, lengths, won=won.tolist())
        fps.append(w.result.fingerprint)
    assert fps[0] == fps[1]


def test_chunk_rows_is_power_of_two_near_target():
    from marl_augment.data.chunks import DEFAULT_CHUNK_BYTES

    r = chunk_rows_for(360)  # 3m obs rows: 360 B -> about DEFAULT_CHUNK_BYTES per chunk
    assert DEFAULT_CHUNK_BYTES / 1.5 <= r * 360 <= DEFAULT_CHUNK_BYTES * 1.5
    for b in (1, 7, 100, 5000, 1 << 20):
        r = chunk_rows_for(b)
        assert r & (r - 1) == 0


def test_failed_write_leaves_nothing(tmp_path):
    out = tmp_path / "s.zarr"
    with pytest.raises(RuntimeError):
        with StoreWriter(out, _tiny_spec()) as w:
            w.append_episode(_episode(4))
            raise RuntimeError("boom")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_episode_refused_before_disk(tmp_path):
    out = tmp_path / "s.zarr"
    bad = _episode(4)
    bad["obs"][2, 1, 0] = np.nan
    with pytest.raises(SchemaError, match="non-finite value .* at row 2"):
        with StoreWriter(out, _tiny_spec()) as w:
            w.append_episode(bad)
    assert not out.exists()
    illegal = _episode(4)
    illegal["actions"][1, 0] = 3  # avail_actions marks action 3 unavailable
    with pytest.raises(SchemaError, match="illegal action: agent 0 took action 3 at row 1"):
        with StoreWriter(out, _tiny_spec()) as w:
            w.append_episode(illegal)
    no_end = _episode(4)
    no_end["terminated"][:] = False
    with pytest.raises(SchemaError, match="neither 'terminated' nor 'truncated'"):
        with StoreWriter(out, _tiny_spec()) as w:
            w.append_episode(no_end)
    with pytest.raises(SchemaError, match="no episodes were written"):
        with StoreWriter(out, _tiny_spec()):
            pass
    assert not out.exists()


def test_existing_output_refused_and_overwrite(tmp_path):
    out = tmp_path / "s.zarr"
    with StoreWriter(out, _tiny_spec()) as w:
        w.append_episode(_episode(3))
    with pytest.raises(AlreadyExists, match="--overwrite"):
        StoreWriter(out, _tiny_spec())
    with StoreWriter(out, _tiny_spec(), overwrite=True) as w:
        w.append_episode(_episode(5, seed=9))
    assert ma.load(out).num_transitions == 5
    # a folder that is not a store is never replaced
    other = tmp_path / "notastore"
    other.mkdir()
    (other / "precious.txt").write_text("x")
    with pytest.raises(AlreadyExists, match="not made by marl-augment"):
        StoreWriter(other, _tiny_spec(), overwrite=True)


def test_save_never_writes_over_its_input(smac_store, tmp_path):
    ds = ma.load(smac_store)
    before = file_digest(smac_store)
    with pytest.raises(AlreadyExists, match="inputs are never written to"):
        ds.save(smac_store, overwrite=True)
    assert file_digest(smac_store) == before


def test_stale_partials_of_dead_writers_are_removed(tmp_path):
    out = tmp_path / "s.zarr"
    stale = tmp_path / ".s.zarr.partial-999999999-deadbeef"
    stale.mkdir()
    with StoreWriter(out, _tiny_spec()) as w:
        w.append_episode(_episode(3))
    assert not stale.exists() and out.exists()


# -- corrupted stores: each gives one SchemaError line --------------------------------------


@pytest.fixture
def good_store(tmp_path) -> Path:
    spec = smac_like_spec(3)
    with StoreWriter(tmp_path / "good.zarr", spec, chunk_bytes=1 << 14) as w:
        for cols, lengths, won in smac_like_episodes(60, seed=5):
            w.append_episodes(cols, lengths, won=won.tolist())
    return tmp_path / "good.zarr"


def _edit_meta(store: Path, array: str, fn) -> None:
    meta_path = store / array / "zarr.json"
    meta = json.loads(meta_path.read_text())
    fn(meta)
    meta_path.write_text(json.dumps(meta))


def _assert_one_line(exc_info) -> None:
    msg = str(exc_info.value)
    assert "\n" not in msg and len(msg) < 400, msg


def test_truncated_array(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    _edit_meta(bad, "rewards", lambda m: m.__setitem__("shape", [m["shape"][0] - 7]))
    with pytest.raises(SchemaError, match="'rewards' has .* rows but 'obs' has") as e:
        ma.load(bad)
    _assert_one_line(e)


def test_nan_in_obs(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    arr = zarr.open_array(str(bad / "obs"), mode="r+")
    arr[10, 1, 3] = np.nan
    with pytest.raises(SchemaError, match="'obs' holds a non-finite value .* at row 10") as e:
        ma.load(bad)
    _assert_one_line(e)


def test_offsets_not_covering_rows(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    off = zarr.open_array(str(bad / "episode_offsets"), mode="r+")
    off[-1] = off[-1] - 1
    with pytest.raises(SchemaError, match="covers rows 0..* but the store has") as e:
        ma.load(bad)
    _assert_one_line(e)
    off[-1] = off[-1] + 1
    off[3] = off[2]
    with pytest.raises(SchemaError, match="not strictly increasing at episode 2"):
        ma.load(bad)


def test_illegal_taken_action(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    avail = zarr.open_array(str(bad / "avail_actions"), mode="r+")
    actions = zarr.open_array(str(bad / "actions"), mode="r+")
    row = avail[4]
    a0 = int(actions[4, 0])
    row[0, a0] = False
    avail[4] = row
    with pytest.raises(SchemaError, match=f"agent 0 took action {a0} at row 4") as e:
        ma.load(bad)
    _assert_one_line(e)


def test_action_out_of_range(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    actions = zarr.open_array(str(bad / "actions"), mode="r+")
    actions[7, 2] = 99
    with pytest.raises(SchemaError, match="action 99 at row 7, agent 2; expected 0..8"):
        ma.load(bad)


def test_missing_chunk_caught_by_fingerprint(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    chunk = next(p for p in sorted((bad / "state" / "c").rglob("*")) if p.is_file())
    chunk.unlink()
    with pytest.raises(SchemaError, match="does not match its fingerprint") as e:
        ma.load(bad)
    _assert_one_line(e)


def test_corrupted_chunk_bytes(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    chunk = next(p for p in sorted((bad / "obs" / "c").rglob("*")) if p.is_file())
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])
    with pytest.raises(SchemaError, match=r"'obs' \(chunk 0\) could not be read") as e:
        ma.load(bad)
    _assert_one_line(e)


def test_missing_array_and_foreign_paths(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    shutil.rmtree(bad / "actions")
    with pytest.raises(SchemaError, match="'actions' is missing"):
        ma.load(bad)
    with pytest.raises(NotFound, match="no episode store"):
        ma.load(tmp_path / "nope.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(SchemaError, match="not a Zarr v3 episode store"):
        ma.load(tmp_path / "plain")


def test_newer_schema_version_refused(good_store, tmp_path):
    bad = _write_copy(good_store, tmp_path / "bad.zarr")
    meta = json.loads((bad / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = 99
    (bad / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(SchemaError, match="schema version 99 is not supported"):
        ma.load(bad)


def test_roundtrip_helper(smac_ds, tmp_path):
    store_roundtrip_test(smac_ds, tmp_path)


def test_zarr_python_reads_what_we_write(tmp_path):
    """Our chunk writer and reader agree with zarr-python, including a partial last chunk."""
    spec = smac_like_spec(3)
    with StoreWriter(tmp_path / "s.zarr", spec, chunk_bytes=1 << 14) as w:
        for cols, lengths, won in smac_like_episodes(100, seed=9):
            w.append_episodes(cols, lengths, won=won.tolist())
    ds = ma.load(tmp_path / "s.zarr")
    assert ds.num_transitions % w.block_rows != 0
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    for n in spec.arrays():
        np.testing.assert_array_equal(g[n][:], ds.columns[n], err_msg=n)
    np.testing.assert_array_equal(g["episode_offsets"][:], ds.episode_offsets)


def test_fast_chunk_reader_agrees_with_zarr_python_on_every_array(tmp_path):
    """The contract of data/chunks.py: our writer's layout is one the fast reader recognises
    (for every array, so the fast path is what is tested), and what it decodes — whole stores,
    and row ranges that cut chunks — is exactly what zarr-python reads from the same files. A
    zarr-python release that wrote or read this layout differently fails here."""
    from marl_augment.data.chunks import RowReader, chunk_layout, open_group

    spec = smac_like_spec(3)
    with StoreWriter(tmp_path / "s.zarr", spec, chunk_bytes=1 << 12) as w:
        for cols, lengths, won in smac_like_episodes(90, seed=5, batch=30):
            w.append_episodes(cols, lengths, won=won.tolist())
    group = open_group(tmp_path / "s.zarr")
    names = spec.arrays()
    reader = RowReader(tmp_path / "s.zarr", group, names)
    assert all(reader._fast[n] is not None for n in names), reader._fast
    n_rows = group["obs"].shape[0]
    assert n_rows % w.block_rows != 0  # a partial last chunk is covered
    for lo, hi in ((0, n_rows), (w.block_rows // 2, w.block_rows * 2 + 7), (n_rows - 3, n_rows)):
        fast = reader.read(lo, hi)
        for n in names:
            ref = np.asarray(zarr.open_array(str(tmp_path / "s.zarr" / n), mode="r")[lo:hi])
            assert fast[n].dtype == ref.dtype and fast[n].shape == ref.shape, n
            np.testing.assert_array_equal(fast[n], ref, err_msg=n)
    # a layout the reader does not know (another codec chain) goes through zarr-python
    meta = json.loads((tmp_path / "s.zarr" / "obs" / "zarr.json").read_text())
    meta["codecs"] = meta["codecs"][:1]
    (tmp_path / "s.zarr" / "obs" / "zarr.json").write_text(json.dumps(meta))
    assert chunk_layout(tmp_path / "s.zarr", "obs", group["obs"].shape) is None
