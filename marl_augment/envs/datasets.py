"""A scenario's datasets from one seed, the OG-MARL way: behaviour policies trained online
(MAPPO on SMAX, :mod:`.behaviour`; MATD3 on continuous envs, :mod:`.online`), rolled out at each
quality's checkpoint, then the EAQ paper's subsample (``marl-augment behaviour datasets``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.dataset import Dataset
from ..errors import ConfigError
from ..outputs import check_output, kind_of, write_marker
from . import split_id
from .behaviour import record_behaviour, train_behaviour
from .online import record_matd3, train_matd3


def behaviour_datasets(
    env_id: str,
    out: str | Path,
    *,
    seed: int = 0,
    qualities: tuple[str, ...] = ("poor", "medium", "good"),
    transitions: int = 1_000_000,
    fraction: float = 0.03,
    config: Any = None,
    env_kwargs: dict[str, Any] | None = None,
    progress: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """A map's (or a continuous env's) datasets from one seed, the OG-MARL way, resumable:
    train behaviour policies (``OUT/policies``: MAPPO on SMAX, MATD3 elsewhere), record
    ``transitions`` steps at each quality (``OUT/<quality>.zarr``), and keep the paper's
    ``fraction`` of whole episodes (``OUT/<quality>-<pct>pct.zarr``)."""
    smax = split_id(env_id)[0] == "smax"
    if smax and env_kwargs:
        raise ConfigError(
            "SMAX behaviour policies take no env arguments (their settings are "
            "options: -o max_steps=...)"
        )
    out = check_output(
        out, "behaviour-datasets", overwrite=False, reuse=True, what="datasets folder"
    )
    out.mkdir(parents=True, exist_ok=True)
    if kind_of(out) != "behaviour-datasets":
        write_marker(out, "behaviour-datasets")
    policies = out / "policies"
    if smax:
        trained = train_behaviour(
            env_id, policies, config=config, seed=seed, progress=progress, log=log
        )
        seconds = trained["train_seconds"]
    else:
        trained = train_matd3(
            env_id,
            policies,
            config=config,
            seed=seed,
            env_kwargs=env_kwargs,
            progress=progress,
            log=log,
        )
        seconds = trained["seconds"]
    made: dict[str, Any] = {"policies": str(policies), "train_seconds": seconds, "datasets": {}}
    pct = f"{fraction * 100:g}pct"
    for i, q in enumerate(qualities):
        full, sub = out / f"{q}.zarr", out / f"{q}-{pct}.zarr"
        if not full.exists():  # stores appear whole or not at all
            if smax:
                record_behaviour(policies, full, quality=q, transitions=transitions, seed=seed + i)
            else:
                record_matd3(policies, str(full), quality=q, transitions=transitions, seed=seed + i)
        ds = Dataset.open(full)
        if not sub.exists():
            ds.subsample(fraction, seed=seed).save(sub)
        small = Dataset.open(sub)
        src = ds.attrs["source"]
        made["datasets"][q] = {
            "full": str(full),
            "subsample": str(sub),
            "full_episodes": len(ds),
            "full_transitions": ds.num_transitions,
            "episodes": len(small),
            "transitions": small.num_transitions,
            "return_mean": float(small.episode_returns.mean()),
            "checkpoint": src.get("checkpoint", src.get("behaviour_checkpoint")),
            "measured_return": src.get("measured_return"),
            "measured_normalised_return": src.get("measured_normalised_return"),
        }
    return made
