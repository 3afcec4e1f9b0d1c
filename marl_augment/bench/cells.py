"""Cells of the benchmark grid: what each computes, its cache key, and how it runs.

Three kinds, each depending on the one before:

- ``data``: a dataset — collected on ``smax:<map>`` with a scripted policy of a quality (seed 0)
  or an explicit store — subsampled to a fraction (seed 0);
- ``augment``: that dataset augmented by one method with one seed (D_real ∪ D_syn);
- ``train``: one offline algorithm trained with one seed on a data or augment cell's store,
  evaluated in the dataset's environment.

A cell's key is a hash of everything that determines its output, its upstream cells' keys
included (the torch device is not part of it: it changes where, not what, is computed). A cell's
folder ``<work>/cells/<key>/`` gets ``result.json`` last, so a finished cell is never computed
again and an interrupted one resumes (augmenter fits and training runs from their checkpoints).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from ..algos import load_policy
from ..augment import AUGMENTERS, make_augmenter
from ..augment.base import Augmenter
from ..augment.fidelity import fidelity_gates
from ..data.dataset import Dataset
from ..data.locate import load
from ..envs import max_return, recorded_settings
from ..envs.evaluate import evaluate
from ..errors import ConfigError
from .config import ORIGINAL

RESULT = "result.json"


def _optional(default: Any = None) -> Any:
    """A setting left out of the cell's key while it is unset (None), so that adding one keeps
    the keys of cells made before it, and their caches and kept results, valid."""
    return field(default=default, metadata={"optional": True})


@dataclass(frozen=True)
class CellConfig:
    """What determines a cell's output; its key is a hash of these fields."""

    KIND: ClassVar[str]

    def as_dict(self) -> dict[str, Any]:
        """The fields that make the key (unset optional ones left out), JSON-able."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if not (f.metadata.get("optional") and getattr(self, f.name) is None)
        }


@dataclass(frozen=True)
class DataConfig(CellConfig):
    """A dataset: collected on ``scenario`` (scripted policy of ``quality`` and ``episodes``, or
    a learned behaviour policy's checkpoint of ``quality`` recorded for ``transitions``), or an
    explicit store ``dataset``; then subsampled to ``subsample`` of its episodes."""

    KIND: ClassVar[str] = "data"
    subsample: float
    subsample_seed: int = 0
    scenario: str | None = _optional()
    quality: str | None = _optional()
    collect_seed: int | None = _optional()
    episodes: int | None = _optional()
    """Scripted behaviour: episodes collected."""
    behaviour: str | None = _optional()
    """``learned`` for OG-MARL's recipe (an online learner's checkpoints)."""
    learner: str | None = _optional()
    """The online learner of continuous scenarios (``matd3``); unset: MAPPO on SMAX."""
    transitions: int | None = _optional()
    behaviour_options: dict[str, Any] | None = _optional()
    env_args: dict[str, Any] | None = _optional()
    dataset: str | None = _optional()
    """An explicit store (path) instead of a scenario, with its ``fingerprint``."""
    fingerprint: str | None = _optional()


@dataclass(frozen=True)
class AugmentConfig(CellConfig):
    """A data cell's dataset augmented by ``method`` with ``seed`` (D_real ∪ D_syn)."""

    KIND: ClassVar[str] = "augment"
    data: str
    method: str
    scale: float
    seed: int
    options: dict[str, Any]
    fit_seed: int | None = _optional()
    """Set when one fit per dataset and method is shared by every seed's cell."""
    version: int | None = _optional()
    """The augmenter's code version when above 1."""


@dataclass(frozen=True)
class TrainConfig(CellConfig):
    """``algo`` trained with ``seed`` on a data cell's store, or an augment cell's when
    ``augment`` is set, and evaluated in ``env_id``."""

    KIND: ClassVar[str] = "train"
    data: str
    augment: str | None
    algo: str
    options: dict[str, Any]
    steps: int
    seed: int
    eval_every: int | None
    eval_episodes: int
    env_id: str
    shifted_env_args: dict[str, Any] | None = _optional()
    """Settings of a shifted env the final policy is evaluated in as well (DOM2's test)."""
    version: int | None = _optional()
    """The algorithm's code version when above 1."""


CONFIGS: dict[str, type[CellConfig]] = {c.KIND: c for c in (DataConfig, AugmentConfig, TrainConfig)}


@dataclass(frozen=True)
class Cell:
    config: DataConfig | AugmentConfig | TrainConfig = field(hash=False)
    """Everything that determines the output (upstream keys included)."""
    labels: dict[str, Any] = field(hash=False, default_factory=dict)
    """What the cell is, for people (dataset label, method, algo, seed)."""

    @property
    def kind(self) -> str:
        """``data``, ``augment`` or ``train``."""
        return self.config.KIND

    @property
    def key(self) -> str:
        blob = json.dumps(
            {"kind": self.kind, **self.config.as_dict()},
            sort_keys=True,
            separators=(",", ":"),
            default=str,
        )
        return f"{self.kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    def folder(self, work: Path) -> Path:
        return Path(work) / "cells" / self.key

    def done(self, work: Path) -> bool:
        return (self.folder(work) / RESULT).is_file()

    def result(self, work: Path) -> dict[str, Any]:
        return json.loads((self.folder(work) / RESULT).read_text())

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": self.config.as_dict(), "labels": self.labels}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Cell:
        try:
            config = CONFIGS[d["kind"]](**d["config"])
        except (KeyError, TypeError) as e:
            raise ConfigError(f"not a benchmark cell of a known kind: {e}") from e
        return cls(config, d.get("labels", {}))


def run_cell(
    cell: dict[str, Any], work: str, device: str = "auto", threads: int = 1
) -> dict[str, Any]:
    """Compute one cell (a plain function of JSON-able arguments, so any executor can ship it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        return _run_cell(cell, work, device)
    finally:  # a cell run in the caller's process leaves it as it was
        torch.set_num_threads(before)


def _run_cell(cell: dict[str, Any], work: str, device: str) -> dict[str, Any]:
    c = Cell.from_json(cell)
    folder = c.folder(Path(work))
    if c.done(Path(work)):
        return c.result(Path(work))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cell.json").write_text(json.dumps(c.to_json(), indent=2))
    t0 = time.perf_counter()
    result = {"data": _data, "augment": _augment, "train": _train}[c.kind](
        c, folder, Path(work), device
    )
    # wall seconds of this call (a resumed cell counts only its last part)
    result = {
        "key": c.key,
        "kind": c.kind,
        **c.labels,
        **result,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    tmp = folder / (RESULT + ".tmp")
    tmp.write_text(json.dumps(result, indent=2, default=float))
    tmp.replace(folder / RESULT)
    return result


def store_of(work: Path, key: str) -> Path:
    """The episode store a data or augment cell made."""
    return Path(work) / "cells" / key / "store.zarr"


def _summary(ds) -> dict[str, Any]:
    """A cell's dataset facts, from the dataset's one summary (:meth:`Dataset.stats`)."""
    s = ds.stats()
    return {
        **{
            k: s.get(k)
            for k in (
                "episodes",
                "transitions",
                "return_mean",
                "return_std",
                "win_rate",
                "synthetic_episodes",
            )
        },
        "env_id": ds.spec.env_id,
    }


def _data(c: Cell, folder: Path, work: Path, device: str) -> dict[str, Any]:

    cfg = c.config
    out = folder / "store.zarr"
    extra: dict[str, Any] = {}
    if cfg.learner == "matd3":
        # continuous scenarios: MATD3 trained online (shared per scenario), the checkpoint of
        # the quality's band recorded with Gaussian noise
        from ..envs.online import Td3OnlineConfig, record_matd3, train_matd3

        raw_path = folder / "collected.zarr"
        policies = _behaviour_folder(c, folder, work)
        with _locked(policies.with_name(policies.name + ".lock")):
            train_matd3(
                cfg.scenario,
                policies,
                config=Td3OnlineConfig(**cfg.behaviour_options),
                seed=cfg.collect_seed,
                env_kwargs=cfg.env_args,
            )
        raw = (
            load(raw_path)
            if raw_path.exists()
            else record_matd3(
                policies,
                str(raw_path),
                quality=cfg.quality,
                transitions=cfg.transitions,
                seed=cfg.collect_seed,
            )
        )
        src = raw.attrs["source"]
        extra = {
            "behaviour_checkpoint": src["behaviour_checkpoint"],
            "behaviour_return": src["measured_return"],
            "reference_returns": src.get("reference_returns"),
            "full_episodes": len(raw),
            "full_transitions": raw.num_transitions,
        }
    elif cfg.behaviour == "learned":
        # OG-MARL's recipe: train a behaviour policy (resumable, in this cell's folder), record
        # the checkpoint of the quality's band
        from ..envs.behaviour import PpoConfig, record_behaviour, train_behaviour

        raw_path = folder / "collected.zarr"
        policies = _behaviour_folder(c, folder, work)
        with _locked(policies.with_name(policies.name + ".lock")):
            # one behaviour learner per scenario: every quality records from its checkpoints
            # (the first cell trains, a cell of another quality waits for it, then reads)
            train_behaviour(
                cfg.scenario,
                policies,
                config=PpoConfig(**cfg.behaviour_options),
                seed=cfg.collect_seed,
            )
        raw = (
            load(raw_path)
            if raw_path.exists()
            else record_behaviour(
                policies,
                raw_path,
                quality=cfg.quality,
                transitions=cfg.transitions,
                seed=cfg.collect_seed,
            )
        )
        src = raw.attrs["source"]
        extra = {
            "behaviour_checkpoint": src["checkpoint"],
            "behaviour_normalised_return": src["measured_normalised_return"],
            "full_episodes": len(raw),
            "full_transitions": raw.num_transitions,
        }
    elif cfg.scenario is not None:
        from ..envs.smax import collect

        raw_path = folder / "collected.zarr"
        raw = (
            load(raw_path)
            if raw_path.exists()
            else collect(
                cfg.scenario,
                raw_path,
                quality=cfg.quality,
                episodes=cfg.episodes,
                seed=cfg.collect_seed,
            )
        )
    else:
        raw = load(cfg.dataset)
    if cfg.subsample < 1:
        ds = raw.subsample(cfg.subsample, seed=cfg.subsample_seed).save(out, overwrite=True)
    elif cfg.scenario is not None:
        raw_path.rename(out)
        ds = load(out)
    else:
        ds = raw.save(out, overwrite=True)
    shutil.rmtree(folder / "collected.zarr", ignore_errors=True)
    return {"store": str(out), **_summary(ds), **extra}


def _behaviour_folder(c: Cell, folder: Path, work: Path) -> Path:
    """Where a learned-behaviour data cell's policies are: shared by the cells of one scenario,
    behaviour settings and seed (a cell that trained its own before this was shared keeps it)."""
    if (folder / "policies").is_dir():
        return folder / "policies"
    cfg = c.config
    blob = json.dumps(
        {
            k: v
            for k, v in cfg.as_dict().items()
            if k in ("scenario", "behaviour_options", "collect_seed", "learner", "env_args")
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    shared = (
        Path(work)
        / "behaviour"
        / f"{cfg.scenario.replace(':', '-')}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
    )
    shared.parent.mkdir(parents=True, exist_ok=True)
    return shared


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes (released when the holder exits)."""

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def is_learned(method: str) -> bool:
    """Whether an augmenter fits a model (trained with steps and checkpoints) before it samples."""

    return bool(AUGMENTERS.get(method).learned)


def _augment(c: Cell, folder: Path, work: Path, device: str) -> dict[str, Any]:

    cfg = c.config
    ds = load(store_of(work, cfg.data))
    options = dict(cfg.options)
    if is_learned(cfg.method):  # the fit is seeded too, and runs on the cell's device
        options.setdefault("seed", cfg.seed if cfg.fit_seed is None else cfg.fit_seed)
        options["device"] = device
    t0 = time.perf_counter()
    if cfg.fit_seed is not None:
        # one fit per dataset and method (fit_per_seed = false), shared by the seeds' cells
        shared = _shared_fit_folder(c, work)
        with _locked(shared.with_name(shared.name + ".lock")):
            if not (shared / "model").is_dir():
                aug = make_augmenter(cfg.method, **options)
                aug.fit(ds, checkpoint_dir=shared / "fit", resume=True)
                aug.save(shared / "model")
                shutil.rmtree(shared / "fit", ignore_errors=True)
        aug = Augmenter.load(shared / "model")
    else:
        aug = make_augmenter(cfg.method, **options)
        if is_learned(cfg.method):
            aug.fit(ds, checkpoint_dir=folder / "fit", resume=True)
        else:
            aug.fit(ds)
    fit_s = time.perf_counter() - t0
    out = folder / "store.zarr"
    new = aug.augment(ds, scale=cfg.scale, seed=cfg.seed, out=out, overwrite=True)
    shutil.rmtree(folder / "fit", ignore_errors=True)
    augment_s = time.perf_counter() - t0
    return {
        "store": str(out),
        "fit_seconds": round(fit_s, 2),
        "augment_seconds": round(augment_s, 2),
        **_summary(new),
        "fidelity": gates_of(new),
    }


def gates_of(augmented) -> dict[str, Any] | None:
    """The fidelity gates of an augmented store's synthetic episodes against its real ones
    (None when it has no synthetic episodes or too few real ones)."""

    origin = augmented.episode_origin
    if not (origin != 0).any() or (origin == 0).sum() < 4:
        return None
    t = time.perf_counter()
    g = fidelity_gates(augmented.where("real"), augmented.where("synthetic"), seed=0)
    return {**g, "seconds": round(time.perf_counter() - t, 2)}


def _shared_fit_folder(c: Cell, work: Path) -> Path:
    cfg = c.config
    blob = json.dumps(
        {k: v for k, v in cfg.as_dict().items() if k != "seed" and k != "scale"},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    folder = Path(work) / "fits" / f"{cfg.method}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


def _train(c: Cell, folder: Path, work: Path, device: str) -> dict[str, Any]:
    from ..training import read_metrics, train

    cfg = c.config
    store = store_of(work, cfg.augment or cfg.data)
    run = folder / "run"
    data_fp = _fingerprint(store_of(work, cfg.data))
    s = train(
        store,
        cfg.algo,
        out=run,
        env_id=cfg.env_id,
        steps=cfg.steps,
        seed=cfg.seed,
        eval_every=cfg.eval_every or 0,
        eval_episodes=32,
        final_episodes=cfg.eval_episodes,
        options={**cfg.options, "device": device},
        resume=run.exists(),
    )
    lo, top = _reference(cfg.env_id, store_of(work, cfg.data))
    ev = s["eval"]
    curve = [(r["step"], r["return_mean"]) for r in read_metrics(run) if r["kind"] == "eval"]
    extra = {}
    if cfg.shifted_env_args:
        extra["shifted"] = _shifted_eval(run, cfg)
    return {
        **extra,
        "data_fingerprint": data_fp,
        "return_mean": ev["return_mean"],
        "return_std": ev["return_std"],
        "win_rate": ev.get("win_rate"),
        "normalised_return": (ev["return_mean"] - lo) / (top - lo) if top is not None else None,
        "reference_returns": [lo, top] if top is not None else None,
        "train_seconds": s["train_seconds"],
        "eval_seconds": s.get("eval_seconds"),
        "updates_per_s": s["updates_per_s"],
        "curve": curve,
        "run": str(run),
        "dataset_return": s["dataset"]["return_mean"],
        "dataset_episodes": s["dataset"]["episodes"],
    }


def _reference(env_id: str, data_store: str | Path) -> tuple[float, float | None]:
    """The returns a run's normalised return maps to 0 and 1: 0 and the env's maximum (SMAX,
    SMAC), else the behaviour run's range recorded with the data (continuous scenarios:
    :func:`~marl_augment.envs.online.behaviour_range`); (0, None) when there is neither."""
    top = max_return(env_id)
    if top:
        return 0.0, float(top)
    src = Dataset.open(data_store, validate=False, lazy=True).attrs.get("source") or {}
    ref = src.get("reference_returns") if isinstance(src, dict) else None
    if isinstance(ref, dict) and ref.get("high", 0) > ref.get("low", 0):
        return float(ref["low"]), float(ref["high"])
    return 0.0, None


def _fingerprint(store: str | Path) -> str | None:
    """The content fingerprint of a cell's store (what a restored row is checked against)."""

    return Dataset.open(store, validate=False, lazy=True).fingerprint


def _shifted_eval(run: Path, cfg: TrainConfig) -> dict[str, Any]:
    """The trained policy's final evaluation in the shifted env (same episodes and seed)."""

    policy = load_policy(run, device="cpu")
    kwargs = {**recorded_settings(policy.spec, cfg.env_id), **cfg.shifted_env_args}
    res = evaluate(policy, cfg.env_id, episodes=cfg.eval_episodes, seed=cfg.seed, **kwargs)
    return {
        "env_args": cfg.shifted_env_args,
        "return_mean": res["return_mean"],
        "return_std": res["return_std"],
    }


__all__ = [
    "CONFIGS",
    "ORIGINAL",
    "RESULT",
    "AugmentConfig",
    "Cell",
    "CellConfig",
    "DataConfig",
    "TrainConfig",
    "gates_of",
    "is_learned",
    "run_cell",
    "store_of",
]
