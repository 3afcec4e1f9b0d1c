"""Behaviour data the OG-MARL way, whichever learner an env takes: behaviour policies trained
online (MAPPO on SMAX, :mod:`.behaviour`; MATD3 on continuous envs, :mod:`.online`), their
checkpoints sorted into quality levels, datasets recorded at a quality's checkpoint, and a
scenario's datasets from one seed with the EAQ paper's subsample (``marl-augment behaviour``).

The functions here pick the learner from the env id (or from a policies folder) and call its
module; the CLI's ``behaviour`` commands are thin over them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data.dataset import Dataset
from ..errors import ConfigError
from ..outputs import check_output, kind_of, write_marker
from ..registry import config_from_options
from . import split_id
from .behaviour import QUALITY_BANDS, PpoConfig, read_checkpoints, record_behaviour, train_behaviour
from .online import Td3OnlineConfig, load_meta, quality_bands, record_matd3, train_matd3


def learner_of(env_id: str) -> str:
    """``mappo`` on ``smax:*`` (discrete SMAX), ``matd3`` on continuous-action envs."""
    return "mappo" if split_id(env_id)[0] == "smax" else "matd3"


def learner_config(
    env_id: str, options: dict[str, Any] | None = None, total_steps: int | None = None
) -> PpoConfig | Td3OnlineConfig:
    """The behaviour learner's config for ``env_id`` from ``options`` (unknown ones refused),
    with ``total_steps`` environment steps when given."""
    mappo = learner_of(env_id) == "mappo"
    cls = PpoConfig if mappo else Td3OnlineConfig
    opts = dict(options or {})
    if total_steps is not None:
        opts["total_steps"] = total_steps
    cfg = config_from_options("behaviour learner", "MAPPO" if mappo else "MATD3", cls, None, opts)
    return cfg.check()


def train_learner(
    env_id: str,
    out: str | Path,
    *,
    config: PpoConfig | Td3OnlineConfig | None = None,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    progress: Any = None,
    log: Any = None,
) -> dict[str, Any]:
    """Train (or resume) ``env_id``'s behaviour learner in ``out``, saving and evaluating
    checkpoints as it learns; the result has ``folder``, ``checkpoints`` and ``seconds``."""
    if learner_of(env_id) == "mappo":
        if env_kwargs:
            raise ConfigError(
                "SMAX behaviour policies take no env arguments (their settings are "
                "options: -o max_steps=...)"
            )
        res = train_behaviour(env_id, out, config=config, seed=seed, progress=progress, log=log)
        return {**res, "seconds": res["train_seconds"]}
    return train_matd3(
        env_id,
        out,
        config=config,
        seed=seed,
        env_kwargs=env_kwargs,
        progress=progress,
        log=log,
    )


def learner_in(folder: str | Path) -> str:
    """The learner (``mappo`` or ``matd3``) that made a behaviour folder."""
    return load_meta(folder).get("learner", "mappo")


def checkpoint_levels(folder: str | Path) -> dict[str, Any]:
    """A behaviour folder's checkpoints, each with the qualities its measured return lies in:
    ``{"learner", "env_id", "bands", "checkpoints"}`` (SMAX: OG-MARL's bands of normalised
    return; continuous envs: bands around the published levels, else of the run's range)."""
    meta = load_meta(folder)
    learner = learner_in(folder)
    rows = read_checkpoints(folder)
    if learner == "mappo":
        bands, measure = dict(QUALITY_BANDS), "normalised_return"
    else:
        bands, measure = quality_bands(meta["env_id"], rows), "return_mean"
    for r in rows:
        r["qualities"] = [q for q, (lo, hi) in bands.items() if lo <= r[measure] <= hi]
    return {"learner": learner, "env_id": meta["env_id"], "bands": bands, "checkpoints": rows}


def record_from(
    folder: str | Path,
    out: str | Path,
    *,
    quality: str | None = None,
    checkpoint: str | None = None,
    transitions: int = 1_000_000,
    epsilon: float | None = None,
    noise: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: Any = None,
    bars: Any = None,
) -> Dataset:
    """Record about ``transitions`` steps with the behaviour folder's checkpoint of ``quality``
    (or named ``checkpoint``): ε-greedy on SMAX (``epsilon``), Gaussian action noise on
    continuous envs (``noise``); the folder's own setting when not given. ``progress`` advances
    SMAX's one bar; ``bars`` makes the continuous recorder's bars."""
    if learner_in(folder) == "matd3":
        if epsilon is not None:
            raise ConfigError("--epsilon is for SMAX's discrete actions; use --noise")
        return record_matd3(
            folder,
            str(out),
            quality=quality,
            checkpoint=checkpoint,
            transitions=transitions,
            noise=noise,
            seed=seed,
            overwrite=overwrite,
            bars=bars,
        )
    if noise is not None:
        raise ConfigError(
            "--noise is for continuous actions; SMAX's behaviour is ε-greedy: use --epsilon"
        )
    return record_behaviour(
        folder,
        out,
        quality=quality,
        checkpoint=checkpoint,
        transitions=transitions,
        epsilon=epsilon,
        seed=seed,
        overwrite=overwrite,
        progress=progress,
    )


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
    if learner_of(env_id) == "mappo" and env_kwargs:  # before any folder is made
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
    trained = train_learner(
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
            record_from(policies, full, quality=q, transitions=transitions, seed=seed + i)
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
