"""What augmentation did: real vs synthetic episodes, side by side.

- return and length distributions, compared by the 1-Wasserstein distance, next to the same
  distances for the shuffled-feature baseline of as many episodes;
- per-feature mean / std error of observations and state;
- the synthetic episodes' action legality before masking (recorded when they were sampled);
- for SMAC/SMAX action layouts, the share of steps where every living agent attacks and they
  all attack the same enemy (focus fire, EAQ paper Fig. 1b);
- a t-SNE map of observations, real vs synthetic, as PNG (EAQ paper Fig. 3).

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


def _feature_errors(real: np.ndarray, syn: np.ndarray) -> dict[str, float]:
    rm, rs = real.mean(0), real.std(0)
    sm, ss = syn.mean(0), syn.std(0)
    scale = np.where(rs > 1e-6, rs, 1.0)
    return {"mean_abs_err": float(np.abs(rm - sm).mean()), "std_abs_err": float(np.abs(rs - ss).mean()),
            "mean_err_in_real_std": float((np.abs(rm - sm) / scale).mean())}


def _rows(ds: Dataset, field: str) -> np.ndarray:
    x = ds.columns[field]
    if field == "obs":
        alive = ds.columns["alive"] if ds.spec.has_alive else np.ones(x.shape[:2], bool)
        return x[alive]
    return x


def fidelity_report(real: Dataset, synthetic: Dataset, *, out_dir: str | Path | None = None,
                    tsne_points: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Compare ``synthetic`` episodes with ``real`` ones (see the module docstring)."""
    if real.spec.arrays() != synthetic.spec.arrays() or real.spec.obs_dim != synthetic.spec.obs_dim:
        raise ConfigError("real and synthetic datasets have different specs; compare like with like")
    rep: dict[str, Any] = {
        "real_episodes": len(real), "synthetic_episodes": len(synthetic),
        "return_mean": {"real": float(real.episode_returns.mean()), "synthetic": float(synthetic.episode_returns.mean())},
        "length_mean": {"real": float(real.episode_lengths.mean()), "synthetic": float(synthetic.episode_lengths.mean())},
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
            "length_wasserstein": wasserstein1(real.episode_lengths, base.episode_lengths)}
    if real.spec.has_state:
        rep["state"] = _feature_errors(real.columns["state"], synthetic.columns["state"])
    ff_r, ff_s = focus_fire_share(real), focus_fire_share(synthetic)
    if ff_r is not None:
        rep["focus_fire_share"] = {"real": ff_r, "synthetic": ff_s}
    sampled = [p.get("sample_report") for p in synthetic.provenance if p.get("sample_report")]
    if sampled:
        rep["legal_before_masking"] = sampled[-1].get("legal_before_masking")
    if out_dir is not None:  # a report folder of ours (or a new one), never inside an input
        out = check_output(out_dir, "report", overwrite=True,
                           inputs=[*real.sources, *synthetic.sources], what="report folder")
        out.mkdir(parents=True, exist_ok=True)
        if kind_of(out) != "report":
            write_marker(out, "report")
        rep["plots"] = {"tsne": str(tsne_plot(real, synthetic, out / "tsne_obs.png", tsne_points, seed)),
                        "returns": str(return_histogram(real, synthetic, out / "returns.png"))}
    return rep


def split_augmented(ds: Dataset) -> tuple[Dataset, Dataset]:
    """(real, synthetic) parts of an augmented store."""
    return ds.where("real"), ds.where("synthetic")


def tsne_plot(real: Dataset, synthetic: Dataset, path: Path, points: int = 2000, seed: int = 0) -> Path:
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

        emb = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, max(5, len(x) // 10))).fit_transform(x)
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        method = "PCA"
        xc = x - x.mean(0)
        emb = xc @ np.linalg.svd(xc, full_matrices=False)[2][:2].T
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(emb[: len(r), 0], emb[: len(r), 1], s=4, alpha=0.5, label=f"real ({len(r)})")
    ax.scatter(emb[len(r):, 0], emb[len(r):, 1], s=4, alpha=0.5, label=f"synthetic ({len(s)})")
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


def shuffled_baseline(ds: Dataset, n_episodes: int, seed: int = 0) -> Dataset:
    """Episodes whose every feature's series (over all steps) comes from a different random
    real episode.

    Marginals per feature and step stay real, and so does each series' own course over time (a
    reward series is a real one, cut at another real episode's length: returns stay close to the
    real ones); the joint structure (which reward goes with which actions, when an episode ends)
    is destroyed. A model that learnt anything should beat it.
    """
    from .eaq import features as F

    rng = np.random.default_rng(seed)
    layout = F.Layout.from_spec(ds.spec)
    x, _ = F.encode(ds, layout, int(ds.episode_lengths.max()))
    idx = rng.integers(0, x.shape[0], size=(n_episodes, x.shape[1]))
    shuffled = x[idx, np.arange(x.shape[1])[None, :], :]          # (n, F, T)
    cols, lengths, _ = F.decode(shuffled, layout, ds.spec)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Dataset(ds.spec, cols, offsets, np.ones(n_episodes, np.uint8))
