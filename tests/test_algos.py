"""Offline baselines: loss terms against direct computations, masking, BCQ's filter, the mixer's
monotonicity, and end-to-end training runs on SMAX (resume, policy, CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import marl_augment as ma
from marl_augment.algos import make_algorithm
from marl_augment.algos.common import (
    SequenceSampler,
    legal_or_all,
    masked_argmax,
    run_agents,
    state_dim_of,
)
from marl_augment.algos.qmix import QMixer
from marl_augment.algos.qmix_bcq import allowed_actions
from marl_augment.algos.qmix_cql import cql_term, sample_legal
from marl_augment.data.schema import Spec

from .test_cli import assert_user_error, run

N, A, O, S = 3, 5, 4, 6


def toy_spec() -> Spec:
    return Spec(
        env_id="toy",
        agent_ids=tuple(f"a{i}" for i in range(N)),
        obs_dim=O,
        n_actions=A,
        state_dim=S,
        has_avail_actions=True,
    )


def toy_batch(seed: int = 0, b: int = 4, t: int = 6) -> dict[str, torch.Tensor]:
    """Windows with padding at the end of some, a terminated and a truncated episode end."""
    g = torch.Generator().manual_seed(seed)
    avail = torch.rand(b, t, N, A, generator=g) < 0.6
    avail[..., 0] = True  # no-op always legal
    actions = torch.multinomial(avail.reshape(-1, A).float(), 1, generator=g).reshape(b, t, N)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 4:] = False  # window 1: episode terminated at step 3
    mask[2, 3:] = False  # window 2: episode truncated at step 2
    term = torch.zeros(b, t, dtype=torch.bool)
    term[1, 3] = True
    batch = {
        "obs": torch.randn(b, t, N, O, generator=g),
        "state": torch.randn(b, t, S, generator=g),
        "avail": avail,
        "actions": actions,
        "rewards": torch.rand(b, t, generator=g),
        "terminated": term,
        "mask": mask,
    }
    for k in ("obs", "state", "rewards"):
        batch[k][~mask] = 0
    batch["avail"][~mask] = False
    batch["actions"][~mask] = 0
    return batch


def make(name: str, **kw):
    return make_algorithm(name, toy_spec(), S, device="cpu", hidden=16, **kw)


def test_sample_legal_is_uniform_over_legal_actions():
    avail = torch.tensor([[True, False, True, True, False], [False, False, False, False, True]])
    draws = sample_legal(avail, 30_000, torch.Generator().manual_seed(0))
    assert draws.shape == (2, 30_000)
    assert set(draws[0].tolist()) == {0, 2, 3} and set(draws[1].tolist()) == {4}
    share = np.bincount(draws[0].numpy(), minlength=A)[[0, 2, 3]] / 30_000
    assert np.allclose(share, 1 / 3, atol=0.015)
    none = sample_legal(torch.zeros(1, A, dtype=torch.bool), 1000, torch.Generator().manual_seed(0))
    assert set(none[0].tolist()) == set(range(A))  # padding rows: anything, never an error


def test_cql_term_equals_direct_computation():
    algo = make("qmix-cql", num_ood_actions=7)
    batch = toy_batch()
    gen = torch.Generator().manual_seed(3)
    loss, info = algo.loss(batch, gen)
    q = run_agents(algo.agent, batch["obs"]).detach()
    ood = sample_legal(batch["avail"], 7, torch.Generator().manual_seed(3))
    b, t = batch["mask"].shape
    terms = []
    with torch.no_grad():
        for i in range(b):
            for j in range(t):
                if not batch["mask"][i, j]:
                    continue
                s = batch["state"][i, j].reshape(1, 1, S)

                def qtot(joint):
                    qs = q[i, j, torch.arange(N), joint].reshape(1, 1, N)
                    return float(algo.mixer(qs, s))

                data = qtot(batch["actions"][i, j])
                values = [qtot(ood[i, j, :, k]) for k in range(7)] + [data]
                terms.append(
                    float(torch.logsumexp(torch.tensor(values, dtype=torch.float64), 0)) - data
                )
    assert info["cql_loss"] == pytest.approx(np.mean(terms), rel=1e-4)
    assert float(loss.detach()) == pytest.approx(info["td_loss"] + 3.0 * info["cql_loss"], rel=1e-5)
    # logsumexp over a set holding the data action is >= its value: the term is never negative
    assert min(terms) >= 0
    assert float(cql_term(torch.zeros(2, 3, 1), torch.ones(2, 3, dtype=torch.bool))) == 0.0


def test_td_target_terminal_truncated_and_double_q():
    algo = make("qmix-cql", gamma=0.9)
    batch = toy_batch(1)
    with torch.no_grad():
        q = run_agents(algo.agent, batch["obs"])
        tq = run_agents(algo.target_agent, batch["obs"])
        chosen = q.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
        q_tot = algo.mixer(chosen, batch["state"])
        td, _ = algo.td_loss(batch, q, q_tot, legal_or_all(batch["avail"]), tq)
        legal = legal_or_all(batch["avail"])
        errs = []
        b, t = batch["mask"].shape
        for i in range(b):
            for j in range(t):
                m = batch["mask"][i]
                if not m[j]:
                    continue
                last_in_window = j + 1 >= t or not m[j + 1]
                if batch["terminated"][i, j]:
                    y = float(batch["rewards"][i, j])
                elif last_in_window:
                    continue  # truncated end or window end: nothing to bootstrap from
                else:
                    a_star = masked_argmax(q[i, j + 1], legal[i, j + 1])  # online argmax
                    qn = tq[i, j + 1, torch.arange(N), a_star].reshape(1, 1, N)  # target value
                    y = float(batch["rewards"][i, j]) + 0.9 * float(
                        algo.target_mixer(qn, batch["state"][i, j + 1].reshape(1, 1, S))
                    )
                errs.append(0.5 * (y - float(q_tot[i, j])) ** 2)
    assert float(td) == pytest.approx(np.mean(errs), rel=1e-5)


@pytest.mark.parametrize("name", ["qmix-cql", "qmix-bcq", "bc"])
def test_masked_steps_change_no_gradient(name):
    def grads(batch):
        algo = make(name)
        loss, _ = algo.loss(batch, torch.Generator().manual_seed(0))
        loss.backward()
        return [p.grad.clone() for m in algo.trained_modules() for p in m.parameters()]

    batch = toy_batch(2)
    base = grads(batch)
    noisy = {k: v.clone() for k, v in batch.items()}
    pad = ~batch["mask"]
    g = torch.Generator().manual_seed(9)
    noisy["obs"][pad] = torch.randn(int(pad.sum()), N, O, generator=g) * 50
    noisy["state"][pad] = torch.randn(int(pad.sum()), S, generator=g) * 50
    noisy["rewards"][pad] = torch.randn(int(pad.sum()), generator=g) * 50
    noisy["actions"][pad] = torch.randint(0, A, (int(pad.sum()), N), generator=g)
    noisy["avail"][pad] = torch.rand(int(pad.sum()), N, A, generator=g) < 0.5
    changed = grads(noisy)
    assert all(torch.equal(x, y) for x, y in zip(base, changed))
    assert any(x.abs().sum() > 0 for x in base)


def test_mixer_is_monotone_in_every_agent_q():
    torch.manual_seed(0)
    mixer = QMixer(N, S, embed=8, hypernet=16)
    state = torch.randn(64, 5, S) * 3
    qs = (torch.randn(64, 5, N) * 4).requires_grad_()
    mixer(qs, state).sum().backward()
    assert (qs.grad >= 0).all()
    for i in range(N):
        up = qs.detach().clone()
        up[..., i] += torch.rand(64, 5) * 2
        assert (mixer(up, state) >= mixer(qs.detach(), state) - 1e-6).all()


def test_bcq_allowed_actions_and_policy_respect_threshold_and_legality():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, A, generator=g) * 3
    legal = torch.rand(500, A, generator=g) < 0.5
    legal[:, 2] = True
    allowed = allowed_actions(logits, legal, 0.4)
    probs = torch.softmax(logits.masked_fill(~legal, -1e9), -1)
    ratio = probs / probs.max(-1, keepdim=True).values
    assert not (allowed & ~legal).any()
    assert (ratio[allowed] >= 0.4).all() and (ratio[legal & ~allowed] < 0.4).all()
    assert allowed.any(-1).all()

    algo = make("qmix-bcq")
    with (
        torch.no_grad()
    ):  # a peaked behaviour model, as after cloning a fairly deterministic policy
        algo.bc.out.weight.mul_(40)
    pol = algo.policy()
    obs = np.random.default_rng(0).normal(size=(64, N, O)).astype(np.float32)
    avail = np.random.default_rng(1).random((64, N, A)) < 0.5
    avail[..., 0] = True
    acts = pol(obs, avail, np.ones(64, bool))
    with torch.no_grad():
        x = torch.from_numpy(obs)[:, None]
        bc = run_agents(algo.bc, x)[:, 0]
        q = run_agents(algo.agent, x)[:, 0]
    ok = allowed_actions(bc, torch.from_numpy(avail), 0.4)
    rows = np.arange(64)[:, None], np.arange(N)[None, :]
    assert ok.numpy()[rows[0], rows[1], acts].all()  # never below the threshold or illegal
    best_allowed = q.masked_fill(~ok, -1e9).argmax(-1).numpy()
    assert (acts == best_allowed).all()
    # the Q network alone would often pick something else: the filter is doing work
    greedy_legal = q.masked_fill(~torch.from_numpy(avail), -1e9).argmax(-1).numpy()
    assert (greedy_legal != acts).any()
    # OG-MARL's way: the filter shapes the TD target only, the policy acts among legal actions
    algo.config.act_allowed_only = False
    assert (algo.policy()(obs, avail, np.ones(64, bool)) == greedy_legal).all()


def test_policy_keeps_recurrent_state_per_env_and_resets_on_first():
    algo = make("bc")
    pol = algo.policy()
    obs = np.random.default_rng(0).normal(size=(2, N, O)).astype(np.float32)
    avail = np.ones((2, N, A), bool)
    pol(obs, avail, np.array([True, True]))
    h1 = pol.hidden["agent"].clone()
    pol(obs, avail, np.array([False, True]))
    h2 = pol.hidden["agent"]
    assert not torch.equal(h1[:, :N], h2[:, :N])  # env 0 carried its state on
    assert torch.equal(h1[:, N:], h2[:, N:])  # env 1 restarted: same input, same state


def test_options_are_checked():
    with pytest.raises(ma.errors.ConfigError, match="no option"):
        make("bc", cql_alpha=1.0)
    with pytest.raises(ma.errors.ConfigError, match="threshold"):
        make("qmix-bcq", threshold=2.0)
    with pytest.raises(ma.errors.NotFound, match="qmix-cql"):
        make("qmix-cq")


def test_sampler_windows_match_dataset_sequences(smac_ds):
    s = SequenceSampler(smac_ds, 20, 10, 8, seed=0, device=torch.device("cpu"))
    ref = smac_ds.sequences(20, 10)
    idx = np.array([0, 5, len(ref["mask"]) - 1])
    got = s.windows(idx)
    assert np.array_equal(got["mask"].numpy(), ref["mask"][idx])
    assert np.array_equal(got["obs"].numpy(), ref["obs"][idx])
    assert np.array_equal(got["actions"].numpy(), ref["actions"][idx])
    assert np.array_equal(got["terminated"].numpy(), ref["terminated"][idx])
    assert state_dim_of(smac_ds.spec) == got["state"].shape[-1]
    assert torch.equal(s.batch(3)["obs"], s.batch(3)["obs"]) and not torch.equal(
        s.batch(3)["obs"], s.batch(4)["obs"]
    )


@pytest.mark.parametrize("share", [0.0, 0.25, 1.0])
def test_sampler_draws_a_fixed_share_of_synthetic_windows(smac_ds, share):
    aug = ma.make_augmenter("rad-s").fit(smac_ds).augment(smac_ds, scale=1.0, seed=0)
    s = SequenceSampler(aug, 20, 10, 32, seed=0, device=torch.device("cpu"), synthetic_share=share)
    origin = np.asarray(aug.episode_origin)[s.ep] != 0
    for step in range(5):
        rng = np.random.default_rng([0, step])  # the sampler's own draw, replayed
        syn, real = s.pools
        k = round(share * 32)
        idx = np.concatenate(
            [syn[rng.integers(0, syn.size, k)], real[rng.integers(0, real.size, 32 - k)]]
        )
        assert int(origin[idx].sum()) == k
        assert torch.equal(s.batch(step)["obs"], s.windows(idx)["obs"])
    plain = SequenceSampler(aug, 20, 10, 32, seed=0, device=torch.device("cpu"))
    old = np.random.default_rng([0, 3]).integers(0, plain.n_windows, 32)  # unchanged without it
    assert torch.equal(plain.batch(3)["obs"], plain.windows(old)["obs"])


def test_synthetic_share_needs_synthetic_episodes(smac_ds, smac_store, tmp_path):
    with pytest.raises(ma.errors.ConfigError, match="needs synthetic episodes"):
        SequenceSampler(smac_ds, 20, 10, 8, seed=0, device=torch.device("cpu"), synthetic_share=0.5)
    r = run(
        "train",
        str(smac_store),
        "--algo",
        "bc",
        "--no-eval",
        "--steps",
        "1",
        "-o",
        "synthetic_share=2",
        "--out",
        str(tmp_path / "r"),
    )
    assert_user_error(r, "synthetic_share must be a number in [0, 1]")


# -- end to end on SMAX ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_3m(tmp_path_factory):
    path = tmp_path_factory.mktemp("smax") / "3m-good.zarr"
    from marl_augment.envs.smax import collect

    return collect("smax:3m", path, quality="good", episodes=128, seed=0)


def test_bc_learns_the_behaviour_and_the_run_folder_is_complete(good_3m, tmp_path):
    out = tmp_path / "bc"
    s = ma.train(
        good_3m,
        "bc",
        out=out,
        steps=400,
        eval_every=200,
        eval_episodes=16,
        final_episodes=64,
        log_every=50,
        options={"device": "cpu"},
    )
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [0, 200, 400]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train_rows] == list(range(50, 401, 50))
    assert train_rows[-1]["loss"] < 0.6 * train_rows[0]["loss"]
    data_return = float(good_3m.episode_returns.mean())
    # the untrained network does nothing useful; the cloned one gets much of the data's return
    assert evals[0]["return_mean"] < 0.5 * data_return
    assert s["eval"]["return_mean"] > 0.6 * data_return, (s["eval"], data_return)
    for f in (
        "run.json",
        "summary.json",
        "learning_curve.png",
        "policy/policy.json",
        "policy/weights.safetensors",
    ):
        assert (out / f).is_file(), f
    pol = ma.algos.load_policy(out)
    again = ma.evaluate(pol, "smax:3m", episodes=64, seed=1_000_000)
    assert again["return_mean"] == pytest.approx(s["eval"]["return_mean"])


@pytest.mark.parametrize("name", ["qmix-cql", "qmix-bcq"])
def test_resumed_run_equals_uninterrupted_run(good_3m, tmp_path, name):
    kw = dict(
        eval_every=0,
        final_episodes=4,
        log_every=10,
        checkpoint_every=20,
        options={"device": "cpu"},
        evaluate=False,
    )
    ma.train(good_3m, name, out=tmp_path / "full", steps=40, **kw)
    ma.train(good_3m, name, out=tmp_path / "part", steps=20, **kw)
    s = ma.train(good_3m, name, out=tmp_path / "part", steps=40, resume=True, **kw)
    assert s["steps"] == 40
    from safetensors.numpy import load_file

    a = load_file(str(tmp_path / "full" / "policy" / "weights.safetensors"))
    b = load_file(str(tmp_path / "part" / "policy" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    def rows(p):
        return [
            {k: v for k, v in json.loads(x).items() if k != "updates_per_s"}
            for x in (p / "metrics.jsonl").read_text().splitlines()
        ]

    assert rows(tmp_path / "full") == rows(tmp_path / "part")


def test_cli_train_evaluate_and_errors(good_3m, tmp_path):
    out = tmp_path / "run"
    r = run(
        "train",
        good_3m.path,
        "--algo",
        "qmix-cql",
        "--out",
        out,
        "--steps",
        "30",
        "--eval-every",
        "15",
        "--eval-episodes",
        "4",
        "--final-episodes",
        "8",
        "--device",
        "cpu",
        "--json",
    )
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["algo"] == "qmix-cql" and summary["eval"]["episodes"] == 8
    r = run("evaluate", "smax:3m", "--policy", out, "-n", "8", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["episodes"] == 8
    assert_user_error(
        run("train", good_3m.path, "--out", out, "--steps", "30"), "finished run", "--overwrite"
    )
    assert_user_error(run("evaluate", "smax:8m", "--policy", out, "-n", "2"), "trained on 3 agents")
    assert_user_error(
        run("train", good_3m.path, "--algo", "qmix", "--out", tmp_path / "x"), "unknown algorithm"
    )
    assert_user_error(
        run("train", good_3m.path, "--out", tmp_path / "y", "-o", "alpha=1"), "no option"
    )
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    r = run("train", "--list")
    assert r.exit_code == 0 and "qmix-bcq" in r.output


def test_train_seeds_gives_each_seed_the_lone_runs_losses(good_3m, tmp_path):
    """``train --seeds 0-1 --workers 2`` (two processes of one thread): each seed's run has the
    lone run's initialisation and batches, so its losses agree with ``train --seed s``'s to
    float tolerance; a resume keeps finished seeds; bad seeds are one line."""
    out = tmp_path / "runs"
    r = run(
        "train",
        good_3m.path,
        "--algo",
        "qmix-cql",
        "--out",
        out,
        "--steps",
        "40",
        "--seeds",
        "0-1",
        "--workers",
        "2",
        "--log-every",
        "10",
        "--eval-every",
        "20",
        "--eval-episodes",
        "4",
        "--final-episodes",
        "8",
        "--device",
        "cpu",
        "--json",
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert [sm["seed"] for sm in res["runs"]] == [0, 1] and res["return_mean"] is not None
    assert json.loads((out / "seeds.json").read_text())["seeds"] == [0, 1]
    losses = {}
    for s in (0, 1):
        lone = tmp_path / f"lone-{s}"
        ma.train(
            good_3m,
            "qmix-cql",
            out=lone,
            steps=40,
            seed=s,
            eval_every=20,
            eval_episodes=4,
            final_episodes=8,
            log_every=10,
            options={"device": "cpu"},
        )
        together = [
            x["loss"] for x in ma.training.read_metrics(out / f"seed-{s}") if x["kind"] == "train"
        ]
        alone = [x["loss"] for x in ma.training.read_metrics(lone) if x["kind"] == "train"]
        assert len(together) == len(alone) == 4
        np.testing.assert_allclose(together, alone, rtol=1e-4)

        def ev(p):
            return [x["return_mean"] for x in ma.training.read_metrics(p) if x["kind"] == "eval"]

        assert len(ev(out / f"seed-{s}")) == 3
        losses[s] = alone
    assert losses[0] != losses[1]  # the seeds differ
    mtime = (out / "seed-0" / "summary.json").stat().st_mtime_ns
    r = run(
        "train",
        good_3m.path,
        "--algo",
        "qmix-cql",
        "--out",
        out,
        "--steps",
        "40",
        "--seeds",
        "0-2",
        "--eval-every",
        "20",
        "--eval-episodes",
        "4",
        "--final-episodes",
        "8",
        "--device",
        "cpu",
        "--resume",
        "--json",
    )
    assert r.exit_code == 0, r.output
    assert [sm["seed"] for sm in json.loads(r.output)["runs"]] == [0, 1, 2]
    assert (out / "seed-0" / "summary.json").stat().st_mtime_ns == mtime  # finished: kept
    assert_user_error(
        run("train", good_3m.path, "--out", out, "--seeds", "0-1"), "holds runs", "--resume"
    )
    assert_user_error(
        run("train", good_3m.path, "--out", tmp_path / "z", "--seeds", "0-x"), "seeds", "0-4"
    )
    assert_user_error(
        run("train", good_3m.path, "--out", tmp_path / "z", "--seeds", "1,1"), "each once"
    )
    assert_user_error(
        run("train", good_3m.path, "--out", tmp_path / "z", "--seeds", "0-1", "--seed", "3"),
        "--seed or --seeds",
    )
    assert_user_error(
        run("train", good_3m.path, "--out", lone, "--seeds", "0-1"), "marl-augment run"
    )
    assert not (tmp_path / "z").exists()


# -- the stacked agent networks (agent_stack) ------------------------------------------------------
@pytest.fixture(params=["cpp", "fallback"])
def recurrence(request, monkeypatch):
    """The C++ kernels (they must build where a compiler is), then PyTorch's nn.GRU net by net."""
    import shutil

    from marl_augment.algos import kernels

    monkeypatch.setattr(kernels, "_MODULE", None)
    monkeypatch.setattr(kernels, "_TRIED", False)
    if request.param == "fallback":
        monkeypatch.setenv(kernels.NO_CPP_ENV, "1")
        assert kernels.cpu_kernels(torch.zeros(1)) is None
    elif shutil.which("c++") is None:
        pytest.skip("no C++ compiler: only the nn.GRU path runs here")
    else:
        assert kernels.cpu_kernels(torch.zeros(1)) is not None
        assert kernels.cpu_kernels(torch.zeros(1, dtype=torch.float64)) is None
    return request.param


@pytest.mark.timeout(300)
def test_a_killed_build_does_not_hang_the_next_one(monkeypatch):
    """A build killed midway leaves PyTorch's lock file, which PyTorch would wait on forever;
    the next process to build removes it (it holds the build lock, so nobody else is building)."""
    import shutil

    from marl_augment.algos import kernels

    if shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    monkeypatch.setattr(kernels, "_MODULE", None)
    monkeypatch.setattr(kernels, "_TRIED", False)
    folder = kernels.build_folder(kernels.build_name())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lock").touch()  # as a build killed after taking PyTorch's lock leaves it
    assert kernels.cpu_kernels(torch.zeros(1)) is not None
    assert not (folder / "lock").exists()
    assert (folder / "_kernels.cpp").read_bytes() == (
        Path(kernels.__file__).with_name("_kernels.cpp").read_bytes()
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_agent_stack_equals_nn_gru_values_and_gradients(recurrence, dtype):
    """Two trained networks and a frozen one in one pass: the outputs of nn.GRU-based AgentNets,
    gradients equal to autograd's through nn.GRU; the frozen one's output carries no gradient.
    (float64 takes the nn.GRU path whatever the fixture.)"""
    import copy

    from marl_augment.algos.agent_stack import run_agent_stack
    from marl_augment.algos.common import AgentNet

    torch.manual_seed(0)
    q_net, bc_net = AgentNet(O + N, A, 16).to(dtype), AgentNet(O + N, A, 16).to(dtype)
    q_net.in_scale.uniform_(0.5, 1.5)
    frozen = copy.deepcopy(q_net).requires_grad_(False)
    with torch.no_grad():
        for p in frozen.parameters():
            p.add_(0.1 * torch.randn_like(p))
    obs = torch.randn(4, 7, N, O, dtype=dtype)
    weights = [torch.randn(4, 7, N, A, dtype=dtype) for _ in range(2)]

    ref = [run_agents(net, obs) for net in (q_net, bc_net, frozen)]
    ((ref[0] * weights[0]).sum() + (ref[1] * weights[1]).sum()).backward()
    ref_grads = [p.grad.clone() for net in (q_net, bc_net) for p in net.parameters()]
    q_net.zero_grad(), bc_net.zero_grad()

    out = run_agent_stack([q_net, bc_net, frozen], obs)
    ((out[0] * weights[0]).sum() + (out[1] * weights[1]).sum()).backward()
    grads = [p.grad for net in (q_net, bc_net) for p in net.parameters()]
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    for o, r in zip(out, ref):
        assert o.shape == r.shape and torch.allclose(o, r.detach(), atol=tol, rtol=tol)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=tol * float(r.abs().max()), rtol=0)
    assert not out[2].requires_grad
    with torch.no_grad():
        assert all(
            torch.allclose(o, r, atol=tol, rtol=tol)
            for o, r in zip(run_agent_stack([q_net, frozen], obs), ref[::2])
        )


def test_agent_stack_wants_trained_networks_first():
    import copy

    from marl_augment.algos.agent_stack import run_agent_stack
    from marl_augment.algos.common import AgentNet

    net = AgentNet(O + N, A, 8)
    with pytest.raises(ValueError, match="must come before"):
        run_agent_stack([copy.deepcopy(net).requires_grad_(False), net], torch.zeros(2, 3, N, O))


def test_keep_freed_heap_keeps_freed_tensors_memory():
    """A freed 20 MB tensor's pages stay with the process once keep_freed_heap() ran (so the next
    update does not fault them in again); by default glibc gives them back at once."""
    import platform
    import subprocess
    import sys

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    code = """
import os, sys, torch
from marl_augment.torch_state import keep_freed_heap
if sys.argv[1] == "1":
    keep_freed_heap()
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
x = torch.ones(5_000_000)
held = rss_mb()
del x
print(held - rss_mb())
"""
    given_back = [
        float(
            subprocess.run(
                [sys.executable, "-c", code, flag], capture_output=True, text=True, check=True
            ).stdout
        )
        for flag in ("0", "1")
    ]
    assert given_back[0] > 15 and given_back[1] < 1, given_back
