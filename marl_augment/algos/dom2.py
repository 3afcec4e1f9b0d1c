"""DOM2 for continuous actions (Li, Pan & Huang, "Beyond Conservatism: Diffusion Policies in
Offline Multi-agent Reinforcement Learning", arXiv:2307.01472), in torch.

Each agent acts with a **diffusion policy**: a noise network ε_θ(a^τ, o, τ) (a residual MLP, as
SfBC's / DOM2's "multi-layer residual network") denoises Gaussian noise into an action in
N steps of the first-order DPM-solver (DDIM), conditioned on the agent's own observation (and,
here, a one-hot agent id: one network for all agents). Critics are decentralised too: twin
Q_j(o, a) per agent with a CQL penalty on uniform actions (the paper's Eq. 1):

    critic:  Σ_k (Q_k(o, a) − y)² + ζ · (log Σ_{ã ~ U} exp Q_k(o, ã) − Q_k(o, a)),
             y = r + γ (1 − term) min_k Q̄_k(o', ā'),   ā' ~ π̄(· | o')  (the target policy)
    actor:   ‖ε − ε_θ(α_τ a + σ_τ ε, o, τ)‖²  −  η / E|Q_1(o, a)| · Q_1(o, a^{τ_0}),
             a^{τ_0} ~ π_θ(· | o) sampled through the N solver steps (gradients flow through)

(Eq. 3 and Eq. 5; the Q normalisation as TD3+BC's). Targets by Polyak averaging each update.
DOM2's data augmentation (replicating high-return trajectories, Algorithm 1) is the
``return-replicate`` augmenter: ``augment --method return-replicate`` before training.

The noise schedule is the VP SDE of DPM-solver (linear β from 0.1 to 20 over τ ∈ [10⁻³, 1]);
the N solver steps split τ uniformly in log-SNR (DPM-solver's spacing for low-dimensional
data) and training draws τ from the same N points (Eq. 3's U({τ_i})). Hyper-parameters the
paper's main text does not give (its appendix was not available to us) are ours and named in
``Dom2Config``: N = 5 steps, η = 1, ζ = 1, 10 uniform actions per CQL term, widths 256,
Adam 3·10⁻⁴, batches of 256 transitions (windows of 2 steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from ..errors import ConfigError
from .common import OfflineAlgorithm, TrainedPolicy, transition_rows
from .td3_bc import ActorCriticConfig, Td3Bc, check_actor_critic

BETA_MIN, BETA_MAX, TAU_MIN = 0.1, 20.0, 1e-3


@dataclass
class Dom2Config(ActorCriticConfig):
    """DOM2's hyper-parameters (our choices where the paper's main text gives none)."""

    batch_size: int = 256
    """Windows per batch (of ``seq_len`` steps; 2 steps: one transition and its successor)."""
    seq_len: int = 2
    period: int = 1
    """Every step starts a window: every transition is trained on."""
    hidden: int = 256
    """Width of the noise network's residual layers."""
    critic_hidden: int = 256
    diffusion_steps: int = 5
    """N: first-order DPM-solver steps to sample an action (and noise levels trained)."""
    eta: float = 1.0
    """η: weight of the normalised Q term of the actor's loss."""
    cql_weight: float = 1.0
    """ζ: weight of the CQL term of the critics."""
    num_ood_actions: int = 10
    """Uniform actions per step in the CQL log-sum-exp."""
    policy_delay: int = 1
    """Actor and targets updated every this many critic updates (DOM2: every update)."""
    max_grad_norm: float = 10.0


def vp_schedule(tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(α_τ, σ_τ) of the VP SDE with a linear β (DPM-solver's default schedule)."""
    log_alpha = -(BETA_MAX - BETA_MIN) * tau**2 / 4 - BETA_MIN * tau / 2
    alpha = torch.exp(log_alpha)
    return alpha, torch.sqrt(1 - alpha**2)


def tau_of_lambda(lam: torch.Tensor) -> torch.Tensor:
    """The τ whose log-SNR log(α_τ/σ_τ) is ``lam`` (the inverse of :func:`vp_schedule`'s)."""
    log_alpha = -0.5 * torch.log1p(torch.exp(-2 * lam))
    a, b = (BETA_MAX - BETA_MIN) / 4, BETA_MIN / 2
    return (-b + torch.sqrt(b * b - 4 * a * log_alpha)) / (2 * a)


class NoiseNet(nn.Module):
    """ε_θ(a^τ, x, τ): a residual MLP over the noised action, the agent's input (observation and
    id) and a sinusoidal embedding of τ."""

    def __init__(
        self, in_dim: int, n_actions: int, hidden: int, blocks: int = 2, t_dim: int = 16
    ) -> None:
        super().__init__()
        self.t_dim = t_dim
        self.time = nn.Sequential(
            nn.Linear(t_dim, 2 * t_dim), nn.Mish(), nn.Linear(2 * t_dim, t_dim)
        )
        self.inp = nn.Linear(n_actions + in_dim + t_dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Mish(), nn.Linear(hidden, hidden), nn.Mish(), nn.Linear(hidden, hidden)
            )
            for _ in range(blocks)
        )
        self.out = nn.Sequential(nn.Mish(), nn.Linear(hidden, n_actions))

    @staticmethod
    def size(in_dim: int, n_actions: int, hidden: int, blocks: int = 2, t_dim: int = 16) -> int:
        return (
            (t_dim + 1) * 2 * t_dim
            + (2 * t_dim + 1) * t_dim
            + (n_actions + in_dim + t_dim + 1) * hidden
            + blocks * 2 * (hidden + 1) * hidden
            + (hidden + 1) * n_actions
        )

    def forward(self, a: torch.Tensor, x: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        half = self.t_dim // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=a.device) / half)
        ang = tau[..., None] * 1000.0 * freqs
        emb = self.time(torch.cat([ang.sin(), ang.cos()], -1).expand(*a.shape[:-1], -1))
        h = self.inp(torch.cat([a, x, emb], -1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class ObsTwinCritic(nn.Module):
    """Two critics Q_k(x, a) over rows of the agent's input x (observation and id) and its
    normalised action: (R, X), (R, A) → (2, R)."""

    def __init__(self, in_dim: int, n_actions: int, hidden: int, heads: int = 2) -> None:
        super().__init__()

        def layer(fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
            bound = 1.0 / fan_in**0.5
            return (
                nn.Parameter(torch.empty(heads, fan_in, fan_out).uniform_(-bound, bound)),
                nn.Parameter(torch.empty(heads, 1, fan_out).uniform_(-bound, bound)),
            )

        self.w1, self.b1 = layer(in_dim + n_actions, hidden)
        self.w2, self.b2 = layer(hidden, hidden)
        self.w3, self.b3 = layer(hidden, 1)

    @staticmethod
    def size(in_dim: int, n_actions: int, hidden: int, heads: int = 2) -> int:
        return heads * ((in_dim + n_actions + 1) * hidden + (hidden + 1) * hidden + hidden + 1)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        heads = self.w1.shape[0]
        z = torch.cat([x, a], -1).reshape(1, -1, x.shape[-1] + a.shape[-1]).expand(heads, -1, -1)
        h = torch.relu(torch.baddbmm(self.b1, z, self.w1))
        h = torch.relu(torch.baddbmm(self.b2, h, self.w2))
        return torch.baddbmm(self.b3, h, self.w3)[..., 0].reshape(heads, *x.shape[:-1])


class Dom2(Td3Bc):
    name = "dom2"
    Config = Dom2Config

    def check_config(self) -> None:
        OfflineAlgorithm.check_config(self)
        check_actor_critic(self.config)
        c = self.config
        if c.diffusion_steps < 1 or c.num_ood_actions < 1 or c.policy_delay < 1:
            raise ConfigError(
                f"need diffusion_steps, num_ood_actions and policy_delay >= 1, got "
                f"{c.diffusion_steps}, {c.num_ood_actions} and {c.policy_delay}"
            )
        if c.eta < 0 or c.cql_weight < 0:
            raise ConfigError(f"need eta >= 0 and cql_weight >= 0, got {c.eta} and {c.cql_weight}")
        if c.seq_len < 2:
            raise ConfigError(
                f"DOM2 learns from transitions: seq_len must be >= 2, got {c.seq_len}"
            )

    def num_parameters(self) -> int:
        c = self.config
        return 2 * NoiseNet.size(self.in_dim, self.n_actions, c.hidden) + 2 * ObsTwinCritic.size(
            self.in_dim, self.n_actions, c.critic_hidden
        )

    def make_actor(self) -> nn.Module:
        return NoiseNet(self.in_dim, self.n_actions, self.config.hidden)

    def make_critics(self) -> nn.Module:
        return ObsTwinCritic(self.in_dim, self.n_actions, self.config.critic_hidden)

    # -- diffusion ------------------------------------------------------------------------------
    def taus(self, device: torch.device) -> torch.Tensor:
        """τ_0 < … < τ_N: the solver's time points from τ_0 = 10⁻³ to τ_N = 1, uniform in
        log-SNR λ = log(α/σ) (DPM-solver's spacing for low-dimensional data)."""
        ends = torch.tensor([TAU_MIN, 1.0], dtype=torch.float64)
        alpha, sigma = vp_schedule(ends)
        lam = torch.linspace(
            *(torch.log(alpha / sigma)).tolist(),
            self.config.diffusion_steps + 1,
            dtype=torch.float64,
        )
        return tau_of_lambda(lam).to(device=device, dtype=torch.float32)

    def sample(
        self,
        net: nn.Module,
        x: torch.Tensor,
        dims: torch.Tensor,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Actions in [-1, 1] for rows x (…, X): N first-order DPM-solver (DDIM) steps from
        Gaussian noise; padded dimensions 0. Differentiable in the network's parameters."""
        taus = self.taus(x.device)
        alpha, sigma = vp_schedule(taus)
        a = torch.randn(*x.shape[:-1], self.n_actions, generator=gen, device=x.device)
        for i in range(len(taus) - 1, 0, -1):
            eps = net(a, x, taus[i].expand(x.shape[:-1]))
            a = alpha[i - 1] * (a - sigma[i] * eps) / alpha[i] + sigma[i - 1] * eps
        return a.clamp(-1, 1) * dims

    def _agent_rows(self, obs: torch.Tensor) -> torch.Tensor:
        """(…, N, O) observations → (…, N, O + N) with a one-hot agent id appended."""
        n = obs.shape[-2]
        ids = torch.eye(n, device=obs.device, dtype=obs.dtype).expand(*obs.shape[:-1], n)
        return torch.cat([obs, ids], -1)

    # -- learning -------------------------------------------------------------------------------
    def loss(self, batch, gen):
        c = self.config
        dev = batch["obs"].device
        mask, term = batch["mask"], batch["terminated"]
        dims = self.dims.to(dev)  # (N, A)
        x_all = self._agent_rows(batch["obs"])  # (B, T, N, X)
        # every loss is computed on the batch's transitions only
        rows, nxt_rows, boot = transition_rows(mask, term)  # (B, T), (B, T), (R,)
        x = x_all[rows]  # (R, N, X)
        data_u = self.normalise(batch["actions"])[rows]  # (R, N, A)
        with torch.no_grad():
            q_next = torch.zeros(x.shape[:-1], device=dev)  # (R, N)
            if nxt_rows.any():
                x_next = x_all[nxt_rows]
                a_next = self.sample(self.target_actor, x_next, dims, gen)
                q_next[boot] = self.target_critics(x_next, a_next).min(0).values
            y = batch["rewards"][rows][:, None] + c.gamma * q_next * boot[:, None]
            ood = (
                torch.rand(c.num_ood_actions, *data_u.shape, generator=gen, device=dev) * 2 - 1
            ) * dims
        qs = self.critics(x, data_u)  # (2, R, N)
        q_ood = self.critics(x.expand(c.num_ood_actions, *x.shape), ood)  # (2, K, R, N)
        cql = (torch.logsumexp(q_ood, dim=1) - qs).mean()
        td = ((qs - y) ** 2).mean() * 2
        critic = td + c.cql_weight * cql * 2
        info = {
            "critic_loss": float(critic.detach()),
            "td_loss": float(td.detach()),
            "cql_loss": float(cql.detach()),
            "q_data": float(qs[0].detach().mean()),
        }
        loss = critic
        if self.updates % c.policy_delay == 0:
            taus = self.taus(dev)
            k = torch.randint(1, len(taus), x.shape[:-1], generator=gen, device=dev)
            alpha, sigma = vp_schedule(taus[k])
            noise = torch.randn(data_u.shape, generator=gen, device=dev) * dims
            noised = alpha[..., None] * data_u + sigma[..., None] * noise
            eps = self.actor(noised, x, taus[k]) * dims
            bc = ((eps - noise) ** 2).sum(-1).mean()
            pi = self.sample(self.actor, x, dims, gen)
            frozen = {k2: v.detach() for k2, v in self.critics.named_parameters()}
            q_pi = functional_call(self.critics, frozen, (x, pi))[0]
            scale = qs[0].detach().abs().mean().clamp(min=1e-6)
            actor = bc - c.eta * q_pi.mean() / scale
            loss = loss + actor
            info.update(
                actor_loss=float(actor.detach()),
                bc_loss=float(bc.detach()),
                q_policy=float(q_pi.detach().mean()),
            )
        info["loss"] = float(loss.detach())
        return loss, info

    def _targets_due(self) -> bool:
        return (self.updates - 1) % self.config.policy_delay == 0

    # -- acting ---------------------------------------------------------------------------------
    def policy(self) -> Dom2Policy:
        return Dom2Policy(self)


class Dom2Policy(TrainedPolicy):
    """DOM2's decentralised policy: each agent samples its action from its diffusion policy
    given its own observation (N solver steps); seeded, so an evaluation is reproducible."""

    def __init__(self, algo: Dom2, seed: int = 0) -> None:
        super().__init__(algo)
        self.gen = torch.Generator(device=algo.device)
        self.gen.manual_seed(int(seed))

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, avail: Any, first: Any) -> np.ndarray:
        a = self.algo
        obs = np.asarray(obs, dtype=np.float32)
        if obs.ndim != 3 or obs.shape[1:] != (a.n_agents, a.spec.obs_dim):
            raise ConfigError(
                f"this dom2 policy was trained on {a.n_agents} agents × {a.spec.obs_dim} obs "
                f"({a.spec.env_id}); the env gives obs {tuple(obs.shape[1:])}: evaluate it on "
                "the env its dataset came from"
            )
        x = a._agent_rows(torch.from_numpy(obs).to(a.device))
        u = a.sample(a.actor, x, a.dims.to(a.device), self.gen)
        low, span = a.low.to(a.device), a.span.to(a.device)
        return (low + (u + 1) / 2 * span).cpu().numpy()
