"""Fidelity gates: real episodes pass every gate, a shuffled set fails the structural ones."""

from __future__ import annotations

import numpy as np
import pytest

from marl_augment.augment.fidelity import (
    action_marginals,
    action_types,
    dynamics_errors,
    fidelity_gates,
    shuffled_baseline,
)
from marl_augment.errors import ConfigError


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    pytest.importorskip("jaxmarl")
    from marl_augment.envs.smax import collect

    return collect(
        "smax:3m", tmp_path_factory.mktemp("g") / "3m.zarr", quality="medium", episodes=120, seed=0
    )


def test_resampled_real_episodes_pass_and_shuffled_ones_fail(real):
    again = real.select(np.random.default_rng(1).integers(0, len(real), size=len(real)))
    ok = fidelity_gates(real, again, seed=0, dynamics_steps=300)
    assert ok["passes"], {k: g for k, g in ok["gates"].items() if not g["pass"]}
    assert set(ok["gates"]) == {"return_w1", "length_w1", "action_tv", "focus_fire", "dynamics"}
    bad = fidelity_gates(
        real, shuffled_baseline(real, len(real), seed=7), seed=0, dynamics_steps=300
    )
    assert not bad["gates"]["dynamics"]["pass"] and not bad["gates"]["focus_fire"]["pass"]
    assert not bad["passes"]
    # a one-step model fitted on real steps predicts held-out real steps far better than
    # shuffled ones
    d = bad["gates"]["dynamics"]
    assert d["real_held_out"] < 0.5 * (d["shuffled"] + d["real_held_out"])
    assert fidelity_gates(real, again, seed=0, dynamics_steps=300) == ok  # deterministic


def test_action_shares_and_errors(real):
    p = action_marginals(real)
    assert p.shape == (real.spec.n_actions,) and p.sum() == pytest.approx(1.0)
    t = action_types(real)
    assert set(t) == {"move", "stop", "attack"} and sum(t.values()) == pytest.approx(1.0)
    errs = dynamics_errors(real, {"same": real}, steps=50)
    assert set(errs) == {"real_held_out", "same"} and all(np.isfinite(v) for v in errs.values())
    with pytest.raises(ConfigError, match="at least 4 real episodes"):
        fidelity_gates(real.select([0, 1]), real)


def test_novelty_tells_copies_from_fresh_episodes(real):
    """Copies of the data have no novelty; a fresh half of real episodes against the other half
    is about as far as real episodes are from each other; shuffled episodes are further."""
    from marl_augment.augment.fidelity import novelty

    order = np.random.default_rng(0).permutation(len(real))
    a, b = real.select(np.sort(order[:60])), real.select(np.sort(order[60:]))
    copies = novelty(a, a.select(np.arange(30)))
    assert copies["copies"] == 1.0 and copies["nn_ratio"] == pytest.approx(0.0, abs=1e-3)
    fresh = novelty(a, b)
    assert fresh["copies"] == 0.0 and 0.6 < fresh["nn_ratio"] < 1.6, fresh
    shuffled = novelty(a, shuffled_baseline(a, 60, seed=3))
    assert shuffled["nn_ratio"] > fresh["nn_ratio"], (shuffled, fresh)
    assert "novelty" in fidelity_gates(a, b, seed=0, dynamics_steps=50)
    with pytest.raises(ConfigError, match="novelty needs"):
        novelty(a.select(np.arange(1)), b)


def test_the_fidelity_command_prints_gates_and_novelty(real, tmp_path):
    from typer.testing import CliRunner

    import marl_augment as ma
    from marl_augment.cli import app

    ma.make_augmenter("rad-s").augment(real, scale=0.5, seed=0, out=tmp_path / "aug.zarr")
    r = CliRunner().invoke(app, ["fidelity", str(real.path), str(tmp_path / "aug.zarr")])
    assert r.exit_code == 0, r.output
    assert "fidelity gates: all pass" in r.output
    assert "novelty: nearest-real distance" in r.output
