"""Episodes <-> (B, F, T) feature tensors for EAQ (paper eq. 4).

Per time step the feature vector stacks, for every agent, its observation and one-hot action;
then the global state, the legal-action masks (so Q-learning can use synthetic data), the alive
flags (when the store has them), the team reward, Q_tot = reward-to-go, and done. Continuous
features are standardised with statistics kept with the model; binary ones (one-hot actions,
masks, alive, done) are mapped to {-1, +1}. Episodes are zero-padded to a length the U-Net
accepts, with a mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...data.dataset import Dataset
from ...data.schema import Spec

CONT, BIN = 0, 1


@dataclass
class Layout:
    """Where each quantity lives in the feature axis."""

    n_agents: int
    obs_dim: int
    n_actions: int
    state_dim: int
    has_avail: bool
    has_alive: bool
    has_agent_rewards: bool = False

    @property
    def agent_width(self) -> int:
        return self.obs_dim + self.n_actions

    def slices(self) -> dict[str, slice]:
        out, at = {}, 0
        for i in range(self.n_agents):
            out[f"obs{i}"] = slice(at, at + self.obs_dim)
            out[f"act{i}"] = slice(at + self.obs_dim, at + self.agent_width)
            at += self.agent_width
        for name, width in (("state", self.state_dim),
                            ("avail", self.n_agents * self.n_actions if self.has_avail else 0),
                            ("alive", self.n_agents if self.has_alive else 0),
                            ("agent_rewards", self.n_agents if self.has_agent_rewards else 0),
                            ("reward", 1), ("q", 1), ("done", 1)):
            out[name] = slice(at, at + width)
            at += width
        out["_total"] = slice(0, at)
        return out

    @property
    def width(self) -> int:
        return self.slices()["_total"].stop

    def kinds(self) -> np.ndarray:
        k = np.zeros(self.width, np.int8)
        s = self.slices()
        for i in range(self.n_agents):
            k[s[f"act{i}"]] = BIN
        for name in ("avail", "alive", "done"):
            k[s[name]] = BIN
        return k

    def reward_like(self) -> np.ndarray:
        """Features holding rewards (team, per agent, Q_tot): never clipped when decoding."""
        r = np.zeros(self.width, bool)
        s = self.slices()
        for name in ("agent_rewards", "reward", "q"):
            r[s[name]] = True
        return r

    @classmethod
    def from_spec(cls, spec: Spec) -> Layout:
        return cls(spec.n_agents, spec.obs_dim, spec.n_actions, spec.state_dim or 0,
                   spec.has_avail_actions, spec.has_alive, spec.has_agent_rewards)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def encode(ds: Dataset, layout: Layout, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (un-normalised) features (E, F, horizon) and mask (E, horizon)."""
    p = ds.padded(max_len=horizon)
    e, t = p["mask"].shape
    s = layout.slices()
    x = np.zeros((e, layout.width, t), np.float32)
    for i in range(layout.n_agents):
        x[:, s[f"obs{i}"], :] = p["obs"][:, :, i, :].transpose(0, 2, 1)
        onehot = np.eye(layout.n_actions, dtype=np.float32)[p["actions"][:, :, i]]
        x[:, s[f"act{i}"], :] = onehot.transpose(0, 2, 1)
    if layout.state_dim:
        x[:, s["state"], :] = p["state"].transpose(0, 2, 1)
    if layout.has_avail:
        x[:, s["avail"], :] = p["avail_actions"].reshape(e, t, -1).transpose(0, 2, 1)
    if layout.has_alive:
        x[:, s["alive"], :] = p["alive"].transpose(0, 2, 1)
    if layout.has_agent_rewards:
        x[:, s["agent_rewards"], :] = p["agent_rewards"].transpose(0, 2, 1)
    r = p["rewards"].astype(np.float64) * p["mask"]
    q = np.flip(np.cumsum(np.flip(r, 1), 1), 1)                       # reward-to-go
    x[:, s["reward"], :] = r[:, None, :]
    x[:, s["q"], :] = q[:, None, :]
    x *= p["mask"][:, None, :]
    # done is 1 from the last step on (padding included): the model learns where episodes end
    # on the whole horizon, and "the first step with done > 0.5" is a stable end marker
    done = (np.arange(t)[None, :] >= (ds.episode_lengths - 1)[:, None]).astype(np.float32)
    x[:, s["done"], :] = done[:, None, :]
    return x, p["mask"]


def constant_masks(x: np.ndarray, mask: np.ndarray, layout: Layout) -> np.ndarray | None:
    """Legal-action bits that never change in the real data, per (agent, action): 1 (always
    legal), 0 (never legal) or -1 (varies). Only live agents' steps count (all valid steps when
    the store has no alive flags). In SMAC/SMAX the moves and stop are legal for every live agent
    at every step; a diffusion model reproduces such a bit only up to its noise (on a 1,000-step
    CPU fit, ~24% of synthetic move bits came out illegal), so decoding restores it."""
    if not layout.has_avail:
        return None
    s = layout.slices()
    n, a = layout.n_agents, layout.n_actions
    e, _, t = x.shape
    avail = x[:, s["avail"], :].transpose(0, 2, 1).reshape(e, t, n, a) > 0.5
    live = np.broadcast_to(mask.astype(bool)[:, :, None], (e, t, n))
    if layout.has_alive:
        live = live & (x[:, s["alive"], :].transpose(0, 2, 1) > 0.5)
    out = np.full((n, a), -1, np.int8)
    for i in range(n):
        rows = avail[:, :, i, :][live[:, :, i]]
        if rows.shape[0]:
            out[i, rows.all(0)] = 1
            out[i, ~rows.any(0)] = 0
    return out


class Normaliser:
    """Per-feature standardisation of continuous features, {-1, +1} for binary ones."""

    def __init__(self, kinds: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 low: np.ndarray | None = None, high: np.ndarray | None = None) -> None:
        self.kinds, self.mean, self.std = kinds, mean.astype(np.float32), std.astype(np.float32)
        # the range each feature took in the real data: decoded values are clipped to it
        self.low = None if low is None else low.astype(np.float32)
        self.high = None if high is None else high.astype(np.float32)
        self.reward_like = np.zeros(kinds.shape[0], bool)

    @classmethod
    def fit(cls, x: np.ndarray, mask: np.ndarray, kinds: np.ndarray) -> Normaliser:
        m = mask[:, None, :].astype(np.float64)
        n = max(1.0, m.sum())
        mean = (x * m).sum((0, 2)) / n
        var = (((x - mean[None, :, None]) ** 2) * m).sum((0, 2)) / n
        std = np.sqrt(var)
        std = np.where(std < 1e-6, 1.0, std)
        mean = np.where(kinds == BIN, 0.5, mean)
        std = np.where(kinds == BIN, 0.5, std)
        valid = mask[:, None, :].astype(bool)
        big = np.float32(np.finfo(np.float32).max)
        low = np.where(valid, x, big).min((0, 2))
        high = np.where(valid, x, -big).max((0, 2))
        return cls(kinds, mean, std, low, high)

    def forward(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Normalised features; padded steps are 0 except the done channel (kept at +1)."""
        y = (x - self.mean[None, :, None]) / self.std[None, :, None]
        keep = np.broadcast_to(mask[:, None, :], y.shape).copy()
        keep[:, -1, :] = True  # done is the last feature
        return np.where(keep, y, 0.0).astype(np.float32)

    def inverse(self, y: np.ndarray) -> np.ndarray:
        x = y * self.std[None, :, None] + self.mean[None, :, None]
        if self.low is not None:
            # clip observations and state to their real range; rewards are left unclipped, since
            # clipping a mostly-zero channel at 0 turns symmetric noise into a positive bias
            cont = ((self.kinds == CONT) & ~self.reward_like)[None, :, None]
            x = np.where(cont, np.clip(x, self.low[None, :, None], self.high[None, :, None]), x)
        return x.astype(np.float32)


def episode_ends(done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Episode lengths from the done channel (E, T), which is trained as a step: 0 before the
    last step, 1 from it on. The length L is the step function 1[t >= L-1] closest to the
    decoded channel in squared error (robust to a single noisy step, unlike a threshold);
    an episode whose channel stays below 0.5 at the horizon has no end there (truncated)."""
    d = np.clip(done.astype(np.float64), -0.5, 1.5)
    # cost(L) = sum_{t < L-1} d_t^2 + sum_{t >= L-1} (1 - d_t)^2, for L = 1..T
    before = np.concatenate([np.zeros((d.shape[0], 1)), np.cumsum(d ** 2, 1)[:, :-1]], 1)
    after = np.cumsum(((1 - d) ** 2)[:, ::-1], 1)[:, ::-1]
    lengths = (before + after).argmin(1) + 1
    has_end = d[np.arange(d.shape[0]), lengths - 1] > 0.5
    return lengths.astype(np.int64), has_end


def decode(x: np.ndarray, layout: Layout, spec: Spec, fixed_avail: np.ndarray | None = None,
           ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """De-normalised features (E, F, T) -> store columns, episode lengths and a report.

    An episode ends where the done channel's step best fits (see :func:`episode_ends`); it is
    terminated there, or truncated when its done is still below 0.5 at the horizon. Legal masks
    are the avail channels > 0.5, except that bits ``fixed_avail`` (from :func:`constant_masks`)
    marks as constant in the real data take that value for live agents. Actions are each agent's
    one-hot argmax restricted to the decoded legal mask, which always keeps at least one action
    (the unrestricted argmax when the mask is empty).
    """
    s = layout.slices()
    e, _, t = x.shape
    lengths, has_end = episode_ends(x[:, s["done"], :][:, 0, :])
    valid = np.arange(t)[None, :] < lengths[:, None]
    n, a = layout.n_agents, layout.n_actions
    logits = np.stack([x[:, s[f"act{i}"], :] for i in range(n)], 1).transpose(0, 3, 1, 2)  # (E,T,N,A)
    if layout.has_avail:
        avail = x[:, s["avail"], :].transpose(0, 2, 1).reshape(e, t, n, a) > 0.5
    else:
        avail = np.ones((e, t, n, a), bool)
    alive = None
    if layout.has_alive:
        alive = x[:, s["alive"], :].transpose(0, 2, 1) > 0.5                              # (E,T,N)
    if fixed_avail is not None:
        live = np.ones((e, t, n), bool) if alive is None else alive
        fixed = np.where(fixed_avail[None, None] == 1, True, np.where(fixed_avail[None, None] == 0, False, avail))
        avail = np.where(live[..., None], fixed, avail)
    if spec.agent_n_actions is not None:
        allowed = np.arange(a)[None, :] < np.asarray(spec.agent_n_actions)[:, None]   # (N, A)
        avail &= allowed[None, None]
        logits = np.where(allowed[None, None], logits, -np.inf)
    free = logits.argmax(-1)
    legal_before = np.take_along_axis(avail, free[..., None], -1)[..., 0]
    empty = ~avail.any(-1)
    avail[empty] = np.eye(a, dtype=bool)[free[empty]]
    actions = np.where(avail, logits, -np.inf).argmax(-1).astype(np.int32)
    cols: dict[str, np.ndarray] = {}
    obs = np.stack([x[:, s[f"obs{i}"], :] for i in range(n)], 1).transpose(0, 3, 1, 2)    # (E,T,N,O)
    if spec.obs_dims is not None:
        keep = np.arange(layout.obs_dim)[None, :] < np.asarray(spec.obs_dims)[:, None]
        obs = obs * keep[None, None]
    cols["obs"] = obs
    cols["actions"] = actions
    if layout.has_avail:
        cols["avail_actions"] = avail
    if layout.state_dim:
        cols["state"] = x[:, s["state"], :].transpose(0, 2, 1)
    if alive is not None:
        cols["alive"] = alive
    if layout.has_agent_rewards:
        cols["agent_rewards"] = x[:, s["agent_rewards"], :].transpose(0, 2, 1)
    cols["rewards"] = x[:, s["reward"], :][:, 0, :]
    term = np.zeros((e, t), bool)
    trunc = np.zeros((e, t), bool)
    last = lengths - 1
    term[np.arange(e), last] = has_end
    trunc[np.arange(e), last] = ~has_end
    cols["terminated"], cols["truncated"] = term, trunc
    flat = {k: v[valid] for k, v in cols.items()}
    for k in ("obs", "state", "rewards", "agent_rewards"):
        if k in flat:
            flat[k] = np.nan_to_num(flat[k].astype(np.float32), nan=0.0, posinf=1e6, neginf=-1e6)
    live = valid[..., None] if alive is None else (valid[..., None] & alive)
    report = {
        "legal_before_masking": float(legal_before[np.broadcast_to(live, legal_before.shape)].mean())
        if live.any() else 1.0,
        "ended_by_done": float(has_end.mean()),
        "q_mean": float((x[:, s["q"], :][:, 0, :] * valid).sum() / max(1, valid.sum())),
    }
    return flat, lengths, report
