"""Online MATD3 behaviour policies on continuous-action envs and the datasets recorded from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import marl_augment as ma
from marl_augment.cli import app

pytest.importorskip("mpe2")

from marl_augment.algos import load_policy  # noqa: E402
from marl_augment.envs.online import (  # noqa: E402
    CHECKPOINTS,
    RELATIVE_BANDS,
    Td3OnlineConfig,
    pick,
    quality_bands,
    read_checkpoints,
    record_matd3,
    train_matd3,
)
from marl_augment.errors import ConfigError, NotFound  # noqa: E402

runner = CliRunner()
ENV = "mpe:simple_spread"
KW = {"max_cycles": 5, "N": 2}
TINY = dict(
    start_steps=20,
    batch_size=16,
    hidden=16,
    update_every=5,
    checkpoint_every=20,
    eval_episodes=2,
    threads=1,
)


def tiny(total_steps=60, **kw) -> Td3OnlineConfig:
    return Td3OnlineConfig(total_steps=total_steps, **{**TINY, **kw})


def weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "weights.safetensors"))


def test_training_saves_evaluated_policy_checkpoints_and_is_deterministic(tmp_path):
    a = train_matd3(ENV, tmp_path / "a", config=tiny(), seed=3, env_kwargs=KW)
    rows = a["checkpoints"]
    assert [r["env_steps"] for r in rows] == [20, 40, 60]
    assert [r["updates"] for r in rows] == [0, 20, 40]  # one update per step after start
    assert all(r["length_mean"] == 5 and r["eval_episodes"] == 2 for r in rows)
    assert all(np.isfinite(r["return_mean"]) and np.isfinite(r["greedy_return"]) for r in rows)
    train_matd3(ENV, tmp_path / "b", config=tiny(), seed=3, env_kwargs=KW)
    assert [r["return_mean"] for r in read_checkpoints(tmp_path / "b")] == [
        r["return_mean"] for r in rows
    ]
    wa, wb = (
        weights(tmp_path / "a" / rows[-1]["checkpoint"]),
        weights(tmp_path / "b" / rows[-1]["checkpoint"]),
    )
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    # learning moved the actor between the checkpoints
    w0 = weights(tmp_path / "a" / rows[0]["checkpoint"])
    assert any(not np.array_equal(w0[k], wa[k]) for k in wa)


def test_checkpoints_are_policies_evaluate_and_record_take(tmp_path):
    rows = train_matd3(ENV, tmp_path / "p", config=tiny(40), seed=0, env_kwargs=KW)["checkpoints"]
    ckpt = tmp_path / "p" / rows[-1]["checkpoint"]
    pol = load_policy(ckpt)
    assert pol.action_kind == "continuous" and pol.name == "matd3"
    obs = np.zeros((4, 2, pol.actor.obs_dim), np.float32)
    acts = pol(obs, np.ones((4, 2, 5), bool), np.ones(4, bool))
    assert acts.shape == (4, 2, 5) and (acts >= 0).all() and (acts <= 1).all()  # mpe's [0, 1]
    ev = ma.evaluate(pol, ENV, episodes=2, seed=0, **KW)
    assert ev["length_mean"] == 5
    # the evaluate command takes a checkpoint too (it has no data spec: the env as given)
    r = runner.invoke(
        app,
        [
            "evaluate",
            ENV,
            "--policy",
            str(ckpt),
            "-n",
            "2",
            "-e",
            "max_cycles=5",
            "-e",
            "N=2",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["length_mean"] == 5
    r = runner.invoke(
        app,
        [
            "record",
            ENV,
            str(tmp_path / "rec.zarr"),
            "-n",
            "3",
            "--policy",
            str(ckpt),
            "--noise",
            "0.3",
            "-e",
            "max_cycles=5",
            "-e",
            "N=2",
        ],
    )
    assert r.exit_code == 0, r.output
    ds = ma.load(tmp_path / "rec.zarr")
    assert len(ds) == 3 and ds.spec.action_kind == "continuous"
    assert ds.attrs["source"]["behaviour_noise"] == 0.3
    assert ds.attrs["source"]["behaviour_algo"] == "matd3"
    with pytest.raises(ma.errors.FormatError, match="unreadable policy"):
        (ckpt / "weights.safetensors").write_bytes(b"not weights")
        load_policy(ckpt)


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    once = train_matd3(ENV, tmp_path / "once", config=tiny(60), seed=1, env_kwargs=KW)
    train_matd3(ENV, tmp_path / "twice", config=tiny(40), seed=1, env_kwargs=KW)
    res = train_matd3(ENV, tmp_path / "twice", config=tiny(60), seed=1, env_kwargs=KW)
    rows, first = res["checkpoints"], once["checkpoints"]
    assert [r["env_steps"] for r in rows] == [20, 40, 60]
    assert [r["return_mean"] for r in rows[:2]] == [r["return_mean"] for r in first[:2]]
    assert rows[-1]["updates"] == 40  # the updates went on, not over
    again = train_matd3(ENV, tmp_path / "twice", config=tiny(60), seed=1, env_kwargs=KW)
    assert len(again["checkpoints"]) == 3  # nothing left to do
    with pytest.raises(ConfigError, match="other settings"):
        train_matd3(ENV, tmp_path / "twice", config=tiny(60, hidden=8), seed=1, env_kwargs=KW)
    with pytest.raises(ConfigError, match="other settings"):
        train_matd3(ENV, tmp_path / "twice", config=tiny(60), seed=1, env_kwargs={"N": 2})


def test_bad_settings_get_one_line(tmp_path):
    with pytest.raises(ConfigError, match="discrete actions"):
        train_matd3("pettingzoo:mpe2.simple_spread_v3", tmp_path / "d", config=tiny())
    assert not (tmp_path / "d").exists()
    with pytest.raises(ConfigError, match="policy_delay"):
        tiny(policy_delay=0).check()
    with pytest.raises(ConfigError, match="behaviour_noise"):
        tiny(behaviour_noise=2.0).check()
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("mine")
    with pytest.raises(ma.errors.MarlAugmentError):
        train_matd3(ENV, tmp_path / "theirs", config=tiny(), env_kwargs=KW)
    assert (tmp_path / "theirs" / "notes.txt").read_text() == "mine"


def _fake_rows(folder, returns):
    folder.mkdir()
    (folder / "behaviour.json").write_text(
        json.dumps(
            {
                "env_id": ENV,
                "learner": "matd3",
                "env_kwargs": KW,
                "config": {"behaviour_noise": 0.2},
            }
        )
    )
    rows = [
        {
            "checkpoint": f"ckpt-{i:09d}",
            "env_steps": i,
            "return_mean": r,
            "return_std": 0.0,
            "greedy_return": r,
            "length_mean": 5.0,
        }
        for i, r in enumerate(returns)
    ]
    (folder / CHECKPOINTS).write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_qualities_are_bands_of_the_runs_range_or_published_levels(tmp_path):
    _fake_rows(tmp_path / "f", [-100.0, -80.0, -68.0, -55.0, -10.0, 0.0])
    bands = quality_bands(ENV, read_checkpoints(tmp_path / "f"))
    assert bands["poor"] == pytest.approx((-100 + 23, -100 + 37))
    assert set(bands) == set(RELATIVE_BANDS)
    assert pick(tmp_path / "f", "poor", precise=False)["return_mean"] == -68.0
    assert pick(tmp_path / "f", "good", precise=False)["return_mean"] == -10.0
    with pytest.raises(NotFound, match="no checkpoint .* reaches medium"):
        pick(tmp_path / "f", "medium", precise=False)
    with pytest.raises(ConfigError, match="unknown quality"):
        pick(tmp_path / "f", "expert")
    hc = quality_bands("mamujoco:2x3-HalfCheetah", [])
    assert hc["medium"] == pytest.approx((1485.0 * 0.8, 1485.0 * 1.2))
    assert "omar-expert" in hc


def test_a_pick_is_made_on_precise_returns_not_the_noisy_training_ones(tmp_path):
    # training-time means (20 episodes, std 15: standard error 3.4) against the truth
    rough = [-100.0, -80.0, -68.0, -60.0, -57.0, -51.0, -40.0, -33.0]
    truth = [-100.0, -80.0, -67.0, -58.0, -62.0, -48.0, -43.0, -40.0]
    _fake_rows(tmp_path / "f", rough)
    rows = read_checkpoints(tmp_path / "f")
    for r in rows:
        r.update(return_std=15.0, eval_episodes=20)
    (tmp_path / "f" / CHECKPOINTS).write_text("".join(json.dumps(r) + "\n" for r in rows))
    measured = []

    def measure(r, random=-100.0):
        if r["checkpoint"] == "random":  # uniformly random actions, measured precisely
            return {**r, "return_mean": random, "return_std": 15.0, "eval_episodes": 800}
        measured.append(r["env_steps"])
        i = r["env_steps"]
        return {**r, "return_mean": truth[i], "return_std": 15.0, "eval_episodes": 800}

    # the noisy best (-33) sets a range of 67: "good" would be -45.1 to -38.4, -40 in it;
    # measured again, the best is -40, good is -50.8 to -44.8 and -40 is really -43: -48 it is
    good = pick(tmp_path / "f", "good", measure=measure)
    assert good["return_mean"] == -48.0 and good["env_steps"] == 5
    assert good["band"] == pytest.approx([-100 + 0.82 * 60, -100 + 0.92 * 60])
    assert 7 in measured  # the best was measured again (and random actions, the low end)
    assert 1 not in measured  # -80 ± 6.7 can be neither best nor good
    # medium: -66.5 to -57.8 on the noisy range, where -60 is nearest the middle; -70 to -62.2
    # on the true one, where -60 is really -58: the checkpoint that looked like -68 is the one
    medium = pick(tmp_path / "f", "medium", measure=measure)
    assert medium["env_steps"] == 2 and medium["return_mean"] == -67.0
    with pytest.raises(NotFound, match="measured precisely"):
        pick(
            tmp_path / "f", "poor", measure=lambda r: {**r, "return_mean": -100.0 + r["env_steps"]}
        )
    # the low end is the random policy's return, not the first checkpoint's
    lifted = pick(tmp_path / "f", "good", measure=lambda r: measure(r, random=-130.0))
    assert lifted["band"] == pytest.approx([-130 + 0.82 * 90, -130 + 0.92 * 90])


def test_precise_returns_come_from_the_saved_policies_deterministically(tmp_path):
    from marl_augment.envs.online import precise_row

    train_matd3(ENV, tmp_path / "p", config=tiny(60), seed=0, env_kwargs=KW)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "p").rglob("*")}
    meta = json.loads((tmp_path / "p" / "behaviour.json").read_text())
    row = read_checkpoints(tmp_path / "p")[-1]
    a, b = precise_row(tmp_path / "p", row, meta), precise_row(tmp_path / "p", row, meta)
    assert a == b and a["precise"] and a["eval_episodes"] == 1000  # 5-step episodes: the cap
    assert a["training_return"] == row["return_mean"]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "p").rglob("*")} == before
    # by default a pick measures with precise_row: the same outcome as from its values
    rows = read_checkpoints(tmp_path / "p")
    random = {"checkpoint": "random", "env_steps": 0, "return_mean": 0.0, "length_mean": 5.0}
    known = {r["checkpoint"]: precise_row(tmp_path / "p", r, meta) for r in [*rows, random]}
    assert known["random"]["eval_episodes"] == 1000 and known["random"]["training_return"] is None

    def outcome(**kw):
        try:
            return pick(tmp_path / "p", "poor", **kw)
        except NotFound as e:
            return str(e)

    assert outcome() == outcome(measure=lambda r: known[r["checkpoint"]])
    assert before == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "p").rglob("*")}


def test_record_by_quality_writes_whole_episodes_with_provenance(tmp_path):
    train_matd3(ENV, tmp_path / "p", config=tiny(40), seed=0, env_kwargs=KW)
    rows = read_checkpoints(tmp_path / "p")
    ds = record_matd3(
        tmp_path / "p",
        str(tmp_path / "d.zarr"),
        checkpoint=rows[-1]["checkpoint"],
        transitions=12,
        seed=0,
    )
    assert len(ds) == 3 and ds.num_transitions == 15  # whole 5-step episodes
    src = ds.attrs["source"]
    assert src["behaviour_checkpoint"] == rows[-1]["checkpoint"]
    assert src["behaviour_noise"] == 0.2 and src["measured_return"] == rows[-1]["return_mean"]
    assert ds.spec.extras["env_kwargs"] == KW  # evaluation rebuilds the env
    with pytest.raises(ConfigError, match="not both"):
        record_matd3(
            tmp_path / "p",
            str(tmp_path / "x.zarr"),
            quality="poor",
            checkpoint=rows[0]["checkpoint"],
        )
    with pytest.raises(ma.errors.MarlAugmentError):
        record_matd3(tmp_path / "p", str(tmp_path / "p"), checkpoint=rows[0]["checkpoint"])
    assert (tmp_path / "p" / CHECKPOINTS).is_file()  # the input is untouched


def test_cli_behaviour_on_a_continuous_env(tmp_path):
    folder = tmp_path / "beh"
    r = runner.invoke(
        app,
        [
            "behaviour",
            "train",
            ENV,
            "--out",
            str(folder),
            "--steps",
            "40",
            "-e",
            "max_cycles=5",
            "-e",
            "N=2",
            "-o",
            "start_steps=20",
            "-o",
            "batch_size=16",
            "-o",
            "hidden=16",
            "-o",
            "update_every=5",
            "-o",
            "checkpoint_every=20",
            "-o",
            "eval_episodes=1",
            "-o",
            "threads=1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "2 checkpoints" in " ".join(r.output.split())
    r = runner.invoke(app, ["behaviour", "list", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["checkpoints"]) == 2
    ckpt = read_checkpoints(folder)[-1]["checkpoint"]
    r = runner.invoke(
        app,
        [
            "behaviour",
            "record",
            str(folder),
            str(tmp_path / "d.zarr"),
            "--checkpoint",
            ckpt,
            "--transitions",
            "10",
            "--noise",
            "0.1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert ma.load(tmp_path / "d.zarr").attrs["source"]["behaviour_noise"] == 0.1
    r = runner.invoke(
        app,
        [
            "behaviour",
            "record",
            str(folder),
            str(tmp_path / "e.zarr"),
            "--checkpoint",
            ckpt,
            "--epsilon",
            "0.1",
        ],
    )
    assert r.exit_code != 0 and "use --noise" in r.output
    r = runner.invoke(
        app, ["behaviour", "train", ENV, "--out", str(tmp_path / "x"), "-o", "num_envs=4"]
    )
    assert r.exit_code != 0 and "'MATD3' has no option(s)" in r.output


def test_benchmark_makes_continuous_scenario_data_with_learned_behaviour(tmp_path, monkeypatch):
    """A continuous scenario in the grid: one MATD3 learner shared by the qualities, each data
    cell recording the checkpoint of its band with the scenario's env args, learners evaluated
    in that same env."""
    from marl_augment.bench import load_config, run_benchmark
    from marl_augment.envs import online

    # a tiny MATD3 run cannot be relied on to spread over the bands: accept any return here
    monkeypatch.setattr(
        online,
        "quality_bands",
        lambda env_id, rows, low=None: {"poor": (-1e9, 1e9), "medium": (-1e9, 1e9)},
    )
    opts = dict(total_steps=40, **{k: v for k, v in TINY.items() if k != "threads"})
    cfg = load_config(
        None,
        scenarios=[ENV],
        qualities=["poor", "medium"],
        behaviour="learned",
        transitions=20,
        matd3_options=opts,
        env_args={ENV: KW},
        methods=["original", "rad-s"],
        algos=["td3-bc"],
        seeds=[0],
        steps=4,
        eval_every=2,
        eval_episodes=2,
        device="cpu",
        scale=1.0,
        algo_options={"td3-bc": {"seq_len": 5}},
        shifted_env_args={ENV: {"agent_speed_min": 0.3}},
    )
    rows = run_benchmark(cfg, tmp_path / "w", workers=1, report=False)
    assert len(rows) == 4 and all(np.isfinite(r["return_mean"]) for r in rows)
    # every run also evaluated in DOM2's shifted env, and reported
    assert all(
        r["shifted"]["env_args"] == {"agent_speed_min": 0.3}
        and np.isfinite(r["shifted"]["return_mean"])
        for r in rows
    )
    from marl_augment.bench.report import write_report

    assert "## Shifted environments" in write_report(rows, tmp_path, cfg).read_text()
    with pytest.raises(ConfigError, match="shifted_env_args for"):
        load_config(None, scenarios=["smax:3m"], shifted_env_args={ENV: {}}).check()
    for r in rows:  # evaluated with max_cycles 5
        summary = json.loads((Path(r["run"]) / "summary.json").read_text())
        assert summary["eval"]["length_mean"] == 5
    assert (
        len(list((tmp_path / "w" / "behaviour").glob("mpe-simple_spread-*/checkpoints.jsonl"))) == 1
    )
    refs = []
    for data in (tmp_path / "w" / "cells").glob("data-*"):
        res = json.loads((data / "result.json").read_text())
        assert res["behaviour_checkpoint"].startswith("ckpt-") and res["transitions"] == 20
        ref = res["reference_returns"]  # the behaviour run's precise range, shared by qualities
        assert np.isfinite(ref["low"]) and ref["high"] >= ref["low"]
        refs.append((ref["low"], ref["high"]))
    assert len(set(refs)) == 1
    lo, hi = refs[0]
    for r in rows:  # normalised by that range, like SMAX's by the maximum return
        if hi > lo:
            assert r["normalised_return"] == pytest.approx((r["return_mean"] - lo) / (hi - lo))
            assert r["reference_returns"] == [lo, hi]
        else:
            assert r["normalised_return"] is None
    with pytest.raises(ConfigError, match="continuous actions: its data comes from learned"):
        load_config(None, scenarios=[ENV], qualities=["poor"]).check()
    with pytest.raises(ConfigError, match="unknown quality 'omar-expert'"):
        load_config(None, scenarios=[ENV], qualities=["omar-expert"], behaviour="learned").check()
    with pytest.raises(ConfigError, match="env_args for"):
        load_config(None, scenarios=["smax:3m"], env_args={ENV: KW}, behaviour="learned").check()
    with pytest.raises(ConfigError, match="matd3_options"):
        load_config(
            None,
            scenarios=[ENV],
            behaviour="learned",
            qualities=["poor"],
            matd3_options={"num_envs": 4},
        ).check()
    with pytest.raises(ConfigError, match="matd3_options for"):
        load_config(
            None,
            scenarios=[ENV],
            behaviour="learned",
            qualities=["poor"],
            matd3_options={"mamujoco:2x3-HalfCheetah": {}},
        ).check()
    c = load_config(
        None,
        scenarios=[ENV],
        behaviour="learned",
        qualities=["poor"],
        matd3_options={"hidden": 8, "lr": 0.1, ENV: {"hidden": 16}},
    ).check()
    assert c.matd3_for(ENV) == {"hidden": 16, "lr": 0.1}  # the scenario's own first


def test_dense_checkpoints_early_and_resume_across_added_options(tmp_path):
    """dense_until / dense_every add checkpoints early in training (a band passed quickly gets
    one); a folder made before an option existed resumes when the option is at its default."""
    rows = train_matd3(
        ENV, tmp_path / "d", config=tiny(60, dense_until=40, dense_every=10), seed=0, env_kwargs=KW
    )["checkpoints"]
    assert [r["env_steps"] for r in rows] == [10, 20, 30, 40, 60]
    train_matd3(ENV, tmp_path / "o", config=tiny(40), seed=0, env_kwargs=KW)
    meta = json.loads((tmp_path / "o" / "behaviour.json").read_text())
    for k in ("dense_until", "dense_every"):  # as an older version wrote it
        del meta["config"][k]
    (tmp_path / "o" / "behaviour.json").write_text(json.dumps(meta))
    assert (
        len(train_matd3(ENV, tmp_path / "o", config=tiny(60), seed=0, env_kwargs=KW)["checkpoints"])
        == 3
    )
    with pytest.raises(ConfigError, match="other settings"):
        train_matd3(ENV, tmp_path / "o", config=tiny(80, dense_until=60), seed=0, env_kwargs=KW)
