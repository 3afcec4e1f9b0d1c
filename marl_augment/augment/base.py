"""The Augmenter interface.

An augmenter has a ``Config`` dataclass (one docstring per field), learns what it needs from a
dataset in :meth:`Augmenter.fit`, makes synthetic episodes with :meth:`Augmenter.sample`, and
:meth:`Augmenter.augment` writes a new store holding the real episodes followed by
``scale × |D_real|`` synthetic ones, marked in ``episode_origin`` with their provenance step and
with the full config, seed and parent fingerprint appended to the provenance.
:meth:`Augmenter.save` / :meth:`Augmenter.load` keep a fitted augmenter as JSON (config and
facts) plus safetensors (arrays, weights) — never pickle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..config import package_version
from ..data.dataset import Dataset
from ..data.store import check_output_path
from ..errors import ConfigError, FormatError, MarlAugmentError, NotFound
from ..outputs import check_output, kind_of, partial_path, swap_into_place, write_marker
from ..registry import config_from_options
from . import AUGMENTERS, keys_for

MAX_ORIGIN = 255
STATE_FILE = "augmenter.json"
ARRAYS_FILE = "arrays.safetensors"


class Augmenter(ABC):
    """Base class of augmenters (see the module docstring)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    #: copy-based methods (RAD, replication) always fit on the dataset they augment; learned
    #: models (EAQ) keep what they learned and may augment any dataset of the same spec
    refit_on_augment: ClassVar[bool] = False
    #: whether fitting trains a model rather than reading the data: a learned augmenter's
    #: Config has ``train_steps``, ``seed`` and ``device``, and its fit takes resumable
    #: checkpoints (the CLI's --resume, the benchmark's shared fits and devices use this)
    learned: ClassVar[bool] = False
    #: bumped when the same config and seed give different episodes than before by design (a
    #: decoding or training change, not floating-point rounding): benchmark caches key augment
    #: cells on it, so they are recomputed
    version: ClassVar[int] = 1
    #: the action kinds of the data this method can augment
    action_kinds: ClassVar[tuple[str, ...]] = ("discrete", "continuous")

    def __init__(self, config: Any = None, **options: Any) -> None:
        self.config = config_from_options("augmenter", self.name, self.Config, config, options)
        self.check_config()
        self.fitted_on: dict[str, Any] | None = None

    # -- to implement ---------------------------------------------------------------------------
    def check_config(self) -> None:
        """Refuse impossible option values (override)."""

    @abstractmethod
    def _fit(self, ds: Dataset, progress: Any = None) -> None:
        """Learn from ``ds`` (keep what :meth:`_sample` needs)."""

    @abstractmethod
    def _sample(self, n_episodes: int, rng: np.random.Generator, seed: int) -> Dataset:
        """``n_episodes`` synthetic episodes as an in-memory Dataset (the caller sets origin)."""

    def _arrays(self) -> dict[str, np.ndarray]:
        """Arrays to save with a fitted augmenter (override; e.g. network weights)."""
        return {}

    def _restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        """Inverse of :meth:`_arrays` (override)."""

    def natural_size(self) -> int | None:
        """Synthetic episodes the method makes by itself when no scale is given (override)."""
        return None

    # -- the interface ------------------------------------------------------------------------
    def fit(self, ds: Dataset, *, progress: Any = None) -> Augmenter:
        self.check_fittable(ds)
        self._fit(ds, progress=progress)
        self.fitted_on = {
            "fingerprint": ds.fingerprint,
            "episodes": len(ds),
            "spec": ds.spec.to_json(),
        }
        return self

    def check_fittable(self, ds: Dataset) -> None:
        """Refuse, in one line, data this method cannot learn from (empty, other action kind)."""
        if len(ds) == 0:
            raise ConfigError("cannot fit an augmenter on an empty dataset")
        if ds.spec.action_kind not in self.action_kinds:
            raise ConfigError(
                f"{self.name} augments {' or '.join(self.action_kinds)} actions, "
                f"and {ds.spec.env_id} data has {ds.spec.action_kind} ones; use "
                f"one of {', '.join(keys_for(ds.spec.action_kind))}"
            )

    def sample(self, n_episodes: int, seed: int = 0) -> Dataset:
        """Synthetic episodes only (origin marked 1), seeded."""
        if self.fitted_on is None:
            raise ConfigError(f"augmenter {self.name!r} is not fitted: call fit(dataset) first")
        if n_episodes < 1:
            raise ConfigError(f"n_episodes must be >= 1, got {n_episodes}")
        syn = self._sample(int(n_episodes), np.random.default_rng(seed), int(seed))
        return Dataset(
            syn.spec,
            syn.columns,
            syn.episode_offsets,
            np.ones(len(syn), np.uint8),
            won=syn.episode_won,
            attrs=syn.attrs,
        )

    def augment(
        self,
        ds: Dataset,
        *,
        scale: float | None = 5.0,
        seed: int = 0,
        out: str | os.PathLike | None = None,
        overwrite: bool = False,
        progress: Any = None,
    ) -> Dataset:
        """D_real ∪ D_syn with |D_syn| = scale × |D_real| (paper: 5), written to ``out``.

        Fits on ``ds`` first unless already fitted on it. Without ``out`` the result stays in
        memory (its provenance is written whenever it is saved).
        """
        if out is not None:
            check_output_path(out, overwrite=overwrite, inputs=[ds.path] if ds.path else [])
        if self.fitted_on is None or self.refit_on_augment:
            self.fit(ds, progress=progress)
        elif self.fitted_on.get("spec") != ds.spec.to_json():
            raise ConfigError(
                f"augmenter was fitted on a dataset with another spec "
                f"({self.fitted_on['spec'].get('env_id')}); fit it on this one"
            )
        if scale is None:
            n = self.natural_size()
            if n is None:
                raise ConfigError(f"augmenter {self.name!r} needs a scale (e.g. 5.0)")
        else:
            if scale <= 0:
                raise ConfigError(f"scale must be > 0, got {scale}")
            n = max(1, int(round(float(scale) * len(ds))))
        step = len(ds.provenance) + 1
        if step > MAX_ORIGIN:
            raise ConfigError(
                f"the dataset already has {step - 1} provenance steps; origin marks end at "
                f"{MAX_ORIGIN}"
            )
        syn = self.sample(n, seed)
        if syn.spec.arrays() != ds.spec.arrays() or set(syn.columns) != set(ds.spec.arrays()):
            raise FormatError(
                f"augmenter {self.name!r} produced arrays {sorted(syn.columns)}, "
                f"expected {ds.spec.arrays()}"
            )
        cols = {k: np.concatenate([ds.columns[k], syn.columns[k]]) for k in ds.spec.arrays()}
        lengths = np.concatenate([ds.episode_lengths, syn.episode_lengths])
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        origin = np.concatenate([ds.episode_origin, np.full(len(syn), step, np.uint8)])
        won = None
        if ds.episode_won is not None and syn.episode_won is not None:
            won = np.concatenate([ds.episode_won, syn.episode_won])
        spec = ds.spec.replace(max_episode_len=int(lengths.max()))
        entry = {
            "method": self.name,
            "config": self.config_dict(),
            "seed": int(seed),
            "parent_fingerprint": ds.fingerprint,
            "scale": scale,
            "real_episodes": len(ds),
            "synthetic_episodes": len(syn),
        }
        report = getattr(self, "last_report", None)
        if report:
            entry["sample_report"] = dict(report)
        combined = Dataset(
            spec,
            cols,
            offsets,
            origin,
            won=won,
            attrs=ds.attrs,
            inputs=(ds.path,) if ds.path else (),
        )
        if out is None:
            combined._pending.append(entry)
            return combined
        return combined.save(out, overwrite=overwrite, provenance=entry, progress=progress)

    # -- persistence ------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self.config), default=list))

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Config and facts as JSON, arrays as safetensors, written atomically."""
        from safetensors.numpy import save_file

        if self.fitted_on is None:
            raise ConfigError("only a fitted augmenter can be saved: call fit(dataset) first")

        directory = check_output(directory, "model", overwrite=overwrite, what="model folder")
        tmp = partial_path(directory)
        try:
            tmp.mkdir()
            write_marker(tmp, "model", method=self.name)
            arrays = {k: np.ascontiguousarray(v) for k, v in self._arrays().items()}
            if arrays:
                save_file(arrays, str(tmp / ARRAYS_FILE))
            state = {
                "method": self.name,
                "config": self.config_dict(),
                "fitted_on": self.fitted_on,
                "facts": self._facts(),
                "marl_augment_version": package_version(),
            }
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
            swap_into_place(tmp, directory, "model")
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    def _facts(self) -> dict[str, Any]:
        """JSON-compatible fitted facts to save besides the arrays (override)."""
        return {}

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Augmenter:
        from safetensors.numpy import load_file

        directory = Path(directory)
        path = directory / STATE_FILE
        if not path.exists():
            raise NotFound(f"{directory} is not a saved augmenter (no {STATE_FILE})")
        try:
            state = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise FormatError(
                f"{path} is not valid JSON ({exc}); save the augmenter again"
            ) from None
        if (
            not isinstance(state, dict)
            or not isinstance(state.get("method"), str)
            or not isinstance(state.get("config"), dict)
            or not isinstance(state.get("fitted_on"), dict)
        ):
            raise FormatError(
                f"{path} lacks method / config / fitted_on; it is not a saved "
                f"augmenter: save it again with --save-model"
            )
        klass = AUGMENTERS.get(state["method"])
        if cls is not Augmenter and klass is not cls:
            raise ConfigError(
                f"{directory} holds a {state['method']!r} augmenter, not {cls.name!r}"
            )
        aug = klass(**state["config"])
        try:
            arrays = (
                load_file(str(directory / ARRAYS_FILE))
                if (directory / ARRAYS_FILE).exists()
                else {}
            )
            facts = state.get("facts", {})
            if not isinstance(facts, dict):
                raise FormatError("'facts' is not an object")
            aug._restore(arrays, facts)
        except Exception as exc:  # noqa: BLE001 - safetensors, torch and numpy errors alike
            if isinstance(exc, MarlAugmentError):
                raise FormatError(f"saved augmenter {directory} is damaged: {exc}") from None
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            why = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
            raise FormatError(
                f"saved augmenter {directory} does not match its {STATE_FILE} "
                f"({type(exc).__name__}: {why}); save it again with --save-model"
            ) from None
        aug.fitted_on = state["fitted_on"]
        return aug


def fit_beside(
    aug: Augmenter,
    ds: Dataset,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: Any = None,
) -> None:
    """Fit a learned augmenter with resumable checkpoints in ``<out>.train`` beside its output
    (a fit folder of our own, removed once the fit is done): an interrupted ``augment`` goes on
    with ``resume=True``. ``out`` is the output store's local path (a URL's mirror)."""

    if resume and not aug.learned:
        raise ConfigError(f"--resume applies to learned augmenters (eaq, eaq-q), not {aug.name!r}")
    if not aug.learned or aug.fitted_on is not None:
        return
    out = Path(out)
    train_dir = out.with_name(out.name + ".train")
    check_output(train_dir, "fit", overwrite=True, inputs=[ds.path], what="fit checkpoint folder")
    if not train_dir.is_dir() or not any(train_dir.iterdir()):
        train_dir.mkdir(parents=True, exist_ok=True)
        write_marker(train_dir, "fit", output=str(out))
    aug.fit(ds, progress=progress, checkpoint_dir=train_dir, resume=resume)
    if kind_of(train_dir) == "fit":
        shutil.rmtree(train_dir, ignore_errors=True)
