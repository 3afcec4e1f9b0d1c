"""EAQ and EAQ⁻Q: a Conv1D diffusion model over whole multi-agent episodes, guided by Q_tot.

Training (paper Alg. 1, eq. 5): a DDPM whose network predicts tau_0; the loss is the masked MSE
to the clean episode plus lambda * [max over the batch of mean_t Q(tau_0) - mean_t Q of the
prediction]_+, where Q is the Q_tot (reward-to-go) channel of the episode tensor. EMA weights
are used for sampling. EAQ⁻Q is the same model with lambda = 0. Sampling uses the full DDPM
chain or DDIM over a few steps; episodes are decoded as described in ``features.decode``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ...data.dataset import Dataset
from ...data.schema import Spec
from ...errors import ConfigError, FormatError
from ...torch_state import (
    STATE_META,
    clear_training_state,
    has_training_state,
    load_training_state,
    resolve_device,
    save_training_state,
)
from ..base import Augmenter
from ..fidelity import DynamicsModel
from . import features as F

#: Longest episode a saved EAQ model may declare (SMAC <= 400 steps, MaMuJoCo 1,000); a larger
#: value in a damaged model folder would allocate gigabytes before anything else failed.
MAX_HORIZON = 20_000

#: options that change how a fitted model samples, not how it is fitted: a fit checkpoint may be
#: resumed with other values of these
SAMPLING_OPTIONS = frozenset(
    {
        "sampler",
        "sample_steps",
        "clip",
        "sample_batch",
        "filter_factor",
        "partial_noise",
        "device",
        "checkpoint_every",
        "calibration_episodes",
    }
)


@dataclass
class EAQConfig:
    """Options of EAQ (defaults sized for a 2-core CPU; the paper used a GPU)."""

    lam: float = 0.1
    """Weight of the Q_tot guidance loss (paper: 0.5, 0.1 or 0.01; 0 is EAQ⁻Q)."""
    dims: list[int] = field(default_factory=lambda: [32, 64, 128])
    """Channels of the U-Net levels (the horizon is padded to a multiple of 2^(levels-1))."""
    diffusion_steps: int = 100
    """DDPM steps K of the noise schedule."""
    sampler: str = "ddim"
    """Sampler for synthetic episodes: ``ddim`` (fast) or ``ddpm`` (the full chain)."""
    sample_steps: int = 8
    """DDIM steps when sampler='ddim' (DDPM uses all diffusion_steps)."""
    train_steps: int = 2000
    """Gradient steps."""
    batch_size: int = 32
    """Episodes per gradient step."""
    lr: float = 2e-4
    """Adam learning rate."""
    ema_decay: float = 0.995
    """Decay of the exponential moving average of the weights used for sampling."""
    structured_decoding: bool = True
    """Decode what the real data holds fixed as fixed (see ``features.Structure``): legal-action
    bits constant for live agents, alive flags that never come back (a step fit), dead agents'
    constant action / mask / zero observation. False: threshold every channel at 0.5."""
    skip_dead_rows: bool = True
    """Leave dead agents' observation, action and mask features out of the loss where structured
    decoding restores them (constant in the real data); the model then learns live agents only."""
    calibration_episodes: int = 512
    """Episodes of the fixed-seed calibration sample the reward map is measured on. A small one
    makes a noisy map: under partial noising 0.1 on 3m poor, 512 episodes moved mean return by
    +0.02, 2,048 by +0.001 (docs/results.md); each way of sampling measures it once."""
    reward_calibration: bool = True
    """Map decoded rewards onto the real reward distribution by quantile mapping (see
    ``features.RewardQuantiles``), learnt from a calibration sample at the end of fitting: the
    model decides which steps and episodes are rewarding, the real data what a reward is worth.
    False: rewards as the model decodes them."""
    episode_weight: float = 1.0
    """Loss weight of the reward, Q_tot and done channels relative to the others (1: plain MSE)."""
    clip: float = 5.0
    """Clamp predicted tau_0 (in normalised units) while sampling."""
    sample_batch: int = 256
    """Episodes generated at once."""
    filter_factor: float = 1.0
    """Dynamics filtering (MADiTS-style): generate this many times the episodes asked for and
    keep those whose steps best follow the real dynamics, scored by a one-step model fitted on
    the real data at fit time (``fidelity.DynamicsModel``). 1: no filtering."""
    partial_noise: float = 1.0
    """Partial noising (SDEdit; GTA's way of trading novelty for fidelity): each synthetic episode
    starts from a real episode of the augmented dataset noised to this fraction of the diffusion
    chain, and is denoised from there. 1: from pure noise (the paper); 0.3 keeps much of the real
    episode. Real episodes are used in turn, each as often as the scale asks."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``, ..."""
    checkpoint_every: int = 500
    """Save a resumable checkpoint every this many steps (when fit has a checkpoint_dir)."""
    seed: int = 0
    """Seed of initialisation and training batches."""


class EAQ(Augmenter):
    name = "eaq"
    learned = True
    #: discrete actions as one-hot channels (decoded by a legal argmax), continuous ones as
    #: action-vector channels (decoded by clipping to their bounds); the Q guidance acts on the
    #: episode's own Q_tot channel (reward-to-go), whatever the actions
    action_kinds = ("discrete", "continuous")
    version = 2
    """2: rewards decoded through the reward calibration (``reward_calibration``)."""
    structure: F.Structure | None = None
    """What the fitted data holds fixed (see features.Structure)."""
    dynamics: DynamicsModel | None = None
    """The real data's one-step model, for ``filter_factor`` > 1 (made at fit time)."""
    Config: ClassVar[type] = EAQConfig

    def __init__(self, config: Any = None, **options: Any) -> None:
        super().__init__(config, **options)
        self.real_rewards: dict[str, np.ndarray] = {}
        """Quantiles of the real data's reward channels (set by fitting or loading)."""
        self.reward_maps: dict[str, dict[str, F.RewardQuantiles]] = {}
        """Reward maps per sampler (see :meth:`maps_for`)."""
        self.sources: Dataset | None = None
        """The real episodes partial noising starts from: the dataset last fitted or augmented."""
        self._encoded_sources: tuple[Dataset, Any] | None = None

    def check_config(self) -> None:
        c = self.config
        if c.lam < 0:
            raise ConfigError(f"lam must be >= 0, got {c.lam}")
        if c.sampler not in ("ddim", "ddpm"):
            raise ConfigError(f"sampler must be 'ddim' or 'ddpm', got {c.sampler!r}")
        if not c.dims or any(d < 8 for d in c.dims):
            raise ConfigError(f"dims must be channel counts >= 8, got {c.dims}")
        if not 1.0 <= self.config.filter_factor <= 100.0:
            raise ConfigError(f"filter_factor must be in [1, 100], got {self.config.filter_factor}")
        if not 0.0 < c.partial_noise <= 1.0:
            raise ConfigError(f"partial_noise must be in (0, 1], got {c.partial_noise}")
        for k in (
            "diffusion_steps",
            "sample_steps",
            "train_steps",
            "batch_size",
            "sample_batch",
            "calibration_episodes",
        ):
            if getattr(c, k) < 1:
                raise ConfigError(f"{k} must be >= 1")
        if not 0 <= c.ema_decay < 1:
            raise ConfigError("ema_decay must be in [0, 1)")

    # -- building ---------------------------------------------------------------------------
    def _build(self, spec: Spec, horizon: int):
        import torch

        from .denoiser import TemporalUnet
        from .diffusion import Schedule

        self.device = resolve_device(self.config.device)
        self.spec = spec
        self.layout = F.Layout.from_spec(spec)
        torch.manual_seed(self.config.seed)
        self.model = TemporalUnet(self.layout.width, tuple(self.config.dims)).to(self.device)
        self.ema = TemporalUnet(self.layout.width, tuple(self.config.dims)).to(self.device)
        self.ema.load_state_dict(self.model.state_dict())
        self.ema.requires_grad_(False)
        mult = self.model.multiple
        self.horizon = -(-int(horizon) // mult) * mult
        self.sched = Schedule(self.config.diffusion_steps).to(self.device)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    # -- training ---------------------------------------------------------------------------
    def _fit(
        self,
        ds: Dataset,
        progress: Any = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
    ) -> None:
        import torch

        c = self.config
        self._build(ds.spec, int(ds.episode_lengths.max()))
        x, mask = F.encode(ds, self.layout, self.horizon)
        self.norm = F.Normaliser.fit(x, mask, self.layout.kinds())
        self.norm.reward_like = self.layout.reward_like()
        self.structure = F.Structure.learn(x, mask, self.layout)
        self.real_rewards = self._reward_quantiles(x, mask.astype(bool))
        self.reward_maps = {}
        y = torch.from_numpy(self.norm.forward(x, mask)).to(self.device)
        m = torch.from_numpy(mask.astype(np.float32)).to(self.device)
        rows = (
            F.dead_row_weights(x, self.layout, self.structure)
            if c.skip_dead_rows and c.structured_decoding
            else None
        )
        row_w = None if rows is None else torch.from_numpy(rows).to(self.device)
        sl = self.layout.slices()
        q_ch = sl["q"].start
        chan_w = torch.ones(self.layout.width, device=self.device)
        chan_w[sl["reward"].start : sl["done"].stop] = c.episode_weight
        opt = torch.optim.Adam(self.model.parameters(), lr=c.lr)
        start = 0
        ckpt = Path(checkpoint_dir) if checkpoint_dir else None
        if ckpt is not None and resume and has_training_state(ckpt):
            start = self._load_checkpoint(ckpt, opt)
        gen = torch.Generator(device="cpu").manual_seed(c.seed + start)
        self.losses: list[dict[str, float]] = []
        e = y.shape[0]
        t0 = time.perf_counter()
        for step in range(start, c.train_steps):
            idx = torch.randint(0, e, (min(c.batch_size, e),), generator=gen).to(self.device)
            x0, mk = y[idx], m[idx]
            k = torch.randint(0, c.diffusion_steps, (x0.shape[0],), generator=gen).to(self.device)
            noise = torch.randn(x0.shape, generator=gen).to(self.device)
            xk = self.sched.q_sample(x0, k, noise)
            pred = self.denoise(self.model, xk, k)
            w = mk[:, None, :].expand_as(x0).clone()
            if row_w is not None:
                w = w * row_w[idx]
            w[:, -1, :] = 1.0  # the done channel is learnt over the whole horizon
            w = w * chan_w[None, :, None]
            mse = (((pred - x0) ** 2) * w).sum() / w.sum()
            if c.lam > 0:
                steps = mk.sum(1).clamp(min=1)
                q_true = (x0[:, q_ch, :] * mk).sum(1) / steps  # mean_t Q(tau_0) per episode
                q_pred = (pred[:, q_ch, :] * mk).sum(1) / steps
                q_loss = torch.relu(
                    q_true.max() - q_pred
                ).mean()  # [max_B Q(tau_0) - Q(f(tau_k))]_+
            else:
                q_loss = torch.zeros((), device=self.device)
            loss = mse + c.lam * q_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                for pe, pm in zip(self.ema.parameters(), self.model.parameters()):
                    pe.mul_(c.ema_decay).add_(pm, alpha=1 - c.ema_decay)
            if step % 10 == 0 or step == c.train_steps - 1:
                self.losses.append(
                    {
                        "step": step,
                        "loss": float(loss.detach()),
                        "mse": float(mse.detach()),
                        "q_loss": float(q_loss.detach()),
                    }
                )
            if progress is not None:
                progress(1, float(loss.detach()))
            if (
                ckpt is not None
                and (step + 1) % c.checkpoint_every == 0
                and step + 1 < c.train_steps
            ):
                self._save_checkpoint(ckpt, opt, step + 1)
        self.train_seconds = time.perf_counter() - t0
        if ckpt is not None:
            clear_training_state(ckpt)

    def fit(
        self,
        ds: Dataset,
        *,
        progress: Any = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
    ) -> EAQ:
        """Train on ``ds``; with ``checkpoint_dir`` save checkpoints, ``resume`` from one."""
        self.check_fittable(ds)
        self.sources = ds
        self._fit(ds, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume)
        self.maps_for(self.sampler_key())  # calibrate the configured sampler now
        self.dynamics = (
            DynamicsModel.fit(ds, seed=self.config.seed) if self.config.filter_factor > 1 else None
        )
        self.fitted_on = {
            "fingerprint": ds.fingerprint,
            "episodes": len(ds),
            "spec": ds.spec.to_json(),
        }
        return self

    def _save_checkpoint(self, d: Path, opt, step: int) -> None:
        save_training_state(
            d,
            {"model": self.model, "ema": self.ema},
            {"adam": opt},
            {"step": step, "config": self.config_dict()},
        )

    def _fit_options(self, saved: dict[str, Any] | None = None) -> dict[str, Any]:
        """The options a fit depends on: the config's, or a checkpoint's (``saved``, an option
        it predates counting at its default), without :data:`SAMPLING_OPTIONS`."""
        now = self.config_dict()
        opts = now if saved is None else {k: saved.get(k, self.Config().__dict__[k]) for k in now}
        return {k: v for k, v in opts.items() if k not in SAMPLING_OPTIONS}

    def _load_checkpoint(self, d: Path, opt) -> int:
        meta = json.loads((d / STATE_META).read_text())
        if self._fit_options(meta["config"]) != self._fit_options():
            raise ConfigError(
                f"checkpoint in {d} was made with other options; resume with the same ones"
            )
        meta = load_training_state(
            d, {"model": self.model, "ema": self.ema}, {"adam": opt}, self.device
        )
        return int(meta["step"])

    def denoise(self, net, xk, k):
        """tau_0 predicted from tau_k: sqrt(abar) tau_k + sqrt(1 - abar) net(tau_k, k).

        The skip term is the best linear guess of tau_0 for unit-variance data, so the network
        only learns a correction: near-clean inputs pass through sharply instead of having to
        squeeze F features through the U-Net's first (narrower) layer.
        """
        a = self.sched.abar[k][:, None, None]
        return a.sqrt() * xk + (1 - a).sqrt() * net(xk, k)

    # -- sampling ---------------------------------------------------------------------------
    def augment(self, ds: Dataset, **kwargs: Any) -> Dataset:
        """As :meth:`Augmenter.augment`; partial noising starts from ``ds``'s episodes."""
        self.sources = ds
        return super().augment(ds, **kwargs)

    def sampler_key(self, sampler: str | None = None) -> str:
        """The name of a way of sampling, for its reward map: the sampler, and the partial
        noising level when there is one (``ddim-p300`` starts at 0.3 of the chain)."""
        sampler = sampler or self.config.sampler
        s = self.config.partial_noise
        return sampler if s >= 1.0 else f"{sampler}-p{int(round(s * 1000)):03d}"

    def partial_step(self) -> int | None:
        """The diffusion step partial noising starts from (None: pure noise)."""
        s = self.config.partial_noise
        if s >= 1.0:
            return None
        return int(np.clip(round(s * self.sched.steps) - 1, 0, self.sched.steps - 1))

    def _source_tensor(self):
        """The normalised episodes of :attr:`sources` (cached per dataset)."""
        import torch

        ds = self.sources
        if ds is None:
            raise ConfigError(
                "partial_noise < 1 starts from real episodes: augment a dataset (or fit one) "
                "so the model has them"
            )
        if self._encoded_sources is None or self._encoded_sources[0] is not ds:
            if ds.spec.to_json() != self.spec.to_json():
                raise ConfigError(
                    f"partial noising needs episodes of the fitted spec ({self.spec.env_id}); "
                    f"got {ds.spec.env_id} data"
                )
            if int(ds.episode_lengths.max()) > self.horizon:
                raise ConfigError(
                    f"the dataset has episodes of {int(ds.episode_lengths.max())} steps, longer "
                    f"than the model's horizon {self.horizon}; fit the model on it"
                )
            x, mask = F.encode(ds, self.layout, self.horizon)
            y = torch.from_numpy(self.norm.forward(x, mask))
            self._encoded_sources = (ds, y)
        return self._encoded_sources[1]

    def generate(
        self, n: int, seed: int, *, sampler: str | None = None, progress: Any = None
    ) -> np.ndarray:
        """De-normalised episode tensors (n, F, horizon) from the EMA model; with
        ``partial_noise`` < 1 each starts from a source episode (:attr:`sources`, each used in
        turn in a seeded order), whose indices are left in ``last_sources``."""
        import torch

        from .diffusion import ddim_sample, ddpm_sample

        c = self.config
        sampler = sampler or c.sampler
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        from_step = self.partial_step()
        src = None
        if from_step is not None:
            src = self._source_tensor()
            rng = np.random.default_rng(int(seed))
            rounds = -(-n // src.shape[0])
            order = np.concatenate([rng.permutation(src.shape[0]) for _ in range(rounds)])
            self.last_sources = order[:n]
        self.ema.eval()
        out = []
        for lo in range(0, n, c.sample_batch):
            b = min(c.sample_batch, n - lo)
            shape = (b, self.layout.width, self.horizon)
            start = None if src is None else src[self.last_sources[lo : lo + b]]

            def model(x, k):
                return self.denoise(self.ema, x, k)

            if sampler == "ddpm":
                y = ddpm_sample(
                    model,
                    self.sched,
                    shape,
                    gen,
                    self.device,
                    clip=c.clip,
                    start=start,
                    from_step=from_step,
                )
            else:
                y = ddim_sample(
                    model,
                    self.sched,
                    shape,
                    gen,
                    self.device,
                    n_steps=c.sample_steps,
                    clip=c.clip,
                    start=start,
                    from_step=from_step,
                )
            out.append(self.norm.inverse(y.cpu().numpy()))
            if progress is not None:
                progress(b)
        return np.concatenate(out)

    def _sample(self, n_episodes: int, rng: np.random.Generator, seed: int) -> Dataset:
        factor = self.config.filter_factor
        if factor <= 1:
            syn = self.decode(self.generate(n_episodes, seed))
            self.last_report = self._with_sources(self.last_report)
            return syn
        if getattr(self, "dynamics", None) is None:
            raise ConfigError(
                "filter_factor > 1 needs the dynamics model made at fit time; this model "
                "was fitted (or saved) without it: fit it again with filter_factor set"
            )
        made = self.decode(self.generate(int(np.ceil(n_episodes * factor)), seed))
        report = self._with_sources(dict(self.last_report))
        score = self.dynamics.episode_errors(made)
        order = np.argsort(score, kind="stable")
        keep = np.sort(order[:n_episodes])
        dropped = order[n_episodes:]
        self.last_report = {
            **report,
            "filter": {
                "generated": len(made),
                "kept": int(n_episodes),
                "dynamics_error_kept": float(score[keep].mean()),
                "dynamics_error_dropped": float(score[dropped].mean()) if len(dropped) else None,
            },
        }
        return made.select(keep)

    def _with_sources(self, report: dict[str, Any]) -> dict[str, Any]:
        s = self.config.partial_noise
        if s >= 1.0:
            return report
        used = self.last_sources
        return {
            **report,
            "partial_noise": {
                "level": s,
                "from_step": self.partial_step(),
                "source_episodes": int(np.unique(used).size),
            },
        }

    def decode(self, x: np.ndarray, sampler: str | None = None) -> Dataset:
        """Episodes from de-normalised features (as :meth:`generate` returns them, made with
        ``sampler``, the configured one by default): rewards calibrated, structure imposed, as
        the config says. The decoding report is left in ``last_report``."""
        x = F.map_rewards(x, self.layout, self.maps_for(self.sampler_key(sampler)))
        structure = self.structure if self.config.structured_decoding else None
        cols, lengths, report = F.decode(x, self.layout, self.spec, structure)
        self.last_report = report
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Dataset(self.spec, cols, offsets, np.ones(len(lengths), np.uint8))

    # -- reward calibration -----------------------------------------------------------------

    def _reward_quantiles(self, x: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
        s = self.layout.slices()
        return {
            name: F.RewardQuantiles.quantiles(F.reward_values(x, self.layout, name, valid))
            for name in F.REWARD_CHANNELS
            if s[name].stop > s[name].start
        }

    def maps_for(self, key: str) -> dict[str, F.RewardQuantiles]:
        """Reward maps for episodes made the way ``key`` names (:meth:`sampler_key`; each way
        blurs rewards its own): measured once on a fixed-seed calibration sample, then kept (and
        saved with the model). Empty when calibration is off, or for a model saved before it
        existed. A partial-noising key is calibrated on the :attr:`sources` of its first use."""
        real = self.real_rewards
        if not self.config.reward_calibration or not real:
            return {}
        if key not in self.reward_maps:
            sampler = key.split("-p")[0]
            if self.sampler_key(sampler) != key:
                raise ConfigError(f"no reward map {key!r}, and the config samples as another")
            used = getattr(self, "last_sources", None)
            x = self.generate(
                self.config.calibration_episodes, seed=self.config.seed + 7919, sampler=sampler
            )
            self.last_sources = used  # the calibration sample's are not the caller's
            lengths, _ = F.episode_ends(x[:, self.layout.slices()["done"], :][:, 0, :])
            valid = np.arange(x.shape[2])[None, :] < lengths[:, None]
            syn = self._reward_quantiles(x, valid)
            self.reward_maps[key] = {k: F.RewardQuantiles(real[k], syn[k]) for k in real}
        return self.reward_maps[key]

    # -- persistence --------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {f"ema.{k}": v.detach().cpu().numpy() for k, v in self.ema.state_dict().items()}
        arrays["norm.mean"] = self.norm.mean
        arrays["norm.std"] = self.norm.std
        arrays["norm.kinds"] = self.norm.kinds
        arrays["norm.low"] = self.norm.low
        arrays["norm.high"] = self.norm.high
        if self.structure is not None:
            arrays.update(self.structure.to_arrays())
        for name, q in self.real_rewards.items():
            arrays[f"rewards.real.{name}"] = q
        for sampler, maps in self.reward_maps.items():
            for name, fn in maps.items():
                arrays[f"rewards.{sampler}.{name}"] = fn.synthetic
        if getattr(self, "dynamics", None) is not None:
            arrays.update({f"dynamics.{k}": v for k, v in self.dynamics.arrays().items()})
        return arrays

    def _facts(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_json(),
            "horizon": self.horizon,
            "layout": self.layout.to_json(),
            "train_seconds": getattr(self, "train_seconds", None),
            "final_loss": self.losses[-1] if getattr(self, "losses", None) else None,
        }

    def _restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        import torch

        spec = Spec.from_json(facts.get("spec"))
        horizon = facts.get("horizon")
        if (
            isinstance(horizon, bool)
            or not isinstance(horizon, int)
            or not 1 <= horizon <= MAX_HORIZON
        ):
            raise FormatError(
                f"horizon must be a whole number in 1..{MAX_HORIZON}, got {horizon!r}"
            )
        self._build(spec, horizon)
        state = {k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("ema.")}
        self.ema.load_state_dict(state)
        self.model.load_state_dict(state)
        self.norm = F.Normaliser(
            arrays["norm.kinds"],
            arrays["norm.mean"],
            arrays["norm.std"],
            arrays.get("norm.low"),
            arrays.get("norm.high"),
        )
        self.norm.reward_like = self.layout.reward_like()
        self.structure = F.Structure.from_arrays(arrays)
        saved = [(k.split(".", 2), v) for k, v in arrays.items() if k.startswith("rewards.")]
        self.real_rewards = {name: v for (_, sampler, name), v in saved if sampler == "real"}
        dyn = {k[len("dynamics.") :]: v for k, v in arrays.items() if k.startswith("dynamics.")}
        self.dynamics = DynamicsModel.from_arrays(dyn) if dyn else None
        self.reward_maps = {}
        for (_, sampler, name), v in saved:
            if sampler != "real" and name in self.real_rewards:
                self.reward_maps.setdefault(sampler, {})[name] = F.RewardQuantiles(
                    self.real_rewards[name], v
                )


@dataclass
class EAQNoQConfig(EAQConfig):
    """EAQ⁻Q: EAQ without the Q_tot guidance (lambda fixed to 0)."""

    lam: float = 0.0
    """Always 0 for EAQ⁻Q."""


class EAQNoQ(EAQ):
    name = "eaq-q"
    Config: ClassVar[type] = EAQNoQConfig

    def check_config(self) -> None:
        if self.config.lam != 0:
            raise ConfigError("eaq-q is EAQ with lam = 0; use --method eaq for lam > 0")
        super().check_config()
