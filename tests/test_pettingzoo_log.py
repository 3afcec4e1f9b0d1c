"""PettingZoo logs: record -> convert -> load reproduces every logged value exactly."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import marl_augment as ma
from marl_augment import adapters
from marl_augment.adapters.pettingzoo_log import Recorder
from marl_augment.envs.recording import record
from marl_augment.errors import ConfigError, FormatError, NotFound, UnsupportedError
from marl_augment.spaces import flat_obs
from marl_augment.testing import AdapterTests

from .toy_envs import BoxActions, Skirmish

mpe2 = pytest.importorskip("mpe2")


def run_and_capture(env, path, episodes: int, seed: int = 0, stop_early: int | None = None):
    """Drive a Recorder-wrapped env with random legal actions; capture rows independently."""
    rec = Recorder(env, path)
    agents = list(env.possible_agents)
    rng = np.random.default_rng(seed)
    captured = []
    for e in range(episodes):
        obs, infos = rec.reset(seed=seed + e)
        rows = []
        while rec.agents:
            acts, row = {}, {"obs": {}, "mask": {}, "state": None}
            if hasattr(env, "state"):
                row["state"] = np.asarray(env.state(), np.float32).copy()
            for a in rec.agents:
                o = obs[a]
                mask = None
                if isinstance(o, dict):
                    mask = np.asarray(o["action_mask"], bool)
                elif "action_mask" in infos.get(a, {}):
                    mask = np.asarray(infos[a]["action_mask"], bool)
                n = env.action_space(a).n
                legal = np.flatnonzero(mask) if mask is not None else np.arange(n)
                acts[a] = int(rng.choice(legal))
                row["obs"][a] = flat_obs(env.observation_space(a), o)
                row["mask"][a] = mask
            obs, rew, term, trunc, infos = rec.step(acts)
            row.update(actions=acts, rewards=dict(rew), term=dict(term), trunc=dict(trunc))
            rows.append(row)
            if stop_early is not None and len(rows) == stop_early:
                break
        captured.append(rows)
    rec.close()
    return captured, agents


def expected_columns(rows, env, agents):
    n = len(agents)
    o_dim = max(
        flat_obs(env.observation_space(a), env.observation_space(a).sample()).shape[0]
        for a in agents
    )
    n_act = max(env.action_space(a).n for a in agents)
    t = len(rows)
    cols = {
        k: np.zeros(s, d)
        for k, s, d in (
            ("obs", (t, n, o_dim), np.float32),
            ("actions", (t, n), np.int32),
            ("agent_rewards", (t, n), np.float32),
            ("alive", (t, n), bool),
            ("avail_actions", (t, n, n_act), bool),
            ("rewards", (t,), np.float32),
        )
    }
    for i, r in enumerate(rows):
        team = 0.0
        for j, a in enumerate(agents):
            if a not in r["actions"]:
                continue
            o = r["obs"][a]
            cols["obs"][i, j, : o.shape[0]] = o
            cols["actions"][i, j] = r["actions"][a]
            cols["agent_rewards"][i, j] = np.float32(r["rewards"][a])
            team += np.float32(r["rewards"][a])
            cols["alive"][i, j] = True
            m = r["mask"][a]
            cols["avail_actions"][i, j, : env.action_space(a).n] = True if m is None else m
        cols["rewards"][i] = np.float32(
            sum(float(np.float32(r["rewards"][a])) for a in r["actions"])
        )
        if r["state"] is not None:
            cols.setdefault("state", np.zeros((t, r["state"].shape[0]), np.float32))[i] = r["state"]
    return cols


@pytest.mark.parametrize(
    "module,max_cycles", [("simple_spread_v3", 25), ("simple_world_comm_v3", 15)]
)
def test_mpe_record_convert_load_exact(tmp_path, module, max_cycles):
    mod = __import__(f"mpe2.{module}", fromlist=["parallel_env"])
    env = mod.parallel_env(max_cycles=max_cycles)
    captured, agents = run_and_capture(env, tmp_path / "log.jsonl.gz", episodes=4)
    ds = adapters.convert("pettingzoo-log", tmp_path / "log.jsonl.gz", tmp_path / "out.zarr")
    ds = ma.load(ds.path)
    assert ds.spec.env_id == f"pettingzoo:mpe2.{module}"
    assert list(ds.spec.agent_ids) == agents and len(ds) == 4
    for ep, rows in zip(ds.episodes(), captured):
        want = expected_columns(rows, env, agents)
        for name, value in want.items():
            if name == "avail_actions" and not ds.spec.has_avail_actions:
                continue
            np.testing.assert_array_equal(getattr(ep, name), value, err_msg=name)
        assert ep.truncated[-1] and not ep.terminated.any()  # max_cycles is a time limit
    if module == "simple_world_comm_v3":
        # heterogeneous agents: true sizes kept, padding zero, smaller action sets masked
        assert ds.spec.obs_dims == (34, 34, 34, 34, 28, 28)
        assert ds.spec.agent_n_actions == (20, 5, 5, 5, 5, 5) and ds.spec.n_actions == 20
        assert not ds.columns["obs"][:, 4:, 28:].any()
        assert not ds.columns["avail_actions"][:, 1:, 5:].any()
        assert ds.columns["avail_actions"][:, 0, :].all()


@pytest.mark.parametrize("mask_in", ["obs", "infos"])
def test_agents_dying_masks_and_wins(tmp_path, mask_in):
    env = Skirmish(mask_in=mask_in)
    if mask_in == "obs":  # the api test samples with obs["action_mask"] only
        parallel_api_test(Skirmish(mask_in=mask_in), num_cycles=30)
    captured, agents = run_and_capture(env, tmp_path / "log.jsonl", episodes=6, seed=1)
    ds = adapters.convert("pettingzoo-log", tmp_path / "log.jsonl", tmp_path / "out.zarr")
    assert ds.spec.has_avail_actions and ds.spec.state_dim == 5
    deaths = 0
    for ep, rows in zip(ds.episodes(), captured):
        want = expected_columns(rows, env, agents)
        for name, value in want.items():
            np.testing.assert_array_equal(getattr(ep, name), value, err_msg=name)
        dead = ~ep.alive
        deaths += int(dead.any())
        assert not ep.obs[dead].any() and not ep.actions[dead].any()
        assert not ep.avail_actions[dead].any() and not ep.agent_rewards[dead].any()
        last = rows[-1]
        won = any(last["trunc"].values())
        assert ep.won == won
        assert bool(ep.truncated[-1]) == (not any(last["term"].values()))
    assert deaths > 0
    assert ds.episode_won is not None


def test_reward_modes(tmp_path):
    env = Skirmish()
    run_and_capture(env, tmp_path / "log.jsonl", episodes=2)
    s = adapters.convert("pettingzoo-log", tmp_path / "log.jsonl", tmp_path / "sum.zarr")
    m = adapters.convert(
        "pettingzoo-log", tmp_path / "log.jsonl", tmp_path / "mean.zarr", reward="mean"
    )
    alive = s.columns["alive"].sum(1)
    np.testing.assert_allclose(m.columns["rewards"], s.columns["rewards"] / alive, rtol=1e-6)
    assert m.spec.reward_mode == "mean"
    with pytest.raises(ConfigError, match="reward must be one of"):
        adapters.make("pettingzoo-log", reward="median")
    with pytest.raises(ConfigError, match="has no option"):
        adapters.make("pettingzoo-log", rewrd="sum")


def test_unfinished_last_episode_dropped_and_cut_episode_truncated(tmp_path):
    env = Skirmish(max_steps=30)
    captured, _ = run_and_capture(env, tmp_path / "log.jsonl", episodes=3, seed=2, stop_early=2)
    # episodes 0 and 1 were cut by a reset (kept, truncated); episode 2 ran off the end (dropped)
    with pytest.warns(UserWarning, match="unfinished"):
        ds = adapters.convert("pettingzoo-log", tmp_path / "log.jsonl", tmp_path / "out.zarr")
    assert len(ds) == 2 and ds.columns["truncated"].sum() == 2
    assert ds.source["cut_episodes"] == 2 and ds.source["dropped_unfinished"] == 1


@pytest.mark.parametrize(
    "env, match",
    [
        (BoxActions(high=np.inf), "unbounded Box action space"),
        (BoxActions(mixed=True), "mix discrete and continuous"),
    ],
)
def test_unbounded_or_mixed_action_spaces_refused(tmp_path, env, match):
    with pytest.raises(UnsupportedError, match=match):
        Recorder(env, tmp_path / "log.jsonl")


def _write_log(path, lines):
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n")


HEADER = {
    "format": "marl-augment/pettingzoo-log",
    "version": 1,
    "env_id": "pettingzoo:hand",
    "agents": ["x", "y"],
    "obs_dims": {"x": 2, "y": 2},
    "n_actions": {"x": 3, "y": 3},
    "state_dim": None,
}
RESET = {"t": "reset", "obs": {"x": [0, 1], "y": [1, 0]}}
STEP = {
    "t": "step",
    "actions": {"x": 1, "y": 2},
    "rewards": {"x": 1.0, "y": 0.5},
    "terminations": {"x": True, "y": True},
    "truncations": {"x": False, "y": False},
    "obs": {"x": [0, 0], "y": [0, 0]},
}


def test_hand_written_log_converts(tmp_path):
    _write_log(tmp_path / "h.jsonl", [HEADER, RESET, STEP, RESET, STEP])
    ds = adapters.convert("pettingzoo-log", tmp_path / "h.jsonl", tmp_path / "h.zarr")
    assert len(ds) == 2 and ds.columns["rewards"].tolist() == [1.5, 1.5]
    assert ds.columns["terminated"].all()


@pytest.mark.parametrize(
    "lines,match,exc",
    [
        ([HEADER, RESET, '{"t": "step", "actions": '], "line 3 is not valid JSON", FormatError),
        ([{"format": "other"}], "not a marl-augment/pettingzoo-log header", FormatError),
        (
            [HEADER, {**RESET, "obs": {"x": [0, float("nan")], "y": [1, 0]}}],
            "non-finite",
            FormatError,
        ),
        (
            [HEADER, RESET, {**STEP, "actions": {"x": 0.5, "y": 1}}],
            "declares discrete",
            FormatError,
        ),
        ([HEADER, RESET, {**STEP, "actions": {"x": 7, "y": 1}}], "outside 0..2", FormatError),
        ([HEADER, RESET, {**STEP, "actions": {"z": 1}}], "unknown agent 'z'", FormatError),
        (
            [HEADER, {**RESET, "obs": {"x": [0, 1, 2], "y": [1, 0]}}],
            "has 3 values, header says 2",
            FormatError,
        ),
        ([HEADER, STEP], "a step before any reset", FormatError),
    ],
)
def test_bad_logs_give_one_line(tmp_path, lines, match, exc):
    _write_log(tmp_path / "bad.jsonl", lines)
    with pytest.raises(exc, match=match) as e:
        adapters.convert("pettingzoo-log", tmp_path / "bad.jsonl", tmp_path / "bad.zarr")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "bad.zarr").exists()


def test_missing_and_empty_inputs(tmp_path):
    with pytest.raises(NotFound):
        adapters.convert("pettingzoo-log", tmp_path / "nope.jsonl", tmp_path / "o.zarr")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(FormatError, match="empty"):
        adapters.convert("pettingzoo-log", tmp_path / "empty.jsonl", tmp_path / "o.zarr")
    with pytest.raises(NotFound, match="unknown adapter 'petingzoo-log'.*Did you mean"):
        adapters.make("petingzoo-log")


def test_partial_log_of_crashed_recorder_is_readable(tmp_path):
    env = Skirmish()
    rec = Recorder(env, tmp_path / "log.jsonl.gz")
    for e in range(3):
        obs, infos = rec.reset(seed=e)
        while rec.agents:
            obs, *_ = rec.step(
                {a: int(np.flatnonzero(obs[a]["action_mask"])[0]) for a in rec.agents}
            )
    rec._log._f.flush()
    rec._log._f.close()  # the process "dies" here: only log.jsonl.gz.partial exists
    partial = tmp_path / "log.jsonl.gz.partial"
    assert partial.exists() and not (tmp_path / "log.jsonl.gz").exists()
    with gzip.open(partial, "rt") as f:
        assert json.loads(f.readline())["format"] == "marl-augment/pettingzoo-log"
    ds = adapters.convert("pettingzoo-log", partial, tmp_path / "out.zarr")
    assert len(ds) == 3


def test_record_helper_is_deterministic(tmp_path):
    from mpe2 import simple_spread_v3

    a = record(
        simple_spread_v3.parallel_env(max_cycles=10), tmp_path / "a.jsonl", episodes=3, seed=4
    )
    b = record(
        simple_spread_v3.parallel_env(max_cycles=10), tmp_path / "b.jsonl", episodes=3, seed=4
    )
    assert a.read_text() == b.read_text()


class TestPettingZooLogAdapter(AdapterTests):
    adapter = "pettingzoo-log"

    def make_source(self, tmp_path):
        self.captured, self.agents = run_and_capture(Skirmish(), tmp_path / "log.jsonl", episodes=3)
        return tmp_path / "log.jsonl"

    def expected_episodes(self, source):
        return [expected_columns(rows, Skirmish(), self.agents) for rows in self.captured]
