"""The dataset API: episodes, padded, sequences, torch views, subsample, concat, where, stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marl_augment as ma
from marl_augment.errors import ConfigError, SchemaError


def test_basic_facts(smac_ds):
    assert len(smac_ds) == 300
    assert smac_ds.num_transitions == int(smac_ds.episode_lengths.sum())
    ep = smac_ds.episode(7)
    lo, hi = smac_ds.episode_offsets[7], smac_ds.episode_offsets[8]
    np.testing.assert_array_equal(ep.obs, smac_ds.columns["obs"][lo:hi])
    assert len(ep) == hi - lo and ep.terminated[-1] | ep.truncated[-1]
    assert sum(1 for _ in smac_ds.episodes()) == 300
    with pytest.raises(ValueError):
        smac_ds.columns["obs"][0, 0, 0] = 1.0  # read-only


def test_padded(smac_ds):
    p = smac_ds.padded(multiple_of=16)
    t_max = p["mask"].shape[1]
    assert t_max % 16 == 0 and t_max >= smac_ds.episode_lengths.max()
    np.testing.assert_array_equal(p["mask"].sum(1), smac_ds.episode_lengths)
    for e in (0, 11, 299):
        ep = smac_ds.episode(e)
        np.testing.assert_array_equal(p["obs"][e, : len(ep)], ep.obs)
        assert not p["obs"][e, len(ep) :].any() and not p["actions"][e, len(ep) :].any()
    with pytest.raises(ConfigError, match="shorter than the longest"):
        smac_ds.padded(max_len=3)


@pytest.mark.parametrize("length,period", [(20, 10), (20, None), (7, 3), (1, 1)])
def test_sequences_cover_every_step(smac_ds, length, period):
    s = smac_ds.sequences(length, period)
    assert s["obs"].shape[1] == length and s["mask"].shape == s["rewards"].shape
    lengths = smac_ds.episode_lengths
    covered = np.zeros(smac_ds.num_transitions, bool)
    offsets = smac_ds.episode_offsets
    for w in range(s["mask"].shape[0]):
        e, st = s["episode"][w], s["start"][w]
        n = int(s["mask"][w].sum())
        # a window is padded only when its episode is shorter than the window
        assert n == min(length, lengths[e])
        rows = offsets[e] + st + np.arange(n)
        covered[rows] = True
        np.testing.assert_array_equal(s["actions"][w, :n], smac_ds.columns["actions"][rows])
        assert not s["obs"][w, n:].any()
        assert s["first"][w] == (st == 0)
    assert covered.all()


def test_sequence_starts_by_period(smac_ds):
    ep, start = smac_ds.sequence_index(4, 2)
    e = int(np.flatnonzero(smac_ds.episode_lengths == 11)[0])
    assert start[ep == e].tolist() == [0, 2, 4, 6, 7]  # the tail window is aligned to the end


def test_subsample_whole_episodes_seeded(smac_ds):
    a = smac_ds.subsample(0.03, seed=0)
    b = smac_ds.subsample(0.03, seed=0)
    c = smac_ds.subsample(0.03, seed=1)
    assert len(a) == 9
    np.testing.assert_array_equal(a.columns["obs"], b.columns["obs"])
    assert not np.array_equal(a.episode_returns, c.episode_returns)
    # whole episodes: every subsampled episode equals some original episode exactly
    orig = {smac_ds.episode(i).obs.tobytes(): i for i in range(len(smac_ds))}
    picked = [orig[ep.obs.tobytes()] for ep in a.episodes()]
    assert picked == sorted(picked)
    for ep, i in zip(a.episodes(), picked):
        np.testing.assert_array_equal(ep.actions, smac_ds.episode(i).actions)
        assert ep.terminated[-1] == smac_ds.episode(i).terminated[-1]
    assert len(smac_ds.subsample(n_episodes=5, seed=0)) == 5
    for bad in (dict(fraction=0.0), dict(fraction=1.5), dict(n_episodes=0), {}):
        with pytest.raises(ConfigError):
            smac_ds.subsample(**bad)


def test_subsample_save_records_provenance(smac_ds, tmp_path):
    sub = smac_ds.subsample(0.1, seed=3)
    assert sub.fingerprint is None
    saved = sub.save(tmp_path / "sub.zarr")
    prov = saved.provenance
    assert len(prov) == 1 and prov[0]["method"] == "subsample" and prov[0]["seed"] == 3
    assert prov[0]["parent_fingerprint"] == smac_ds.fingerprint
    again = (
        ma.load(tmp_path / "sub.zarr").subsample(n_episodes=2, seed=0).save(tmp_path / "s2.zarr")
    )
    assert [p["step"] for p in again.provenance] == [1, 2]
    assert again.provenance[1]["parent_fingerprint"] == saved.fingerprint


def test_concat_and_where(smac_ds, tmp_path):
    a = smac_ds.subsample(n_episodes=10, seed=0)
    b = smac_ds.subsample(n_episodes=4, seed=1)
    c = ma.concat([a, b])
    assert len(c) == 14 and c.num_transitions == a.num_transitions + b.num_transitions
    np.testing.assert_array_equal(c.episode(10).obs, b.episode(0).obs)
    # mark b as synthetic (origin 1) through select + a rebuilt dataset
    origin = np.r_[np.zeros(10, np.uint8), np.ones(4, np.uint8)]
    mixed = ma.Dataset(c.spec, c.columns, c.episode_offsets, origin, attrs=c.attrs)
    assert len(mixed.where("real")) == 10 and len(mixed.where("synthetic")) == 4
    assert len(mixed.where(1)) == 4
    assert mixed.stats()["synthetic_episodes"] == 4
    with pytest.raises(ConfigError, match="no episodes have origin"):
        a.where("synthetic")
    other = ma.Dataset(c.spec.replace(n_actions=12), c.columns, c.episode_offsets, origin)
    with pytest.raises(SchemaError, match="n_actions"):
        ma.concat([c, other])


def test_stats(smac_ds):
    s = smac_ds.stats()
    r = smac_ds.episode_returns
    assert s["episodes"] == 300 and s["return_mean"] == pytest.approx(r.mean())
    assert s["return_quantiles"]["0.5"] == pytest.approx(np.median(r))
    assert s["terminated"] + s["truncated"] == 300
    assert "win_rate" in s and 0.0 <= s["win_rate"] <= 1.0


def test_torch_transitions(smac_ds):
    loader = smac_ds.torch("transitions", batch_size=64, shuffle=True, seed=0)
    seen = []
    cols = smac_ds.columns
    last = np.zeros(smac_ds.num_transitions, bool)
    last[smac_ds.episode_offsets[1:] - 1] = True
    for batch in loader:
        idx = batch["index"].numpy()
        seen.append(idx)
        np.testing.assert_array_equal(batch["obs"].numpy(), cols["obs"][idx])
        nxt = batch["next_obs"].numpy()
        for j, i in enumerate(idx[:5]):
            if last[i]:
                assert not nxt[j].any()
            else:
                np.testing.assert_array_equal(nxt[j], cols["obs"][i + 1])
    allidx = np.concatenate(seen)
    assert sorted(allidx.tolist()) == list(range(smac_ds.num_transitions))
    assert len(loader) == len(seen)


def test_torch_shuffle_is_seeded_and_changes_per_epoch(smac_ds):
    def order(loader):
        return np.concatenate([b["episode"].numpy() for b in loader])

    l1 = smac_ds.torch("sequences", batch_size=16, seed=5)
    l2 = smac_ds.torch("sequences", batch_size=16, seed=5)
    e1a, e1b = order(l1), order(l1)
    e2a = order(l2)
    np.testing.assert_array_equal(e1a, e2a)
    assert not np.array_equal(e1a, e1b)
    unshuffled = order(smac_ds.torch("sequences", batch_size=16, shuffle=False))
    assert (np.diff(unshuffled) >= 0).all()


def test_torch_workers_share_the_epoch(smac_ds):
    loader = smac_ds.torch("episodes", batch_size=8, seed=0, num_workers=2)
    eps = np.concatenate([b["episode"].numpy() for b in loader])
    assert sorted(eps.tolist()) == list(range(len(smac_ds)))
    batch = next(iter(smac_ds.torch("episodes", batch_size=4)))
    assert (
        batch["obs"].dtype == torch.float32
        and batch["obs"].shape[1] == smac_ds.episode_lengths.max()
    )


def test_torch_rejects_bad_options(smac_ds):
    with pytest.raises(ConfigError, match="unknown view"):
        smac_ds.torch("frames")
    with pytest.raises(ConfigError, match="unknown field"):
        smac_ds.torch("transitions", fields=["obs", "nope"])


def test_plain_training_loop_runs(smac_ds):
    """What docs/dataset-api.md shows: a behaviour-cloning step on sequence batches."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(30, 64), torch.nn.ReLU(), torch.nn.Linear(64, 9))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        for b in smac_ds.torch("sequences", batch_size=32, length=20, seed=0):
            logits = net(b["obs"]).masked_fill(~b["avail_actions"], -1e9)
            ce = torch.nn.functional.cross_entropy(
                logits.flatten(0, 2), b["actions"].long().flatten(), reduction="none"
            ).view(b["actions"].shape)
            mask = (b["mask"][..., None] & b["alive"]).float()
            loss = (ce * mask).sum() / mask.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
