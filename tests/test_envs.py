"""Environments: SMAX and the SMAC wrapper (over a test double) as PettingZoo ParallelEnvs."""

from __future__ import annotations

import logging
import os
import sys
import types

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import marl_augment as ma
from marl_augment.envs import make_env, max_return
from marl_augment.envs.evaluate import evaluate
from marl_augment.envs.smac import SmacParallelEnv, SmacUnavailable, load_starcraft2env
from marl_augment.errors import ConfigError, NotFound

from . import smac_double
from .smac_double import FakeStarCraft2Env


def play(env, seed, policy_seed=0, max_steps=500):
    rng = np.random.default_rng(policy_seed)
    obs, infos = env.reset(seed=seed)
    trace = []
    for _ in range(max_steps):
        if not env.agents:
            break
        acts = {a: int(rng.choice(np.flatnonzero(obs[a]["action_mask"]))) for a in env.agents}
        obs, rew, term, trunc, infos = env.step(acts)
        trace.append((acts, {a: o["observation"].copy() for a, o in obs.items()}, rew, term, trunc))
    return trace, infos


# -- SMAC wrapper over the test double -------------------------------------------------------


def fake_env(our_damage=None, enemy_damage=None, map_name="3m", **kw):
    factory = FakeStarCraft2Env
    if our_damage is not None or enemy_damage is not None:
        factory = FakeStarCraft2Env.with_battle(
            FakeStarCraft2Env.our_damage if our_damage is None else our_damage,
            FakeStarCraft2Env.enemy_damage if enemy_damage is None else enemy_damage,
        )
    return SmacParallelEnv(map_name, env_factory=factory, **kw)


@pytest.fixture(autouse=False)
def games():
    """The fake's record of StarCraft II launches, emptied for the test."""
    smac_double.launches.clear()
    smac_double.open_processes.clear()
    return smac_double


def test_smac_wrapper_passes_parallel_api_test_with_one_game(games):
    env = fake_env()
    parallel_api_test(env, num_cycles=300)
    # parallel_api_test resets before the first episode ends: one game all the same, and the
    # reward scale counts the enemies' health once (3 kills x 10 + win 200 + 3 marines x 45)
    assert len(games.launches) == 1 and len(games.open_processes) == 1
    assert env.smac_env.max_reward == 365


def test_the_double_launches_twice_like_smac_without_the_guard(games):
    """The fake is faithful: SMAC itself launches a second game on a second early reset."""
    e = FakeStarCraft2Env("3m")
    e.reset()
    e.reset()
    assert len(games.launches) == 2 and len(games.open_processes) == 2
    assert e.max_reward == 365 + 135


def won_without_losses(env, seed=0):
    """Focus fire on enemy 0, then 1, ...: a won battle (the enemy does no damage)."""
    obs, _ = env.reset(seed=seed)
    ret, infos = 0.0, {}
    while env.agents:
        acts = {}
        for a in env.agents:
            legal = np.flatnonzero(obs[a]["action_mask"])
            attack = legal[legal >= 6]
            acts[a] = int(attack[0]) if attack.size else int(legal[0])
        obs, rew, _, _, infos = env.step(acts)
        ret += next(iter(rew.values()))
    return ret, next(iter(infos.values()))


@pytest.mark.parametrize(
    "kw,best",
    [
        ({}, 20.0),
        ({"reward_scale_rate": 10}, 10.0),
        ({"reward_scale": False}, 365.0),
        ({"reward_sparse": True}, 20 / 365),
        ({"reward_sparse": True, "reward_scale": False}, 1.0),
        ({"reward_win": 50}, 20.0),
    ],
)
def test_smac_max_return_follows_the_reward_settings(kw, best):
    env = fake_env(our_damage=0.5, enemy_damage=0.0, **kw)
    ret, info = won_without_losses(env)
    assert info["battle_won"] is True
    assert env.max_return == pytest.approx(best) and ret == pytest.approx(best)


def test_smac_max_return_before_the_game_starts():
    assert fake_env().max_return == 20.0  # scaled: known without the game
    assert fake_env(reward_scale=False).max_return is None  # needs the units' health


def test_smac_evaluation_normalises_by_the_envs_own_scale():
    factory = FakeStarCraft2Env.with_battle(0.5, 0.0)
    res = evaluate("random", "smac:3m", episodes=4, env_factory=factory, reward_scale_rate=10)
    assert res["return_mean"] <= 10 + 1e-9
    assert res["normalised_return_mean"] == pytest.approx(res["return_mean"] / 10)


def test_smac_evaluation_launches_the_game_once(games):
    res = evaluate("random", "smac:3m", episodes=6, seed=5, env_factory=FakeStarCraft2Env)
    assert res["episodes"] == 6 and games.launches == [5] and games.open_processes == []
    again = evaluate("random", "smac:3m", episodes=6, seed=5, env_factory=FakeStarCraft2Env)
    assert again == res  # the same seed replays the same evaluation


def test_smac_new_seed_relaunches_in_place(games):
    env = fake_env()
    env.reset(seed=1)
    env.reset(seed=1)
    env.reset(seed=2)
    assert games.launches == [1, 2] and len(games.open_processes) == 1  # the old game is closed
    env.close()
    assert games.open_processes == []


def test_smac_lost_connection_is_an_interrupted_episode_not_a_defeat(games):
    env = fake_env(our_damage=0.0, enemy_damage=0.0)
    obs, _ = env.reset(seed=0)
    env.smac_env.lose_connection_on_step = 3
    for _ in range(3):
        obs, rew, term, trunc, infos = env.step({a: 1 for a in env.agents})
    assert env.agents == [] and env.interrupted == 1
    assert all(trunc.values()) and not any(term.values())
    assert all(i["interrupted"] and not i["battle_won"] for i in infos.values())
    assert len(games.launches) == 2  # SMAC's full_restart
    env.reset()  # the next episode runs in the restarted game
    obs, rew, term, trunc, infos = env.step({a: 1 for a in env.agents})
    assert "interrupted" not in next(iter(infos.values()))


class _DropsFirstEpisode(FakeStarCraft2Env):
    """Loses the game connection on step 2 of the first episode."""

    def reset(self):
        out = super().reset()
        if self.force_restarts == 0:
            self.lose_connection_on_step = 2
        return out


def test_smac_evaluation_leaves_out_interrupted_episodes(games):
    res = evaluate("random", "smac:3m", episodes=3, env_factory=_DropsFirstEpisode)
    assert res["episodes"] == 3 and res["interrupted_episodes"] == 1


def test_smac_evaluation_gives_up_when_the_game_keeps_failing():
    class Broken(FakeStarCraft2Env):
        def reset(self):
            out = super().reset()
            self.lose_connection_on_step = 1
            return out

    from marl_augment.errors import EnvError

    with pytest.raises(EnvError, match="5 episodes in a row were cut short"):
        evaluate("random", "smac:3m", episodes=3, env_factory=Broken)


def test_smac_recording_leaves_out_interrupted_episodes(tmp_path, games):
    from marl_augment.adapters.pettingzoo_log import PettingZooLogAdapter
    from marl_augment.envs.recording import record

    env = SmacParallelEnv("3m", env_factory=_DropsFirstEpisode)
    log = record(env, tmp_path / "smac.jsonl", episodes=3, seed=4, env_id="smac:3m")
    # seeded once: the game launched once and restarted once, after the lost connection,
    # not once per episode
    assert games.launches == [4, 4] and env.smac_env.force_restarts == 1
    res = PettingZooLogAdapter().convert(log, tmp_path / "smac.zarr")
    ds = ma.load(tmp_path / "smac.zarr")
    assert len(ds) == 3 and ds.attrs["source"]["interrupted_episodes"] == 1, res


def test_smac_unknown_map_and_misspelt_option_are_one_line():
    with pytest.raises(NotFound, match=r"unknown SMAC map 'nope'; known maps: 2s3z, 3m, 8m$"):
        make_env("smac:nope", env_factory=FakeStarCraft2Env)
    with pytest.raises(
        ConfigError, match=r"StarCraft2Env has no option 'reward_scal'; its options"
    ):
        make_env("smac:3m", env_factory=FakeStarCraft2Env, reward_scal=False)


def test_smac_battle_end_is_termination_with_infos():
    env = fake_env(our_damage=0.5, enemy_damage=0.05)
    trace, infos = play(env, seed=1)
    _, _, _, term, trunc = trace[-1]
    assert all(term.values()) and not any(trunc.values())
    info = next(iter(infos.values()))
    assert info["battle_won"] is True and info["dead_enemies"] == 3 and not info["episode_limit"]


@pytest.mark.parametrize("continuing", [False, True])
def test_smac_time_limit_is_truncation(continuing):
    # no damage at all: the episode can only end by SMAC's time limit (60 steps on 3m)
    env = fake_env(our_damage=0.0, enemy_damage=0.0, continuing_episode=continuing)
    trace, infos = play(env, seed=2)
    assert len(trace) == 60
    _, _, _, term, trunc = trace[-1]
    assert all(trunc.values()) and not any(term.values())
    assert next(iter(infos.values()))["episode_limit"] is True


def test_smac_dead_agents_leave_and_no_op():
    env = fake_env(our_damage=0.0, enemy_damage=0.6)
    obs, _ = env.reset(seed=3)
    seen_death = False
    while env.agents:
        before = list(env.agents)
        obs, rew, term, trunc, infos = env.step({a: 1 for a in env.agents})  # 'stop'
        for a in before:
            if term[a] and env.agents:
                seen_death = True
                assert a not in env.agents
    # the double asserts like SMAC does: a dead unit given anything but the no-op would fail
    assert seen_death or not env.agents
    with pytest.raises(ConfigError, match="call reset"):
        env.step({})


def test_smac_seed_reaches_the_game_and_episodes_are_counted(games):
    env = fake_env(seed=7)
    a, _ = play(env, seed=11)
    b, _ = play(env, seed=11)
    c, _ = play(env, seed=12)
    assert smac_double.launches == [11, 12]  # a new seed relaunches StarCraft II with it
    assert env.episodes == 3
    env2 = fake_env()
    d, _ = play(env2, seed=11)
    for x, y in zip(a, d):
        assert x[0] == y[0] and x[2] == y[2]


def test_smac_illegal_action_is_refused_clearly():
    env = fake_env()
    env.reset(seed=0)
    with pytest.raises(ConfigError, match="cannot take action 0"):
        env.step({a: 0 for a in env.agents})  # no-op is illegal for living units


def test_smac_missing_or_wrong_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "smac", None)
    with pytest.raises(
        SmacUnavailable, match="StarCraft SMAC is not installed; pip install 'git\\+https"
    ):
        make_env("smac:3m")
    smac3 = types.ModuleType("smac")
    smac3.__file__ = "/site-packages/smac/__init__.py"
    smac3.__version__ = "2.3.1"
    monkeypatch.setitem(sys.modules, "smac", smac3)
    monkeypatch.setitem(sys.modules, "smac.env", None)
    with pytest.raises(SmacUnavailable, match="is SMAC3, the hyper-parameter optimiser"):
        make_env("smac:3m")
    real = types.ModuleType("smac")
    env_mod = types.ModuleType("smac.env")
    env_mod.StarCraft2Env = FakeStarCraft2Env
    monkeypatch.setitem(sys.modules, "smac", real)
    monkeypatch.setitem(sys.modules, "smac.env", env_mod)
    monkeypatch.delenv("SC2PATH", raising=False)
    with pytest.raises(SmacUnavailable, match="StarCraft II was not found \\(SC2PATH is unset\\)"):
        make_env("smac:3m")
    assert load_starcraft2env(check_sc2=False) is FakeStarCraft2Env


@pytest.mark.skipif(not os.environ.get("SC2PATH"), reason="needs StarCraft II (SC2PATH)")
def test_real_smac_integration():  # pragma: no cover - runs only where StarCraft II exists
    env = make_env("smac:3m")
    parallel_api_test(env, num_cycles=100)
    res = evaluate("random", "smac:3m", episodes=2)
    assert 0 <= res["normalised_return_mean"] <= 1.5


# -- SMAX ---------------------------------------------------------------------------------------

pytest.importorskip("jaxmarl")


@pytest.mark.parametrize("map_name", ["3m", "2s3z"])
def test_smax_parallel_api(map_name):
    env = make_env(f"smax:{map_name}")
    parallel_api_test(env, num_cycles=150)
    assert env.observation_space("agent_0") is env.observation_space("agent_0")
    assert env.state().shape == env.state_space.shape


def test_smax_is_deterministic_and_compiles_step_once(caplog):
    import jax

    a, ia = play(make_env("smax:3m"), seed=5)
    env = make_env("smax:3m")
    env.reset(seed=0)
    env.step({ag: 4 for ag in env.agents})
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            b, ib = play(env, seed=5)
    finally:
        jax.config.update("jax_log_compiles", False)
    assert not [r for r in caplog.records if "Compiling" in r.getMessage()], (
        "step was compiled again"
    )
    assert len(a) == len(b) and ia == ib
    for x, y in zip(a, b):
        assert x[0] == y[0] and x[2] == y[2]
        for ag in x[1]:
            np.testing.assert_array_equal(x[1][ag], y[1][ag])


def test_smax_unknown_map():
    with pytest.raises(NotFound, match="unknown SMAX map 'nope'; known maps: .*3m"):
        make_env("smax:nope")
    with pytest.raises(NotFound, match="unknown environment id"):
        make_env("starcraft:3m")


def test_collect_quality_ladder_and_provenance(tmp_path):
    means = {}
    for q in ("poor", "medium", "good"):
        ds = ma.envs.smax.collect(
            "smax:3m", tmp_path / f"{q}.zarr", quality=q, episodes=192, seed=0
        )
        ds = ma.load(ds.path)
        means[q] = ds.stats()["return_mean"]
        assert ds.spec.n_agents == 3 and ds.spec.n_actions == 8 and ds.spec.state_dim > 0
        assert ds.provenance[0]["method"] == "collect" and ds.provenance[0]["config"]["policy"] == q
        assert ds.episode_won is not None and ds.stats()["episodes"] == 192
        # dead units took 'stop' (4), the only legal action for them
        dead = ~ds.columns["alive"]
        assert (ds.columns["actions"][dead] == 4).all()
    assert means["poor"] < means["medium"] < means["good"]
    again = ma.envs.smax.collect(
        "smax:3m", tmp_path / "again.zarr", quality="good", episodes=192, seed=0
    )
    assert again.fingerprint == ma.load(tmp_path / "good.zarr").fingerprint


def test_evaluate_scripted_batch_and_torch_policies():
    import torch

    good = evaluate("good", "smax:3m", episodes=64, seed=1)
    rand = evaluate("random", "smax:3m", episodes=64, seed=1)
    assert good["return_mean"] > rand["return_mean"]
    assert good["normalised_return_mean"] == pytest.approx(
        good["return_mean"] / max_return("smax:3m")
    )
    rng = np.random.default_rng(0)

    def random_batch_policy(obs, avail, first):
        logits = rng.random(avail.shape) * avail
        return logits.argmax(-1)

    res = evaluate(random_batch_policy, "smax:3m", episodes=40, seed=1, batch=16)
    assert res["episodes"] == 40 and 0 <= res["win_rate"] <= 1
    torch.manual_seed(0)
    net = torch.nn.Linear(75, 8)

    def torch_policy(obs, avail, first):
        with torch.no_grad():
            q = net(torch.from_numpy(obs)).masked_fill(~torch.from_numpy(avail), -1e9)
        return q.argmax(-1).numpy()

    res = evaluate(torch_policy, "smax:3m", episodes=16, seed=2, batch=16)
    assert res["episodes"] == 16
    # the same policy through the PettingZoo loop on another backend
    spread = evaluate(
        torch_policy_for(18, 5), "pettingzoo:mpe2.simple_spread_v3", episodes=2, max_cycles=10
    )
    assert spread["episodes"] == 2 and spread["length_mean"] == 10


def torch_policy_for(obs_dim, n_actions):
    import torch

    net = torch.nn.Linear(obs_dim, n_actions)

    def policy(obs, avail, first):
        with torch.no_grad():
            return (
                net(torch.from_numpy(obs))
                .masked_fill(~torch.from_numpy(avail), -1e9)
                .argmax(-1)
                .numpy()
            )

    return policy


def test_pettingzoo_envs_by_module_path():
    pytest.importorskip("mpe2")
    env = make_env("pettingzoo:mpe2.simple_spread_v3")
    parallel_api_test(env, num_cycles=50)
    assert max_return("pettingzoo:mpe2.simple_spread_v3") is None


def test_cli_collect_and_evaluate(tmp_path):
    import json

    from typer.testing import CliRunner

    from marl_augment.cli import app

    from .test_cli import assert_user_error

    run = CliRunner().invoke
    r = run(app, ["collect", "smax:3m", str(tmp_path / "c.zarr"), "--quality", "poor", "-n", "20"])
    assert r.exit_code == 0, r.output
    assert len(ma.load(tmp_path / "c.zarr")) == 20
    r = run(app, ["evaluate", "smax:3m", "--policy", "good", "-n", "8", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["episodes"] == 8 and 0 <= res["win_rate"] <= 1 and res["policy"] == "good"
    assert_user_error(
        run(app, ["collect", "pettingzoo:mpe2.simple_spread_v3", str(tmp_path / "x.zarr")]),
        "smax:<map> only",
    )
    assert_user_error(
        run(app, ["collect", "smax:3m", str(tmp_path / "x.zarr"), "--quality", "great"]),
        "unknown policy 'great'",
    )
    assert_user_error(run(app, ["evaluate", "smax:nope"]), "unknown SMAX map")
    assert_user_error(run(app, ["evaluate", "smac:3m"]), "SMAC")
    assert not (tmp_path / "x.zarr").exists()


def test_a_registered_env_backend_works_like_the_built_in_ones(monkeypatch):
    from marl_augment.envs import ENVS, EnvBackend, action_kind_of, team_reward
    from marl_augment.errors import MissingDependency

    monkeypatch.setattr(ENVS, "_entries", dict(ENVS._entries))
    ENVS.register("toy", EnvBackend("tests.toy_envs:make_skirmish", "toy:obs", max_return=12.0))
    env = make_env("toy:infos", max_steps=5)
    assert env.max_steps == 5 and env.mask_in == "infos"
    assert max_return("toy:obs") == 12.0 and team_reward("toy:obs") == "sum"
    assert action_kind_of("toy:obs") == "discrete"  # looked up on a made env
    res = evaluate("random", "toy:obs", episodes=3, seed=0)
    assert res["episodes"] == 3
    with pytest.raises(NotFound, match=r"toy:<name> \(e\.g\. toy:obs\)"):
        make_env("toys:obs")
    ENVS.register("gone", EnvBackend("no_such_module_xyz:make", "gone:x", extra="gone"))
    with pytest.raises(MissingDependency, match=r"marl-augment\[gone\]"):
        make_env("gone:x")
