"""The benchmark's configuration: datasets × augmenters × offline algorithms × seeds.

A config file (TOML or JSON) holds the same keys as :class:`BenchConfig`; command-line flags
override it. ``[method_options.<method>]`` and ``[algo_options.<algo>]`` tables pass options to
augmenters and algorithms. Example (``benchmarks/configs/paper-smax.toml``)::

    scenarios = ["smax:3m", "smax:2s3z", "smax:8m"]
    qualities = ["poor", "medium"]
    methods = ["original", "rad-s", "rad-m", "eaq-q", "eaq"]
    algos = ["qmix-cql", "qmix-bcq"]
    seeds = [0, 1, 2]

    [method_options.eaq]
    train_steps = 2000
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..algos import ALGORITHMS
from ..augment import AUGMENTERS
from ..errors import ConfigError, FormatError, NotFound

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ORIGINAL = "original"
#: env-id prefixes of the continuous scenarios whose data the benchmark makes (MATD3 behaviour)
CONTINUOUS_SCENARIOS = ("mamujoco:", "mpe:")


def scenario_qualities(scenario: str, behaviour: str) -> tuple[str, ...]:
    """The qualities a scenario's data can be made at."""
    if scenario.startswith("smax:"):
        return ("poor", "medium", "good") + (("random",) if behaviour == "scripted" else ())
    from ..envs.online import PUBLISHED_LEVELS, RELATIVE_BANDS

    levels = PUBLISHED_LEVELS.get(scenario)
    return tuple(q for q, _, _ in levels) if levels else tuple(RELATIVE_BANDS)


def split_method(method: str) -> tuple[str, dict[str, Any]]:
    """``"eaq:lam=0.5,train_steps=2000"`` → ``("eaq", {"lam": 0.5, "train_steps": 2000})``: a
    variant of a registered augmenter, its options over ``method_options[name]``."""
    name, _, rest = method.partition(":")
    opts: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"method {method!r}: {pair!r} is not of the form key=value")
        try:
            opts[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            opts[key.strip()] = value.strip()
    return name, opts


@dataclass
class BenchConfig:
    """One benchmark: every (dataset, method, algorithm, seed) cell of the grid."""

    scenarios: list[str] = field(default_factory=lambda: ["smax:3m"])
    """Environments whose datasets the benchmark makes: ``smax:<map>`` (scripted or learned
    behaviour), or continuous-action envs (``mamujoco:…``, ``mpe:…``; learned behaviour, MATD3)."""
    qualities: list[str] = field(default_factory=lambda: ["medium"])
    """Behaviour qualities collected per scenario: poor, medium, good (see docs/envs.md)."""
    datasets: list[str] = field(default_factory=list)
    """Explicit datasets (paths or names) used besides / instead of collected ones."""
    episodes: int = 1000
    """Episodes collected per scenario × quality with ``behaviour = "scripted"`` (seed 0)."""
    behaviour: str = "scripted"
    """How scenario datasets are made: ``scripted`` (the scripted quality ladder, ``episodes``
    episodes) or ``learned`` (OG-MARL's recipe: a MAPPO policy trained online, the checkpoint
    in the quality's band rolled out ε-greedily for ``transitions`` steps; docs/behaviour.md)."""
    transitions: int = 1_000_000
    """Steps recorded per scenario × quality with ``behaviour = "learned"`` (OG-MARL: ~1M)."""
    behaviour_options: dict[str, Any] = field(default_factory=dict)
    """MAPPO options of the learned behaviour policies (``PpoConfig``), e.g. total_steps."""
    matd3_options: dict[str, Any] = field(default_factory=dict)
    """MATD3 options of the learned behaviour of continuous scenarios (``Td3OnlineConfig``);
    a table named after a scenario holds that scenario's own, e.g.
    ``[matd3_options."mpe:simple_spread"] total_steps = 150000``."""
    env_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Env arguments per continuous scenario, e.g. ``{"mpe:simple_spread" = {max_cycles = 25}}``:
    behaviour training, recording and evaluation all use them."""
    shifted_env_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per scenario, env arguments of a *shifted* env every run is evaluated in as well, after
    training (DOM2's generalisation test), e.g. ``{"mpe:simple_spread" = {agent_speed_min =
    0.3}}``; rows get ``shifted`` and the report a table of it."""
    subsample: float = 1.0
    """Fraction of each dataset's episodes kept (subsample seed 0; the EAQ paper keeps 3%)."""
    methods: list[str] = field(default_factory=lambda: [ORIGINAL, "rad-s", "eaq"])
    """``original`` (no augmentation) and registered augmenters; ``name:key=value,...`` is a
    variant with its own options (e.g. ``eaq:lam=0.5`` beside ``eaq:lam=0.01``)."""
    scale: float = 5.0
    """Synthetic episodes per real one for every augmenter (paper: 5)."""
    algos: list[str] = field(default_factory=lambda: ["qmix-cql"])
    """Offline algorithms trained on every (augmented) dataset; ``name:key=value,…`` is a variant
    with its own options, e.g. ``"qmix-cql:synthetic_share=0.25"`` beside ``"qmix-cql"`` (the
    real:synthetic mix per batch). On the original data a variant's ``synthetic_share`` is left
    out (there are no synthetic episodes), so its run is the plain algorithm's."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds; each seeds the augmenter's fit and sampling and the algorithm's training."""
    steps: int = 2000
    """Gradient updates per training run."""
    eval_every: int = 500
    """Evaluate during training every this many updates (learning curves)."""
    eval_episodes: int = 128
    """Episodes of each run's final evaluation."""
    device: str = "auto"
    """Torch device of augmenters and algorithms."""
    fit_per_seed: bool = True
    """Learned augmenters (EAQ, EAQ⁻Q) fitted once per seed (the generator's own variance is in
    the spread over seeds), or, when false, once per dataset and method with seed 0, each seed
    then sampling its own synthetic episodes from that model (5 seeds: 5× fewer fits; the spread
    over seeds then holds the sampling's and the learners' variance, not the fit's)."""
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options per augmenter, e.g. ``{"eaq": {"train_steps": 1000}}``."""
    algo_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options per algorithm, e.g. ``{"qmix-cql": {"cql_alpha": 1.0}}``."""

    def check(self) -> BenchConfig:

        if not self.scenarios and not self.datasets:
            raise ConfigError(
                "the benchmark has no data: give scenarios (e.g. smax:3m) or datasets"
            )
        if self.behaviour not in ("scripted", "learned"):
            raise ConfigError(f"behaviour must be 'scripted' or 'learned', got {self.behaviour!r}")
        continuous = [s for s in self.scenarios if not s.startswith("smax:")]
        for s in continuous:
            if not s.startswith(CONTINUOUS_SCENARIOS):
                raise ConfigError(
                    f"scenario {s!r}: the benchmark makes datasets on smax:<map>, "
                    f"mamujoco:<agents>-<robot> and mpe:<env>; pass other data with "
                    "datasets = [...] (e.g. a converted OG-MARL Vault)"
                )
            if self.behaviour != "learned":
                raise ConfigError(
                    f"scenario {s!r} has continuous actions: its data comes from "
                    'learned behaviour (behaviour = "learned"), not scripts'
                )
        extra = sorted(set(self.env_args) - set(continuous))
        if extra:
            raise ConfigError(
                f"env_args for {extra}, which are not continuous scenarios of "
                f"this benchmark ({continuous})"
            )
        extra = sorted(set(self.shifted_env_args) - set(self.scenarios))
        if extra:
            raise ConfigError(
                f"shifted_env_args for {extra}, which are not scenarios of this "
                f"benchmark ({self.scenarios})"
            )
        for s in self.scenarios:
            allowed = scenario_qualities(s, self.behaviour)
            for q in self.qualities:
                if q not in allowed:
                    raise ConfigError(
                        f"unknown quality {q!r} for {s} with {self.behaviour} "
                        f"behaviour; choose {', '.join(allowed)}"
                    )
        if self.behaviour == "learned":
            from ..envs.behaviour import PpoConfig
            from ..envs.online import Td3OnlineConfig

            extra = sorted(k for k in self.matd3_options if ":" in k and k not in continuous)
            if extra:
                raise ConfigError(
                    f"matd3_options for {extra}, which are not continuous "
                    f"scenarios of this benchmark ({continuous})"
                )
            checks = [("behaviour_options", PpoConfig, self.behaviour_options)]
            checks += [
                (f"matd3_options ({s})", Td3OnlineConfig, self.matd3_for(s))
                for s in continuous or [""]
            ]
            for key, cls, opts in checks:
                try:
                    cls(**opts).check()
                except TypeError as e:
                    raise ConfigError(f"{key}: {e}") from None
            if self.transitions < 1:
                raise ConfigError(f"transitions must be >= 1, got {self.transitions}")
        for kind, entries, registry in (
            ("method", [m for m in self.methods if m != ORIGINAL], AUGMENTERS),
            ("algo", self.algos, ALGORITHMS),
        ):
            for entry in entries:  # a registered name, or a variant name:key=value,...
                name, opts = split_method(entry)
                unknown = sorted(set(opts) - set(registry.get(name).Config.__dataclass_fields__))
                if unknown:
                    raise ConfigError(f"{kind} {entry!r}: {name} has no option(s) {unknown}")
        for key in ("methods", "algos"):
            if len(set(getattr(self, key))) != len(getattr(self, key)):
                raise ConfigError(f"{key} repeat: {getattr(self, key)}")
        names = [split_method(m)[0] for m in self.methods]
        algo_names = [split_method(a)[0] for a in self.algos]
        for key, reg in (("method_options", names), ("algo_options", algo_names)):
            extra = sorted(set(getattr(self, key)) - set(reg))
            if extra:
                raise ConfigError(f"{key} for {extra}, which the benchmark does not run ({reg})")
        if not (0 < self.subsample <= 1):
            raise ConfigError(f"subsample must be in (0, 1], got {self.subsample}")
        for f in ("episodes", "steps", "eval_episodes"):
            if getattr(self, f) < 1:
                raise ConfigError(f"{f} must be >= 1, got {getattr(self, f)}")
        if self.scale <= 0:
            raise ConfigError(f"scale must be > 0, got {self.scale}")
        if not self.methods or not self.algos or not self.seeds:
            raise ConfigError("methods, algos and seeds must not be empty")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds repeat: {self.seeds}")
        return self

    def matd3_for(self, scenario: str) -> dict[str, Any]:
        """The MATD3 options of one continuous scenario: the shared ones, then its own."""
        shared = {k: v for k, v in self.matd3_options.items() if ":" not in k}
        return {**shared, **self.matd3_options.get(scenario, {})}

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: the option tables keyed by the entries of a list setting (a scenario, a method's or an
#: algorithm's name)
_KEYED_OPTIONS = {
    "scenarios": ("env_args", "shifted_env_args", "matd3_options"),
    "methods": ("method_options",),
    "algos": ("algo_options",),
}


def _drop_options_of_narrowed(data: dict[str, Any], given: dict[str, Any]) -> None:
    """When a flag narrows a list the file sets (``--scenario``, ``--method``, ``--algo``), the
    file's options for the entries left out go too: a run of part of a config is not a config
    error. Options for entries the file never listed still are (they are typos)."""
    for key, tables in _KEYED_OPTIONS.items():
        if key not in given or not isinstance(data.get(key), list):
            continue

        def name(v: Any, key: str = key) -> str:
            return str(v) if key == "scenarios" else split_method(str(v))[0]

        dropped = {name(v) for v in data[key]} - {name(v) for v in given[key] or []}
        for t in tables:
            if isinstance(data.get(t), dict):
                data[t] = {k: v for k, v in data[t].items() if k not in dropped}


def load_config(path: str | Path | None = None, **overrides: Any) -> BenchConfig:
    """A config from a TOML / JSON file (optional) with ``overrides`` (None values ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise NotFound(f"no benchmark config at {p}")
        try:
            data = (
                tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
            )
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
            raise FormatError(
                f"benchmark config {p} is not valid "
                f"{'TOML' if p.suffix == '.toml' else 'JSON'}: {e}"
            ) from None
    given = {k: v for k, v in overrides.items() if v is not None}
    _drop_options_of_narrowed(data, given)
    data.update(given)
    if data.get("datasets") and "scenarios" not in data:
        data["scenarios"] = []  # explicit datasets alone: collect nothing
    known = {f.name for f in dataclasses.fields(BenchConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown benchmark setting(s) {unknown}; the settings are {sorted(known)}"
        )
    try:
        return BenchConfig(**data).check()
    except TypeError as e:
        raise ConfigError(f"bad benchmark config: {e}") from None
