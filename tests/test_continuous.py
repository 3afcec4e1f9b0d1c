"""Continuous actions end to end: store, dataset views, adapters, environments, augmenters and
learners (float32 action vectors with per-agent bounds, heterogeneous dimensions padded)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import marl_augment as ma
from marl_augment.data.dataset import StoreWriter
from marl_augment.data.schema import Spec
from marl_augment.errors import SchemaError


def cont_spec(**kw) -> Spec:
    """Two agents with 2 and 3 action dimensions (so agent 0 is padded), bounds [-1, 1] and
    [0, 2]."""
    base = dict(
        env_id="test:cont",
        agent_ids=("a", "b"),
        obs_dim=3,
        n_actions=3,
        state_dim=2,
        agent_n_actions=(2, 3),
        action_kind="continuous",
        action_low=((-1.0, -1.0), (0.0, 0.0, 0.0)),
        action_high=((1.0, 1.0), (2.0, 2.0, 2.0)),
    )
    base.update(kw)
    return Spec(**base)


def cont_episode(t: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    act = np.zeros((t, 2, 3), np.float32)
    act[:, 0, :2] = rng.uniform(-1, 1, (t, 2))
    act[:, 1] = rng.uniform(0, 2, (t, 3))
    ep = {
        "obs": rng.normal(size=(t, 2, 3)).astype(np.float32),
        "state": rng.normal(size=(t, 2)).astype(np.float32),
        "actions": act,
        "rewards": rng.normal(size=t).astype(np.float32),
        "terminated": np.zeros(t, bool),
        "truncated": np.zeros(t, bool),
    }
    ep["truncated"][-1] = True
    return ep


def write_cont(path, n=4, seed=0):
    with StoreWriter(path, cont_spec(), source={"adapter": "test"}) as w:
        for i in range(n):
            w.append_episode(cont_episode(3 + 2 * i, seed + i))
    return ma.load(path)


def test_continuous_store_roundtrips_with_bounds_and_padding(tmp_path):
    ds = write_cont(tmp_path / "c.zarr")
    assert ds.spec.continuous and ds.spec.action_dims == (2, 3)
    assert ds.spec.dtype("actions") == np.float32 and ds.spec.row_shape("actions") == (2, 3)
    for i, ep in enumerate(ds.episodes()):
        np.testing.assert_array_equal(ep.actions, cont_episode(3 + 2 * i, i)["actions"])
    low, high = ds.spec.action_bounds()
    np.testing.assert_array_equal(low, [[-1, -1, 0], [0, 0, 0]])
    np.testing.assert_array_equal(high, [[1, 1, 0], [2, 2, 2]])
    np.testing.assert_array_equal(ds.spec.action_mask(), [[True, True, False], [True] * 3])
    # the spec survives JSON, and validation of the whole store passes
    assert Spec.from_json(json.loads(json.dumps(ds.spec.to_json()))) == ds.spec
    ma.Dataset.open(ds.path, validate=True)
    # derived datasets keep the kind: subsample, concat, save
    sub = ds.subsample(fraction=0.5, seed=0)
    both = ma.concat([ds, sub]).save(tmp_path / "both.zarr")
    assert ma.load(both.path).spec == ds.spec.replace(max_episode_len=both.spec.max_episode_len)
    with pytest.raises(SchemaError, match="action_kind"):
        ma.concat([ds, ma.load(_discrete_store(tmp_path))])


def _discrete_store(tmp_path):
    spec = Spec(env_id="test:cont", agent_ids=("a", "b"), obs_dim=3, n_actions=3, state_dim=2)
    ep = cont_episode(3)
    ep["actions"] = np.zeros((3, 2), np.int32)
    with StoreWriter(tmp_path / "d.zarr", spec) as w:
        w.append_episode(ep)
    return tmp_path / "d.zarr"


def test_discrete_specs_keep_their_json_and_fingerprints(tmp_path):
    """Stores written before continuous actions existed have no action_kind: their spec JSON,
    and so their fingerprint, must not change."""
    path = _discrete_store(tmp_path)
    spec = ma.load(path).spec
    assert not spec.continuous and "action_kind" not in spec.to_json()
    meta = json.loads((path / "zarr.json").read_text())
    assert "action_kind" not in json.dumps(meta)
    ma.Dataset.open(path, validate=True)  # the fingerprint still matches


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda e: e["actions"].__setitem__((1, 0, 0), 1.5),
            r"1\.5 at row 1, agent 0, dimension 0, "
            r"outside its bounds \[-1, 1\]",
        ),
        (lambda e: e["actions"].__setitem__((0, 1, 2), np.nan), "non-finite value"),
        (lambda e: e["actions"].__setitem__((2, 0, 2), 0.25), "in padding"),
    ],
)
def test_bad_continuous_actions_get_one_line(tmp_path, change, match):
    ep = cont_episode(4)
    change(ep)
    out = tmp_path / "bad.zarr"
    with pytest.raises(SchemaError, match=match) as err:
        with StoreWriter(out, cont_spec()) as w:
            w.append_episode(ep)
    assert "\n" not in str(err.value)
    assert not out.exists()


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(action_low=None), "needs action_low and action_high"),
        (dict(action_low=((-1.0,), (0.0, 0.0, 0.0))), "one bound per action dimension"),
        (dict(action_high=((1.0, -2.0), (2.0, 2.0, 2.0))), "exceeds"),
        (dict(has_avail_actions=True), "cannot have legal-action masks"),
        (dict(action_high=((1.0, float("inf")), (2.0, 2.0, 2.0))), "non-finite bound"),
        (dict(action_kind="hybrid"), "action_kind"),
    ],
)
def test_bad_continuous_specs_refused(kw, match):
    with pytest.raises(SchemaError, match=match):
        cont_spec(**kw).check()


def test_discrete_spec_refuses_real_valued_actions(tmp_path):
    spec = Spec(env_id="t", agent_ids=("a",), obs_dim=1, n_actions=3)
    ep = {
        "obs": np.zeros((2, 1, 1), np.float32),
        "actions": np.array([[0.5], [1.0]]),
        "rewards": np.zeros(2, np.float32),
        "terminated": np.array([False, True]),
        "truncated": np.zeros(2, bool),
    }
    with pytest.raises(SchemaError, match="action_kind='continuous'"):
        with StoreWriter(tmp_path / "x.zarr", spec) as w:
            w.append_episode(ep)


def test_torch_views_carry_float_actions(tmp_path):
    ds = write_cont(tmp_path / "c.zarr")
    batch = next(iter(ds.torch("transitions", batch_size=5, shuffle=False)))
    assert batch["actions"].dtype.is_floating_point and tuple(batch["actions"].shape) == (5, 2, 3)
    seq = next(iter(ds.torch("sequences", batch_size=2, length=4, shuffle=False)))
    assert tuple(seq["actions"].shape) == (2, 4, 2, 3)
    np.testing.assert_array_equal(seq["actions"][0, :3].numpy(), cont_episode(3, 0)["actions"])


# -- PettingZoo logs with Box actions -------------------------------------------------------


def test_mpe_continuous_record_convert_exact(tmp_path):
    pytest.importorskip("mpe2")
    import gzip

    from mpe2 import simple_spread_v3

    from marl_augment import adapters
    from marl_augment.envs.recording import record

    env = simple_spread_v3.parallel_env(max_cycles=10, continuous_actions=True)
    log = record(env, tmp_path / "log.jsonl.gz", episodes=3, seed=1)
    ds = ma.load(adapters.convert("pettingzoo-log", log, tmp_path / "out.zarr").path)
    spec = ds.spec
    assert spec.continuous and spec.n_actions == 5 and not spec.has_avail_actions
    assert spec.action_low == ((0.0,) * 5,) * 3 and spec.action_high == ((1.0,) * 5,) * 3
    with gzip.open(log, "rt") as f:
        steps = [json.loads(line) for line in f][1:]
    logged = np.array(
        [[s["actions"][a] for a in spec.agent_ids] for s in steps if s["t"] == "step"], np.float32
    )
    np.testing.assert_array_equal(ds.columns["actions"], logged)
    assert len(ds) == 3 and ds.episode_lengths.tolist() == [10, 10, 10]
    assert (logged > 0).all() and (logged < 1).all()  # uniform within the bounds


CHEADER = {
    "format": "marl-augment/pettingzoo-log",
    "version": 1,
    "env_id": "pettingzoo:hand",
    "agents": ["x", "y"],
    "obs_dims": {"x": 2, "y": 2},
    "n_actions": {"x": 2, "y": 1},
    "state_dim": None,
    "action_kind": "continuous",
    "action_low": {"x": [-1, -1], "y": [0]},
    "action_high": {"x": [1, 1], "y": [2]},
}
CRESET = {"t": "reset", "obs": {"x": [0, 1], "y": [1, 0]}}


def _cstep(x, y):
    return {
        "t": "step",
        "actions": {"x": x, "y": y},
        "rewards": {"x": 1.0, "y": 0.5},
        "terminations": {"x": True, "y": True},
        "truncations": {"x": False, "y": False},
        "obs": {"x": [0, 0], "y": [0, 0]},
    }


def _log(path, lines):
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_hand_written_continuous_log_converts_with_padding(tmp_path):
    from marl_augment import adapters

    src = _log(tmp_path / "h.jsonl", [CHEADER, CRESET, _cstep([0.5, -0.25], [1.5])])
    ds = adapters.convert("pettingzoo-log", src, tmp_path / "h.zarr")
    assert ds.spec.agent_n_actions == (2, 1)
    np.testing.assert_array_equal(ds.columns["actions"], [[[0.5, -0.25], [1.5, 0.0]]])


@pytest.mark.parametrize(
    "step, match",
    [
        (
            _cstep([0.5, 3.0], [1.0]),
            r"3 in dimension 1, outside its bounds \[-1, 1\]; convert with "
            r"clip_actions=true",
        ),
        (_cstep([0.5], [1.0]), "has 1 values, its action space has 2 dimensions"),
        (_cstep(1, [1.0]), "declares continuous actions"),
        (_cstep([0.5, "nan"], [1.0]), "declares continuous actions"),
    ],
)
def test_bad_continuous_logs_give_one_line(tmp_path, step, match):
    from marl_augment import adapters
    from marl_augment.errors import FormatError

    src = _log(tmp_path / "bad.jsonl", [CHEADER, CRESET, step])
    with pytest.raises(FormatError, match=match) as err:
        adapters.convert("pettingzoo-log", src, tmp_path / "bad.zarr")
    assert "\n" not in str(err.value) and not (tmp_path / "bad.zarr").exists()


def test_clip_actions_option_clips_and_counts(tmp_path):
    from marl_augment import adapters

    src = _log(tmp_path / "c.jsonl", [CHEADER, CRESET, _cstep([0.5, 3.0], [-1.0])])
    ds = adapters.convert("pettingzoo-log", src, tmp_path / "c.zarr", clip_actions=True)
    np.testing.assert_array_equal(ds.columns["actions"], [[[0.5, 1.0], [0.0, 0.0]]])
    assert ds.source["clipped_action_values"] == 2


def test_bad_continuous_header_gets_one_line(tmp_path):
    from marl_augment import adapters
    from marl_augment.errors import FormatError

    bad = {**CHEADER, "action_high": {"x": [1, -2], "y": [2]}}
    with pytest.raises(FormatError, match="header: spec.action_low exceeds"):
        adapters.convert(
            "pettingzoo-log", _log(tmp_path / "b.jsonl", [bad, CRESET]), tmp_path / "b.zarr"
        )


# -- TD3+BC ---------------------------------------------------------------------------------


def box_data(tmp_path, episodes=200, lo=0.2, hi=1.0, seed=0, name="box.zarr"):
    """Episodes of the BoxActions env (reward -|a|, actions bounded by [-1, 1]) under a
    behaviour uniform in [lo, hi]: the best actions (0) lie outside the data's support."""
    from marl_augment.adapters.pettingzoo_log import PettingZooLogAdapter, Recorder

    from .toy_envs import BoxActions

    rng = np.random.default_rng(seed)
    rec = Recorder(BoxActions(), tmp_path / f"{name}.jsonl", env_id="pettingzoo:tests.box_env")
    for e in range(episodes):
        rec.reset(seed=e)
        while rec.agents:
            rec.step({a: rng.uniform(lo, hi, 2).astype(np.float32) for a in rec.agents})
    rec.close()
    return PettingZooLogAdapter().convert(tmp_path / f"{name}.jsonl", tmp_path / name)


SMALL = dict(seq_len=3, period=1, batch_size=64, hidden=32, critic_hidden=64, device="cpu")


def test_td3_bc_improves_on_the_data_and_on_pure_cloning(tmp_path):
    from marl_augment.training import train

    ds = box_data(tmp_path)
    data_return = float(ds.episode_returns.mean())  # about -2 · 2 · 0.6 · 3
    runs = {
        alpha: train(
            ds,
            "td3-bc",
            out=tmp_path / f"a{alpha}",
            steps=600,
            eval_every=0,
            final_episodes=20,
            log_every=500,
            options={**SMALL, "bc_alpha": alpha},
        )
        for alpha in (0.0, 2.5)
    }
    bc, td3 = (runs[a]["eval"]["return_mean"] for a in (0.0, 2.5))
    # pure cloning (alpha 0) reproduces the behaviour; the Q term moves actions towards 0
    assert abs(bc - data_return) < 0.15 * abs(data_return), (bc, data_return)
    assert td3 > bc + 0.25 * abs(data_return), (td3, bc, data_return)


def test_dom2_sampler_draws_from_the_distribution_an_exact_noise_model_describes():
    """The first-order DPM-solver (DDIM) of DOM2's policies, given the exact noise prediction
    of Gaussian data N(m, s²) (E[ε | a_τ] = σ (a_τ − α m) / (α² s² + σ²)), samples N(m, s²)."""
    import torch

    from marl_augment.algos import make_algorithm
    from marl_augment.algos.dom2 import vp_schedule

    spec = cont_spec()
    algo = make_algorithm(
        "dom2", spec, 2, device="cpu", diffusion_steps=50, hidden=8, critic_hidden=8
    )
    m, s = torch.tensor([0.3, -0.2, 0.0]), torch.tensor([0.1, 0.25, 0.0])

    def exact(a, x, tau):
        alpha, sigma = vp_schedule(tau)
        alpha, sigma = alpha[..., None], sigma[..., None]
        return sigma * (a - alpha * m) / (alpha**2 * s**2 + sigma**2)

    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(20_000, algo.in_dim)
    dims = torch.tensor([1.0, 1.0, 0.0])
    a = algo.sample(exact, x, dims, gen)
    np.testing.assert_allclose(a.mean(0)[:2], m[:2], atol=0.01)
    np.testing.assert_allclose(a.std(0)[:2], s[:2], rtol=0.05)
    assert (a[:, 2] == 0).all()  # a padded dimension


def test_dom2_conservative_critics_keep_it_from_extrapolating(tmp_path):
    """Without the CQL term, the Q term drives the diffusion policy to actions outside the data
    that the critic over-values, and it ends far below the data; with it, much less so (300
    updates are too few for either to beat the data here: this checks the conservatism)."""
    from marl_augment.training import train

    ds = box_data(tmp_path)
    data_return = float(ds.episode_returns.mean())
    runs = {
        cql: train(
            ds,
            "dom2",
            out=tmp_path / f"c{cql}",
            steps=300,
            eval_every=0,
            final_episodes=20,
            log_every=300,
            options={**SMALL, "hidden": 32, "eta": 1.0, "cql_weight": cql, "diffusion_steps": 3},
        )
        for cql in (0.0, 1.0)
    }
    bare, full = (runs[c]["eval"]["return_mean"] for c in (0.0, 1.0))
    assert full > bare + 0.2 * abs(data_return), (full, bare, data_return)


@pytest.mark.parametrize(
    "algo, plain",
    [("maddpg-cql", {"cql_weight": 0.0}), ("omar", {"cql_weight": 0.0, "omar_coe": 0.0})],
)
def test_conservative_learners_improve_where_plain_ones_extrapolate(tmp_path, algo, plain):
    """Offline actor-critic without the CQL term (and, for OMAR, without the rectification)
    over-values actions outside the data and ends below the data; with them, the policy ends
    above the data."""
    from marl_augment.training import train

    ds = box_data(tmp_path)
    data_return = float(ds.episode_returns.mean())
    runs = {
        name: train(
            ds,
            algo,
            out=tmp_path / name,
            steps=600,
            eval_every=0,
            final_episodes=20,
            log_every=600,
            options={**SMALL, **opts},
        )
        for name, opts in (("plain", plain), ("full", {}))
    }
    bare, full = (runs[k]["eval"]["return_mean"] for k in ("plain", "full"))
    assert full > data_return + 0.05 * abs(data_return), (full, data_return)
    assert full > bare + 1.0, (full, bare)

    def gap(name):  # how much the critic values the policy's actions above the data's
        last = [
            json.loads(x)
            for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
            if '"train"' in x
        ][-1]
        return last["q_policy"] - last["q_data"]

    assert gap("plain") > gap("full")


def test_omar_rectified_actions_are_never_valued_below_the_policys(tmp_path):
    import torch

    from marl_augment.algos import make_algorithm
    from marl_augment.algos.common import SequenceSampler, state_dim_of

    ds = write_cont(tmp_path / "c.zarr", n=6)
    algo = make_algorithm("omar", ds.spec, state_dim_of(ds.spec), **{**SMALL, "seq_len": 4})
    batch = SequenceSampler(ds, 4, 1, 8, 0, algo.device).batch(0)
    gen = torch.Generator().manual_seed(0)
    params = {**dict(algo.critics.named_parameters()), **dict(algo.critics.named_buffers())}
    with torch.no_grad():
        from marl_augment.algos.common import run_agents

        pi = algo._squash(run_agents(algo.actor, batch["obs"]))
        q_pi = algo.critics(batch["state"], pi).min(0).values
        dims = algo.dims.float()
        best = algo._rectified(params, batch["state"], pi, q_pi, dims, gen)
        q_best = algo.critics(batch["state"], best).min(0).values
    assert (q_best >= q_pi - 1e-5).all() and (q_best > q_pi + 1e-4).any()
    assert (best[..., 0, 2] == 0).all() and best.abs().max() <= 1.0


@pytest.mark.parametrize(
    "algo, extra",
    [
        ("td3-bc", {"policy_delay": 2}),
        ("maddpg-cql", {}),
        ("omar", {}),
        ("dom2", {"diffusion_steps": 3}),
        ("omsd", {"seq_len": 2, "policy_start": 10}),
    ],
)
def test_continuous_learners_resume_exactly_and_save_a_loadable_policy(tmp_path, algo, extra):
    from marl_augment.algos import load_policy
    from marl_augment.training import train

    ds = box_data(tmp_path, episodes=30)
    kw = dict(
        eval_every=0,
        final_episodes=4,
        log_every=10,
        checkpoint_every=20,
        options={**SMALL, **extra},
    )
    whole = train(ds, algo, out=tmp_path / "whole", steps=40, **kw)
    train(ds, algo, out=tmp_path / "part", steps=20, **kw)
    resumed = train(ds, algo, out=tmp_path / "part", steps=40, resume=True, **kw)
    lines = [(tmp_path / d / "metrics.jsonl").read_text().splitlines() for d in ("whole", "part")]
    losses = [[json.loads(x)["loss"] for x in ls if '"train"' in x] for ls in lines]
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert whole["eval"]["return_mean"] == pytest.approx(resumed["eval"]["return_mean"])
    pol = load_policy(tmp_path / "whole")
    acts = pol(np.zeros((5, 2, 2), np.float32), np.ones((5, 2, 2), bool), np.ones(5, bool))
    assert acts.shape == (5, 2, 2) and acts.dtype == np.float32
    assert (acts >= -1).all() and (acts <= 1).all()


@pytest.mark.parametrize("name", ["td3-bc", "maddpg-cql", "omar", "dom2", "omsd"])
def test_continuous_learners_keep_padded_dimensions_at_zero(tmp_path, name):
    from marl_augment.algos import make_algorithm
    from marl_augment.algos.common import SequenceSampler, state_dim_of

    ds = write_cont(tmp_path / "c.zarr", n=6)
    algo = make_algorithm(name, ds.spec, state_dim_of(ds.spec), **{**SMALL, "seq_len": 4})
    sampler = SequenceSampler(ds, 4, 1, 8, 0, algo.device)
    gen = __import__("torch").Generator().manual_seed(0)
    for k in range(5):
        algo.update(sampler.batch(k), gen)
    acts = algo.policy()(np.ones((3, 2, 3), np.float32), np.ones((3, 2, 3), bool), np.ones(3, bool))
    assert (acts[:, 0, 2] == 0).all()  # agent 0 has 2 dimensions of 3
    low, high = ds.spec.action_bounds()
    assert (acts >= low).all() and (acts <= high).all()


def test_action_kind_mismatches_get_one_line(tmp_path, smac_ds):
    from marl_augment.algos import make_algorithm
    from marl_augment.algos.common import state_dim_of
    from marl_augment.errors import ConfigError
    from marl_augment.training import train

    box = box_data(tmp_path, episodes=5)
    with pytest.raises(
        ConfigError,
        match="qmix-cql learns discrete actions.*use one of dom2, maddpg-cql, omar, omsd, td3-bc",
    ):
        make_algorithm("qmix-cql", box.spec, state_dim_of(box.spec))
    with pytest.raises(ConfigError, match="td3-bc learns continuous actions.*bc"):
        make_algorithm("td3-bc", smac_ds.spec, state_dim_of(smac_ds.spec))
    # a continuous policy in a discrete env, and the other way round
    run = tmp_path / "r"
    train(box, "td3-bc", out=run, steps=2, eval_every=0, final_episodes=1, options=SMALL)
    from marl_augment.algos import load_policy
    from marl_augment.envs.evaluate import evaluate

    with pytest.raises(ConfigError, match="continuous actions.*discrete"):
        evaluate(load_policy(run), "pettingzoo:mpe2.simple_spread_v3", episodes=1)
    # training that would evaluate in an env of the other kind stops before any folder
    with pytest.raises(
        ConfigError, match="smax:3m takes discrete actions and the data has continuous ones"
    ):
        train(box, "td3-bc", out=tmp_path / "r2", env_id="smax:3m", steps=2, options=SMALL)
    assert not (tmp_path / "r2").exists()


# -- augmenters -------------------------------------------------------------------------------

from marl_augment.testing import AugmenterTests  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A continuous-action store with heterogeneous action dimensions (padding)."""
    path = tmp_path_factory.mktemp("cont") / "c.zarr"
    with StoreWriter(path, cont_spec(), source={"adapter": "test"}) as w:
        for i in range(12):
            w.append_episode(cont_episode(3 + i % 5, i))
    return ma.load(path)


class TestRadSContinuous(AugmenterTests):
    method = "rad-s"


class TestRadMContinuous(AugmenterTests):
    method = "rad-m"


class TestReturnReplicateContinuous(AugmenterTests):
    method = "return-replicate"


def test_rad_keeps_continuous_actions_and_scales_observations(dataset):
    aug = ma.make_augmenter("rad-s").fit(dataset)
    syn = aug.sample(8, seed=0)
    src = dataset.select(aug.last_source_episodes)
    np.testing.assert_array_equal(syn.columns["actions"], src.columns["actions"])
    assert not np.array_equal(syn.columns["obs"], src.columns["obs"])


TINY_EAQ = {
    "dims": [16, 32],
    "train_steps": 30,
    "batch_size": 8,
    "diffusion_steps": 20,
    "sample_steps": 5,
    "device": "cpu",
}


class TestEAQContinuous(AugmenterTests):
    method = "eaq"
    options = TINY_EAQ
    scale = 1.0


def test_eaq_decodes_continuous_actions_within_bounds(dataset):
    aug = ma.make_augmenter("eaq", **TINY_EAQ).fit(dataset)
    syn = aug.sample(10, seed=0)
    low, high = dataset.spec.action_bounds()
    acts = syn.columns["actions"]
    assert acts.dtype == np.float32 and (acts >= low).all() and (acts <= high).all()
    assert (acts[:, 0, 2] == 0).all()  # agent 0's padding
    report = aug.last_report
    assert 0.0 <= report["in_bounds_before_clipping"] <= 1.0


def test_augmenters_of_one_action_kind_refuse_the_other_in_one_line(dataset):
    from marl_augment.augment.rad import RadS
    from marl_augment.errors import ConfigError

    class DiscreteOnly(RadS):
        name = "discrete-only"
        action_kinds = ("discrete",)

    with pytest.raises(
        ConfigError,
        match="discrete-only augments discrete actions, and "
        "test:cont data has continuous ones; use one of",
    ):
        DiscreteOnly().fit(dataset)


def test_episode_features_roundtrip_continuous_actions(dataset):
    from marl_augment.augment.eaq import features as F

    layout = F.Layout.from_spec(dataset.spec)
    assert layout.continuous and (layout.kinds()[layout.slices()["act0"]] == F.CONT).all()
    x, _ = F.encode(dataset, layout, int(dataset.episode_lengths.max()))
    cols, lengths, report = F.decode(x, layout, dataset.spec)
    np.testing.assert_array_equal(lengths, dataset.episode_lengths)
    np.testing.assert_allclose(cols["actions"], dataset.columns["actions"], atol=1e-6)
    assert report["in_bounds_before_clipping"] == 1.0
    x[:, layout.slices()["act1"], :] += 5.0  # out of bounds: clipped
    cols, _, report = F.decode(x, layout, dataset.spec)
    assert cols["actions"][:, 1].max() == 2.0 and report["in_bounds_before_clipping"] < 0.6
    assert (cols["actions"][:, 0, 2] == 0).all()  # padding stays 0


def test_fidelity_gates_on_continuous_actions(dataset):
    from marl_augment.augment.fidelity import fidelity_report

    rad = ma.make_augmenter("rad-s").fit(dataset).sample(24, seed=0)
    rep = fidelity_report(dataset, rad)
    gates = rep["gates"]["gates"]
    assert set(gates) == {"return_w1", "length_w1", "action_w1", "dynamics"}
    assert gates["action_w1"]["synthetic"] < 0.1 and gates["action_w1"]["pass"]
    # actions pushed to one end of their range fail the action gate
    moved = {k: np.array(v) for k, v in rad.columns.items()}
    moved["actions"][:, 1, :] = 2.0
    far = ma.Dataset(rad.spec, moved, rad.episode_offsets, rad.episode_origin)
    assert not fidelity_report(dataset, far)["gates"]["gates"]["action_w1"]["pass"]


# -- OG-MARL Vaults with continuous actions ----------------------------------------------------


def mamujoco_like_experience(lengths, seed=0, n=2, obs=13, state=17, act=3, spill=0.0):
    """2x3-HalfCheetah-shaped experience as OG-MARL records it: float actions in [-1, 1]
    (``spill`` pushes that share of values just outside), no legal masks, team reward copied
    per agent, time-limit ends as truncations."""
    rng = np.random.default_rng(seed)
    t = int(sum(lengths))
    actions = rng.uniform(-1, 1, (t, n, act)).astype(np.float32)
    if spill:
        actions[rng.random(actions.shape) < spill] = 1.02
    ends = np.cumsum(lengths) - 1
    truncations = np.zeros((t, n), bool)
    truncations[ends] = True
    return {
        "observations": rng.normal(size=(t, n, obs)).astype(np.float32),
        "actions": actions,
        "rewards": np.repeat(rng.normal(size=(t, 1)).astype(np.float32), n, 1),
        "terminals": np.zeros((t, n), bool),
        "truncations": truncations,
        "infos": {"state": rng.normal(size=(t, state)).astype(np.float32)},
    }


def test_continuous_vault_converts_exactly_and_exports_back(tmp_path):
    pytest.importorskip("tensorstore")
    pytest.importorskip("flashbax")
    from marl_augment import adapters
    from marl_augment.adapters.ogmarl_vault import export_vault
    from marl_augment.errors import FormatError

    from .test_ogmarl_vault import Vault, write_with_flashbax

    exp = mamujoco_like_experience([30, 50, 20])
    uid = write_with_flashbax(tmp_path, "2halfcheetah.vlt", "Good", exp)
    ds = adapters.convert("ogmarl-vault", uid, tmp_path / "hc.zarr")
    assert ds.spec.continuous and ds.spec.n_actions == 3 and not ds.spec.has_avail_actions
    assert ds.spec.action_low == ((-1.0,) * 3,) * 2
    np.testing.assert_array_equal(ds.columns["actions"], exp["actions"])
    np.testing.assert_array_equal(ds.episode_lengths, [30, 50, 20])
    assert ds.columns["truncated"].sum() == 3 and not ds.columns["terminated"].any()

    spilled = mamujoco_like_experience([40], seed=1, spill=0.01)
    uid2 = write_with_flashbax(tmp_path, "spill.vlt", "Poor", spilled)
    with pytest.raises(FormatError, match=r"outside \[-1, 1\]; convert with -o clip_actions=true"):
        adapters.convert("ogmarl-vault", uid2, tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()
    clipped = adapters.convert("ogmarl-vault", uid2, tmp_path / "s.zarr", clip_actions=True)
    assert clipped.columns["actions"].max() == 1.0
    assert clipped.source["clipped_action_values"] == int((spilled["actions"] > 1).sum()) > 0

    # our heterogeneous continuous store -> Vault -> flashbax reads it -> back, bounds kept
    het = write_cont(tmp_path / "het.zarr")
    export_vault(het, tmp_path / "het.vlt", uid="Medium")
    fb = Vault(vault_name="het.vlt", rel_dir=str(tmp_path), vault_uid="Medium").read().experience
    assert np.asarray(fb["actions"]).shape == (1, het.num_transitions, 2, 3)
    back = adapters.convert("ogmarl-vault", tmp_path / "het.vlt" / "Medium", tmp_path / "b.zarr")
    assert back.spec.action_low == het.spec.action_low
    assert back.spec.agent_n_actions == (2, 3)
    np.testing.assert_array_equal(back.columns["actions"], het.columns["actions"])


# -- environments: mpe:<env>, mamujoco:<agents>-<robot> ----------------------------------------


def test_mpe_and_mamujoco_ids_and_bad_ones():
    pytest.importorskip("mpe2")
    from marl_augment.envs import make_env, team_reward
    from marl_augment.errors import NotFound

    env = make_env("mpe:simple_spread", max_cycles=5)
    assert type(env.action_space("agent_0")).__name__ == "Box"
    assert team_reward("mpe:simple_spread") == "sum"
    with pytest.raises(NotFound, match="unknown MPE environment 'simple_sprad'.*simple_spread"):
        make_env("mpe:simple_sprad")
    with pytest.raises(NotFound, match="for discrete ones use pettingzoo:mpe2.simple_spread_v3"):
        make_env("mpe:simple_spread", continuous_actions=False)
    with pytest.raises(NotFound, match="is not <agents>-<robot>"):
        make_env("mamujoco:HalfCheetah")
    pytest.importorskip("gymnasium_robotics")
    assert team_reward("mamujoco:2x3-HalfCheetah") == "mean"
    with pytest.raises(NotFound, match="refused robot 'Cheetah'"):
        make_env("mamujoco:2x3-Cheetah")


def test_mpe_shifted_speeds_as_dom2_evaluates_generalisation(tmp_path):
    """DOM2's shifted MPE: each episode each agent's speed is drawn from [v_min, 1]; the same
    action moves an agent v times as far as in the standard env, the draw follows the reset's
    seed, and the setting reaches evaluation as an env argument."""
    pytest.importorskip("mpe2")
    from typer.testing import CliRunner

    from marl_augment.cli import app
    from marl_augment.envs import make_env
    from marl_augment.errors import ConfigError

    def moved(env, seed):
        env.reset(seed=seed)
        start = {a.name: a.state.p_pos.copy() for a in env.unwrapped.world.agents}
        for _ in range(5):
            env.step({a: np.array([0, 1, 0, 0, 0], np.float32) for a in env.agents})
        return {
            a.name: float(np.linalg.norm(a.state.p_pos - start[a.name]))
            for a in env.unwrapped.world.agents
        }

    base = moved(make_env("mpe:simple_spread"), 3)
    shifted = make_env("mpe:simple_spread", agent_speed_min=0.3)
    dist = moved(shifted, 3)
    speeds = dict(shifted.speeds)
    assert all(0.3 <= v <= 1.0 for v in speeds.values()) and len(set(speeds.values())) == 3
    for name, v in speeds.items():
        assert dist[name] == pytest.approx(v * base[name], rel=1e-6)
    moved(shifted, 3)
    assert shifted.speeds == speeds  # same seed, same speeds
    moved(shifted, 4)
    assert shifted.speeds != speeds
    with pytest.raises(ConfigError, match=r"agent_speed_min must be a number in \(0, 1\]"):
        make_env("mpe:simple_spread", agent_speed_min=1.5)
    # the protocol: data of the standard env, a learner (OMSD's feed-forward policy here), its
    # evaluation in the shifted one; the data's recorded settings (max_cycles) still apply
    cli = CliRunner()
    data, run = tmp_path / "sp.zarr", tmp_path / "run"
    for args in (
        ["record", "mpe:simple_spread", str(data), "-e", "max_cycles=5", "-n", "8"],
        [
            "train",
            str(data),
            "--algo",
            "omsd",
            "--out",
            str(run),
            "--steps",
            "20",
            "--eval-every",
            "0",
            "--final-episodes",
            "2",
            "-o",
            "batch_size=16",
            "-o",
            "policy_start=5",
            "-o",
            "hidden=32",
            "-o",
            "critic_hidden=32",
            "-o",
            "noise_hidden=32",
        ],
    ):
        r = cli.invoke(app, args)
        assert r.exit_code == 0, r.output
    r = cli.invoke(
        app,
        [
            "evaluate",
            "mpe:simple_spread",
            "--policy",
            str(run),
            "-e",
            "agent_speed_min=0.3",
            "--episodes",
            "2",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["episodes"] == 2 and json.loads(r.output)["length_mean"] == 5


def test_mamujoco_record_augment_train_evaluate_cli(tmp_path, monkeypatch):
    """As a user would try it: record, augment (RAD), train TD3+BC and evaluate its policy in
    the env the data came from (the recorded episode limit goes with the data). MuJoCo's
    warnings go to Python's, not into a MUJOCO_LOG.TXT in the user's working directory."""
    pytest.importorskip("gymnasium_robotics")
    monkeypatch.chdir(tmp_path)
    from typer.testing import CliRunner

    from marl_augment.cli import app

    run = CliRunner().invoke
    data, aug, out = (str(tmp_path / x) for x in ("hc.zarr", "hc-rad.zarr", "run"))
    r = run(
        app, ["record", "mamujoco:2x3-HalfCheetah", data, "-n", "3", "-e", "max_episode_steps=30"]
    )
    assert r.exit_code == 0, r.output
    ds = ma.load(data)
    assert ds.spec.continuous and ds.spec.action_dims == (3, 3) and ds.spec.state_dim == 17
    assert ds.episode_lengths.tolist() == [30, 30, 30] and ds.columns["truncated"].sum() == 3
    np.testing.assert_allclose(ds.columns["rewards"], ds.columns["agent_rewards"][:, 0])
    r = run(app, ["augment", data, aug, "--method", "rad-m", "--scale", "1"])
    assert r.exit_code == 0, r.output
    r = run(
        app,
        [
            "train",
            aug,
            "--algo",
            "td3-bc",
            "--out",
            out,
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--final-episodes",
            "2",
            "-o",
            "seq_len=10",
            "-o",
            "batch_size=4",
        ],
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["eval"]["length_mean"] == 30  # the recorded limit
    r = run(app, ["evaluate", "mamujoco:2x3-HalfCheetah", "--policy", out, "-n", "1", "--json"])
    assert r.exit_code == 0 and json.loads(r.output)["length_mean"] == 30, r.output
    r = run(app, ["train", data, "--algo", "qmix-cql", "--out", str(tmp_path / "q")])
    assert r.exit_code != 0 and "use one of dom2, maddpg-cql, omar, omsd, td3-bc" in r.output
    assert not (tmp_path / "q").exists()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


def test_catalog_downloads_a_continuous_scenario_and_clips_as_its_card_says(tmp_path):
    """og-marl/mamujoco/2halfcheetah from a local server: the card's convert options (clip
    actions noised just outside [-1, 1]) apply, the published numbers are the cards'."""
    pytest.importorskip("tensorstore")
    pytest.importorskip("flashbax")
    import hashlib
    import zipfile

    from marl_augment.catalog import cards, download

    from .test_download import Server
    from .test_ogmarl_vault import write_with_flashbax

    c = cards()
    good = c["og-marl/mamujoco/2halfcheetah/Good"]
    assert good["published"]["return_mean"] == 6924.11 and good["action_kind"] == "continuous"
    assert c["omar/mpe/simple_spread/Expert"]["published"]["episodes"] == 40000
    ant = c["omiga/mamujoco/2ant/Medium"]
    assert ant["env_id"] == "mamujoco:2x4-Ant" and ant["n_actions"] == 4
    assert ant["published"]["return_mean"] == 1418.70 and ant["action_kind"] == "continuous"
    root = tmp_path / "src"
    for i, uid in enumerate(("Good", "Medium", "Poor")):
        write_with_flashbax(
            root,
            "2halfcheetah.vlt",
            uid,
            mamujoco_like_experience([20] * (2 + i), seed=i, spill=0.02),
        )
    archive = tmp_path / "2halfcheetah.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted((root / "2halfcheetah.vlt").rglob("*")):
            zf.write(p, p.relative_to(root))
    data = archive.read_bytes()
    with Server() as srv:
        srv.files["/hc.zip"] = data
        got = download(
            "og-marl/mamujoco/2halfcheetah",
            url=srv.url("hc.zip"),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    assert [len(d) for d in got] == [2, 3, 4]
    for d in got:
        d = ma.load(d.path)
        assert d.spec.continuous and d.spec.env_id == "mamujoco:2x3-HalfCheetah"
        assert d.source["clipped_action_values"] > 0 and d.columns["actions"].max() <= 1.0


def test_benchmark_grid_runs_on_a_continuous_dataset(tmp_path):
    """An explicit continuous dataset (MPE, continuous actions) through the grid: augment cells
    with their fidelity gates, TD3+BC and MADDPG+CQL runs evaluated in the data's own env."""
    pytest.importorskip("mpe2")
    from marl_augment.adapters.pettingzoo_log import PettingZooLogAdapter
    from marl_augment.bench import load_config, run_benchmark
    from marl_augment.envs import make_env
    from marl_augment.envs.recording import record

    log = record(
        make_env("mpe:simple_spread", max_cycles=8),
        tmp_path / "s.jsonl",
        episodes=12,
        env_id="mpe:simple_spread",
    )
    PettingZooLogAdapter(
        PettingZooLogAdapter.Config(extras={"env_kwargs": {"max_cycles": 8}})
    ).convert(log, tmp_path / "spread.zarr")
    cfg = load_config(
        None,
        scenarios=[],
        datasets=[str(tmp_path / "spread.zarr")],
        methods=["original", "rad-s"],
        algos=["td3-bc", "maddpg-cql"],
        seeds=[0],
        steps=4,
        eval_every=2,
        eval_episodes=2,
        device="cpu",
        scale=1.0,
        algo_options={"td3-bc": {"seq_len": 8}, "maddpg-cql": {"seq_len": 8}},
    )
    rows = run_benchmark(cfg, tmp_path / "bench", workers=1)
    assert sorted((r["method"], r["algo"]) for r in rows) == [
        ("original", "maddpg-cql"),
        ("original", "td3-bc"),
        ("rad-s", "maddpg-cql"),
        ("rad-s", "td3-bc"),
    ]
    assert all(np.isfinite(r["return_mean"]) for r in rows)
    report = (tmp_path / "bench" / "report.md").read_text()
    assert "action W1" in report


@pytest.mark.parametrize(
    "name, bad, match",
    [
        ("td3-bc", {"policy_delay": 0}, "policy_delay >= 1"),
        ("maddpg-cql", {"critic_lr": 0.0}, "critic_lr must be > 0"),
        ("omar", {"cql_sigma": 0.0}, "cql_sigma > 0"),
        ("omar", {"omar_num_elites": 20}, "cannot exceed omar_num_samples"),
        ("td3-bc", {"tau": 2.0}, "0 < tau <= 1"),
    ],
)
def test_continuous_learners_refuse_bad_options_and_count_their_parameters(name, bad, match):
    from marl_augment.algos import make_algorithm
    from marl_augment.errors import ConfigError

    spec = cont_spec()
    with pytest.raises(ConfigError, match=match):
        make_algorithm(name, spec, 2, device="cpu", **bad)
    algo = make_algorithm(name, spec, 2, device="cpu")
    held = sum(p.numel() for m in algo.modules().values() for p in m.parameters())
    assert algo.num_parameters() == held


def test_record_with_a_trained_policy_and_behaviour_noise(tmp_path):
    """OG-MARL's way of making behaviour data: a trained policy acting with Gaussian noise
    (continuous) — recorded with provenance; a policy of the other action kind is refused."""
    from typer.testing import CliRunner

    from marl_augment.cli import app
    from marl_augment.training import train

    box = box_data(tmp_path, episodes=10)
    train(box, "td3-bc", out=tmp_path / "run", steps=4, evaluate=False, options=SMALL)
    run = CliRunner().invoke
    out = tmp_path / "beh.zarr"
    r = run(
        app,
        [
            "record",
            "pettingzoo:tests.box_env",
            str(out),
            "-n",
            "4",
            "--policy",
            str(tmp_path / "run"),
            "--noise",
            "0.1",
            "--seed",
            "3",
        ],
    )
    assert r.exit_code == 0, r.output
    ds = ma.load(out)
    assert ds.source["behaviour_noise"] == 0.1 and ds.source["behaviour_algo"] == "td3-bc"
    acts = ds.columns["actions"]
    assert len(ds) == 4 and (acts >= -1).all() and (acts <= 1).all() and acts.std() > 0
    again = tmp_path / "again.zarr"
    run(
        app,
        [
            "record",
            "pettingzoo:tests.box_env",
            str(again),
            "-n",
            "4",
            "--policy",
            str(tmp_path / "run"),
            "--noise",
            "0.1",
            "--seed",
            "3",
        ],
    )
    assert ma.load(again).fingerprint == ds.fingerprint  # seeded noise
    r = run(
        app,
        [
            "record",
            "pettingzoo:mpe2.simple_spread_v3",
            str(tmp_path / "x.zarr"),
            "--policy",
            str(tmp_path / "run"),
        ],
    )
    assert (
        r.exit_code != 0
        and "acts with continuous actions and the env takes discrete" in r.output
        and not (tmp_path / "x.zarr").exists()
    )
    r = run(app, ["record", "pettingzoo:tests.box_env", str(tmp_path / "y.zarr"), "--noise", "0.1"])
    assert r.exit_code != 0 and "--noise applies to a trained policy" in r.output


def _coordination_data(tmp_path, episodes=60, seed=0):
    """Two agents with one action each in [-1, 1]: in two episodes of three both play +0.8, in
    the third both −0.8 (a joint behaviour with two modes); observations uninformative noise."""
    spec = cont_spec(
        agent_n_actions=(1, 1),
        n_actions=1,
        action_low=((-1.0,), (-1.0,)),
        action_high=((1.0,), (1.0,)),
    )
    rng = np.random.default_rng(seed)
    with StoreWriter(tmp_path / "coord.zarr", spec, source={"adapter": "test"}) as w:
        for e in range(episodes):
            t = 10
            mode = 0.8 if e % 3 else -0.8
            ep = {
                "obs": rng.normal(size=(t, 2, 3)).astype(np.float32),
                "state": rng.normal(size=(t, 2)).astype(np.float32),
                "actions": (mode + 0.05 * rng.normal(size=(t, 2, 1))).astype(np.float32),
                "rewards": np.ones(t, np.float32),
                "terminated": np.zeros(t, bool),
                "truncated": np.zeros(t, bool),
            }
            ep["truncated"][-1] = True
            w.append_episode(ep)
    return ma.load(tmp_path / "coord.zarr")


@pytest.mark.parametrize("sequential", [True, False])
def test_omsd_scores_decompose_the_joint_behaviour_sequentially(tmp_path, sequential):
    """OMSD's point: agent 1's behaviour score is conditioned on agent 0's action. At a₁ = 0,
    the regularisation's pull (the mean of wt·ε over diffusion times; the policy moves against
    it) points to +0.8 when agent 0 plays +0.8 and to −0.8 when it plays −0.8, the data's
    joint modes. Independent scores (``sequential=False``) cannot tell the two apart. With
    β = 0 the policies themselves then move onto a joint mode, together."""
    import torch

    from marl_augment.algos import make_algorithm
    from marl_augment.algos.common import SequenceSampler, state_dim_of
    from marl_augment.algos.dom2 import vp_schedule

    ds = _coordination_data(tmp_path)
    algo = make_algorithm(
        "omsd",
        ds.spec,
        state_dim_of(ds.spec),
        **{
            **SMALL,
            "seq_len": 2,
            "batch_size": 128,
            "noise_hidden": 64,
            "beta": 0.0,
            "policy_start": 300,
            "lr": 1e-3,
            "sequential": sequential,
        },
    )
    sampler = SequenceSampler(ds, 2, 1, 128, 0, algo.device)
    gen = torch.Generator().manual_seed(0)
    for k in range(900):
        algo.update(sampler.batch(k), gen)
    obs = np.random.default_rng(1).normal(size=(200, 2, 3)).astype(np.float32)
    pull = {}
    with torch.no_grad():
        for a0 in (0.8, -0.8):
            acts = torch.zeros(200, 2, 1)
            acts[:, 0] = a0
            cond = algo._conditions(torch.from_numpy(obs), acts)
            total = 0.0
            for tt in np.linspace(0.05, 0.9, 10):
                t = torch.full((200, 2), float(tt))
                _, sigma = vp_schedule(t)
                eps = algo.behaviour(
                    sigma[..., None] * torch.randn(200, 2, 1, generator=gen), cond, t
                )
                total += float((sigma[:, 1] ** 2 * eps[:, 1, 0]).mean()) / 10
            pull[a0] = total
    if sequential:
        assert pull[0.8] < -0.05 and pull[-0.8] > 0.05, pull
        acts = algo.policy()(obs, np.ones((200, 2, 1), bool), np.ones(200, bool))[..., 0]
        assert (acts > 0.2).mean() > 0.9, acts.mean(0)  # onto the heavier joint mode
    else:
        assert abs(pull[0.8] - pull[-0.8]) < 0.01, pull


def test_omsd_score_regularisation_keeps_it_from_extrapolating(tmp_path):
    """With the behaviour score outweighed (β = 100) the critic's gradient drives the policy
    to actions the critic over-values, below the data; at OMSD's β it improves on the data."""
    from marl_augment.training import train

    ds = box_data(tmp_path)
    data_return = float(ds.episode_returns.mean())
    runs = {
        beta: train(
            ds,
            "omsd",
            out=tmp_path / f"b{beta}",
            steps=600,
            eval_every=0,
            final_episodes=20,
            log_every=600,
            options={**SMALL, "seq_len": 2, "beta": beta, "policy_start": 100},
        )
        for beta in (0.02, 100.0)
    }
    default, greedy = (runs[b]["eval"]["return_mean"] for b in (0.02, 100.0))
    assert default > data_return + 0.1 * abs(data_return), (default, data_return)
    assert greedy < data_return, (greedy, data_return)
