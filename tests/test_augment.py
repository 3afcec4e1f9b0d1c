"""Augmenters: the shared AugmenterTests plus value-level checks of RAD-s, RAD-m, replication."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import marl_augment as ma
from marl_augment.augment import keys
from marl_augment.cli import app
from marl_augment.errors import ConfigError, NotFound
from marl_augment.testing import AugmenterTests

from .test_cli import assert_user_error


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, smac_store):
    path = tmp_path_factory.mktemp("aug") / "small.zarr"
    return ma.load(smac_store).subsample(n_episodes=30, seed=0).save(path)


class TestRadS(AugmenterTests):
    method = "rad-s"


class TestRadM(AugmenterTests):
    method = "rad-m"
    options = {"alpha": 0.5, "beta": 1.5}


class TestReturnReplicate(AugmenterTests):
    method = "return-replicate"


def _ratios(syn, src, field):
    with np.errstate(divide="ignore", invalid="ignore"):
        return syn.columns[field] / src.columns[field]


def test_rad_s_uses_one_z_per_episode(dataset):
    aug = ma.make_augmenter("rad-s").fit(dataset)
    syn = aug.sample(12, seed=0)
    src = dataset.select(aug.last_source_episodes)
    np.testing.assert_array_equal(syn.columns["actions"], src.columns["actions"])
    np.testing.assert_array_equal(syn.columns["rewards"], src.columns["rewards"])
    np.testing.assert_array_equal(syn.columns["avail_actions"], src.columns["avail_actions"])
    zs = []
    for e in range(12):
        lo, hi = syn.episode_offsets[e], syn.episode_offsets[e + 1]
        r = _ratios(syn, src, "obs")[lo:hi]
        r = r[np.isfinite(r) & (src.columns["obs"][lo:hi] != 0)]
        rs = _ratios(syn, src, "state")[lo:hi]
        rs = rs[np.isfinite(rs) & (src.columns["state"][lo:hi] != 0)]
        np.testing.assert_allclose(r, r[0], rtol=1e-5)  # one scalar for the whole episode
        np.testing.assert_allclose(rs, r[0], rtol=1e-5)  # ... shared by the state
        assert 0.8 <= r[0] <= 1.2
        zs.append(r[0])
    assert len(set(np.round(zs, 5))) == 12  # a new z for every episode
    assert not syn.columns["obs"][src.columns["obs"] == 0].any()  # zeros (dead, padding) stay zero


def test_rad_m_uses_one_z_per_dimension(dataset):
    aug = ma.make_augmenter("rad-m", alpha=0.5, beta=1.5).fit(dataset)
    syn = aug.sample(6, seed=1)
    src = dataset.select(aug.last_source_episodes)
    for e in range(6):
        lo, hi = syn.episode_offsets[e], syn.episode_offsets[e + 1]
        r = _ratios(syn, src, "obs")[lo:hi]  # (T, N, O)
        per_dim = []
        for d in range(r.shape[-1]):
            v = r[..., d][np.isfinite(r[..., d]) & (src.columns["obs"][lo:hi, :, d] != 0)]
            if v.size:
                np.testing.assert_allclose(v, v[0], rtol=1e-5)  # same z across agents and steps
                per_dim.append(v[0])
        assert len(set(np.round(per_dim, 5))) > 1  # dimensions get different z
        assert all(0.5 <= z <= 1.5 for z in per_dim)


def test_return_replicate_counts(dataset):
    returns = dataset.episode_returns
    th = [float(np.quantile(returns, 0.3)), float(np.quantile(returns, 0.8))]
    aug = ma.make_augmenter("return-replicate", thresholds=th).fit(dataset)
    expected = int((returns >= th[0]).sum() + (returns >= th[1]).sum())
    assert aug.natural_size() == expected
    out = aug.augment(dataset, scale=None)
    syn = out.where("synthetic")
    assert len(syn) == expected
    assert syn.episode_returns.min() >= th[0] - 1e-6
    with pytest.raises(ConfigError, match="needs a scale"):
        ma.make_augmenter("rad-s").augment(dataset, scale=None)


def test_registry_and_bad_options():
    assert {"rad-s", "rad-m", "return-replicate"} <= set(keys())
    with pytest.raises(NotFound, match="unknown augmenter 'rad-x'"):
        ma.make_augmenter("rad-x")
    with pytest.raises(ConfigError, match="has no option"):
        ma.make_augmenter("rad-s", gamma=2)
    with pytest.raises(ConfigError, match="alpha <= beta"):
        ma.make_augmenter("rad-s", alpha=1.5, beta=1.0)


def test_cli_augment(dataset, tmp_path):
    run = CliRunner().invoke
    out = tmp_path / "aug.zarr"
    r = run(
        app,
        [
            "augment",
            str(dataset.path),
            str(out),
            "--method",
            "rad-m",
            "--scale",
            "3",
            "-o",
            "alpha=0.9",
            "--save-model",
            str(tmp_path / "model"),
        ],
    )
    assert r.exit_code == 0, r.output
    aug = ma.load(out)
    assert len(aug.where("synthetic")) == 90 and aug.provenance[-1]["config"]["alpha"] == 0.9
    r = run(
        app,
        [
            "augment",
            str(dataset.path),
            str(tmp_path / "again.zarr"),
            "--checkpoint",
            str(tmp_path / "model"),
            "--scale",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    assert ma.load(tmp_path / "again.zarr").fingerprint == aug.fingerprint
    assert_user_error(
        run(app, ["augment", str(dataset.path), str(out), "--method", "rad-s"]), "exists already"
    )
    assert_user_error(
        run(app, ["augment", str(dataset.path), str(tmp_path / "x.zarr"), "--method", "nope"]),
        "unknown augmenter",
    )
    assert_user_error(
        run(app, ["augment", str(dataset.path), str(dataset.path), "--overwrite"]),
        "inputs are never written to",
    )
    r = run(app, ["augment", "--list"])
    assert r.exit_code == 0 and "rad-s" in r.output and "return-replicate" in r.output
