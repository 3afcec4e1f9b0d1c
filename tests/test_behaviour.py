"""Learned behaviour policies on SMAX (MAPPO) and the datasets recorded from them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import marl_augment as ma
from marl_augment.cli import app

pytest.importorskip("jaxmarl")

from marl_augment.envs.behaviour import (  # noqa: E402
    CHECKPOINTS,
    PpoConfig,
    load_behaviour,
    pick_checkpoint,
    read_checkpoints,
    record_behaviour,
    train_behaviour,
)
from marl_augment.envs.datasets import behaviour_datasets  # noqa: E402
from marl_augment.errors import ConfigError, NotFound  # noqa: E402

runner = CliRunner()
# 8 games × 16 steps = 128 steps an update; a checkpoint every 2 updates
TINY = dict(
    num_envs=8,
    rollout=16,
    minibatches=2,
    epochs=2,
    hidden=16,
    checkpoint_every=256,
    eval_episodes=8,
    dense_until=0,
)


def tiny(total_steps=512, **kw) -> PpoConfig:
    return PpoConfig(total_steps=total_steps, **{**TINY, **kw})


def leaves(folder, name):
    import jax

    _, params, _ = load_behaviour(folder, name)
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(params)]


def test_training_saves_evaluated_checkpoints_and_is_deterministic(tmp_path):
    a = train_behaviour("smax:3m", tmp_path / "a", config=tiny(), seed=3)
    rows = read_checkpoints(tmp_path / "a")
    assert [r["env_steps"] for r in rows] == [256, 512] and a["updates"] == 4
    for r in rows:
        assert (tmp_path / "a" / r["checkpoint"]).is_file()
        assert 0 <= r["normalised_return"] <= 1 and r["eval_episodes"] == 8
        assert r["epsilon"] == 0.05
    train_behaviour("smax:3m", tmp_path / "b", config=tiny(), seed=3)
    assert [r["return_mean"] for r in read_checkpoints(tmp_path / "b")] == [
        r["return_mean"] for r in rows
    ]
    for x, y in zip(
        leaves(tmp_path / "a", rows[-1]["checkpoint"]),
        leaves(tmp_path / "b", rows[-1]["checkpoint"]),
    ):
        np.testing.assert_array_equal(x, y)


def test_training_resumes_where_it_stopped(tmp_path):
    train_behaviour("smax:3m", tmp_path / "once", config=tiny(512), seed=1)
    train_behaviour("smax:3m", tmp_path / "twice", config=tiny(256), seed=1)
    # resuming with a larger budget continues from the saved state (same lr schedule only if
    # the budget was the same from the start: compare a run resumed at the same budget)
    train_behaviour("smax:3m", tmp_path / "twice", config=tiny(256), seed=1)  # nothing to do
    assert len(read_checkpoints(tmp_path / "twice")) == 1
    with pytest.raises(ConfigError, match="other settings"):
        train_behaviour("smax:3m", tmp_path / "twice", config=tiny(256, hidden=32), seed=1)
    with pytest.raises(ConfigError, match="other settings"):
        train_behaviour("smax:3m", tmp_path / "twice", config=tiny(256), seed=2)


def test_interrupted_training_resumes_to_the_same_policy(tmp_path, monkeypatch):
    from marl_augment.envs import behaviour as beh

    train_behaviour("smax:3m", tmp_path / "straight", config=tiny(512), seed=4)
    calls = {"n": 0}
    real = beh.evaluate_params

    def dies_after_first(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(beh, "evaluate_params", dies_after_first)
    with pytest.raises(KeyboardInterrupt):
        train_behaviour("smax:3m", tmp_path / "resumed", config=tiny(512), seed=4)
    monkeypatch.setattr(beh, "evaluate_params", real)
    train_behaviour("smax:3m", tmp_path / "resumed", config=tiny(512), seed=4)
    a, b = read_checkpoints(tmp_path / "straight"), read_checkpoints(tmp_path / "resumed")
    assert [r["env_steps"] for r in b] == [256, 512]
    for x, y in zip(
        leaves(tmp_path / "straight", a[-1]["checkpoint"]),
        leaves(tmp_path / "resumed", b[-1]["checkpoint"]),
    ):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def _set_returns(folder, values):
    rows = read_checkpoints(folder)
    for r, v in zip(rows, values):
        r["normalised_return"] = v
    (folder / CHECKPOINTS).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_quality_picks_the_checkpoint_in_og_marls_band(tmp_path):
    folder = tmp_path / "beh"
    train_behaviour("smax:3m", folder, config=tiny(checkpoint_every=128), seed=0)
    _set_returns(folder, [0.30, 0.58, 0.61, 0.10])
    assert pick_checkpoint(folder, "poor")["env_steps"] == 128
    assert pick_checkpoint(folder, "medium")["env_steps"] == 256  # nearest the band's middle
    with pytest.raises(
        NotFound,
        match=r"no checkpoint .* reaches good \(0.82-0.92 .*0.30, 0.58, "
        r"0.61, 0.10\); train longer",
    ):
        pick_checkpoint(folder, "good")
    with pytest.raises(ConfigError, match="unknown quality"):
        pick_checkpoint(folder, "great")


def test_record_writes_whole_episodes_with_provenance(tmp_path):
    folder = tmp_path / "beh"
    train_behaviour("smax:3m", folder, config=tiny(), seed=0)
    name = read_checkpoints(folder)[-1]["checkpoint"]
    ds = record_behaviour(
        folder, tmp_path / "d.zarr", checkpoint=name, transitions=300, batch=16, seed=2
    )
    d = ma.load(tmp_path / "d.zarr")
    assert 300 <= d.num_transitions < 300 + 100
    ends = d.columns["terminated"] | d.columns["truncated"]
    assert int(ends.sum()) == len(d)  # whole episodes only
    src = ds.attrs["source"]
    assert src["checkpoint"] == name and src["epsilon"] == 0.05 and src["learner"] == "mappo"
    assert "measured_return" in src
    again = record_behaviour(
        folder, tmp_path / "e.zarr", checkpoint=name, transitions=300, batch=16, seed=2
    )
    assert again.fingerprint == ds.fingerprint  # same seed, same data


def test_datasets_reproduce_a_map_from_a_seed(tmp_path):
    out = tmp_path / "3m"
    cfg = tiny(checkpoint_every=128)
    behaviour_datasets("smax:3m", out, seed=0, qualities=(), config=cfg)  # train only
    _set_returns(out / "policies", [0.30, 0.58, 0.85, 0.10])
    res = behaviour_datasets("smax:3m", out, seed=0, transitions=400, fraction=0.25, config=cfg)
    for q in ("poor", "medium", "good"):
        d = res["datasets"][q]
        full, sub = ma.load(d["full"]), ma.load(d["subsample"])
        assert len(sub) == max(1, round(0.25 * len(full)))
        assert sub.provenance[-1]["method"] == "subsample"
    again = behaviour_datasets(
        "smax:3m", out, seed=0, transitions=400, fraction=0.25, config=cfg
    )  # resumes: nothing is redone
    assert again["datasets"] == res["datasets"]


def test_cli_behaviour_commands(tmp_path):
    folder = tmp_path / "beh"
    opts = [x for k, v in TINY.items() for x in ("-o", f"{k}={v}")]
    r = runner.invoke(
        app, ["behaviour", "train", "smax:3m", "--out", str(folder), "--steps", "256", *opts]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["behaviour", "list", str(folder), "--json"])
    assert r.exit_code == 0 and json.loads(r.output)[0]["env_steps"] == 256
    name = read_checkpoints(folder)[0]["checkpoint"]
    r = runner.invoke(
        app,
        [
            "behaviour",
            "record",
            str(folder),
            str(tmp_path / "d.zarr"),
            "--checkpoint",
            name,
            "--transitions",
            "50",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["behaviour", "train", "smax:3m", "--out", str(folder), "-o", "learning_rate=1"]
    )
    assert r.exit_code == 2 and "'MAPPO' has no option(s)" in r.output
    r = runner.invoke(
        app, ["behaviour", "record", str(folder), str(tmp_path / "e.zarr"), "--quality", "good"]
    )
    assert r.exit_code == 2 and "reaches good" in r.output
    r = runner.invoke(app, ["behaviour", "train", "smac:3m", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "smax:<map>" in r.output
