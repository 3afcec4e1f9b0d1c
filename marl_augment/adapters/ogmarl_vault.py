"""OG-MARL Vaults (flashbax): read them into episode stores, and write stores back as Vaults.

A Vault is ``<name>.vlt/<uid>/`` (uid = ``Good``, ``Medium``, ``Poor``, ...) holding
``metadata.json`` and one tensorstore OCDBT key-value store in which every leaf of the
experience tree is a Zarr v2 array named by its path with trailing dots (``observations.``,
``infos.legals.``). Leaves are shaped ``(1, 1e13, ...)``; the real length is the int32 array
``vault_index``. Episodes are concatenated; one ends where ``terminals`` (or ``truncations``) is
set for every agent. Reading needs ``tensorstore`` (``pip install 'marl-augment[ogmarl]'``),
not jax.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..cards import cards
from ..data.dataset import StoreWriter
from ..data.schema import Spec
from ..data.store import check_output_path
from ..download import safe_extract, sha256_file
from ..errors import (
    ConfigError,
    FormatError,
    MissingDependency,
    NotFound,
    SchemaError,
    UnsupportedError,
)
from ..outputs import check_output, partial_path, swap_into_place

METADATA = "metadata.json"
VAULT_VERSION = 1.2
TIME_AXIS = int(10e12)  # flashbax's upper bound of the time axis
#: our array -> the Vault leaf holding it (SMAC layout used by OG-MARL)
LEAVES = {
    "obs": "observations.",
    "actions": "actions.",
    "rewards": "rewards.",
    "terminals": "terminals.",
    "truncations": "truncations.",
    "legals": "infos.legals.",
    "state": "infos.state.",
}
REQUIRED = ("obs", "actions", "rewards", "terminals")
REWARD_MODES = ("first", "sum", "mean")


def tensorstore():
    try:
        import tensorstore as ts
    except ImportError:
        raise MissingDependency(
            "tensorstore", "ogmarl", "reading and writing OG-MARL Vaults"
        ) from None
    return ts


def _spec(uid_dir: Path, leaf: str) -> dict[str, Any]:
    return {
        "driver": "zarr",
        "kvstore": {"driver": "ocdbt", "base": f"file://{uid_dir.resolve()}", "path": leaf},
    }


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metadata dict -> {"infos.legals.": value, ...} (flashbax's leaf names)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}."
        if isinstance(v, Mapping):
            out.update(_flatten(v, name))
        else:
            out[name] = v
    return out


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.strip("()[] ").split(",") if x.strip())
    except ValueError:
        raise FormatError(f"vault metadata has an unreadable shape {text!r}") from None


def vault_uids(vlt: Path) -> list[str]:
    return sorted(p.name for p in vlt.iterdir() if p.is_dir() and (p / METADATA).exists())


def known_env_id(vault_name: str) -> str:
    """``3m.vlt`` -> ``smac:3m`` for SMAC maps the catalog knows; else ``ogmarl:<name>``."""

    name = vault_name.removesuffix(".vlt").removesuffix(".zip")
    for card in cards().values():
        if card.get("source") == "og-marl" and card.get("scenario") == name:
            return card["env_id"]
    return f"ogmarl:{name}"


class VaultReader:
    """One dataset (uid) of a Vault: metadata, leaves, length, and block reads."""

    def __init__(self, uid_dir: str | os.PathLike) -> None:
        self.dir = Path(uid_dir)
        meta_path = self.dir / METADATA
        if not meta_path.exists():
            raise NotFound(
                f"{str(self.dir)!r} is not a Vault dataset (no {METADATA}); give "
                "'<name>.vlt/<uid>', "
                f"or the .vlt folder / .zip with -o uid=<uid>"
            )
        try:
            self.metadata = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise FormatError(f"{meta_path} is not valid JSON: {exc}") from None
        if "structure" in self.metadata and "structure_shape" not in self.metadata:
            raise UnsupportedError(
                f"{self.dir} is an old (pre-2024) Vault with a single 'structure' key; "
                f"download the current OG-MARL release of this dataset"
            )
        if "structure_shape" not in self.metadata or "structure_dtype" not in self.metadata:
            raise FormatError(f"{meta_path} lacks structure_shape / structure_dtype")
        version = self.metadata.get("version")
        if not isinstance(version, (int, float)) or int(version) != int(VAULT_VERSION):
            raise UnsupportedError(
                f"Vault version {version!r} is not supported (expected {VAULT_VERSION})"
            )
        shapes = _flatten(self.metadata["structure_shape"])
        dtypes = _flatten(self.metadata["structure_dtype"])
        self.leaves = {ours: leaf for ours, leaf in LEAVES.items() if leaf in shapes}
        missing = [LEAVES[k] for k in REQUIRED if k not in self.leaves]
        if missing:
            raise FormatError(f"Vault {self.dir} lacks leaves {missing} (has {sorted(shapes)})")
        self.shapes = {k: _shape(shapes[leaf]) for k, leaf in self.leaves.items()}
        self.dtypes = {k: np.dtype(dtypes[leaf]) for k, leaf in self.leaves.items()}
        ts = tensorstore()
        try:
            self.stores = {
                k: ts.open(_spec(self.dir, leaf), open=True, read=True).result()
                for k, leaf in self.leaves.items()
            }
            index = ts.open(_spec(self.dir, "vault_index"), open=True, read=True).result()
            self.length = int(np.asarray(index.read().result()).ravel()[0])
        except (ValueError, RuntimeError) as exc:
            raise FormatError(
                f"Vault {self.dir} cannot be opened: {str(exc).splitlines()[0]}"
            ) from None
        obs = self.stores["obs"]
        if obs.ndim != 4:
            raise FormatError(f"'observations.' must be (1, T, N, O), got rank {obs.ndim}")
        self.n_agents, self.obs_dim = int(obs.shape[2]), int(obs.shape[3])
        for k, st in self.stores.items():
            if st.shape[0] != 1 or st.shape[1] < self.length:
                raise FormatError(
                    f"leaf {self.leaves[k]!r} has shape {tuple(st.shape)}; expected (1, >= "
                    f"{self.length}, ...)"
                )

    def read(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        """Rows [lo, hi) of every leaf, read concurrently."""
        futures = {k: st[0, lo:hi].read() for k, st in self.stores.items()}
        try:
            return {k: np.asarray(f.result()) for k, f in futures.items()}
        except (ValueError, RuntimeError) as exc:
            raise FormatError(
                f"Vault {self.dir} rows {lo}..{hi} cannot be read: {str(exc).splitlines()[0]}"
            ) from None


@dataclass
class OgMarlVaultConfig:
    """Options of the ``ogmarl-vault`` adapter."""

    uid: str | None = None
    """Dataset inside the Vault (``Good``, ``Medium``, ``Poor``); needed when it holds several."""
    env_id: str | None = None
    """Env id to record (default: ``smac:<map>`` for known SMAC maps, else ``ogmarl:<name>``)."""
    reward: str = "first"
    """Team reward: ``first`` (OG-MARL copies it to every agent), ``sum`` or ``mean``."""
    episode_limit: int | None = None
    """SMAC reports time-outs as terminals: episodes of exactly this length are marked truncated."""
    block_rows: int = 1 << 17
    """Rows read per block (memory is bounded by a few blocks)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Extra facts to keep in the store's spec."""
    action_low: float = -1.0
    """Continuous Vaults (float actions, no legal masks: MAMuJoCo, MPE): the lower action
    bound of every dimension (OG-MARL's continuous environments act in [-1, 1])."""
    action_high: float = 1.0
    """Continuous Vaults: the upper action bound of every dimension."""
    clip_actions: bool = False
    """Continuous Vaults: clip actions outside the bounds to them (OG-MARL's learners clamp
    them so) instead of refusing the Vault; the store's source counts the clipped values."""


class OgMarlVaultAdapter:
    """Converts one dataset of an OG-MARL Vault (folder or downloaded .zip) into a store."""

    Config = OgMarlVaultConfig
    name = "ogmarl-vault"

    def __init__(self, config: OgMarlVaultConfig | None = None) -> None:
        self.config = config or OgMarlVaultConfig()
        if self.config.reward not in REWARD_MODES:
            raise ConfigError(f"reward must be one of {REWARD_MODES}, got {self.config.reward!r}")
        if self.config.block_rows < 1:
            raise ConfigError("block_rows must be >= 1")
        if not self.config.action_low < self.config.action_high:
            raise ConfigError(
                f"need action_low < action_high, got {self.config.action_low} "
                f"and {self.config.action_high}"
            )

    def convert(
        self,
        src: str | os.PathLike,
        out: str | os.PathLike,
        *,
        overwrite: bool = False,
        progress: Any = None,
        source: Mapping[str, Any] | None = None,
    ):
        src = Path(src)
        if not src.exists():
            raise NotFound(f"no Vault at {str(src)!r}")
        check_output_path(out, overwrite=overwrite, inputs=[src])
        tensorstore()
        with tempfile.TemporaryDirectory(prefix="marl-augment-vault-") as tmp:
            uid_dir, vault_name, checksum = self._locate(src, Path(tmp))
            reader = VaultReader(uid_dir)
            return self._convert(
                reader, src, vault_name, checksum, out, overwrite, progress, dict(source or {})
            )

    # -- locating the dataset ---------------------------------------------------------------
    def _locate(self, src: Path, tmp: Path) -> tuple[Path, str, str | None]:
        uid = self.config.uid
        checksum = None
        if src.is_file():
            checksum = "sha256:" + sha256_file(src)
            tops = safe_extract(src, tmp / "x")
            vlts = [p for p in tops if p.is_dir() and p.name.endswith(".vlt")] or [
                p for p in tops if p.is_dir()
            ]
            if len(vlts) != 1:
                raise FormatError(
                    f"{src.name} should hold one '<name>.vlt' folder, found "
                    f"{[p.name for p in tops]}"
                )
            vlt = vlts[0]
        elif (src / METADATA).exists():
            if uid is not None and uid != src.name:
                raise ConfigError(f"{src} is dataset {src.name!r}, but uid={uid!r} was asked for")
            return src, src.parent.name, None
        else:
            vlt = src
        uids = vault_uids(vlt)
        if not uids:
            raise NotFound(f"{src} holds no Vault datasets (no '<uid>/{METADATA}')")
        if uid is None:
            if len(uids) > 1:
                raise ConfigError(
                    f"{src.name} holds several datasets {uids}; choose one with -o uid=<uid>"
                )
            uid = uids[0]
        if uid not in uids:
            raise NotFound(f"{src.name} has no dataset {uid!r}; it has {uids}")
        return vlt / uid, vlt.name, checksum

    # -- conversion -------------------------------------------------------------------------
    def _convert(
        self,
        reader: VaultReader,
        src: Path,
        vault_name: str,
        checksum,
        out,
        overwrite,
        progress,
        source,
    ):
        cfg = self.config
        n, length = reader.n_agents, reader.length
        has_legals = "legals" in reader.stores
        acts = reader.stores["actions"]
        continuous = not has_legals and acts.ndim == 4 and reader.dtypes["actions"].kind == "f"
        ours = reader.metadata.get("marl_augment", {})
        ours = ours if isinstance(ours, dict) else {}
        if continuous:
            n_actions = int(acts.shape[3])
            kind = {
                "action_kind": "continuous",
                "action_low": ((cfg.action_low,) * n_actions,) * n,
                "action_high": ((cfg.action_high,) * n_actions,) * n,
            }
            if "action_low" in ours:  # a Vault we exported: the spec's own bounds and dims
                kind = _exported_bounds(ours, n, n_actions, reader.dir)
        elif has_legals:
            n_actions = int(reader.stores["legals"].shape[3])
            kind = {}
        else:
            raise UnsupportedError(
                f"Vault {reader.dir} has no 'infos.legals.' leaf and its actions are not float "
                f"vectors (N, A), so it is neither a discrete Vault with legal-action masks nor a "
                f"continuous one"
            )
        state_dim = int(reader.stores["state"].shape[2]) if "state" in reader.stores else None
        env_id = cfg.env_id or ours.get("env_id") or known_env_id(vault_name)
        spec = Spec(
            env_id=env_id,
            agent_ids=tuple(f"agent_{i}" for i in range(n)),
            obs_dim=reader.obs_dim,
            n_actions=n_actions,
            state_dim=state_dim,
            has_avail_actions=not continuous,
            has_agent_rewards=cfg.reward != "first",
            reward_mode="given" if cfg.reward == "first" else cfg.reward,
            extras={"ogmarl_vault": vault_name, "ogmarl_uid": reader.dir.name, **cfg.extras},
            **kind,
        )
        report = {"dropped_unfinished_rows": 0, "time_limit_truncations": 0}
        if continuous:
            report["clipped_action_values"] = 0
        src_attrs = {
            "adapter": self.name,
            "path": str(src.resolve()),
            "vault": vault_name,
            "uid": reader.dir.name,
            "vault_index": length,
            "checksum": checksum,
            "vault_metadata": {
                k: v
                for k, v in reader.metadata.items()
                if k not in ("structure_shape", "structure_dtype")
            },
            **source,
        }
        with StoreWriter(out, spec, overwrite=overwrite, source=src_attrs, inputs=[src]) as w:
            for cols, lengths in self._episodes(reader, spec, report):
                w.append_episodes(cols, lengths)
                if progress is not None:
                    progress(int(lengths.sum()))
            w.source.update(report)
        if report["dropped_unfinished_rows"]:
            warnings.warn(
                f"{vault_name}/{reader.dir.name}: the data ends inside an episode; its last "
                f"{report['dropped_unfinished_rows']} rows (no final terminal) were dropped",
                stacklevel=3,
            )
        return w.result

    def _episodes(
        self, reader: VaultReader, spec: Spec, report
    ) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        cfg = self.config
        carry: dict[str, np.ndarray] | None = None
        for lo in range(0, reader.length, cfg.block_rows):
            hi = min(reader.length, lo + cfg.block_rows)
            block = reader.read(lo, hi)
            if carry is not None:
                block = {k: np.concatenate([carry[k], v]) for k, v in block.items()}
            term = block["terminals"].astype(bool).reshape(block["terminals"].shape[0], -1)
            trunc = (
                block["truncations"].astype(bool).reshape(term.shape[0], -1)
                if "truncations" in block
                else np.zeros_like(term)
            )
            ends = np.flatnonzero(term.all(1) | trunc.all(1))
            if ends.size == 0:
                carry = block
                continue
            cut = int(ends[-1]) + 1
            yield self._columns(
                {k: v[:cut] for k, v in block.items()},
                term[:cut].all(1),
                trunc[:cut].all(1),
                ends,
                spec,
                report,
                row0=lo - (0 if carry is None else carry["obs"].shape[0]),
            )
            carry = {k: v[cut:] for k, v in block.items()} if cut < block["obs"].shape[0] else None
        if carry is not None and carry["obs"].shape[0]:
            report["dropped_unfinished_rows"] = int(carry["obs"].shape[0])

    def _columns(self, b, term_all, trunc_all, ends, spec: Spec, report, row0: int):
        cfg = self.config
        lengths = np.diff(np.concatenate([[-1], ends]))
        actions = b["actions"]
        if spec.continuous:
            actions = self._continuous(actions, spec, report, row0)
        else:
            if actions.dtype.kind == "f" and not np.all(actions == np.round(actions)):
                raise FormatError(
                    "the Vault's actions are not integers, yet it has legal-action "
                    "masks (a discrete Vault); it is damaged or mislabelled"
                )
            actions = actions.reshape(actions.shape[0], -1).astype(np.int32)
        rewards_agents = b["rewards"].reshape(b["rewards"].shape[0], -1).astype(np.float32)
        if cfg.reward == "first":
            if rewards_agents.shape[1] > 1 and not np.array_equal(
                rewards_agents, np.repeat(rewards_agents[:, :1], rewards_agents.shape[1], 1)
            ):
                r = int(np.argmax((rewards_agents != rewards_agents[:, :1]).any(1)))
                raise FormatError(
                    f"agents' rewards differ at row {row0 + r}, so they are not one team reward "
                    f"copied per agent; convert with -o reward=sum or -o reward=mean"
                )
            team = rewards_agents[:, 0].copy()
        else:
            team = (
                rewards_agents.sum(1) if cfg.reward == "sum" else rewards_agents.mean(1)
            ).astype(np.float32)
        terminated = np.zeros(actions.shape[0], bool)
        truncated = np.zeros(actions.shape[0], bool)
        is_trunc = trunc_all[ends] & ~term_all[ends]
        if cfg.episode_limit is not None:
            timeout = term_all[ends] & (lengths == cfg.episode_limit)
            report["time_limit_truncations"] += int(timeout.sum())
            is_trunc |= timeout
        truncated[ends[is_trunc]] = True
        terminated[ends[~is_trunc]] = True
        cols = {
            "obs": b["obs"].astype(np.float32, copy=False),
            "actions": actions,
            "rewards": team,
            "terminated": terminated,
            "truncated": truncated,
        }
        if spec.has_avail_actions:
            cols["avail_actions"] = b["legals"] > 0.5
        if spec.has_state:
            cols["state"] = b["state"].astype(np.float32, copy=False)
        if spec.has_agent_rewards:
            cols["agent_rewards"] = rewards_agents
        return cols, lengths

    def _continuous(self, actions: np.ndarray, spec: Spec, report, row0: int) -> np.ndarray:
        a = actions.astype(np.float32)
        finite = np.isfinite(a)
        if not finite.all():
            r = int(np.argwhere(~finite)[0][0])
            raise FormatError(f"the Vault's actions hold a non-finite value at row {row0 + r}")
        low, high = spec.action_bounds()
        out = ((a < low) | (a > high)) & spec.action_mask()
        if out.any():
            if not self.config.clip_actions:
                r, i, d = (int(x) for x in np.argwhere(out)[0])
                raise FormatError(
                    f"the Vault's action {float(a[r, i, d]):.6g} (row {row0 + r}, agent {i}, "
                    f"dimension {d}) is outside [{low[i, d]:g}, {high[i, d]:g}]; convert with "
                    f"-o clip_actions=true to clip it (OG-MARL's learners do), or set "
                    f"-o action_low / action_high"
                )
            report["clipped_action_values"] += int(out.sum())
        return np.where(spec.action_mask(), np.clip(a, low, high), 0.0).astype(np.float32)


def _exported_bounds(
    ours: Mapping[str, Any], n: int, n_actions: int, where: Path
) -> dict[str, Any]:
    """The action bounds (and per-agent dimensions) an exported Vault's metadata records."""
    try:
        kind = {
            "action_kind": "continuous",
            "action_low": tuple(tuple(float(x) for x in r) for r in ours["action_low"]),
            "action_high": tuple(tuple(float(x) for x in r) for r in ours["action_high"]),
        }
        dims = ours.get("agent_n_actions")
        if dims is not None:
            kind["agent_n_actions"] = tuple(int(d) for d in dims)
        Spec(
            env_id="x", agent_ids=tuple(map(str, range(n))), obs_dim=1, n_actions=n_actions, **kind
        ).check()
    except (TypeError, ValueError, KeyError) as exc:
        raise FormatError(
            f"Vault {where}: its marl_augment action bounds are unreadable ({exc}); export it again"
        ) from None
    except SchemaError as exc:
        raise FormatError(f"Vault {where}: {exc}; export it again") from None
    return kind


# ---------------------------------------------------------------------------------------------
# writing Vaults
# ---------------------------------------------------------------------------------------------

#: dtypes of OG-MARL's SMAC Vaults (as their recording wrapper produces them)
EXPORT_DTYPES = {
    "obs": "float32",
    "actions": "int32",
    "rewards": "float32",
    "terminals": "bool",
    "truncations": "bool",
    "legals": "float32",
    "state": "float32",
}


def export_vault(
    ds,
    out: str | os.PathLike,
    *,
    uid: str = "Medium",
    overwrite: bool = False,
    truncation_as_terminal: bool = False,
    block_rows: int = 1 << 16,
    progress: Any = None,
) -> Path:
    """Write a dataset as ``<out>/<uid>/``, a Vault that flashbax's ``Vault(...).read()`` loads.

    Team rewards are copied to every agent (OG-MARL's SMAC layout). Truncated episodes get
    ``truncations`` set for all agents; with ``truncation_as_terminal`` they get ``terminals``
    instead, as SMAC itself reports time-outs.
    """
    ts = tensorstore()
    out = Path(out)
    if not uid or "/" in uid or uid.startswith("."):
        raise ConfigError(f"uid must be a plain folder name like 'Medium', got {uid!r}")
    target = out / uid
    # the Vault folder may hold the user's other datasets: only OUT/UID is ours to replace, and
    # only when marl-augment wrote it (its metadata.json names marl_augment)
    check_output(
        target, "vault-dataset", overwrite=overwrite, inputs=[ds.path], what="Vault dataset"
    )
    spec = ds.spec
    t_rows, n = ds.num_transitions, spec.n_agents
    shapes = {
        "obs": (n, spec.obs_dim),
        "actions": (n,),
        "rewards": (n,),
        "terminals": (n,),
        "truncations": (n,),
        "legals": (n, spec.n_actions),
    }
    dtypes = dict(EXPORT_DTYPES)
    if spec.continuous:  # OG-MARL's continuous layout: float action vectors, no legal masks
        shapes["actions"] = (n, spec.n_actions)
        dtypes["actions"] = "float32"
        del shapes["legals"]
    if spec.has_state:
        shapes["state"] = (spec.state_dim,)
    tmp = partial_path(target)
    try:
        tmp.mkdir()
        structure_shape: dict[str, Any] = {}
        structure_dtype: dict[str, Any] = {}
        for k, tail in shapes.items():
            node_s, node_d, key = structure_shape, structure_dtype, LEAVES[k].rstrip(".")
            if "." in key:
                parent, key = key.split(".")
                node_s = structure_shape.setdefault(parent, {})
                node_d = structure_dtype.setdefault(parent, {})
            node_s[key] = str((1, t_rows, *tail))
            node_d[key] = dtypes[k]
        meta = {
            "version": VAULT_VERSION,
            "structure_shape": structure_shape,
            "structure_dtype": structure_dtype,
            "marl_augment": {
                "env_id": spec.env_id,
                "fingerprint": ds.fingerprint,
                "provenance_steps": len(ds.provenance),
            },
        }
        if spec.continuous:  # Vaults have no place for bounds: kept beside the env id
            meta["marl_augment"].update(
                action_low=[list(r) for r in spec.action_low],
                action_high=[list(r) for r in spec.action_high],
                agent_n_actions=list(spec.agent_n_actions) if spec.agent_n_actions else None,
            )
        (tmp / METADATA).write_text(json.dumps(meta))
        stores = {}
        for k, tail in shapes.items():
            elems = int(np.prod(tail))
            rows = 1 << max(10, int(np.log2(max(1, (1 << 20) // elems))))
            s = _spec(tmp, LEAVES[k])
            s["metadata"] = {"compressor": {"id": "gzip", "level": 5}, "chunks": [1, rows, *tail]}
            stores[k] = ts.open(
                s, create=True, dtype=dtypes[k], shape=(1, TIME_AXIS, *tail)
            ).result()
        cols = ds.columns
        ends_term = cols["terminated"]
        ends_trunc = cols["truncated"]
        for lo in range(0, t_rows, block_rows):
            hi = min(t_rows, lo + block_rows)
            term = ends_term[lo:hi] | (ends_trunc[lo:hi] if truncation_as_terminal else False)
            trunc = ends_trunc[lo:hi] & (not truncation_as_terminal)
            data = {
                "obs": cols["obs"][lo:hi],
                "actions": cols["actions"][lo:hi],
                "rewards": np.repeat(cols["rewards"][lo:hi, None], n, 1),
                "terminals": np.repeat(term[:, None], n, 1),
                "truncations": np.repeat(np.asarray(trunc)[:, None], n, 1),
            }
            if "legals" in shapes:
                data["legals"] = (
                    cols["avail_actions"][lo:hi]
                    if spec.has_avail_actions
                    else np.ones((hi - lo, n, spec.n_actions), bool)
                )
            if spec.has_state:
                data["state"] = cols["state"][lo:hi]
            writes = [
                stores[k][0, lo:hi].write(np.asarray(v, dtype=dtypes[k])) for k, v in data.items()
            ]
            for f in writes:
                f.result()
            if progress is not None:
                progress(hi - lo)
        index = _spec(tmp, "vault_index")
        index["metadata"] = {
            "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": -1}
        }
        vi = ts.open(index, create=True, dtype="int32", shape=(1,)).result()
        vi.write(np.array([t_rows], np.int32)).result()
        del stores, vi
        swap_into_place(tmp, target, "vault-dataset")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
