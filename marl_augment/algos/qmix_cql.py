"""QMIX+CQL (OG-MARL's discrete-action system, in torch).

loss = TD + α · mean_t [ logsumexp({Q_tot(s_t, a^k)}_{k=1..K} ∪ {Q_tot(s_t, a_t)})
                         − Q_tot(s_t, a_t) ]

where a^1..a^K are joint actions drawn uniformly among each agent's legal actions (K = 20) and
a_t is the data's joint action: Q_tot is pushed down on actions the data does not support and up
on the data's own (conservative Q-learning, Kumar et al. 2020). The TD part is QMIX's double-Q
loss (see :mod:`marl_augment.algos.qmix`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .agent_stack import run_agent_stack
from .common import legal_or_all, masked_mean
from .qmix import QmixBase, QmixConfig


@dataclass
class QmixCqlConfig(QmixConfig):
    """QMIX+CQL hyper-parameters."""

    cql_alpha: float = 3.0
    """Weight α of the CQL term."""
    num_ood_actions: int = 20
    """Joint actions K sampled among legal ones for the CQL logsumexp."""


def cql_term(q_tots: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """mean over steps of logsumexp(Q_tot of every joint action given) − Q_tot(data).

    ``q_tots`` (B, T, 1 + K): the data's joint action first, then K sampled ones.
    """
    return masked_mean(torch.logsumexp(q_tots, dim=-1) - q_tots[..., 0], mask)


def sample_legal(avail: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """``k`` actions per (b, t, agent), uniform over the legal ones: (B, T, N, K).

    Draw j uniform in {0, …, n_legal − 1} and take the j-th legal action: the legal actions,
    in order, come first in a stable sort of the illegal-flags.
    """
    legal = legal_or_all(avail)
    count = legal.sum(-1, keepdim=True)
    u = torch.rand(*legal.shape[:-1], k, generator=gen, device=legal.device)
    j = (u * count).floor().clamp(max=count - 1).long()
    order = torch.sort((~legal).to(torch.uint8), dim=-1, stable=True).indices
    return order.gather(-1, j)


class QmixCql(QmixBase):
    name = "qmix-cql"
    Config = QmixCqlConfig

    def check_config(self) -> None:
        super().check_config()
        if self.config.cql_alpha < 0 or self.config.num_ood_actions < 1:
            raise ConfigError(
                f"cql_alpha must be >= 0 and num_ood_actions >= 1, got "
                f"{self.config.cql_alpha} and {self.config.num_ood_actions}"
            )

    def loss(self, batch, gen):
        q, target_q = run_agent_stack([self.agent, self.target_agent], batch["obs"])
        ood = sample_legal(batch["avail"], self.config.num_ood_actions, gen)
        joint = torch.cat([batch["actions"].unsqueeze(-1), ood], dim=-1)  # (B, T, N, 1 + K)
        q_tots = self.mixer.mix(q.gather(-1, joint), self.mixer.weights(batch["state"]))
        td, info = self.td_loss(batch, q, q_tots[..., 0], legal_or_all(batch["avail"]), target_q)
        cql = cql_term(q_tots, batch["mask"])
        info["cql_loss"] = float(cql.detach())
        loss = td + self.config.cql_alpha * cql
        info["loss"] = float(loss.detach())
        return loss, info
