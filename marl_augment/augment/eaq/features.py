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
    continuous: bool = False
    """Action channels hold action vectors (standardised like other real-valued features)
    instead of one-hot actions."""

    @property
    def agent_width(self) -> int:
        return self.obs_dim + self.n_actions

    def slices(self) -> dict[str, slice]:
        out, at = {}, 0
        for i in range(self.n_agents):
            out[f"obs{i}"] = slice(at, at + self.obs_dim)
            out[f"act{i}"] = slice(at + self.obs_dim, at + self.agent_width)
            at += self.agent_width
        for name, width in (
            ("state", self.state_dim),
            ("avail", self.n_agents * self.n_actions if self.has_avail else 0),
            ("alive", self.n_agents if self.has_alive else 0),
            ("agent_rewards", self.n_agents if self.has_agent_rewards else 0),
            ("reward", 1),
            ("q", 1),
            ("done", 1),
        ):
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
            k[s[f"act{i}"]] = CONT if self.continuous else BIN
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
        return cls(
            spec.n_agents,
            spec.obs_dim,
            spec.n_actions,
            spec.state_dim or 0,
            spec.has_avail_actions,
            spec.has_alive,
            spec.has_agent_rewards,
            spec.continuous,
        )

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        if not self.continuous:  # layouts saved before continuous actions existed
            d.pop("continuous")
        return d


def encode(ds: Dataset, layout: Layout, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw (un-normalised) features (E, F, horizon) and mask (E, horizon)."""
    p = ds.padded(max_len=horizon)
    e, t = p["mask"].shape
    s = layout.slices()
    x = np.zeros((e, layout.width, t), np.float32)
    for i in range(layout.n_agents):
        x[:, s[f"obs{i}"], :] = p["obs"][:, :, i, :].transpose(0, 2, 1)
        if layout.continuous:
            x[:, s[f"act{i}"], :] = p["actions"][:, :, i, :].transpose(0, 2, 1)
        else:
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
    q = np.flip(np.cumsum(np.flip(r, 1), 1), 1)  # reward-to-go
    x[:, s["reward"], :] = r[:, None, :]
    x[:, s["q"], :] = q[:, None, :]
    x *= p["mask"][:, None, :]
    # done is 1 from the last step on (padding included): the model learns where episodes end
    # on the whole horizon, and "the first step with done > 0.5" is a stable end marker
    done = (np.arange(t)[None, :] >= (ds.episode_lengths - 1)[:, None]).astype(np.float32)
    x[:, s["done"], :] = done[:, None, :]
    return x, p["mask"]


def _constant_bits(rows: np.ndarray) -> np.ndarray:
    """Per column of boolean ``rows`` (R, K): 1 if always true, 0 if never, -1 if it varies
    (or there are no rows)."""
    out = np.full(rows.shape[1], -1, np.int8)
    if rows.shape[0]:
        out[rows.all(0)] = 1
        out[~rows.any(0)] = 0
    return out


@dataclass
class Structure:
    """What the real data holds fixed, learnt at fit time and imposed when decoding.

    A diffusion model reproduces a constant or a step only up to its noise; on a 1,000-step CPU
    fit of smax:3m, 24% of the synthetic steps had a move marked illegal (moves and stop are legal
    for every live agent in every real step) and ~40% had an alive flag between 0.2 and 0.8,
    mixing dead agents' behaviour (always `stop`) into live ones. Decoding therefore takes:

    - ``fixed_avail`` (N, A): legal-action bits constant over live agents' real steps — 1, 0, or
      -1 when the bit varies (thresholded at 0.5 as before);
    - ``alive_monotone``: agents never come back in any real episode, so each agent's alive
      channel is decoded as the step 1[t < death] closest in squared error (like ``done``);
    - ``dead_action`` (N,), ``dead_avail`` (N, A), ``dead_obs_zero`` (N,): what dead agents'
      rows hold when that is constant in the real data (SMAX: action `stop`, only `stop` legal,
      all-zero observation) — -1 / False where it varies;
    - ``trust_action``: where a live agent's one-hot argmax and its (varying) legal bit disagree,
      the action wins and the bit is set. The argmax compares A channels; a legal bit is one noisy
      channel against 0.5. Thresholded masks turned 8% attacks per enemy into 3% and `stop` into
      25% of synthetic actions; with the same model and samples, QMIX+CQL on the augmented 3m poor
      data reached 0.59 instead of 0.39 (3 seeds; docs/results.md).
    """

    fixed_avail: np.ndarray | None = None
    alive_monotone: bool = False
    dead_action: np.ndarray | None = None
    dead_avail: np.ndarray | None = None
    dead_obs_zero: np.ndarray | None = None
    trust_action: bool = True

    @classmethod
    def learn(cls, x: np.ndarray, mask: np.ndarray, layout: Layout) -> Structure:
        s = layout.slices()
        n, a = layout.n_agents, layout.n_actions
        e, _, t = x.shape
        valid = mask.astype(bool)
        live = np.broadcast_to(valid[:, :, None], (e, t, n))
        dead = np.zeros((e, t, n), bool)
        out = cls()
        if layout.has_alive:
            alive = x[:, s["alive"], :].transpose(0, 2, 1) > 0.5  # (E, T, N)
            live, dead = live & alive, live & ~alive
            # monotone: within each episode, no dead -> alive step
            back = (~alive[:, :-1] & alive[:, 1:]) & valid[:, 1:, None]
            out.alive_monotone = bool(not back.any())
        if layout.has_avail:
            avail = x[:, s["avail"], :].transpose(0, 2, 1).reshape(e, t, n, a) > 0.5
            out.fixed_avail = np.stack(
                [_constant_bits(avail[:, :, i][live[:, :, i]]) for i in range(n)]
            )
            if dead.any():
                out.dead_avail = np.stack(
                    [_constant_bits(avail[:, :, i][dead[:, :, i]]) for i in range(n)]
                )
        if dead.any() and not layout.continuous:  # a dead agent's fixed discrete action
            acts = np.stack([x[:, s[f"act{i}"], :].argmax(1) for i in range(n)], -1)  # (E, T, N)
            obs_zero = np.stack([(x[:, s[f"obs{i}"], :] == 0).all(1) for i in range(n)], -1)
            out.dead_action = np.full(n, -1, np.int64)
            out.dead_obs_zero = np.zeros(n, bool)
            for i in range(n):
                d = dead[:, :, i]
                if d.any():
                    values = np.unique(acts[:, :, i][d])
                    out.dead_action[i] = values[0] if values.size == 1 else -1
                    out.dead_obs_zero[i] = bool(obs_zero[:, :, i][d].all())
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"structure.alive_monotone": np.array(self.alive_monotone)}
        for k in ("fixed_avail", "dead_action", "dead_avail", "dead_obs_zero"):
            if getattr(self, k) is not None:
                out[f"structure.{k}"] = np.asarray(getattr(self, k))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Structure | None:
        if "structure.alive_monotone" not in arrays:
            return None  # a model saved before it existed
        return cls(
            arrays.get("structure.fixed_avail"),
            bool(arrays["structure.alive_monotone"]),
            arrays.get("structure.dead_action"),
            arrays.get("structure.dead_avail"),
            arrays.get("structure.dead_obs_zero"),
        )


def dead_row_weights(x: np.ndarray, layout: Layout, st: Structure) -> np.ndarray | None:
    """(E, F, T) loss weights: 0 on a dead agent's observation, one-hot action and legal-mask
    features wherever ``st`` says decoding restores them (constant in the real data), else 1.
    None when nothing is restored."""
    if not layout.has_alive or st.dead_action is None:
        return None
    s = layout.slices()
    e, f, t = x.shape
    a = layout.n_actions
    dead = x[:, s["alive"], :] <= 0.5  # (E, N, T)
    w = np.ones((e, f, t), np.float32)
    hit = False
    for i in range(layout.n_agents):
        d = dead[:, i, :][:, None, :]
        if st.dead_action[i] >= 0:
            w[:, s[f"act{i}"], :] = np.where(d, 0.0, 1.0)
            hit = True
        if st.dead_obs_zero is not None and st.dead_obs_zero[i]:
            w[:, s[f"obs{i}"], :] = np.where(d, 0.0, 1.0)
        if st.dead_avail is not None and (st.dead_avail[i] >= 0).all():
            lo = s["avail"].start + i * a
            w[:, lo : lo + a, :] = np.where(d, 0.0, 1.0)
    return w if hit else None


def _step_costs(channel: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Squared error of the step 1[t < D] against ``channel`` (E, T, N) over the ``valid`` steps
    (E, T, 1), for every D in 0..T: (E, T + 1, N). Values are clipped to [-0.5, 1.5] first, so a
    single wild step cannot outweigh the rest."""
    c = np.clip(channel.astype(np.float64), -0.5, 1.5)
    high = np.where(valid, (1 - c) ** 2, 0.0)  # cost of calling step t 1
    low = np.where(valid, c**2, 0.0)  # cost of calling it 0
    zero = np.zeros((c.shape[0], 1, c.shape[2]))
    return np.concatenate([zero, np.cumsum(high, 1)], 1) + np.concatenate(
        [np.cumsum(low[:, ::-1], 1)[:, ::-1], zero], 1
    )


def step_down(channel: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The step 1[t < D] (D in 0..L) closest in squared error to ``channel`` (E, T, N) on each
    episode's first L steps: (E, T, N) booleans, False from D on."""
    t = channel.shape[1]
    valid = (np.arange(t)[None, :] < lengths[:, None])[..., None]
    death = _step_costs(channel, valid).argmin(1)  # (E, N)
    return np.arange(t)[None, :, None] < death[:, None, :]


class Normaliser:
    """Per-feature standardisation of continuous features, {-1, +1} for binary ones."""

    def __init__(
        self,
        kinds: np.ndarray,
        mean: np.ndarray,
        std: np.ndarray,
        low: np.ndarray | None = None,
        high: np.ndarray | None = None,
    ) -> None:
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


class RewardQuantiles:
    """Decoded rewards mapped onto the real data's reward distribution (quantile mapping).

    A value at quantile u of the model's own reward distribution (measured on a calibration
    sample) becomes the real data's value at quantile u. The order of rewards within and across
    synthetic episodes is the model's; their marginal is the real one. Why: a reward channel that
    is mostly exact zeros with a few discrete hits (SMAC / SMAX) comes out of a CPU-budget
    diffusion model blurred by +-0.4 std, and a small per-step bias adds up over an episode (3m
    poor: returns +14% on average). Real rewards with at most ``DISCRETE`` distinct values keep
    that support exactly (a step quantile function); continuous ones interpolate between quantiles.
    """

    POINTS = 4096
    """Quantiles kept of each distribution."""
    DISCRETE = 256
    """At most this many distinct real values: rewards are mapped onto them exactly."""

    def __init__(self, real: np.ndarray, synthetic: np.ndarray) -> None:
        self.real = np.asarray(real, np.float64)
        self.synthetic = np.asarray(synthetic, np.float64)

    @classmethod
    def quantiles(cls, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, np.float64).ravel()
        m = min(cls.POINTS, max(1, v.size))
        return np.quantile(v, (np.arange(m) + 0.5) / m, method="inverted_cdf")

    @classmethod
    def fit(cls, real: np.ndarray, synthetic: np.ndarray) -> RewardQuantiles:
        return cls(cls.quantiles(real), cls.quantiles(synthetic))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        m_syn, m_real = self.synthetic.size, self.real.size
        u = np.interp(values, self.synthetic, (np.arange(m_syn) + 0.5) / m_syn)
        if np.unique(self.real).size <= self.DISCRETE:
            idx = np.clip(np.floor(u * m_real).astype(np.int64), 0, m_real - 1)
            out = self.real[idx]
        else:
            out = np.interp(u, (np.arange(m_real) + 0.5) / m_real, self.real)
        return out.astype(np.float32)


#: channels whose decoded values a RewardQuantiles map may replace
REWARD_CHANNELS = ("reward", "agent_rewards")


def reward_values(x: np.ndarray, layout: Layout, name: str, valid: np.ndarray) -> np.ndarray:
    """The values of reward channel ``name`` (all its columns pooled) on ``valid`` (E, T) steps."""
    block = x[:, layout.slices()[name], :]  # (E, C, T)
    return block.transpose(0, 2, 1)[valid].ravel()


def map_rewards(x: np.ndarray, layout: Layout, maps: dict[str, RewardQuantiles]) -> np.ndarray:
    """``x`` (E, F, T) with each reward channel that has a map replaced by its mapped values."""
    out = x.copy()
    s = layout.slices()
    for name, fn in maps.items():
        out[:, s[name], :] = fn(x[:, s[name], :])
    return out


def episode_ends(done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Episode lengths from the done channel (E, T), which is trained as a step: 0 before the
    last step, 1 from it on. The length L is the step function 1[t >= L-1] closest to the
    decoded channel in squared error (robust to a single noisy step, unlike a threshold);
    an episode whose channel stays below 0.5 at the horizon has no end there (truncated)."""
    # the step 1[t >= L-1] is 1 minus the step 1[t < L-1]: fit the latter to 1 - done, D = L-1
    d = done.astype(np.float64)[:, :, None]
    costs = _step_costs(1 - d, np.ones_like(d, bool))[:, :-1, 0]  # D = 0..T-1
    lengths = costs.argmin(1) + 1
    has_end = d[np.arange(d.shape[0]), lengths - 1, 0] > 0.5
    return lengths.astype(np.int64), has_end


def decode(
    x: np.ndarray,
    layout: Layout,
    spec: Spec,
    structure: Structure | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, Any]]:
    """De-normalised features (E, F, T) -> store columns, episode lengths and a report.

    An episode ends where the done channel's step best fits (see :func:`episode_ends`); it is
    terminated there, or truncated when its done is still below 0.5 at the horizon. Alive flags
    and legal masks are their channels > 0.5, except where ``structure`` (see :class:`Structure`)
    says the real data holds them fixed. Actions are each agent's one-hot argmax restricted to
    the decoded legal mask, which always keeps at least one action (the unrestricted argmax when
    the mask is empty).
    """
    s = layout.slices()
    e, _, t = x.shape
    lengths, has_end = episode_ends(x[:, s["done"], :][:, 0, :])
    valid = np.arange(t)[None, :] < lengths[:, None]
    if layout.continuous:
        return _decode_continuous(x, layout, spec, structure, lengths, has_end, valid)
    n, a = layout.n_agents, layout.n_actions
    logits = np.stack([x[:, s[f"act{i}"], :] for i in range(n)], 1).transpose(
        0, 3, 1, 2
    )  # (E,T,N,A)
    if layout.has_avail:
        avail = x[:, s["avail"], :].transpose(0, 2, 1).reshape(e, t, n, a) > 0.5
    else:
        avail = np.ones((e, t, n, a), bool)
    alive = None
    if layout.has_alive:
        channel = x[:, s["alive"], :].transpose(0, 2, 1)  # (E,T,N)
        alive = (
            step_down(channel, lengths)
            if structure is not None and structure.alive_monotone
            else channel > 0.5
        )
    st = structure or Structure()
    live = np.ones((e, t, n), bool) if alive is None else alive

    def impose(bits: np.ndarray, fixed: np.ndarray | None, where: np.ndarray) -> np.ndarray:
        if fixed is None:
            return bits
        f = fixed[None, None]
        return np.where(
            where[..., None], np.where(f == 1, True, np.where(f == 0, False, bits)), bits
        )

    avail = impose(avail, st.fixed_avail, live)
    avail = impose(avail, st.dead_avail, ~live)
    if spec.agent_n_actions is not None:
        allowed = np.arange(a)[None, :] < np.asarray(spec.agent_n_actions)[:, None]  # (N, A)
        avail &= allowed[None, None]
        logits = np.where(allowed[None, None], logits, -np.inf)
    free = logits.argmax(-1)
    legal_before = np.take_along_axis(avail, free[..., None], -1)[..., 0]
    if structure is not None and structure.trust_action:
        # the one-hot argmax is a comparison of A channels, a varying legal bit one noisy channel
        # against 0.5: where they disagree, the action wins and its bit is set (never a bit the
        # real data never sets for a live agent)
        never = np.zeros((e, t, n, a), bool)
        if st.fixed_avail is not None:
            never = live[..., None] & (st.fixed_avail[None, None] == 0)
        free = np.where(never, -np.inf, logits).argmax(-1)
        avail = avail | np.eye(a, dtype=bool)[free]
    empty = ~avail.any(-1)
    avail[empty] = np.eye(a, dtype=bool)[free[empty]]
    actions = np.where(avail, logits, -np.inf).argmax(-1).astype(np.int32)
    if st.dead_action is not None:
        fixed_act = st.dead_action[None, None, :]
        actions = np.where(~live & (fixed_act >= 0), fixed_act, actions).astype(np.int32)
        took = np.eye(a, dtype=bool)[actions]
        avail = np.where((~live & (fixed_act >= 0))[..., None], avail | took, avail)
    cols = _observations(x, layout, spec, st, live)
    cols["actions"] = actions
    if layout.has_avail:
        cols["avail_actions"] = avail
    flat, rest = _finish(x, layout, cols, alive, lengths, has_end, valid)
    on = np.broadcast_to(rest.pop("_live"), legal_before.shape)
    report = {
        "legal_before_masking": float(legal_before[on].mean()) if rest.pop("_any_live") else 1.0,
        **rest,
    }
    return flat, lengths, report


def _observations(
    x, layout: Layout, spec: Spec, st: Structure, live: np.ndarray
) -> dict[str, np.ndarray]:
    """Observation columns (E, T, N, O): padding of smaller agents and dead agents' zeros
    imposed."""
    s = layout.slices()
    obs = np.stack([x[:, s[f"obs{i}"], :] for i in range(layout.n_agents)], 1).transpose(0, 3, 1, 2)
    if spec.obs_dims is not None:
        keep = np.arange(layout.obs_dim)[None, :] < np.asarray(spec.obs_dims)[:, None]
        obs = obs * keep[None, None]
    if st.dead_obs_zero is not None:
        obs = np.where((~live & st.dead_obs_zero[None, None, :])[..., None], 0.0, obs)
    return {"obs": obs}


def _decode_continuous(
    x, layout: Layout, spec: Spec, structure: Structure | None, lengths, has_end, valid
):
    """Continuous actions: each agent's action channels clipped to its bounds, padding 0."""
    s = layout.slices()
    n = layout.n_agents
    raw = np.stack([x[:, s[f"act{i}"], :] for i in range(n)], 1).transpose(0, 3, 1, 2)
    low, high = spec.action_bounds()
    real = spec.action_mask()[None, None]
    inside = (raw >= low) & (raw <= high)
    alive = None
    if layout.has_alive:
        channel = x[:, s["alive"], :].transpose(0, 2, 1)
        alive = (
            step_down(channel, lengths)
            if structure is not None and structure.alive_monotone
            else channel > 0.5
        )
    live = np.ones(raw.shape[:3], bool) if alive is None else alive
    cols = _observations(x, layout, spec, structure or Structure(), live)
    cols["actions"] = np.where(real, np.clip(raw, low, high), 0.0).astype(np.float32)
    flat, rest = _finish(x, layout, cols, alive, lengths, has_end, valid)
    on = np.broadcast_to(rest.pop("_live")[..., None] & real, inside.shape)
    rest.pop("_any_live")
    report = {"in_bounds_before_clipping": float(inside[on].mean()) if on.any() else 1.0, **rest}
    return flat, lengths, report


def _finish(x, layout: Layout, cols: dict[str, np.ndarray], alive, lengths, has_end, valid):
    """The remaining columns (state, alive, rewards, episode ends), flattened to the valid
    steps, and the report's common part."""
    s = layout.slices()
    e, _, t = x.shape
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
        "_live": live,
        "_any_live": bool(live.any()),
        "ended_by_done": float(has_end.mean()),
        "q_mean": float((x[:, s["q"], :][:, 0, :] * valid).sum() / max(1, valid.sum())),
    }
    return flat, report
