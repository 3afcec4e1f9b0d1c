"""Loading a saved policy, whichever learner saved it: an offline learner's run folder
(``format: marl-augment/policy``, the algorithm rebuilt from its config and spec) or an online
behaviour learner's feed-forward checkpoint (``format: marl-augment/feedforward-policy``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.schema import Spec
from ..errors import ConfigError, FormatError, NotFound
from . import ALGORITHMS
from .common import POLICY_FILE, WEIGHTS_FILE, state_dim_of
from .feedforward import FORMAT as FEEDFORWARD_FORMAT
from .feedforward import load_feedforward_policy


def load_policy(directory: str | Path, device: str = "cpu") -> Any:
    """A policy saved by a training run (the run directory or its ``policy/`` folder), or a
    feed-forward actor saved by an online behaviour learner (a checkpoint folder)."""
    from safetensors.torch import load_file

    d = Path(directory)
    if (d / "policy" / POLICY_FILE).is_file():
        d = d / "policy"
    if not (d / POLICY_FILE).is_file():
        raise NotFound(
            f"no trained policy in {directory} (expected {POLICY_FILE}); "
            "train one with 'marl-augment train'"
        )
    try:
        meta = json.loads((d / POLICY_FILE).read_text())
        if isinstance(meta, dict) and meta.get("format") == FEEDFORWARD_FORMAT:
            return load_feedforward_policy(d, meta, device)
        cls = ALGORITHMS.get(meta["algo"])
        config = cls.Config(**{**meta["config"], "device": device})
        spec = Spec.from_json(meta["spec"])
        if meta["state_dim"] != state_dim_of(spec):  # the runner saves exactly this width
            raise FormatError(
                f"policy in {d}: state_dim {meta['state_dim']!r} does not match its "
                f"spec ({state_dim_of(spec)}); train it again"
            )
        algo = cls(spec, meta["state_dim"], config, seed=meta.get("seed", 0))
        tensors = load_file(str(d / WEIGHTS_FILE), device=str(algo.device))
    except Exception as e:  # noqa: BLE001 - JSON, config, spec and safetensors errors alike
        if isinstance(e, (NotFound, FormatError)):
            raise
        if isinstance(e, ConfigError):  # sizes or settings no training run would have saved
            raise FormatError(f"policy in {d}: {e}; train it again") from None
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FormatError(f"unreadable policy in {d} ({first}); train it again") from None
    for name in algo.acting_modules():
        prefix = name + "."
        try:
            algo.modules()[name].load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
        except RuntimeError as e:  # missing tensors, wrong shapes
            first = str(e).splitlines()[1 if len(str(e).splitlines()) > 1 else 0].strip()
            raise FormatError(
                f"policy in {d}: the weights do not match its policy.json ({first}); train it again"
            ) from None
        algo.modules()[name].eval()
    algo.updates = int(meta.get("updates", 0))
    return algo.policy()
