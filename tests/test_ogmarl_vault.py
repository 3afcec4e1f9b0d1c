"""OG-MARL Vaults: flashbax-written Vaults convert exactly; export -> flashbax read -> convert."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import marl_augment as ma
from marl_augment import adapters
from marl_augment.adapters.ogmarl_vault import export_vault
from marl_augment.errors import AlreadyExists, ConfigError, FormatError, NotFound, UnsupportedError
from marl_augment.testing import AdapterTests, file_digest

pytest.importorskip("tensorstore")
fbx = pytest.importorskip("flashbax")
jax = pytest.importorskip("jax")
jnp = jax.numpy
from flashbax.vault import Vault  # noqa: E402

N, O, S, A = 3, 30, 48, 9


def smac_like_experience(lengths, seed=0, trailing=0, truncate_last=False):
    """SMAC-3m-shaped experience, as OG-MARL records it: team reward copied per agent."""
    rng = np.random.default_rng(seed)
    t = int(sum(lengths)) + trailing
    legals = (rng.random((t, N, A)) < 0.7).astype(np.float32)
    legals[:, :, 1] = 1.0  # 'stop' always legal
    actions = np.zeros((t, N), np.int32)
    for i in range(t):
        for j in range(N):
            actions[i, j] = rng.choice(np.flatnonzero(legals[i, j]))
    reward = rng.random((t, 1)).astype(np.float32)
    terminals = np.zeros((t, N), bool)
    truncations = np.zeros((t, N), bool)
    ends = np.cumsum(lengths) - 1
    terminals[ends] = True
    if truncate_last:
        terminals[ends[-1]] = False
        truncations[ends[-1]] = True
    return {
        "observations": rng.normal(size=(t, N, O)).astype(np.float32),
        "actions": actions,
        "rewards": np.repeat(reward, N, 1),
        "terminals": terminals,
        "truncations": truncations,
        "infos": {"legals": legals, "state": rng.normal(size=(t, S)).astype(np.float32)},
    }


def write_with_flashbax(root: Path, name: str, uid: str, exp: dict, chunk: int = 64) -> Path:
    """A Vault written by flashbax itself, in several writes like a recording loop does."""
    t = exp["actions"].shape[0]
    buf = fbx.make_flat_buffer(
        max_length=chunk * 2,
        min_length=1,
        sample_batch_size=1,
        add_sequences=True,
        add_batch_size=None,
    )
    state = buf.init(jax.tree.map(lambda x: jnp.asarray(x[0]), exp))
    vault = None
    for lo in range(0, t, chunk):
        piece = jax.tree.map(lambda x: jnp.asarray(x[lo : lo + chunk]), exp)
        state = buf.add(state, piece)
        if vault is None:
            vault = Vault(
                vault_name=name,
                experience_structure=state.experience,
                rel_dir=str(root),
                vault_uid=uid,
            )
        vault.write(state)
    return root / name / uid


@pytest.fixture(scope="module")
def flashbax_vault(tmp_path_factory):
    root = tmp_path_factory.mktemp("vaults")
    lengths = [13, 60, 7, 25, 31, 60, 18]
    exp = smac_like_experience(lengths, seed=1, trailing=9)  # ends inside an episode
    write_with_flashbax(root, "3m.vlt", "Medium", exp)
    write_with_flashbax(root, "3m.vlt", "Good", smac_like_experience([20, 30], seed=2))
    return root / "3m.vlt", exp, lengths


def test_flashbax_vault_converts_exactly(flashbax_vault, tmp_path):
    vlt, exp, lengths = flashbax_vault
    with pytest.warns(UserWarning, match="last 9 rows"):
        ds = adapters.convert("ogmarl-vault", vlt / "Medium", tmp_path / "m.zarr")
    ds = ma.load(ds.path)
    assert ds.spec.env_id == "smac:3m" and ds.spec.n_agents == 3 and ds.spec.n_actions == 9
    assert ds.episode_lengths.tolist() == lengths
    # what flashbax itself reads back
    fb = Vault(vault_name="3m.vlt", rel_dir=str(vlt.parent), vault_uid="Medium").read().experience
    t = sum(lengths)
    np.testing.assert_array_equal(ds.columns["obs"], np.asarray(fb["observations"])[0, :t])
    np.testing.assert_array_equal(ds.columns["actions"], np.asarray(fb["actions"])[0, :t])
    np.testing.assert_array_equal(ds.columns["state"], np.asarray(fb["infos"]["state"])[0, :t])
    np.testing.assert_array_equal(
        ds.columns["avail_actions"], np.asarray(fb["infos"]["legals"])[0, :t] > 0.5
    )
    np.testing.assert_array_equal(ds.columns["rewards"], np.asarray(fb["rewards"])[0, :t, 0])
    assert np.asarray(fb["observations"]).shape[1] == t + 9
    # episode boundaries: every episode ends exactly where flashbax's terminals are all set
    ends = np.flatnonzero(np.asarray(fb["terminals"])[0].all(-1))
    np.testing.assert_array_equal(ds.episode_offsets[1:] - 1, ends)
    # returns by hand
    r = exp["rewards"][:, 0].astype(np.float64)
    by_hand = [r[a:b].sum() for a, b in zip(np.r_[0, np.cumsum(lengths)[:-1]], np.cumsum(lengths))]
    np.testing.assert_allclose(ds.episode_returns, by_hand, rtol=1e-12)
    assert ds.source["dropped_unfinished_rows"] == 9 and ds.source["uid"] == "Medium"


def test_small_blocks_give_the_same_store(flashbax_vault, tmp_path):
    vlt, _, _ = flashbax_vault
    with pytest.warns(UserWarning):
        a = adapters.convert("ogmarl-vault", vlt / "Medium", tmp_path / "a.zarr")
        b = adapters.convert("ogmarl-vault", vlt / "Medium", tmp_path / "b.zarr", block_rows=17)
    assert a.fingerprint == b.fingerprint


def test_episode_limit_marks_timeouts(flashbax_vault, tmp_path):
    vlt, _, lengths = flashbax_vault
    with pytest.warns(UserWarning):
        ds = adapters.convert("ogmarl-vault", vlt / "Medium", tmp_path / "m.zarr", episode_limit=60)
    ends_trunc = ds.columns["truncated"][ds.episode_offsets[1:] - 1]
    assert ends_trunc.tolist() == [n == 60 for n in lengths]
    assert ds.source["time_limit_truncations"] == 2


def test_vault_folder_and_zip_need_a_uid(flashbax_vault, tmp_path):
    vlt, _, _ = flashbax_vault
    with pytest.raises(ConfigError, match=r"several datasets \['Good', 'Medium'\]"):
        adapters.convert("ogmarl-vault", vlt, tmp_path / "x.zarr")
    good = adapters.convert("ogmarl-vault", vlt, tmp_path / "g.zarr", uid="Good")
    assert good.episode_lengths.tolist() == [20, 30]
    archive = tmp_path / "3m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(vlt.rglob("*")):
            zf.write(p, Path("3m.vlt") / p.relative_to(vlt))
    before = file_digest(archive)
    z = adapters.convert("ogmarl-vault", archive, tmp_path / "z.zarr", uid="Good")
    assert z.fingerprint == good.fingerprint and z.source["checksum"].startswith("sha256:")
    assert file_digest(archive) == before
    with pytest.raises(NotFound, match="no dataset 'Poor'"):
        adapters.convert("ogmarl-vault", archive, tmp_path / "p.zarr", uid="Poor")


def test_bad_vaults(flashbax_vault, tmp_path):
    vlt, _, _ = flashbax_vault
    old = tmp_path / "old.vlt" / "Poor"
    old.mkdir(parents=True)
    (old / "metadata.json").write_text(json.dumps({"version": 0.1, "structure": {}}))
    with pytest.raises(UnsupportedError, match="old \\(pre-2024\\) Vault"):
        adapters.convert("ogmarl-vault", old, tmp_path / "o.zarr")
    with pytest.raises(NotFound, match="no Vault"):
        adapters.convert("ogmarl-vault", tmp_path / "none.vlt", tmp_path / "o.zarr")
    bad_zip = tmp_path / "bad.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(FormatError, match="not a valid zip"):
        adapters.convert("ogmarl-vault", bad_zip, tmp_path / "o.zarr")
    copy = tmp_path / "copy.vlt"
    shutil.copytree(vlt, copy)
    meta = json.loads((copy / "Good" / "metadata.json").read_text())
    del meta["structure_shape"]["observations"]
    (copy / "Good" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(FormatError, match="lacks leaves"):
        adapters.convert("ogmarl-vault", copy / "Good", tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr").exists()


def test_non_team_rewards_need_a_reward_mode(tmp_path):
    exp = smac_like_experience([10, 10], seed=3)
    exp["rewards"] = np.random.default_rng(0).random((20, N)).astype(np.float32)
    uid_dir = write_with_flashbax(tmp_path, "mpe.vlt", "Good", exp)
    with pytest.raises(FormatError, match="rewards differ at row 0.*-o reward=sum"):
        adapters.convert("ogmarl-vault", uid_dir, tmp_path / "x.zarr")
    ds = adapters.convert("ogmarl-vault", uid_dir, tmp_path / "x.zarr", reward="sum")
    np.testing.assert_allclose(ds.columns["rewards"], exp["rewards"].sum(1), rtol=1e-6)
    assert ds.spec.has_agent_rewards and ds.spec.env_id == "ogmarl:mpe"


def test_export_flashbax_read_convert_roundtrip(smac_ds, tmp_path):
    ds = smac_ds.subsample(n_episodes=40, seed=0)
    out = tmp_path / "aug.vlt"
    export_vault(ds, out, uid="Medium")
    fb = Vault(vault_name="aug.vlt", rel_dir=str(tmp_path), vault_uid="Medium").read().experience
    t = ds.num_transitions
    assert np.asarray(fb["observations"]).shape == (1, t, 3, 30)
    assert np.asarray(fb["actions"]).dtype == np.int32
    np.testing.assert_array_equal(
        np.asarray(fb["infos"]["legals"])[0] > 0.5, ds.columns["avail_actions"]
    )
    np.testing.assert_array_equal(np.asarray(fb["rewards"])[0, :, 1], ds.columns["rewards"])
    np.testing.assert_array_equal(np.asarray(fb["truncations"])[0].all(-1), ds.columns["truncated"])
    back = adapters.convert("ogmarl-vault", out / "Medium", tmp_path / "back.zarr")
    assert back.spec.env_id == ds.spec.env_id
    for name in ("obs", "state", "avail_actions", "actions", "rewards", "terminated", "truncated"):
        np.testing.assert_array_equal(back.columns[name], ds.columns[name], err_msg=name)
    np.testing.assert_array_equal(back.episode_offsets, ds.episode_offsets)
    with pytest.raises(AlreadyExists, match="--overwrite"):
        export_vault(ds, out, uid="Medium")
    export_vault(ds, out, uid="Medium", overwrite=True, truncation_as_terminal=True)
    fb2 = Vault(vault_name="aug.vlt", rel_dir=str(tmp_path), vault_uid="Medium").read().experience
    assert not np.asarray(fb2["truncations"]).any()
    assert np.asarray(fb2["terminals"])[0].all(-1).sum() == len(ds)
    assert not list(out.glob(".*"))  # no partial leftovers


class TestOgMarlVaultAdapter(AdapterTests):
    adapter = "ogmarl-vault"

    def make_source(self, tmp_path):
        self.exp = smac_like_experience([9, 14, 5], seed=4)
        return write_with_flashbax(tmp_path, "8m.vlt", "Poor", self.exp)

    def expected_episodes(self, source):
        e, out, lo = self.exp, [], 0
        for n in (9, 14, 5):
            sl = slice(lo, lo + n)
            out.append(
                {
                    "obs": e["observations"][sl],
                    "actions": e["actions"][sl],
                    "rewards": e["rewards"][sl, 0],
                    "state": e["infos"]["state"][sl],
                    "avail_actions": e["infos"]["legals"][sl] > 0.5,
                }
            )
            lo += n
        return out
