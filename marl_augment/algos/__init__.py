"""Offline MARL baselines in torch: QMIX+CQL, QMIX+BCQ and BC (OG-MARL's discrete-action
systems), TD3+BC (OG-MARL's IDDPG+BC), MADDPG+CQL, OMAR, DOM2 and OMSD for continuous
actions.

    algo = marl_augment.algos.make_algorithm("qmix-cql", ds.spec, state_dim, cql_alpha=3.0)
    run = marl_augment.train(ds, "qmix-cql", env_id="smax:3m", steps=15000, out="runs/cql")

Registered lazily by name; ``keys()`` lists them. A trained policy (``load_policy(run_dir)``) is
a batch policy that :func:`marl_augment.evaluate` runs.
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry

ALGORITHMS: Registry[Any] = Registry("algorithm")
ALGORITHMS.register(
    "qmix-cql",
    "marl_augment.algos.qmix_cql:QmixCql",
    doc="QMIX with a CQL penalty on sampled legal joint actions (alpha 3.0)",
)
ALGORITHMS.register(
    "qmix-bcq",
    "marl_augment.algos.qmix_bcq:QmixBcq",
    doc="QMIX whose greedy actions are restricted to likely ones under a cloned behaviour "
    "(threshold 0.4)",
)
ALGORITHMS.register(
    "bc",
    "marl_augment.algos.bc:BC",
    doc="Behaviour cloning of the data's actions with the recurrent agent network",
)


ALGORITHMS.register(
    "td3-bc",
    "marl_augment.algos.td3_bc:Td3Bc",
    doc="independent TD3+BC for continuous actions (OG-MARL's IDDPG+BC): "
    "recurrent actors, twin state-action critics, BC weight alpha 2.5",
)
ALGORITHMS.register(
    "maddpg-cql",
    "marl_augment.algos.maddpg_cql:MaddpgCql",
    doc="MADDPG with a CQL penalty for continuous actions (OG-MARL's): twin "
    "state/joint-action critics, uniform and policy-noise OOD actions",
)
ALGORITHMS.register(
    "omar",
    "marl_augment.algos.omar:Omar",
    doc="OMAR for continuous actions: CQL critics per agent and an actor "
    "regressed towards the best action a cross-entropy search finds",
)
ALGORITHMS.register(
    "dom2",
    "marl_augment.algos.dom2:Dom2",
    doc="DOM2 for continuous actions: per-agent diffusion policies (DPM-solver, "
    "5 steps) trained with a diffusion loss and a normalised Q term from "
    "decentralised CQL critics",
)
ALGORITHMS.register(
    "omsd",
    "marl_augment.algos.omsd:Omsd",
    doc="OMSD for continuous actions: deterministic policies regularised by "
    "sequentially decomposed behaviour scores (a diffusion model of each "
    "agent's action given its predecessors') and a joint IQL critic",
)


def keys() -> list[str]:
    return ALGORITHMS.keys()


def keys_for(action_kind: str) -> list[str]:
    """The algorithms that learn from data of ``action_kind`` (``discrete``/``continuous``)."""
    return [k for k in ALGORITHMS.keys() if ALGORITHMS.get(k).action_kind == action_kind]


def make_algorithm(name: str, spec, state_dim: int, *, seed: int = 0, **config: Any):
    """The algorithm for ``spec``; ``config`` fills its ``Config`` (unknown keys refused)."""
    return ALGORITHMS.get(name)(spec, state_dim, seed=seed, **config)


def load_policy(directory, device: str = "cpu"):
    """See :func:`marl_augment.algos.policies.load_policy`."""
    from .policies import load_policy as _load

    return _load(directory, device)


__all__ = ["ALGORITHMS", "keys", "keys_for", "load_policy", "make_algorithm"]
