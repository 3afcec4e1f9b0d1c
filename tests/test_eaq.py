"""EAQ and EAQ⁻Q: the shared augmenter tests on a tiny config, decoding, guidance, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import marl_augment as ma
from marl_augment.augment.eaq import features as F
from marl_augment.augment.eaq.denoiser import TemporalUnet
from marl_augment.augment.fidelity import fidelity_report, shuffled_baseline, wasserstein1
from marl_augment.errors import ConfigError
from marl_augment.testing import AugmenterTests

TINY = {
    "dims": [16, 32],
    "train_steps": 40,
    "batch_size": 16,
    "diffusion_steps": 20,
    "sample_steps": 5,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, smac_store):
    path = tmp_path_factory.mktemp("eaq") / "small.zarr"
    return ma.load(smac_store).subsample(n_episodes=40, seed=0).save(path)


class TestEAQ(AugmenterTests):
    method = "eaq"
    options = TINY
    scale = 1.0


class TestEAQNoQ(AugmenterTests):
    method = "eaq-q"
    options = TINY
    scale = 1.0


def test_features_roundtrip_exactly(dataset):
    layout = F.Layout.from_spec(dataset.spec)
    x, mask = F.encode(dataset, layout, 64)
    norm = F.Normaliser.fit(x, mask, layout.kinds())
    back = norm.inverse(norm.forward(x, mask))
    cols, lengths, report = F.decode(back, layout, dataset.spec)
    np.testing.assert_array_equal(lengths, dataset.episode_lengths)
    np.testing.assert_array_equal(cols["actions"], dataset.columns["actions"])
    np.testing.assert_array_equal(cols["avail_actions"], dataset.columns["avail_actions"])
    np.testing.assert_array_equal(cols["alive"], dataset.columns["alive"])
    np.testing.assert_allclose(cols["obs"], dataset.columns["obs"], atol=1e-5)
    np.testing.assert_allclose(cols["rewards"], dataset.columns["rewards"], atol=1e-5)
    np.testing.assert_array_equal(
        cols["terminated"], dataset.columns["terminated"] | dataset.columns["truncated"]
    )  # every real episode has a done
    assert report["legal_before_masking"] == 1.0
    s = layout.slices()
    q = x[:, s["q"], :][:, 0, :]
    np.testing.assert_allclose(q[:, 0], dataset.episode_returns, rtol=1e-5)  # Q_tot = reward-to-go


def test_decoding_always_keeps_a_legal_action(dataset):
    layout = F.Layout.from_spec(dataset.spec)
    x, mask = F.encode(dataset, layout, 64)
    s = layout.slices()
    x[:, s["avail"], :] = 0.0  # the model 'forgot' every legal action
    cols, lengths, report = F.decode(x, layout, dataset.spec)
    taken = np.take_along_axis(
        cols["avail_actions"], cols["actions"][..., None].astype(np.intp), -1
    )
    assert taken.all() and report["legal_before_masking"] == 0.0


def test_structure_is_learnt_from_the_real_data(dataset):
    layout = F.Layout.from_spec(dataset.spec)
    x, mask = F.encode(dataset, layout, 64)
    st = F.Structure.learn(x, mask, layout)
    avail, alive, acts = (dataset.columns[k] for k in ("avail_actions", "alive", "actions"))
    for i in range(layout.n_agents):  # what the real data says, computed the plain way
        rows = avail[alive[:, i], i]
        np.testing.assert_array_equal(st.fixed_avail[i] == 1, rows.all(0))
        np.testing.assert_array_equal(st.fixed_avail[i] == 0, ~rows.any(0))
        dead = ~alive[:, i]
        if dead.any():
            assert st.dead_action[i] == (
                acts[dead, i][0] if np.unique(acts[dead, i]).size == 1 else -1
            )
            assert st.dead_obs_zero[i] == (dataset.columns["obs"][dead, i] == 0).all()
    assert (st.fixed_avail == 1).any() and (
        st.fixed_avail == -1
    ).any()  # moves always legal, attacks vary
    assert st.alive_monotone and (st.dead_action >= 0).any()
    back = F.Structure.from_arrays(st.to_arrays())
    for k in ("fixed_avail", "dead_action", "dead_avail", "dead_obs_zero"):
        np.testing.assert_array_equal(getattr(back, k), getattr(st, k))
    # a store where an agent comes back to life is not monotone
    x2 = x.copy()
    s = layout.slices()
    e, i = np.argwhere((x[:, s["alive"], :] < 0.5) & mask[:, None, :].astype(bool))[0][[0, 1]]
    t = np.flatnonzero((x[e, s["alive"].start + i] < 0.5) & mask[e].astype(bool))[0]
    if t + 1 < dataset.episode_lengths[e]:
        x2[e, s["alive"].start + i, t + 1] = 1.0
        assert not F.Structure.learn(x2, mask, layout).alive_monotone


def test_dead_rows_restored_by_decoding_are_left_out_of_the_loss(dataset):
    layout = F.Layout.from_spec(dataset.spec)
    x, mask = F.encode(dataset, layout, 64)
    st = F.Structure.learn(x, mask, layout)
    w = F.dead_row_weights(x, layout, st)
    s = layout.slices()
    dead = x[:, s["alive"], :] <= 0.5  # (E, N, T)
    assert dead[mask.astype(bool)[:, None, :].repeat(layout.n_agents, 1)].any()
    a = layout.n_actions
    for i in range(layout.n_agents):
        blocks = [
            s[f"obs{i}"],
            s[f"act{i}"],
            slice(s["avail"].start + i * a, s["avail"].start + (i + 1) * a),
        ]
        for sl in blocks:
            np.testing.assert_array_equal(
                w[:, sl, :] == 0, np.broadcast_to(dead[:, i, None, :], w[:, sl, :].shape)
            )
    # everything else keeps its weight: state, alive flags, reward, Q, done
    for name in ("state", "alive", "reward", "q", "done"):
        assert (w[:, s[name], :] == 1).all()
    # nothing is left out where decoding would not restore it
    assert F.dead_row_weights(x, layout, F.Structure(st.fixed_avail, st.alive_monotone)) is None


def test_structured_decoding_restores_what_the_data_holds_fixed(dataset):
    layout = F.Layout.from_spec(dataset.spec)
    x, mask = F.encode(dataset, layout, 64)
    st = F.Structure.learn(x, mask, layout)
    assert st.trust_action
    trust, st = st, F.Structure(**{**st.__dict__, "trust_action": False})
    s = layout.slices()
    rng = np.random.default_rng(0)
    noisy = x.copy()
    noisy[:, s["avail"], :] = rng.random(noisy[:, s["avail"], :].shape) < 0.5  # coin-flip masks
    noisy[:, s["alive"], :] += rng.normal(0, 0.3, noisy[:, s["alive"], :].shape)  # blurred alive
    cols, lengths, _ = F.decode(noisy, layout, dataset.spec, st)
    np.testing.assert_array_equal(lengths, dataset.episode_lengths)
    # the alive step fit is monotone per episode and far closer to the real flags than a threshold
    plain, _, _ = F.decode(noisy, layout, dataset.spec)
    off = dataset.episode_offsets
    for k in range(len(lengths)):
        assert (np.diff(cols["alive"][off[k] : off[k + 1]].astype(int), axis=0) <= 0).all()
    fit_err = (cols["alive"] != dataset.columns["alive"]).sum()
    threshold_err = (plain["alive"] != dataset.columns["alive"]).sum()
    assert threshold_err > 50 and fit_err * 5 < threshold_err, (fit_err, threshold_err)
    got, live = cols["avail_actions"], cols["alive"]
    e, _, t = noisy.shape
    valid = np.arange(t)[None, :] < lengths[:, None]
    channel = (noisy[:, s["avail"], :].transpose(0, 2, 1).reshape(e, t, layout.n_agents, -1) > 0.5)[
        valid
    ]
    for i in range(layout.n_agents):
        on = got[live[:, i], i]
        assert on[:, st.fixed_avail[i] == 1].all() and not on[:, st.fixed_avail[i] == 0].any()
        varying = st.fixed_avail[i] == -1
        np.testing.assert_array_equal(on[:, varying], channel[live[:, i], i][:, varying])
        dead = ~live[:, i]
        if dead.any() and st.dead_action[i] >= 0:
            assert (cols["actions"][dead, i] == st.dead_action[i]).all()
            if st.dead_obs_zero[i]:
                assert (cols["obs"][dead, i] == 0).all()
    taken = np.take_along_axis(got, cols["actions"][..., None].astype(np.intp), -1)
    assert taken.all()
    # trust_action (the default): where the one-hot argmax and a varying legal bit disagree, the
    # action wins
    tc, _, _ = F.decode(noisy, layout, dataset.spec, trust)
    onehot = np.stack([noisy[:, s[f"act{i}"], :] for i in range(layout.n_agents)], 1).transpose(
        0, 3, 1, 2
    )[valid]
    live = tc["alive"]
    want = onehot.argmax(-1)
    never = (
        st.fixed_avail[np.arange(layout.n_agents)[None, :], want] == 0
    )  # e.g. no-op of a dead agent
    assert never[live].mean() < 0.01  # read as live by the step fit
    np.testing.assert_array_equal(tc["actions"][live & ~never], want[live & ~never])
    assert np.take_along_axis(
        tc["avail_actions"], tc["actions"][..., None].astype(np.intp), -1
    ).all()
    assert (tc["actions"][live] != cols["actions"][live]).any()  # the masks did disagree
    # decoded without noise, the real data comes back exactly, structure or not
    for structure in (st, trust):
        exact, _, _ = F.decode(x, layout, dataset.spec, structure)
        for k in ("actions", "avail_actions", "alive"):
            np.testing.assert_array_equal(exact[k], dataset.columns[k])


def test_reward_quantiles_restore_the_real_distribution():
    rng = np.random.default_rng(0)
    support, shares = np.array([0.0, 1 / 15, 2 / 15, 1.0]), np.array([0.6, 0.3, 0.09, 0.01])
    real = rng.choice(support, size=20_000, p=shares)
    # a blurred, biased copy of the same kind of data, as a CPU-budget model decodes it
    blurred = rng.choice(support, size=20_000, p=shares) + 0.01 + rng.normal(0, 0.03, 20_000)
    fn = F.RewardQuantiles.fit(real, blurred)
    out = fn(blurred)
    assert set(np.unique(out)) <= set(support.astype(np.float32))  # the real support only
    got = np.array([(out == np.float32(v)).mean() for v in support])
    np.testing.assert_allclose(got, shares, atol=0.01)
    assert abs(out.mean() - real.mean()) < 0.1 * abs(blurred.mean() - real.mean())
    order = np.argsort(blurred, kind="stable")
    assert (np.diff(out[order]) >= 0).all()  # the model's order kept
    # continuous rewards: mapped continuously onto the real quantiles
    cont = rng.gamma(2.0, 1.0, 20_000)
    fn = F.RewardQuantiles.fit(cont, 3 * rng.normal(size=20_000))
    out = fn(3 * rng.normal(size=5_000))
    assert np.unique(out).size > 4_000
    assert wasserstein1(cont, out) < 0.05


def test_eaq_calibrates_rewards_and_keeps_the_maps(dataset, tmp_path):
    real = np.unique(dataset.columns["rewards"])
    aug = ma.make_augmenter("eaq", **TINY).fit(dataset)
    syn = aug.sample(24, seed=3)
    assert np.isin(syn.columns["rewards"], real).all()  # real reward values only
    raw = ma.make_augmenter("eaq", **TINY, reward_calibration=False).fit(dataset).sample(24, seed=3)
    assert not np.isin(raw.columns["rewards"], real).all()  # (the model's own are not)
    aug.save(tmp_path / "m")
    back = ma.load_augmenter(tmp_path / "m")
    assert set(back.reward_maps) == {"ddim"}
    np.testing.assert_array_equal(
        back.sample(24, seed=3).columns["rewards"], syn.columns["rewards"]
    )
    x = aug.generate(24, seed=3, sampler="ddpm")
    assert np.isin(aug.decode(x, sampler="ddpm").columns["rewards"], real).all()
    assert set(aug.reward_maps) == {"ddim", "ddpm"}  # each sampler its map


def test_unet_shapes_and_parameter_count():
    net = TemporalUnet(351, (32, 64, 128))
    y = net(torch.randn(2, 351, 24), torch.tensor([0, 5]))
    assert y.shape == (2, 351, 24) and net.multiple == 4


def test_options_are_checked():
    with pytest.raises(ConfigError, match="lam = 0"):
        ma.make_augmenter("eaq-q", lam=0.1)
    with pytest.raises(ConfigError, match="sampler"):
        ma.make_augmenter("eaq", sampler="euler")
    with pytest.raises(ConfigError, match="calibration_episodes must be >= 1"):
        ma.make_augmenter("eaq", calibration_episodes=0)
    if not torch.cuda.is_available():
        from marl_augment.torch_state import resolve_device

        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda:7")


def test_interrupted_fit_resumes(dataset, tmp_path):
    full = ma.make_augmenter("eaq", **{**TINY, "train_steps": 30, "checkpoint_every": 10}).fit(
        dataset
    )
    ck = tmp_path / "train"
    part = ma.make_augmenter("eaq", **{**TINY, "train_steps": 30, "checkpoint_every": 10})

    class Stop(Exception):
        pass

    seen = []

    def interrupt(n, loss):
        seen.append(loss)
        if len(seen) == 25:
            raise Stop

    with pytest.raises(Stop):
        part.fit(dataset, progress=interrupt, checkpoint_dir=ck)
    assert (ck / "train_state.json").exists()
    resumed = ma.make_augmenter("eaq", **{**TINY, "train_steps": 30, "checkpoint_every": 10})
    steps = []
    resumed.fit(
        dataset, progress=lambda n, loss: steps.append(loss), checkpoint_dir=ck, resume=True
    )
    assert len(steps) == 10  # only the steps after the step-20 checkpoint ran
    a = full.sample(8, seed=0)
    b = resumed.sample(8, seed=0)
    assert len(a) == len(b) == 8
    assert not (ck / "train_state.json").exists()


def test_dynamics_filter_keeps_the_most_consistent_episodes(dataset, tmp_path):
    """filter_factor = 3: three times the episodes are generated, the third whose steps the real
    data's one-step model predicts best are kept; saved and loaded, the model samples the same."""
    opts = dict(
        dims=[16, 32],
        train_steps=20,
        batch_size=8,
        diffusion_steps=10,
        sample_steps=4,
        seed=0,
        device="cpu",
    )
    aug = ma.make_augmenter("eaq", filter_factor=3.0, **opts).fit(dataset)
    syn = aug.sample(12, seed=1)
    f = aug.last_report["filter"]
    assert len(syn) == 12 and f["generated"] == 36 and f["kept"] == 12
    assert f["dynamics_error_kept"] <= f["dynamics_error_dropped"]
    assert aug.dynamics.episode_errors(syn).mean() == pytest.approx(
        f["dynamics_error_kept"], rel=1e-5
    )
    aug.save(tmp_path / "m")
    again = ma.augment.base.Augmenter.load(tmp_path / "m").sample(12, seed=1)
    np.testing.assert_array_equal(again.columns["obs"], syn.columns["obs"])
    plain = ma.make_augmenter("eaq", **opts).fit(dataset)
    assert plain.dynamics is None
    plain.config.filter_factor = 2.0
    with pytest.raises(ConfigError, match="fit it again with filter_factor"):
        plain.sample(4, seed=0)
    with pytest.raises(ConfigError, match="filter_factor must be in"):
        ma.make_augmenter("eaq", filter_factor=0.5)


def test_fidelity_report_and_plots(dataset, tmp_path):
    syn = shuffled_baseline(dataset, 40, seed=0)
    rep = fidelity_report(dataset, syn, out_dir=tmp_path)
    assert rep["return_wasserstein"] == pytest.approx(
        wasserstein1(dataset.episode_returns, syn.episode_returns)
    )
    again = shuffled_baseline(dataset, 40, seed=0)  # the report's own baseline: same size, seed
    assert rep["shuffled_baseline"]["return_wasserstein"] == pytest.approx(
        wasserstein1(dataset.episode_returns, again.episode_returns)
    )
    assert (tmp_path / "tsne_obs.png").stat().st_size > 10_000
    assert "focus_fire_share" in rep and 0 <= rep["focus_fire_share"]["real"] <= 1
    assert wasserstein1([0, 1], [0, 1]) == 0 and wasserstein1([0, 0], [1, 1]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_q_guidance_raises_q_of_synthetic_episodes(smac_store, seed):
    """Same data, seed and budget: lambda > 0 gives synthetic episodes a higher mean Q_tot."""
    ds = ma.load(smac_store).subsample(n_episodes=60, seed=0)
    q = {}
    for lam in (0.0, 0.5):
        aug = ma.make_augmenter(
            "eaq",
            lam=lam,
            dims=[16, 32],
            train_steps=150,
            batch_size=16,
            diffusion_steps=50,
            sample_steps=10,
            seed=seed,
            device="cpu",
        ).fit(ds)
        aug.sample(64, seed=seed)
        q[lam] = aug.last_report["q_mean"]
    assert q[0.5] > q[0.0], q


def test_augment_command_fits_with_checkpoints_beside_the_output_and_cleans_up(dataset, tmp_path):
    """`augment --method eaq` fits with resumable checkpoints in OUT.train (ours, marked) and
    removes them once the store is written; --resume on a method that does not learn is one
    line."""
    from typer.testing import CliRunner

    from marl_augment.cli import app

    out = tmp_path / "aug.zarr"
    opts = [x for k, v in TINY.items() if k != "dims" for x in ("-o", f"{k}={v}")]
    r = CliRunner().invoke(
        app,
        [
            "augment",
            str(dataset.path),
            str(out),
            "--method",
            "eaq",
            "--scale",
            "1",
            *opts,
            "-o",
            "dims=[16,32]",
            "--resume",
        ],
    )
    assert r.exit_code == 0, r.output
    assert ma.load(out).stats()["synthetic_episodes"] == len(dataset)
    assert not (tmp_path / "aug.zarr.train").exists()
    r = CliRunner().invoke(
        app,
        ["augment", str(dataset.path), str(tmp_path / "r.zarr"), "--method", "rad-s", "--resume"],
    )
    assert r.exit_code != 0 and "--resume applies to learned augmenters" in r.output


def _obs_gap(syn, real, sources) -> float:
    """Mean |obs| difference of each synthetic episode to its source, over common steps."""
    gaps = []
    for i, j in enumerate(sources):
        a, b = syn.episode(i).obs, real.episode(int(j)).obs
        t = min(len(a), len(b))
        gaps.append(float(np.abs(a[:t] - b[:t]).mean()))
    return float(np.mean(gaps))


def test_partial_noising_starts_from_real_episodes(dataset, tmp_path):
    """partial_noise (SDEdit): at a low level each synthetic episode stays close to the real one
    it started from, far closer than episodes made from pure noise; every real episode is used
    in turn; a saved model noises the dataset it augments, the same way."""
    aug = ma.make_augmenter("eaq", **TINY, seed=0).fit(dataset)
    full = aug.sample(40, seed=2)
    aug.config.partial_noise = 0.1
    near = aug.sample(40, seed=2)
    src = aug.last_sources
    assert sorted(src) == list(range(40))  # one round through the real episodes
    report = aug.last_report["partial_noise"]
    assert report == {"level": 0.1, "from_step": 1, "source_episodes": 40}
    assert set(aug.reward_maps) == {"ddim", "ddim-p100"}  # a reward map per way of sampling
    gap_near, gap_full = _obs_gap(near, dataset, src), _obs_gap(full, dataset, src)
    assert gap_near < 0.5 * gap_full, (gap_near, gap_full)
    np.testing.assert_array_equal(aug.sample(40, seed=2).columns["obs"], near.columns["obs"])

    aug.save(tmp_path / "m")
    back = ma.load_augmenter(tmp_path / "m")
    with pytest.raises(ConfigError, match="starts from real episodes"):
        back.sample(4, seed=0)
    out = back.augment(dataset, scale=1.0, seed=2, out=tmp_path / "aug.zarr")
    np.testing.assert_array_equal(out.where("synthetic").columns["obs"], near.columns["obs"])
    prov = out.provenance[-1]["sample_report"]["partial_noise"]
    assert prov["source_episodes"] == 40
    with pytest.raises(ConfigError, match="partial_noise must be in"):
        ma.make_augmenter("eaq", partial_noise=0.0)


def test_a_fit_checkpoint_resumes_with_other_sampling_options(dataset, tmp_path):
    """Sampling options (sampler, partial noising, filtering, device) do not change a fit, so a
    checkpoint resumes under other values; fit options (lam) still have to match."""
    opts = {**TINY, "train_steps": 20, "checkpoint_every": 10}
    ck = tmp_path / "train"

    class Stop(Exception):
        pass

    def stop_at_15(n, loss, seen=[]):  # noqa: B006 - a counter across calls
        seen.append(loss)
        if len(seen) == 15:
            raise Stop

    with pytest.raises(Stop):
        ma.make_augmenter("eaq", **opts).fit(dataset, progress=stop_at_15, checkpoint_dir=ck)
    with pytest.raises(ConfigError, match="other options"):
        ma.make_augmenter("eaq", **{**opts, "lam": 0.5}).fit(
            dataset, checkpoint_dir=ck, resume=True
        )
    steps = []
    ma.make_augmenter("eaq", **opts, sampler="ddpm", partial_noise=0.5, filter_factor=2.0).fit(
        dataset, progress=lambda n, loss: steps.append(loss), checkpoint_dir=ck, resume=True
    )
    assert len(steps) == 10
