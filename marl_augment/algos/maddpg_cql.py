"""MADDPG+CQL for continuous actions (OG-MARL's MADDPG+CQL system, in torch).

Decentralised recurrent actors (the agent network of the other baselines, tanh onto each
agent's bounds, as in :mod:`~marl_augment.algos.td3_bc`) and twin centralised critics
Q_j(s, a¹…aᴺ) over the global state and the joint action (MLPs 128-128, OG-MARL's
StateAndJointActionCritic), trained on the team reward with a conservative penalty:

    critic:  Σ_j  ½ (Q_j(s_t, a_t) − y_t)² + w · ( log Σ_{a ∈ OOD} exp(Q_j(s_t, a) − log μ(a))
                                                   − Q_j(s_t, a_t) ),
             y_t = r_t + γ (1 − term_t) min_j Q'_j(s_{t+1}, π'(o_{t+1}))
    actor:   − mean_i Q_1(s_t, π_i(o_t^i), a_t^{−i}) + 10⁻³ · mean π²

The out-of-distribution joint actions, K of each kind per step (CQL(H), Kumar et al. 2020, as
OG-MARL draws them): uniform on [-1, 1]^{N·A} (density μ = 2^{−N·A}), and the current policy's
joint action at s_t and at s_{t+1}, each perturbed by N(0, σ²) noise and clipped (Gaussian
density). Defaults are OG-MARL's: K = 10, w = 3, σ = 0.2, critic lr 10⁻³, actor lr 3·10⁻⁴,
τ = 0.005.

Deviations from OG-MARL's code, each for a reason: the importance weights use the density of the
*joint* action the critic sees (OG-MARL uses one agent's dimensions); the second critic's CQL
term uses its own OOD values (OG-MARL's uses the first critic's, a slip); one optimiser step per
update with two learning rates (the actor's gradient sees the critics before this update's step);
a smaller agent's padded action dimensions are held at 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from ..errors import ConfigError
from .agent_stack import run_agent_stack
from .common import OfflineAlgorithm, masked_mean
from .td3_bc import CqlCriticConfig, Td3Bc, check_actor_critic


@dataclass
class MaddpgCqlConfig(CqlCriticConfig):
    """MADDPG+CQL hyper-parameters (OG-MARL's defaults); ``lr`` is the actor's."""

    critic_lr: float = 1e-3
    """Adam learning rate of the critics."""


class TwinJointCritic(nn.Module):
    """Two critics Q_j(s, joint action) over rows: ``state`` (R, S), ``joint`` (R, N·A) →
    (2, R). No agent id: every agent's value of a joint action is the same function."""

    def __init__(self, state_dim: int, joint_dim: int, hidden: int, heads: int = 2) -> None:
        super().__init__()
        self.register_buffer("state_scale", torch.ones(state_dim))

        def layer(fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
            bound = 1.0 / fan_in**0.5  # nn.Linear's default initialisation
            return (
                nn.Parameter(torch.empty(heads, fan_in, fan_out).uniform_(-bound, bound)),
                nn.Parameter(torch.empty(heads, 1, fan_out).uniform_(-bound, bound)),
            )

        self.w1, self.b1 = layer(state_dim + joint_dim, hidden)
        self.w2, self.b2 = layer(hidden, hidden)
        self.w3, self.b3 = layer(hidden, 1)

    @staticmethod
    def size(state_dim: int, joint_dim: int, hidden: int, heads: int = 2) -> int:
        return heads * ((state_dim + joint_dim + 1) * hidden + (hidden + 1) * hidden + hidden + 1)

    def forward(self, state: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        heads = self.w1.shape[0]
        x = torch.cat([state * self.state_scale, joint], -1).expand(heads, -1, -1)
        h = torch.relu(torch.baddbmm(self.b1, x, self.w1))
        h = torch.relu(torch.baddbmm(self.b2, h, self.w2))
        return torch.baddbmm(self.b3, h, self.w3)[..., 0]


class MaddpgCql(Td3Bc):
    name = "maddpg-cql"
    Config = MaddpgCqlConfig

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        groups = [
            {"params": list(self.actor.parameters()), "lr": self.config.lr},
            {"params": list(self.critics.parameters()), "lr": self.config.critic_lr},
        ]
        try:
            self.optimizer = torch.optim.Adam(groups, fused=True)
        except (RuntimeError, ValueError):  # a device without the fused kernel
            self.optimizer = torch.optim.Adam(groups)

    def check_config(self) -> None:
        OfflineAlgorithm.check_config(self)
        check_actor_critic(self.config)
        if self.config.critic_lr <= 0:
            raise ConfigError(f"critic_lr must be > 0, got {self.config.critic_lr}")

    def critic_size(self) -> int:
        return TwinJointCritic.size(
            self.state_dim, self.n_agents * self.n_actions, self.config.critic_hidden
        )

    def make_critics(self) -> nn.Module:
        return TwinJointCritic(
            self.state_dim, self.n_agents * self.n_actions, self.config.critic_hidden
        )

    # -- learning -------------------------------------------------------------------------------
    def _q(self, critics: nn.Module, state: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        """``state`` (..., S), ``joint`` (..., N, A) → Q (2, ...)."""
        q = critics(
            state.reshape(-1, state.shape[-1]), joint.reshape(-1, self.n_agents * self.n_actions)
        )
        return q.reshape(q.shape[0], *state.shape[:-1])

    def loss(self, batch, gen):
        c = self.config
        mask, term, state = batch["mask"], batch["terminated"], batch["state"]
        dims = self.dims.to(state.device).to(state.dtype)  # (N, A)
        data_u = self.normalise(batch["actions"])  # (B, T, N, A)
        pi_raw, target_raw = run_agent_stack([self.actor, self.target_actor], batch["obs"])
        pi = self._squash(pi_raw)
        with torch.no_grad():
            q_next = (
                self._q(self.target_critics, state[:, 1:], self._squash(target_raw)[:, 1:])
                .min(0)
                .values
            )  # (B, T-1)
            q_next = torch.cat([q_next, torch.zeros_like(q_next[:, :1])], dim=1)
            has_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
            y = batch["rewards"] + torch.where(
                has_next & ~term, c.gamma * q_next, torch.zeros_like(q_next)
            )
            valid = mask & (has_next | term)
        q_data = self._q(self.critics, state, data_u)  # (2, B, T)
        td = sum(masked_mean(0.5 * (q - y) ** 2, valid) for q in q_data)
        cql = self._cql(state, pi.detach(), q_data, has_next, dims, gen)
        critic = td + c.cql_weight * sum(masked_mean(x, valid) for x in cql)
        # the actor: each agent's own action from its policy, the others' from the data
        n = self.n_agents
        own = torch.eye(n, dtype=torch.bool, device=state.device)[:, None, None, :, None]
        joint_i = torch.where(own, pi.unsqueeze(0), data_u.unsqueeze(0))  # (N, B, T, N, A)
        frozen = {k: v.detach() for k, v in self.critics.named_parameters()}
        frozen.update(dict(self.critics.named_buffers()))
        flat_s = state.unsqueeze(0).expand(n, *state.shape)
        q_pi = functional_call(
            self.critics,
            frozen,
            (flat_s.reshape(-1, state.shape[-1]), joint_i.reshape(-1, n * self.n_actions)),
        )
        q_pi = q_pi[0].reshape(n, *state.shape[:2])  # Q_1: (N, B, T)
        on = mask.unsqueeze(0).expand_as(q_pi)
        reg = masked_mean(
            (pi**2).sum(-1) / dims.sum(-1).clamp(min=1), mask[..., None].expand(*pi.shape[:3])
        )
        actor = -masked_mean(q_pi, on) + 1e-3 * reg
        loss = critic + actor
        info = {
            "td_loss": float(td.detach()),
            "cql_loss": float(sum(x.detach().mean() for x in cql)),
            "critic_loss": float(critic.detach()),
            "actor_loss": float(actor.detach()),
            "q_data": float(masked_mean(q_data[0].detach(), valid)),
            "q_policy": float(masked_mean(q_pi.detach(), on)),
            "loss": float(loss.detach()),
        }
        return loss, info

    def _cql(self, state, pi, q_data, has_next, dims, gen) -> list[torch.Tensor]:
        """Per critic, logsumexp over the OOD joint actions (importance weighted) minus the
        data's value: (B, T) each."""
        c = self.config
        k = c.num_ood_actions
        b, t = state.shape[:2]
        n_dims = float(dims.sum())
        shape = (b, t, k, *pi.shape[2:])
        uniform = (torch.rand(shape, generator=gen, device=state.device) * 2 - 1) * dims
        log_mu_uniform = n_dims * math.log(0.5)
        nxt = torch.cat([pi[:, 1:], pi[:, -1:]], dim=1)  # a_{t+1} ~ π(o_{t+1}) (last: own)
        samples, log_mu = [uniform], [torch.full((b, t, k), log_mu_uniform, device=state.device)]
        for base in (pi, nxt):
            noise = torch.randn(shape, generator=gen, device=state.device) * c.cql_sigma * dims
            samples.append((base.unsqueeze(2) + noise).clamp(-1, 1) * dims)
            log_mu.append(
                (-0.5 * (noise / c.cql_sigma) ** 2 * dims).sum((-1, -2))
                - n_dims * math.log(c.cql_sigma * math.sqrt(2 * math.pi))
            )
        joint = torch.cat(samples, dim=2)  # (B, T, 3K, N, A)
        s = state.unsqueeze(2).expand(b, t, 3 * k, state.shape[-1])
        q = self._q(self.critics, s, joint) - torch.cat(log_mu, dim=2).unsqueeze(0)
        return [torch.logsumexp(q[j], dim=-1) - q_data[j] for j in range(q.shape[0])]

    def _targets_due(self) -> bool:
        return True  # every update (no delayed actor)
