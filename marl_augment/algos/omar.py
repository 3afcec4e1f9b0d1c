"""OMAR for continuous actions (Pan et al. 2022; OG-MARL's OMAR system, in torch).

Independent learners with a centralised state, as :mod:`~marl_augment.algos.td3_bc`: recurrent
actors squashed onto each agent's bounds, twin critics Q_j(s, agent id, own action) (MLPs
128-128). The critics are conservative (CQL(H) per agent: the log-sum-exp of Q over K uniform
actions and K noisy policy actions at s_t and at s_{t+1}, each less its log sampling density,
minus the data's value, weighted by w). The actor is *rectified*: a few rounds of the
cross-entropy method search each agent's action space for actions the critics value highly,
starting from N(0, σ_omar²); the best of the policy's own action and the elites found,

    â = argmax over {π(o), elites} of min_j Q_j(s, i, ·),

is a regression target next to the Q term:

    actor:  c · mean (π(o) − â)² − (1 − c) · mean min_j Q_j(s, i, π(o)) + 10⁻³ · mean π².

Defaults are OG-MARL's (``og_marl/baselines/tf2_systems/offline/omar.py``): K = 10, w = 3,
σ_cql = 0.3, 3 CEM rounds of 10 samples keeping 10 elites (from round two, among the new samples
and the last elites), σ_omar = 2, c = 0.7, both learning rates 3·10⁻⁴, τ = 0.005, gradients
clipped to norm 10 per network. Deviation: one optimiser step per update (the actor's gradient
sees the critics before this update's step), as in the other continuous learners here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.func import functional_call

from ..errors import ConfigError
from .agent_stack import run_agent_stack
from .common import OfflineAlgorithm, masked_mean
from .td3_bc import CqlCriticConfig, Td3Bc, check_actor_critic


@dataclass
class OmarConfig(CqlCriticConfig):
    """OMAR hyper-parameters (OG-MARL's defaults)."""

    cql_sigma: float = 0.3
    """Std of the noise on the policy's actions among the OOD samples (normalised units)."""
    omar_iters: int = 3
    """Rounds of the cross-entropy search."""
    omar_num_samples: int = 10
    """Actions sampled per agent and step in each round."""
    omar_num_elites: int = 10
    """Best actions kept per round (from round two among the samples and the last elites)."""
    omar_sigma: float = 2.0
    """Initial std of the search (normalised units; its mean starts at 0)."""
    omar_coe: float = 0.7
    """c: weight of the regression towards the best action found (1 − c on the Q term)."""
    max_grad_norm: float = 10.0
    """Gradients are clipped per network to this norm (OG-MARL's OMAR: 10)."""


class Omar(Td3Bc):
    name = "omar"
    Config = OmarConfig

    def check_config(self) -> None:
        OfflineAlgorithm.check_config(self)
        check_actor_critic(self.config)
        c = self.config
        if c.omar_sigma <= 0 or not 0 <= c.omar_coe <= 1:
            raise ConfigError(
                f"need omar_sigma > 0 and omar_coe in [0, 1], got {c.omar_sigma} and {c.omar_coe}"
            )
        for f in ("omar_iters", "omar_num_samples", "omar_num_elites"):
            if getattr(c, f) < 1:
                raise ConfigError(f"{f} must be >= 1, got {getattr(c, f)}")
        if c.omar_num_elites > c.omar_num_samples:
            raise ConfigError(
                f"omar_num_elites ({c.omar_num_elites}) cannot exceed "
                f"omar_num_samples ({c.omar_num_samples})"
            )

    def _q_many(self, params, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Critic values of M candidate actions per agent and step: ``actions`` (B, T, M, N, A)
        → (2, B, T, M, N), the candidates folded into the batch axis."""
        b, t, m = actions.shape[:3]
        s = state.unsqueeze(1).expand(b, m, *state.shape[1:]).reshape(b * m, *state.shape[1:])
        a = actions.permute(0, 2, 1, 3, 4).reshape(b * m, t, *actions.shape[3:])
        q = functional_call(self.critics, params, (s, a))  # (2, B·M, T, N)
        return q.reshape(q.shape[0], b, m, t, -1).permute(0, 1, 3, 2, 4)

    def loss(self, batch, gen):
        c = self.config
        mask, term, state = batch["mask"], batch["terminated"], batch["state"]
        dims = self.dims.to(state.device).to(state.dtype)  # (N, A)
        real = batch["avail"] & mask[..., None, None]  # (B, T, N, A)
        data_u = self.normalise(batch["actions"])
        pi_raw, target_raw = run_agent_stack([self.actor, self.target_actor], batch["obs"])
        pi = self._squash(pi_raw)
        with torch.no_grad():
            q_next = (
                self.target_critics(state[:, 1:], self._squash(target_raw)[:, 1:]).min(0).values
            )  # (B, T-1, N)
            q_next = torch.cat([q_next, torch.zeros_like(q_next[:, :1])], dim=1)
            has_next = torch.cat([mask[:, 1:], torch.zeros_like(mask[:, :1])], dim=1)
            y = batch["rewards"][..., None] + torch.where(
                (has_next & ~term)[..., None], c.gamma * q_next, torch.zeros_like(q_next)
            )
            valid = (mask & (has_next | term))[..., None].expand_as(q_next)
        online = dict(self.critics.named_parameters())
        online.update(dict(self.critics.named_buffers()))
        q_data = self.critics(state, data_u)  # (2, B, T, N)
        td = sum(masked_mean(0.5 * (q - y) ** 2, valid) for q in q_data)
        cql = self._cql(online, state, pi.detach(), q_data, dims, gen)
        critic = td + c.cql_weight * sum(masked_mean(x, valid) for x in cql)
        frozen = {k: v.detach() for k, v in online.items()}
        q_pi = functional_call(self.critics, frozen, (state, pi)).min(0).values  # (B, T, N)
        with torch.no_grad():
            best = self._rectified(frozen, state, pi.detach(), q_pi.detach(), dims, gen)
        on = mask[..., None].expand_as(q_pi)
        regress = masked_mean((pi - best) ** 2, real)
        actor = (
            c.omar_coe * regress
            - (1 - c.omar_coe) * masked_mean(q_pi, on)
            + 1e-3 * masked_mean(pi**2, real)
        )
        loss = critic + actor
        info = {
            "td_loss": float(td.detach()),
            "cql_loss": float(sum(masked_mean(x.detach(), valid) for x in cql)),
            "critic_loss": float(critic.detach()),
            "actor_loss": float(actor.detach()),
            "rectify_loss": float(regress.detach()),
            "q_data": float(masked_mean(q_data[0].detach(), valid)),
            "q_policy": float(masked_mean(q_pi.detach(), on)),
            "loss": float(loss.detach()),
        }
        return loss, info

    def _cql(self, params, state, pi, q_data, dims, gen) -> list[torch.Tensor]:
        """Per critic, logsumexp over each agent's OOD actions (importance weighted) minus the
        data's value: (B, T, N) each."""
        c = self.config
        k = c.num_ood_actions
        b, t, n, a = pi.shape
        n_dims = dims.sum(-1)  # (N,)
        shape = (b, t, k, n, a)
        uniform = (torch.rand(shape, generator=gen, device=pi.device) * 2 - 1) * dims
        nxt = torch.cat([pi[:, 1:], pi[:, -1:]], dim=1)
        samples = [uniform]
        log_mu = [(n_dims * math.log(0.5)).expand(b, t, k, n)]
        for base in (pi, nxt):
            noise = torch.randn(shape, generator=gen, device=pi.device) * c.cql_sigma * dims
            samples.append((base.unsqueeze(2) + noise).clamp(-1, 1) * dims)
            log_mu.append(
                (-0.5 * (noise / c.cql_sigma) ** 2 * dims).sum(-1)
                - n_dims * math.log(c.cql_sigma * math.sqrt(2 * math.pi))
            )
        q = self._q_many(params, state, torch.cat(samples, dim=2))  # (2, B, T, 3K, N)
        q = q - torch.cat(log_mu, dim=2).unsqueeze(0)
        return [torch.logsumexp(q[j], dim=2) - q_data[j] for j in range(q.shape[0])]

    def _rectified(self, params, state, pi, q_pi, dims, gen) -> torch.Tensor:
        """The best of the policy's action and the cross-entropy search's elites, per agent
        and step, by the smaller critic: (B, T, N, A)."""
        c = self.config
        b, t, n, a = pi.shape
        mu = torch.zeros_like(pi)
        sigma = torch.full_like(pi, c.omar_sigma)
        elite_q = elites = None
        for _ in range(c.omar_iters):
            eps = torch.randn((b, t, c.omar_num_samples, n, a), generator=gen, device=pi.device)
            cand = ((mu.unsqueeze(2) + sigma.unsqueeze(2) * eps).clamp(-1, 1)) * dims
            q = self._q_many(params, state, cand).min(0).values  # (B, T, M, N)
            if elites is not None:
                cand = torch.cat([cand, elites], dim=2)
                q = torch.cat([q, elite_q], dim=2)
            elite_q, idx = q.topk(c.omar_num_elites, dim=2)
            elites = cand.gather(2, idx.unsqueeze(-1).expand(*idx.shape, a))
            mu, sigma = elites.mean(2), elites.std(2, unbiased=False)
        top_q, top = elite_q.max(2)  # (B, T, N)
        top_a = elites.gather(2, top[:, :, None, :, None].expand(b, t, 1, n, a)).squeeze(2)
        return torch.where((top_q > q_pi)[..., None], top_a, pi)

    def _targets_due(self) -> bool:
        return True  # every update (no delayed actor)
