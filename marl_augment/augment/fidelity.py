"""What augmentation did: real vs synthetic episodes, side by side.

- return and length distributions, compared by the 1-Wasserstein distance, next to the same
  distances for the shuffled-feature baseline of as many episodes;
- per-feature mean / std error of observations and state;
- the synthetic episodes' action legality before masking (recorded when they were sampled);
- for SMAC/SMAX action layouts, the share of steps where every living agent attacks and they
  all attack the same enemy (focus fire, EAQ paper Fig. 1b);
- a t-SNE map of observations, real vs synthetic, as PNG (EAQ paper Fig. 3);
- **gates** (:func:`fidelity_gates`): per measure — return and length W1, action marginals,
  dynamics consistency, focus fire — the synthetic set's distance to the real data next to the
  shuffled baseline's and the real data's own sampling noise; a set passes a gate when it is far
  closer than the baseline (at most half its distance) or within the noise;
- **novelty** (:func:`novelty`): how far synthetic episodes are from their nearest real one,
  relative to how far real episodes are from each other — the other side of fidelity (a copy of
  the data passes every gate and adds nothing).

``shuffled_baseline`` makes the reference a generative model should beat: real episodes with
every feature shuffled independently across episodes (marginals kept, structure destroyed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import Dataset
from ..errors import ConfigError
from ..outputs import check_output, kind_of, save_figure, write_marker
from .eaq import features as F

#: first attack action of each env family (SMAC: no-op, stop, 4 moves; SMAX: 4 moves, stop)
ATTACK_OFFSET = {"smac": 6, "smax": 5, "synthetic": 6}


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """1-Wasserstein distance between two 1-D samples (exact, via their quantile functions)."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if a.size == 0 or b.size == 0:
        return float("nan")
    grid = np.union1d(np.arange(1, a.size + 1) / a.size, np.arange(1, b.size + 1) / b.size)
    widths = np.diff(np.concatenate([[0.0], grid]))
    qa = a[np.minimum((grid * a.size - 1e-12).astype(int), a.size - 1)]
    qb = b[np.minimum((grid * b.size - 1e-12).astype(int), b.size - 1)]
    return float((np.abs(qa - qb) * widths).sum())


def focus_fire_share(ds: Dataset) -> float | None:
    """Among steps where every living agent attacks, the share where they all attack one enemy."""
    family = ds.spec.env_id.split(":", 1)[0]
    off = ATTACK_OFFSET.get(family)
    if off is None or ds.spec.n_agents < 2:
        return None
    acts = ds.columns["actions"]
    alive = ds.columns["alive"] if ds.spec.has_alive else np.ones_like(acts, bool)
    attacking = (acts >= off) | ~alive
    all_attack = attacking.all(1) & (alive.sum(1) >= 2)
    if not all_attack.any():
        return 0.0
    t = np.where(alive, acts, -1)[all_attack]
    same = np.array([len(set(row[row >= 0].tolist())) == 1 for row in t])
    return float(same.mean())


#: a synthetic set passes a gate when its distance is at most this share of the baseline's
GATE_RATIO = 0.5


def action_marginals(ds: Dataset) -> np.ndarray:
    """Share of each action among living agents' steps: (n_actions,)."""
    acts = ds.columns["actions"]
    alive = ds.columns["alive"] if ds.spec.has_alive else np.ones_like(acts, bool)
    counts = np.bincount(acts[alive].astype(np.int64), minlength=ds.spec.n_actions).astype(
        np.float64
    )
    return counts / max(counts.sum(), 1.0)


def action_w1(a: Dataset, b: Dataset) -> float:
    """Continuous actions: W1 between the two sets' values of each real action dimension of
    each agent (living agents' steps), in units of the dimension's range, averaged."""
    spec = a.spec
    low, high = spec.action_bounds()
    out = []
    for i, d in enumerate(spec.action_dims):
        rows = []
        for ds in (a, b):
            acts = ds.columns["actions"][:, i, :d]
            alive = ds.columns["alive"][:, i] if ds.spec.has_alive else np.ones(len(acts), bool)
            rows.append(acts[alive])
        for k in range(d):
            span = float(high[i, k] - low[i, k]) or 1.0
            if len(rows[0]) and len(rows[1]):
                out.append(wasserstein1(rows[0][:, k], rows[1][:, k]) / span)
    return float(np.mean(out)) if out else float("nan")


def action_types(ds: Dataset) -> dict[str, float] | None:
    """Shares of move / stop / attack (and no-op on SMAC) among living agents' steps, for
    SMAC/SMAX action layouts; None for others."""
    family = ds.spec.env_id.split(":", 1)[0]
    off = ATTACK_OFFSET.get(family)
    if off is None:
        return None
    p = action_marginals(ds)
    if family == "smax":
        return {"move": float(p[:4].sum()), "stop": float(p[4]), "attack": float(p[off:].sum())}
    return {
        "no-op": float(p[0]),
        "stop": float(p[1]),
        "move": float(p[2:6].sum()),
        "attack": float(p[off:].sum()),
    }


def _step_pairs(ds: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_t, one-hot joint action_t, x_{t+1} − x_t, episode index) for every step with a
    successor in its episode; x is the state, or the agents' observations side by side."""
    cols = ds.columns
    x = cols["state"] if ds.spec.has_state else cols["obs"].reshape(len(cols["obs"]), -1)
    x = x.astype(np.float32)
    offsets = ds.episode_offsets
    has_next = np.ones(len(x), bool)
    has_next[offsets[1:] - 1] = False
    t = np.flatnonzero(has_next)
    if ds.spec.continuous:  # the action vectors, side by side
        joint = cols["actions"][t].astype(np.float32)
    else:
        joint = np.eye(ds.spec.n_actions, dtype=np.float32)[cols["actions"][t].astype(np.int64)]
    episode = np.searchsorted(offsets, t, side="right") - 1
    return x[t], joint.reshape(len(t), -1), x[t + 1] - x[t], episode


class DynamicsModel:
    """A one-step model of the real data: state and one-hot joint action → change of state
    (observations side by side where there is no state), an MLP with two hidden layers.

    Errors are mean squared errors per feature, in units of each feature's spread in the real
    data (not of its change, which is near zero for features that rarely move and would blow up
    any error on them); features constant in the real data are left out. Fitted with torch,
    applied with numpy; :meth:`arrays` / :meth:`from_arrays` save and restore it.
    """

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.a = {k: np.asarray(v) for k, v in arrays.items()}

    @classmethod
    def fit(
        cls, ds: Dataset, *, steps: int = 1000, hidden: int = 256, seed: int = 0
    ) -> DynamicsModel:
        """Fit on ``ds``'s steps: about 30 passes over them, at most ``steps`` updates of 512."""
        import torch

        x, a, d, _ = _step_pairs(ds)
        if len(x) < 2:
            raise ConfigError(
                f"a dynamics model needs episodes of 2 or more steps; {ds!r} has {len(x)} pairs"
            )
        mu_x, sd_x = x.mean(0), x.std(0) + 1e-6
        keep = x.std(0) > 1e-3
        mu_d = d.mean(0)
        k = int(keep.sum())
        xin = torch.from_numpy(
            np.concatenate([((x - mu_x) / sd_x)[:, keep], a], 1).astype(np.float32)
        )
        target = torch.from_numpy(((d - mu_d) / sd_x)[:, keep].astype(np.float32))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = torch.nn.Sequential(
                torch.nn.Linear(xin.shape[1], hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, hidden),
                torch.nn.ReLU(),
                torch.nn.Linear(hidden, k),
            )
            opt = torch.optim.Adam(net.parameters(), lr=1e-3, foreach=True)
            gen = torch.Generator().manual_seed(seed)
            for _ in range(int(np.clip(30 * len(xin) / 512, min(200, steps), steps))):
                idx = torch.randint(0, len(xin), (min(512, len(xin)),), generator=gen)
                loss = torch.nn.functional.mse_loss(net(xin[idx]), target[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        arrays = {"mu_x": mu_x, "sd_x": sd_x, "mu_d": mu_d, "keep": keep.astype(np.uint8)}
        for i, layer in enumerate(m for m in net if isinstance(m, torch.nn.Linear)):
            arrays[f"w{i}"] = layer.weight.detach().numpy().copy()
            arrays[f"b{i}"] = layer.bias.detach().numpy().copy()
        return cls(arrays)

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.a)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DynamicsModel:
        return cls(arrays)

    def step_errors(self, ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """(error of every step with a successor, its episode index)."""
        a = self.a
        x, act, d, episode = _step_pairs(ds)
        keep = a["keep"].astype(bool)
        h = np.concatenate([((x - a["mu_x"]) / a["sd_x"])[:, keep], act], 1)
        for i in range(3):
            h = h @ a[f"w{i}"].T + a[f"b{i}"]
            if i < 2:
                h = np.maximum(h, 0.0)
        err = ((((d - a["mu_d"]) / a["sd_x"])[:, keep] - h) ** 2).mean(1)
        return err, episode

    def error(self, ds: Dataset) -> float:
        """Mean error over all of ``ds``'s steps (nan without any)."""
        if len(ds) == 0:
            return float("nan")
        err, _ = self.step_errors(ds)
        return float(err.mean()) if len(err) else float("nan")

    def episode_errors(self, ds: Dataset) -> np.ndarray:
        """Mean error of each episode's steps (0 for an episode of one step)."""
        err, episode = self.step_errors(ds)
        total = np.bincount(episode, weights=err, minlength=len(ds))
        count = np.bincount(episode, minlength=len(ds))
        return total / np.maximum(count, 1)


def dynamics_errors(
    real: Dataset,
    others: dict[str, Dataset],
    *,
    steps: int = 1000,
    hidden: int = 256,
    held_out: float = 0.2,
    seed: int = 0,
) -> dict[str, float]:
    """How well each dataset's steps follow the real dynamics: a :class:`DynamicsModel` is
    fitted on ``1 − held_out`` of the real episodes, and its error is reported on the held-out
    real episodes (``real_held_out``: the floor a faithful generator would reach) and on every
    dataset of ``others`` (e.g. synthetic, shuffled baseline)."""
    order = np.random.default_rng(seed).permutation(len(real))
    n_out = max(1, int(round(held_out * len(real))))
    if len(real) - n_out < 2:
        raise ConfigError(f"dynamics consistency needs at least 3 real episodes, got {len(real)}")
    model = DynamicsModel.fit(
        real.select(np.sort(order[n_out:])), steps=steps, hidden=hidden, seed=seed
    )
    out = {"real_held_out": model.error(real.select(np.sort(order[:n_out])))}
    out.update({name: model.error(ds) for name, ds in others.items()})
    return out


def fidelity_gates(
    real: Dataset,
    synthetic: Dataset,
    *,
    seed: int = 0,
    dynamics_steps: int = 1000,
    baseline: Dataset | None = None,
) -> dict[str, Any]:
    """Each measure's distance of ``synthetic`` to ``real``, next to two references: the
    shuffled baseline's (as many episodes, :func:`shuffled_baseline`) and the sampling noise of
    the real data itself (the distance between two random halves of the real episodes).

    A gate passes when the synthetic distance is at most ``GATE_RATIO`` × the baseline's, or
    within the real data's own noise (the shuffled baseline keeps every feature's marginals, so
    on marginal measures — returns, lengths, action shares — it is close to the real data by
    construction, and no generator can be asked to beat sampling noise; ``real_noise`` is twice
    the halves' distance scaled to the sizes compared). Distances: return and
    length W1; action marginals, total variation; dynamics, the one-step model's error above the
    held-out real episodes' (:func:`dynamics_errors`); focus fire, the difference of shares.
    """
    if len(synthetic) == 0:
        raise ConfigError("no synthetic episodes to gate; augment first")
    if len(real) < 4:
        raise ConfigError(f"fidelity gates need at least 4 real episodes, got {len(real)}")
    base = baseline if baseline is not None else shuffled_baseline(real, len(synthetic), seed=seed)
    order = np.random.default_rng(seed).permutation(len(real))
    half_a, half_b = (
        real.select(np.sort(order[: len(real) // 2])),
        real.select(np.sort(order[len(real) // 2 :])),
    )
    gates: dict[str, dict[str, float | bool]] = {}

    # the halves' distance, scaled to the sizes compared (distances between samples shrink
    # like sqrt(1/n + 1/m)), with a factor 2 of tolerance: a set drawn from the real data's own
    # distribution stays below it
    n, m = len(real), len(synthetic)
    to_sizes = 2.0 * float(np.sqrt((1 / n + 1 / m) / (1 / len(half_a) + 1 / len(half_b))))

    def gate(name: str, dist: Any) -> None:
        syn, shuffled = dist(synthetic, real), dist(base, real)
        noise = dist(half_a, half_b) * to_sizes
        gates[name] = {
            "synthetic": syn,
            "shuffled": shuffled,
            "real_noise": noise,
            "pass": bool(np.isfinite(syn) and syn <= max(GATE_RATIO * shuffled, noise)),
        }

    gate("return_w1", lambda a, b: wasserstein1(a.episode_returns, b.episode_returns))
    gate("length_w1", lambda a, b: wasserstein1(a.episode_lengths, b.episode_lengths))
    if real.spec.continuous:
        gate("action_w1", action_w1)
    else:
        gate(
            "action_tv",
            lambda a, b: 0.5 * float(np.abs(action_marginals(a) - action_marginals(b)).sum()),
        )
    if focus_fire_share(real) is not None:
        gate(
            "focus_fire",
            lambda a, b: abs((focus_fire_share(a) or 0.0) - (focus_fire_share(b) or 0.0)),
        )
    dyn = dynamics_errors(
        real, {"synthetic": synthetic, "shuffled": base}, steps=dynamics_steps, seed=seed
    )
    floor = dyn["real_held_out"]
    syn, shuffled = max(dyn["synthetic"] - floor, 0.0), max(dyn["shuffled"] - floor, 0.0)
    gates["dynamics"] = {
        "synthetic": syn,
        "shuffled": shuffled,
        "real_held_out": floor,
        "pass": bool(np.isfinite(syn) and syn <= GATE_RATIO * shuffled),
    }
    res: dict[str, Any] = {
        "gates": gates,
        "passes": all(g["pass"] for g in gates.values()),
        "ratio": GATE_RATIO,
        "novelty": novelty(real, synthetic, seed=seed),
    }
    types = action_types(real)
    if types is not None:
        res["action_types"] = {
            "real": types,
            "synthetic": action_types(synthetic),
            "shuffled": action_types(base),
        }
    sampled = [pr.get("sample_report") for pr in synthetic.provenance if pr.get("sample_report")]
    if sampled and sampled[-1].get("legal_before_masking") is not None:
        res["legal_before_masking"] = sampled[-1]["legal_before_masking"]
    return res


GATE_NAMES = {
    "return_w1": "return W1",
    "length_w1": "length W1",
    "action_tv": "action TV",
    "action_w1": "action W1",
    "focus_fire": "focus fire",
    "dynamics": "dynamics",
}


def gates_rows(gates: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(gate, synthetic, shuffled baseline, real noise or held-out floor, pass) as text."""
    rows = []
    for name, g in gates["gates"].items():
        ref = g.get("real_noise", g.get("real_held_out"))
        rows.append(
            (
                GATE_NAMES.get(name, name),
                f"{g['synthetic']:.4g}",
                f"{g['shuffled']:.4g}",
                "–" if ref is None else f"{ref:.4g}",
                "pass" if g["pass"] else "FAIL",
            )
        )
    return rows


def _feature_errors(real: np.ndarray, syn: np.ndarray) -> dict[str, float]:
    rm, rs = real.mean(0), real.std(0)
    sm, ss = syn.mean(0), syn.std(0)
    scale = np.where(rs > 1e-6, rs, 1.0)
    return {
        "mean_abs_err": float(np.abs(rm - sm).mean()),
        "std_abs_err": float(np.abs(rs - ss).mean()),
        "mean_err_in_real_std": float((np.abs(rm - sm) / scale).mean()),
    }


def _rows(ds: Dataset, field: str) -> np.ndarray:
    x = ds.columns[field]
    if field == "obs":
        alive = ds.columns["alive"] if ds.spec.has_alive else np.ones(x.shape[:2], bool)
        return x[alive]
    return x


def fidelity_report(
    real: Dataset,
    synthetic: Dataset,
    *,
    out_dir: str | Path | None = None,
    tsne_points: int = 2000,
    seed: int = 0,
    gates: bool = True,
) -> dict[str, Any]:
    """Compare ``synthetic`` episodes with ``real`` ones (see the module docstring);
    ``gates`` adds :func:`fidelity_gates` (fits a one-step dynamics model)."""
    if real.spec.arrays() != synthetic.spec.arrays() or real.spec.obs_dim != synthetic.spec.obs_dim:
        raise ConfigError(
            "real and synthetic datasets have different specs; compare like with like"
        )
    rep: dict[str, Any] = {
        "real_episodes": len(real),
        "synthetic_episodes": len(synthetic),
        "return_mean": {
            "real": float(real.episode_returns.mean()),
            "synthetic": float(synthetic.episode_returns.mean()),
        },
        "length_mean": {
            "real": float(real.episode_lengths.mean()),
            "synthetic": float(synthetic.episode_lengths.mean()),
        },
        "return_wasserstein": wasserstein1(real.episode_returns, synthetic.episode_returns),
        "length_wasserstein": wasserstein1(real.episode_lengths, synthetic.episode_lengths),
        "obs": _feature_errors(_rows(real, "obs"), _rows(synthetic, "obs")),
    }
    if len(synthetic):
        # the same distances for the shuffled-feature baseline of as many episodes: the
        # reference a generator should beat (see shuffled_baseline)
        base = shuffled_baseline(real, len(synthetic), seed=seed)
        rep["shuffled_baseline"] = {
            "return_wasserstein": wasserstein1(real.episode_returns, base.episode_returns),
            "length_wasserstein": wasserstein1(real.episode_lengths, base.episode_lengths),
        }
    if real.spec.has_state:
        rep["state"] = _feature_errors(real.columns["state"], synthetic.columns["state"])
    ff_r, ff_s = focus_fire_share(real), focus_fire_share(synthetic)
    if ff_r is not None:
        rep["focus_fire_share"] = {"real": ff_r, "synthetic": ff_s}
    sampled = [p.get("sample_report") for p in synthetic.provenance if p.get("sample_report")]
    if sampled:
        rep["legal_before_masking"] = sampled[-1].get("legal_before_masking")
    if gates and len(synthetic) and len(real) >= 4:
        rep["gates"] = fidelity_gates(real, synthetic, seed=seed, baseline=base)
    if out_dir is not None:  # a report folder of ours (or a new one), never inside an input
        out = check_output(
            out_dir,
            "report",
            overwrite=True,
            inputs=[*real.sources, *synthetic.sources],
            what="report folder",
        )
        out.mkdir(parents=True, exist_ok=True)
        if kind_of(out) != "report":
            write_marker(out, "report")
        rep["plots"] = {
            "tsne": str(tsne_plot(real, synthetic, out / "tsne_obs.png", tsne_points, seed)),
            "returns": str(return_histogram(real, synthetic, out / "returns.png")),
        }
    return rep


def split_augmented(ds: Dataset) -> tuple[Dataset, Dataset]:
    """(real, synthetic) parts of an augmented store."""
    return ds.where("real"), ds.where("synthetic")


def tsne_plot(
    real: Dataset, synthetic: Dataset, path: Path, points: int = 2000, seed: int = 0
) -> Path:
    """t-SNE of per-agent observations, real vs synthetic (scikit-learn; PCA if it is absent)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    r, s = _rows(real, "obs"), _rows(synthetic, "obs")
    r = r[rng.choice(len(r), size=min(points, len(r)), replace=False)]
    s = s[rng.choice(len(s), size=min(points, len(s)), replace=False)]
    x = np.concatenate([r, s]).astype(np.float64)
    method = "t-SNE"
    try:
        from sklearn.manifold import TSNE

        emb = TSNE(
            n_components=2, init="pca", random_state=seed, perplexity=min(30, max(5, len(x) // 10))
        ).fit_transform(x)
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        method = "PCA"
        xc = x - x.mean(0)
        emb = xc @ np.linalg.svd(xc, full_matrices=False)[2][:2].T
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(emb[: len(r), 0], emb[: len(r), 1], s=4, alpha=0.5, label=f"real ({len(r)})")
    ax.scatter(emb[len(r) :, 0], emb[len(r) :, 1], s=4, alpha=0.5, label=f"synthetic ({len(s)})")
    ax.set_title(f"{method} of observations — {real.spec.env_id}")
    ax.legend(markerscale=4)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path


def return_histogram(real: Dataset, synthetic: Dataset, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    lo = min(real.episode_returns.min(), synthetic.episode_returns.min())
    hi = max(real.episode_returns.max(), synthetic.episode_returns.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 30)
    ax.hist(real.episode_returns, bins=bins, alpha=0.6, density=True, label="real")
    ax.hist(synthetic.episode_returns, bins=bins, alpha=0.6, density=True, label="synthetic")
    ax.set_xlabel("episode return")
    ax.set_ylabel("density")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return path


NOVELTY_POINTS = 8
"""Time points an episode is summarised at for :func:`novelty`."""


def _episode_summaries(ds: Dataset) -> np.ndarray:
    """Each episode as a vector: its state (observations when it has none) at
    :data:`NOVELTY_POINTS` evenly spaced steps, its return and its length."""
    feats = ds.columns["state"] if ds.spec.state_dim else ds.columns["obs"]
    feats = feats.reshape(feats.shape[0], -1).astype(np.float32)
    starts, lengths = ds.episode_offsets[:-1], ds.episode_lengths
    at = np.linspace(0.0, 1.0, NOVELTY_POINTS)[None, :] * (lengths - 1)[:, None]
    rows = starts[:, None] + np.round(at).astype(np.int64)  # (E, points)
    out = feats[rows].reshape(len(ds), -1)
    extra = np.stack([ds.episode_returns, lengths.astype(np.float64)], 1).astype(np.float32)
    return np.concatenate([out, extra], 1)


def _nearest(a: np.ndarray, b: np.ndarray, skip_self: bool = False) -> np.ndarray:
    """Euclidean distance from every row of ``a`` to its nearest row of ``b`` (blocked)."""
    bb = (b**2).sum(1)
    out = np.empty(len(a), np.float64)
    for lo in range(0, len(a), 512):
        blk = a[lo : lo + 512]
        d2 = (blk**2).sum(1)[:, None] + bb[None, :] - 2.0 * blk @ b.T
        if skip_self:
            d2[np.arange(len(blk)), np.arange(lo, lo + len(blk))] = np.inf
        out[lo : lo + 512] = np.sqrt(np.maximum(d2.min(1), 0.0))
    return out


def novelty(real: Dataset, synthetic: Dataset, max_episodes: int = 4000, seed: int = 0):
    """How new synthetic episodes are: the median distance from a synthetic episode to its
    nearest real one over the median distance from a real episode to its nearest *other* real
    one (``nn_ratio``: about 1 when synthetic episodes are as far from the data as fresh real
    ones would be, 0 for copies), and the share of synthetic episodes that are (near) copies of
    a real one (``copies``: nearer than 1% of that real median). Episodes are compared as
    z-scored summaries (state at a few evenly spaced steps, return, length); at most
    ``max_episodes`` of each set, drawn by ``seed``."""
    if len(real) < 2 or len(synthetic) == 0:
        raise ConfigError("novelty needs at least 2 real and 1 synthetic episodes")
    rng = np.random.default_rng(seed)

    def some(ds: Dataset) -> Dataset:
        if len(ds) <= max_episodes:
            return ds
        return ds.select(np.sort(rng.choice(len(ds), max_episodes, replace=False)))

    r, s = _episode_summaries(some(real)), _episode_summaries(some(synthetic))
    mu, sd = r.mean(0), r.std(0)
    sd[sd < 1e-8] = 1.0
    r, s = (r - mu) / sd, (s - mu) / sd
    real_nn = float(np.median(_nearest(r, r, skip_self=True)))
    syn_nn = _nearest(s, r)
    scale = max(real_nn, 1e-12)
    return {
        "nn_ratio": float(np.median(syn_nn) / scale),
        "copies": float((syn_nn < 0.01 * scale).mean()),
        "real_nn": real_nn,
    }


def shuffled_baseline(ds: Dataset, n_episodes: int, seed: int = 0) -> Dataset:
    """Episodes whose every feature's series (over all steps) comes from a different random
    real episode.

    Marginals per feature and step stay real, and so does each series' own course over time (a
    reward series is a real one, cut at another real episode's length: returns stay close to the
    real ones); the joint structure (which reward goes with which actions, when an episode ends)
    is destroyed. A model that learnt anything should beat it.
    """

    rng = np.random.default_rng(seed)
    layout = F.Layout.from_spec(ds.spec)
    x, _ = F.encode(ds, layout, int(ds.episode_lengths.max()))
    idx = rng.integers(0, x.shape[0], size=(n_episodes, x.shape[1]))
    shuffled = x[idx, np.arange(x.shape[1])[None, :], :]  # (n, F, T)
    cols, lengths, _ = F.decode(shuffled, layout, ds.spec)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Dataset(ds.spec, cols, offsets, np.ones(n_episodes, np.uint8))
