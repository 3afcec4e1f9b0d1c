"""Behaviour cloning: the recurrent agent network trained with cross-entropy on the data's actions.

The floor every offline RL method must beat; acting is the argmax of the legal-masked logits.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .agent_stack import run_agent_stack
from .common import AgentNet, AlgoConfig, OfflineAlgorithm, cross_entropy, legal_or_all


@dataclass
class BcConfig(AlgoConfig):
    """Behaviour-cloning hyper-parameters (the shared ones)."""


class BC(OfflineAlgorithm):
    name = "bc"
    Config = BcConfig

    def build(self) -> None:
        self.agent = AgentNet(self.in_dim, self.n_actions, self.config.hidden)

    def modules(self) -> dict[str, nn.Module]:
        return {"agent": self.agent}

    def trained_modules(self) -> list[nn.Module]:
        return [self.agent]

    def acting_modules(self) -> list[str]:
        return ["agent"]

    def act_logits(self, outputs, avail):
        return outputs["agent"]

    def loss(self, batch, gen):
        (logits,) = run_agent_stack([self.agent], batch["obs"])
        where = batch["mask"][..., None].expand_as(batch["actions"])
        loss = cross_entropy(logits, batch["actions"], legal_or_all(batch["avail"]), where)
        return loss, {"loss": float(loss.detach()), "bc_loss": float(loss.detach())}
