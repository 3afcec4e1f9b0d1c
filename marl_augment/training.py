"""A training run: an offline algorithm on a dataset, evaluated in an environment as it learns.

The run folder holds everything a run makes, written as it goes:

- ``run.json``: the run's settings, the algorithm's full config, the dataset (path, fingerprint,
  size, mean return) and the package version;
- ``metrics.jsonl``: one JSON object a line, ``{"kind": "train", "step", "loss", ...}`` every
  ``log_every`` updates and ``{"kind": "eval", "step", "return_mean", "win_rate", ...}`` at every
  evaluation (step 0 included: the untrained network);
- ``checkpoint/``: the resumable training state (safetensors + JSON), every ``checkpoint_every``;
- ``policy/``: the trained policy (``marl-augment evaluate ENV --policy RUN``);
- ``learning_curve.png``: evaluation return and training loss against updates;
- ``summary.json``: the final evaluation; written last, so its presence marks a finished run.

Batch ``k`` is a function of ``(seed, k)`` only, and the CQL samples of update ``k`` come from a
generator seeded with ``(seed, k)``: a resumed run continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .algos import ALGORITHMS
from .algos.common import SequenceSampler, state_dim_of
from .config import package_version
from .data.dataset import Dataset
from .data.locate import load
from .envs import action_kind_of, recorded_settings
from .envs.evaluate import evaluate as evaluate_env
from .errors import AlreadyExists, ConfigError
from .outputs import MARKER, check_output, partial_dir, save_figure, swap_into_place, write_marker
from .processes import spawn_pool, stop_pool
from .torch_state import has_training_state, load_training_state, save_training_state

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CURVE_FILE = "learning_curve.png"
#: evaluation episodes use seeds from here on, away from the seeds datasets are collected with
EVAL_SEED_BASE = 1_000_000


@dataclass
class RunConfig:
    """Settings of a training run (the algorithm's own hyper-parameters live in its Config)."""

    algo: str
    """Registered algorithm: qmix-cql, qmix-bcq, bc."""
    env_id: str | None = None
    """Env to evaluate in (default: the dataset's env id); None with eval_every=0: no evaluation."""
    steps: int = 10_000
    """Gradient updates."""
    seed: int = 0
    """Seed of initialisation, batches and evaluation."""
    eval_every: int = 1000
    """Evaluate every this many updates (0: only at the end)."""
    eval_episodes: int = 32
    """Episodes per periodic evaluation."""
    final_episodes: int = 128
    """Episodes of the final evaluation."""
    log_every: int = 100
    """Write training metrics every this many updates."""
    checkpoint_every: int = 1000
    """Save the resumable state every this many updates."""

    def check(self) -> None:
        for f in ("steps", "eval_episodes", "final_episodes", "log_every", "checkpoint_every"):
            if getattr(self, f) < 1:
                raise ConfigError(f"{f} must be >= 1, got {getattr(self, f)}")
        if self.eval_every < 0:
            raise ConfigError(f"eval_every must be >= 0, got {self.eval_every}")


def train(
    dataset: Dataset | str | os.PathLike,
    algo: str,
    *,
    out: str | os.PathLike,
    env_id: str | None = None,
    steps: int = 10_000,
    seed: int = 0,
    eval_every: int = 1000,
    eval_episodes: int = 32,
    final_episodes: int = 128,
    log_every: int = 100,
    checkpoint_every: int = 1000,
    options: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    evaluate: bool = True,
    progress: Any = None,
) -> dict[str, Any]:
    """Train ``algo`` on ``dataset``, evaluating in ``env_id``; return the summary (module doc).

    ``options`` fill the algorithm's Config (e.g. ``{"cql_alpha": 1.0, "device": "cuda"}``).
    ``progress(n, **fields)`` is called after every update. ``evaluate=False`` trains without
    an environment (summary without returns).
    """

    ds = dataset if isinstance(dataset, Dataset) else load(dataset)
    run = RunConfig(
        algo=algo,
        env_id=env_id or (ds.spec.env_id if evaluate else None),
        steps=steps,
        seed=seed,
        eval_every=eval_every if evaluate else 0,
        eval_episodes=eval_episodes,
        final_episodes=final_episodes,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
    )
    run.check()
    cls = ALGORITHMS.get(algo)
    out = Path(out)
    check_output(out, "run", overwrite=True, inputs=[ds.path], what="run folder")
    agent = cls(
        ds.spec, state_dim_of(ds.spec), seed=seed, **(options or {})
    )  # bad options: no folder
    if evaluate:
        _check_env_kind(run.env_id, ds)  # nor a wrong env
    start_fresh, work = _prepare_dir(out, resume, overwrite)
    with _into_place(work, out, "run"):  # an overwrite: the old run stays whole until then
        return _train_in(work, ds, run, agent, seed, start_fresh, progress, evaluate)


def _check_env_kind(env_id: str, ds: Dataset) -> None:

    kind = action_kind_of(env_id, **recorded_settings(ds.spec, env_id))
    if kind != ds.spec.action_kind:
        raise ConfigError(
            f"{env_id} takes {kind} actions and the data has {ds.spec.action_kind} "
            f"ones: evaluate in the env the data came from ({ds.spec.env_id}), or "
            f"train with --no-eval"
        )


@contextmanager
def _into_place(work: Path, out: Path, kind: str) -> Iterator[None]:
    """Output written in ``work``: when it differs from ``out`` (an overwrite), swapped into
    place once the block ends well, removed if it fails."""
    try:
        yield
        if work != out:
            swap_into_place(work, out, kind)
    except BaseException:
        if work != out:
            shutil.rmtree(work, ignore_errors=True)
        raise


def _train_in(
    out: Path,
    ds: Dataset,
    run: RunConfig,
    agent: Any,
    seed: int,
    start_fresh: bool,
    progress: Any,
    evaluate: bool,
) -> dict[str, Any]:
    algo = run.algo
    c = agent.config
    sampler = SequenceSampler(
        ds, c.seq_len, c.period, c.batch_size, seed, agent.device, synthetic_share=c.synthetic_share
    )
    meta = {
        "run": asdict(run),
        "algo_config": agent.config_dict(),
        "dataset": _dataset_facts(ds),
        "package_version": package_version(),
    }
    ckpt = out / "checkpoint"
    first = 0
    if not start_fresh:
        saved = json.loads((out / RUN_FILE).read_text())
        same = {k: v for k, v in saved["run"].items() if k != "steps"} == {
            k: v for k, v in meta["run"].items() if k != "steps"
        }
        if (
            not same
            or saved["algo_config"] != meta["algo_config"]
            or saved["dataset"]["fingerprint"] != meta["dataset"]["fingerprint"]
        ):
            raise ConfigError(
                f"{out} holds a run with other settings or data; resume with the same ones, "
                "or pass --overwrite to start over"
            )
        if has_training_state(ckpt):
            first = int(
                load_training_state(ckpt, agent.modules(), {"adam": agent.optimizer}, agent.device)[
                    "step"
                ]
            )
            agent.updates = first
    _write_json(out / RUN_FILE, meta)
    metrics = _Metrics(out / METRICS_FILE, keep_until=first)

    eval_clock = [0.0]

    def run_eval(at: int, episodes: int) -> dict[str, Any]:

        t = time.perf_counter()
        res = evaluate_env(
            agent.policy(),
            run.env_id,
            episodes=episodes,
            seed=EVAL_SEED_BASE + seed,
            **recorded_settings(ds.spec, run.env_id),
        )
        eval_clock[0] += time.perf_counter() - t
        row = {"kind": "eval", "step": at, **res}
        metrics.write(row)
        return row

    last_eval: dict[str, Any] | None = None
    if run.eval_every and first == 0:
        last_eval = run_eval(0, run.eval_episodes)
    t0, n0 = time.perf_counter(), first
    window: list[dict[str, float]] = []
    for step in range(first, run.steps):
        gen = torch.Generator(device=agent.device).manual_seed(_mix(seed, step))
        info = agent.update(sampler.batch(step), gen)
        window.append(info)
        done = step + 1
        if done % run.log_every == 0 or done == run.steps:
            dt = time.perf_counter() - t0
            keys = dict.fromkeys(k for w in window for k in w)  # some losses skip updates
            row = {k: float(np.mean([w[k] for w in window if k in w])) for k in keys}
            metrics.write(
                {"kind": "train", "step": done, **row, "updates_per_s": (done - n0) / max(dt, 1e-9)}
            )
            window = []
        if run.eval_every and done % run.eval_every == 0 and done < run.steps:
            last_eval = run_eval(done, run.eval_episodes)
        if done % run.checkpoint_every == 0 and done < run.steps:
            save_training_state(ckpt, agent.modules(), {"adam": agent.optimizer}, {"step": done})
        if progress is not None:
            progress(1, loss=info.get("loss"), eval_return=(last_eval or {}).get("return_mean"))
    train_seconds = time.perf_counter() - t0
    update_seconds = train_seconds - eval_clock[0]  # periodic evaluations run in the loop
    agent.save_policy(out / "policy", {"dataset": meta["dataset"], "env_id": run.env_id})
    summary: dict[str, Any] = {
        "algo": algo,
        "steps": run.steps,
        "seed": seed,
        "dataset": meta["dataset"],
        "train_seconds": round(train_seconds, 2),
        "updates_per_s": (run.steps - n0) / max(update_seconds, 1e-9),
    }
    if evaluate:
        final = run_eval(run.steps, run.final_episodes)
        summary["eval"] = {k: v for k, v in final.items() if k not in ("kind", "step")}
    summary["eval_seconds"] = round(eval_clock[0], 2)
    save_training_state(ckpt, agent.modules(), {"adam": agent.optimizer}, {"step": run.steps})
    plot_learning_curve(
        out / METRICS_FILE,
        out / CURVE_FILE,
        title=f"{algo} on {meta['dataset']['name']}",
        data_return=meta["dataset"]["return_mean"],
    )
    _write_json(out / SUMMARY_FILE, summary)
    return summary


SEEDS_FILE = "seeds.json"


def train_seeds(
    dataset: Dataset | str | os.PathLike,
    algo: str,
    *,
    out: str | os.PathLike,
    seeds: list[int],
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Train ``algo`` once per seed into ``out/seed-<s>/``; return every seed's summary and the
    mean ± std of their final returns (also written to ``out/seeds.json``).

    Each seed's run is exactly :func:`train` with that seed (the same initialisation, batches
    and evaluation as alone): ``workers`` > 1 runs them in that many processes of one torch
    thread each, the fastest use of a small CPU (docs/performance.md: batching seeds' parameters
    in one process was measured and bought nothing here). ``kwargs`` are :func:`train`'s.
    ``resume`` continues unfinished seeds and keeps finished ones; ``overwrite`` replaces the
    whole set, swapped in when every seed is done. ``progress(seed, step)`` follows the runs.
    """

    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"give distinct seeds, got {seeds}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    ds = dataset if isinstance(dataset, Dataset) else load(dataset)
    out = Path(out)
    check_output(out, "runs", overwrite=overwrite, reuse=True, inputs=[ds.path], what="runs folder")
    cls = ALGORITHMS.get(algo)
    cls(
        ds.spec, state_dim_of(ds.spec), seed=seeds[0], **(kwargs.get("options") or {})
    )  # bad options: no folder
    fresh = not out.is_dir() or not any(out.iterdir())
    if not fresh and not overwrite and not resume:
        raise AlreadyExists(
            f"{out} holds runs already; pass --resume to continue them or --overwrite to start over"
        )
    work = partial_dir(out) if (overwrite and not fresh) else out
    work.mkdir(parents=True, exist_ok=True)
    write_marker(work, "runs")
    with _into_place(work, out, "runs"):
        jobs = [
            {
                "dataset": ds if ds.path is None else str(ds.path),
                "algo": algo,
                "out": str(work / f"seed-{s}"),
                "seed": s,
                "resume": resume,
                **kwargs,
            }
            for s in seeds
        ]
        summaries = _run_seed_jobs(jobs, workers if ds.path is not None else 1, progress)
        returns = [sm["eval"]["return_mean"] for sm in summaries if sm.get("eval")]
        result = {
            "algo": algo,
            "seeds": seeds,
            "runs": summaries,
            "return_mean": float(np.mean(returns)) if returns else None,
            "return_std": float(np.std(returns)) if returns else None,
        }
        _write_json(work / SEEDS_FILE, result)
    return result


def _train_job(job: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    """One seed of :func:`train_seeds` (a plain function, so worker processes can run it)."""
    if threads:
        torch.set_num_threads(threads)
    job = dict(job)
    out = Path(job["out"])
    if job.get("resume") and (out / SUMMARY_FILE).is_file():
        done = json.loads((out / SUMMARY_FILE).read_text())
        if done.get("steps") == job.get("steps", 10_000):
            return done  # finished with these settings: kept
    job["resume"] = bool(job.get("resume")) and out.exists()
    return train(job.pop("dataset"), job.pop("algo"), **job)


def _run_seed_jobs(jobs: list[dict[str, Any]], workers: int, progress: Any) -> list[dict[str, Any]]:
    if workers == 1 or len(jobs) == 1:
        results = []
        for job in jobs:
            step = [0]

            def advance(
                n: int = 1, _seed: int = job["seed"], _step: list[int] = step, **_: Any
            ) -> None:
                _step[0] += n
                if progress is not None:
                    progress(_seed, _step[0])

            results.append(_train_job({**job, "progress": advance}))
        return results

    n = min(workers, len(jobs))
    threads = max(1, (os.cpu_count() or 1) // n)
    pool = spawn_pool(n)
    futures = [pool.submit(_train_job, job, threads) for job in jobs]
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()  # a failed seed stops the others
            if progress is not None:
                for job in jobs:
                    progress(job["seed"], _last_step(Path(job["out"])))
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return [f.result() for f in futures]


def _last_step(run: Path) -> int:
    """The last logged training step of a run folder (0 before the first log line)."""
    try:
        lines = (run / METRICS_FILE).read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("kind") == "train":
            return int(row["step"])
    return 0


def _mix(seed: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _prepare_dir(out: Path, resume: bool, overwrite: bool) -> tuple[bool, Path]:
    """(whether the run starts from scratch, the folder to write it in).

    ``out`` must be new, empty or a marl-augment run (never the dataset, nor inside or above
    it). An overwrite writes the new run beside the old one, swapped in when complete.
    """
    if not out.exists() or not any(out.iterdir()):  # out was checked by train()
        out.mkdir(parents=True, exist_ok=True)
        write_marker(out, "run")
        return True, out
    if overwrite:
        work = partial_dir(out)
        write_marker(work, "run")
        return True, work
    if not (out / RUN_FILE).is_file():  # a run that stopped before its first record
        return True, out
    if (out / SUMMARY_FILE).is_file() and not resume:
        raise AlreadyExists(
            f"{out} holds a finished run; pass --overwrite to replace it "
            "(or --resume with more --steps to continue it)"
        )
    if not resume:
        raise AlreadyExists(
            f"{out} holds an unfinished run; pass --resume to continue it or "
            "--overwrite to start over"
        )
    if not (out / MARKER).is_file():  # made before markers existed
        write_marker(out, "run")
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    return False, out


def _dataset_facts(ds: Dataset) -> dict[str, Any]:
    s = ds.stats()
    return {
        "name": ds.path.name if ds.path else "in-memory",
        "path": str(ds.path) if ds.path else None,
        "fingerprint": ds.fingerprint,
        "env_id": ds.spec.env_id,
        "episodes": s["episodes"],
        "transitions": s["transitions"],
        "return_mean": s.get("return_mean", 0.0),
        "synthetic_episodes": s["synthetic_episodes"],
    }


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float))
    tmp.replace(path)


class _Metrics:
    """Appends JSON lines; on resume, drops lines written after the checkpoint it resumes from."""

    def __init__(self, path: Path, keep_until: int) -> None:
        self.path = path
        if path.exists():
            rows = read_metrics(path)
            kept = [
                r
                for r in rows
                if r["step"] < keep_until or (r["step"] == keep_until and keep_until > 0)
            ]
            path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        else:
            path.write_text("")

    def write(self, row: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row, default=float) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` (or of the run folder's)."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS_FILE
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def plot_learning_curve(
    metrics_path: Path, out: Path, *, title: str = "", data_return: float | None = None
) -> Path:
    """Evaluation return (and win rate) and training loss against updates, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    ev = [r for r in rows if r["kind"] == "eval"]
    tr = [r for r in rows if r["kind"] == "train"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    if ev:
        a1.plot([r["step"] for r in ev], [r["return_mean"] for r in ev], marker="o", label="policy")
        if data_return is not None:
            a1.axhline(data_return, ls="--", c="grey", label="dataset mean")
        a1.set_xlabel("updates")
        a1.set_ylabel("evaluation return")
        a1.legend(loc="lower right")
    if tr:
        a2.plot([r["step"] for r in tr], [r["loss"] for r in tr])
        a2.set_xlabel("updates")
        a2.set_ylabel("training loss")
        a2.set_yscale("log" if all(r["loss"] > 0 for r in tr) else "linear")
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    return out
