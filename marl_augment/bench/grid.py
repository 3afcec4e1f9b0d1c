"""The benchmark as a plain product of configs, run stage by stage on an executor.

``plan(config)`` lists the cells (data → augment → train); ``run_benchmark`` computes the ones
not cached yet, one round per seed (each stage's cells in parallel on the executor, upstream
cells only when a training run needs them), and after each round writes ``results.jsonl`` (one
line per finished training run) and the report (``report.md``, plots).

Executors map :func:`marl_augment.bench.cells.run_cell` over cells:

- ``local`` (default): ``--workers`` spawned worker processes (one: in this process);
- ``ray``: Ray tasks on the cluster ``ray.init`` finds (``RAY_ADDRESS``, or a local instance).

Every cell runs torch on one thread, so a cell's result does not depend on the executor or on
how many cells run beside it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

from ..algos import ALGORITHMS
from ..augment import AUGMENTERS
from ..data.dataset import Dataset
from ..data.locate import load, resolve
from ..errors import ConfigError, MissingDependency, NotFound
from ..outputs import check_output, write_marker
from ..processes import spawn_pool, stop_pool
from .cells import (
    RESULT,
    AugmentConfig,
    Cell,
    DataConfig,
    TrainConfig,
    _fingerprint,
    gates_of,
    is_learned,
    run_cell,
    store_of,
)
from .config import ORIGINAL, BenchConfig, split_method
from .report import write_report

RESULTS_FILE = "results.jsonl"
#: beside a kept results.jsonl: the data cells its rows were trained on (``benchmark --keep``)
KEPT_DATA = "data"
CONFIG_FILE = "benchmark.json"
EXECUTORS = ("local", "ray")


def plan(cfg: BenchConfig) -> tuple[list[Cell], list[Cell], list[Cell]]:
    """The grid's data, augment and train cells."""

    data: list[Cell] = []
    for scenario in cfg.scenarios:
        for q in cfg.qualities:
            if cfg.behaviour == "scripted":
                made: dict[str, Any] = {"episodes": cfg.episodes}
            elif scenario.startswith("smax:"):
                made = {
                    "behaviour": "learned",
                    "transitions": cfg.transitions,
                    "behaviour_options": cfg.behaviour_options,
                }
            else:  # continuous: MATD3, with the env's args
                made = {
                    "behaviour": "learned",
                    "learner": "matd3",
                    "transitions": cfg.transitions,
                    "behaviour_options": cfg.matd3_for(scenario),
                    "env_args": cfg.env_args.get(scenario, {}),
                }
            data.append(
                Cell(
                    DataConfig(
                        scenario=scenario,
                        quality=q,
                        collect_seed=0,
                        subsample=cfg.subsample,
                        subsample_seed=0,
                        **made,
                    ),
                    {"dataset": f"{scenario} {q}", "env_id": scenario},
                )
            )
    for name in cfg.datasets:
        path = resolve(name)
        fp, env_id = _fingerprint_and_env(path)
        data.append(
            Cell(
                DataConfig(
                    dataset=str(path), fingerprint=fp, subsample=cfg.subsample, subsample_seed=0
                ),
                {"dataset": Path(name).name.removesuffix(".zarr"), "env_id": env_id},
            )
        )
    augment: list[Cell] = []
    train: list[Cell] = []
    for d in data:
        for method in cfg.methods:
            for seed in cfg.seeds:
                a = None
                if method != ORIGINAL:
                    name, variant = split_method(method)
                    shared = cfg.fit_per_seed or not is_learned(name)
                    a = Cell(
                        AugmentConfig(
                            data=d.key,
                            method=name,
                            scale=cfg.scale,
                            seed=seed,
                            options={**cfg.method_options.get(name, {}), **variant},
                            fit_seed=None if shared else 0,
                            version=_version(AUGMENTERS, name),
                        ),
                        {**d.labels, "method": method, "seed": seed},
                    )
                    augment.append(a)
                for algo in cfg.algos:
                    name, variant = split_method(algo)
                    options = {**cfg.algo_options.get(name, {}), **variant}
                    if a is None:  # no synthetic episodes to mix in: the plain algorithm's run
                        options.pop("synthetic_share", None)
                    train.append(
                        Cell(
                            TrainConfig(
                                data=d.key,
                                augment=a.key if a else None,
                                algo=name,
                                options=options,
                                steps=cfg.steps,
                                seed=seed,
                                eval_every=cfg.eval_every,
                                eval_episodes=cfg.eval_episodes,
                                env_id=d.labels["env_id"],
                                shifted_env_args=cfg.shifted_env_args.get(d.labels["env_id"])
                                or None,
                                version=_version(ALGORITHMS, name),
                            ),
                            {**d.labels, "method": method, "algo": algo, "seed": seed},
                        )
                    )
    return data, augment, train


def _version(registry, name: str) -> int | None:
    """The code version of a method or algorithm for its cells' keys; version 1 is left out, so
    caches made before versions existed stay valid for code that has not changed since."""
    v = int(getattr(registry.get(name), "version", 1))
    return None if v == 1 else v


def _fingerprint_and_env(path: Path) -> tuple[str, str]:

    ds = Dataset.open(path, validate=False, lazy=True)
    return str(ds.fingerprint), ds.spec.env_id


def run_benchmark(
    cfg: BenchConfig,
    work: str | os.PathLike,
    *,
    executor: str = "local",
    workers: int = 1,
    device: str | None = None,
    ray_address: str | None = None,
    progress: Callable[[str, int, int], Any] | None = None,
    report: bool = True,
    restore: str | os.PathLike | None = None,
    compute: bool = True,
    notify: Callable[[str], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run (or resume) the grid in ``work``; return the training runs' result rows.

    The grid runs in rounds, one per seed: a round computes the data and augment cells its
    training runs need, then the runs; ``results.jsonl`` and the report are rewritten after each
    round from every finished run. So a run stopped after k rounds leaves a complete table over k
    seeds, and a long grid split over sessions is useful after each of them.

    ``restore``: a ``results.jsonl`` (or benchmark folder) kept from an earlier run of the same
    cells, e.g. committed to a repository; its rows count as finished training runs (their cells
    are matched by key), so a lost work folder costs only what those rows do not hold. Rows
    whose data differ from the data made here train again (``notify`` hears how many).
    ``compute=False`` runs no cell: it only rewrites ``results.jsonl`` and the report from the
    finished ones. ``progress(stage, done, total)`` is called as cells finish.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose {' or '.join(EXECUTORS)}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    kept = read_results(restore) if restore is not None else []
    work = check_output(work, "benchmark", overwrite=False, reuse=True, what="benchmark folder")
    if not work.is_dir() or not any(work.iterdir()):
        work.mkdir(parents=True, exist_ok=True)
        write_marker(work, "benchmark")
    (work / CONFIG_FILE).write_text(json.dumps(cfg.to_json(), indent=2))
    data, augment, train = plan(cfg)
    restore_rows(train, kept, work)
    if restore is not None:
        restore_data(data, Path(restore), work)
    dev = device or cfg.device
    run = _executor(executor, workers, ray_address)
    upstream = {c.key: c for c in (*data, *augment)}
    restored = [c for c in train if c.done(work) and c.result(work).get("restored")]
    if restored and compute:
        # restored rows count only on the data they were trained on: make their data here
        # (learned behaviour data can come out differently on another machine), then check
        keys = {c.config.data for c in restored}
        for _ in run(
            [c.to_json() for c in data if c.key in keys and not c.done(work)], str(work), dev
        ):
            if progress:
                progress("data", 1, 0)
        dropped = unrestore_mismatched(restored, upstream, work)
        if dropped and notify:
            notify(dropped)
    if progress:
        for name, cells in (("data", data), ("augment", augment), ("train", train)):
            progress(name, sum(c.done(work) for c in cells), len(cells))
    rows: list[dict[str, Any]] = []
    rounds = list(dict.fromkeys(c.labels["seed"] for c in train)) if compute else [None]
    for seed in rounds:
        # one run per key (an algorithm variant's run on the original data is the plain one's)
        todo_train = (
            list(
                {c.key: c for c in train if c.labels["seed"] == seed and not c.done(work)}.values()
            )
            if compute
            else []
        )
        needed = _needed(todo_train, upstream, work)
        for name, todo in (
            ("data", [c for c in data if c.key in needed]),
            ("augment", [c for c in augment if c.key in needed]),
            ("train", todo_train),
        ):
            for _ in run([c.to_json() for c in todo], str(work), dev):
                if progress:
                    progress(name, 1, 0)
        _backfill_fidelity(augment, work)
        rows = [{**c.result(work), **c.labels} for c in train if c.done(work)]
        tmp = work / (RESULTS_FILE + ".tmp")
        tmp.write_text("".join(json.dumps(r, default=float) + "\n" for r in rows))
        tmp.replace(work / RESULTS_FILE)
        if report and rows:
            fid = [c.result(work) for c in augment if c.done(work)]
            write_report(
                rows,
                work,
                cfg,
                timing=timing_table(timing(data, augment, train, work), workers),
                fidelity=[r for r in fid if r.get("fidelity")],
            )
    return rows


def _group(c: Cell) -> str:
    if c.kind == "data":
        return "data: " + (
            "learned behaviour"
            if c.config.behaviour == "learned"
            else "scripted"
            if c.config.scenario is not None
            else "explicit dataset"
        )
    if c.kind == "augment":
        return f"augment: {c.labels['method']}"
    return f"train: {c.config.algo}"


def timing(
    data: list[Cell], augment: list[Cell], train: list[Cell], work: Path
) -> list[dict[str, Any]]:
    """Where the grid's time goes: per kind of cell (data, augment per method, train per
    algorithm) the finished and remaining cells, the mean wall seconds of a finished one
    (training split into updates and evaluation) and the estimate for the remaining ones."""
    groups: dict[str, dict[str, Any]] = {}
    for c in (*data, *augment, *train):
        g = groups.setdefault(
            _group(c), {"group": _group(c), "done": 0, "todo": 0, "seconds": [], "eval_seconds": []}
        )
        if not c.done(work):
            g["todo"] += 1
            continue
        g["done"] += 1
        r = c.result(work)
        # cells finished before "seconds" was recorded: their own clocks, near enough
        secs = r.get("seconds", r.get("augment_seconds", r.get("train_seconds")))
        if secs is not None and not r.get("restored"):
            g["seconds"].append(float(secs))
            if r.get("eval_seconds") is not None:
                g["eval_seconds"].append(float(r["eval_seconds"]))
    out = []
    for g in groups.values():
        mean = sum(g["seconds"]) / len(g["seconds"]) if g["seconds"] else None
        ev = sum(g["eval_seconds"]) / len(g["eval_seconds"]) if g["eval_seconds"] else None
        out.append(
            {
                "group": g["group"],
                "done": g["done"],
                "todo": g["todo"],
                "mean_seconds": mean,
                "mean_eval_seconds": ev,
                "todo_seconds": None if mean is None else mean * g["todo"],
                "measured": len(g["seconds"]),
            }
        )
    return out


def timing_table(rows: list[dict[str, Any]], workers: int) -> str:
    """Markdown of :func:`timing`, with the remaining time at ``workers`` cells at once."""

    def hms(s: float | None) -> str:
        if s is None:
            return "–"
        return (
            f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"
        )

    lines = [
        "| cells | finished | to do | mean per cell | of it evaluation | to do (one process) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['group']} | {r['done']} | {r['todo']} | {hms(r['mean_seconds'])} | "
            f"{hms(r['mean_eval_seconds'])} | {hms(r['todo_seconds'])} |"
        )
    known = [r["todo_seconds"] for r in rows if r["todo_seconds"] is not None]
    unknown = [r["group"] for r in rows if r["todo"] and r["todo_seconds"] is None]
    total = sum(known)
    note = (
        f"Remaining: about {hms(total / workers)} of wall time at {workers} cells at once "
        f"({hms(total)} in one process)"
    )
    if unknown:
        note += f", not counting {', '.join(unknown)} (no finished cell to time yet)"
    return "\n".join(lines) + "\n\n" + note + "."


def _backfill_fidelity(augment: list[Cell], work: Path) -> None:
    """Fidelity gates for finished augment cells made before the cells computed them."""

    for c in augment:
        if not c.done(work):
            continue
        r = c.result(work)
        if "fidelity" in r or not store_of(work, c.key).exists():
            continue
        r["fidelity"] = gates_of(load(store_of(work, c.key)))
        tmp = c.folder(work) / (RESULT + ".tmp")
        tmp.write_text(json.dumps(r, indent=2, default=float))
        tmp.replace(c.folder(work) / RESULT)


def _needed(todo: list[Cell], upstream: dict[str, Cell], work: Path) -> set[str]:
    """Keys of the unfinished data and augment cells the training cells ``todo`` depend on."""
    keys: set[str] = set()
    for c in todo:
        for k in (c.config.augment, c.config.data):
            if k is None or upstream[k].done(work):
                continue
            keys.add(k)
            if upstream[k].kind == "augment" and not upstream[upstream[k].config.data].done(work):
                keys.add(upstream[k].config.data)
    return keys


def restore_rows(train: list[Cell], rows: list[dict[str, Any]], work: Path) -> int:
    """Mark the training cells whose finished rows are in ``rows`` as done; return how many."""
    by_key = {r.get("key"): r for r in rows}
    n = 0
    for c in train:
        r = by_key.get(c.key)
        if r is None or c.done(work):
            continue
        folder = c.folder(work)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "cell.json").write_text(json.dumps(c.to_json(), indent=2))
        tmp = folder / (RESULT + ".tmp")
        tmp.write_text(json.dumps({**r, "restored": True}, indent=2, default=float))
        tmp.replace(folder / RESULT)
        n += 1
    return n


def restore_data(data: list[Cell], restore: Path, work: Path) -> int:
    """Copy kept data cells (``data/<cell key>/`` next to the restored ``results.jsonl``, as
    :func:`keep_data` writes them) into ``work``, so the grid goes on with the very data its
    restored rows were trained on instead of making it again; returns how many."""
    kept = (restore if restore.is_dir() else restore.parent) / KEPT_DATA
    n = 0
    for c in data:
        src = kept / c.key
        if c.done(work) or not (src / RESULT).is_file():
            continue

        Dataset.open(src / "store.zarr", validate=True)  # a damaged copy: one line, no cell
        folder = c.folder(work)
        tmp = folder.with_name(folder.name + ".restoring")
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        res = json.loads((tmp / RESULT).read_text())
        (tmp / RESULT).write_text(
            json.dumps({**res, "store": str(folder / "store.zarr")}, indent=2)
        )
        if folder.exists():
            shutil.rmtree(folder)  # an unfinished cell of ours
        tmp.replace(folder)
        n += 1
    return n


def keep_results(work: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Copy what a benchmark's table is made of into ``out`` (e.g. a folder of a repository):
    ``results.jsonl``, the report and its plots, and the finished data cells (``data/``), so
    ``--restore out`` later goes on with the same data and rows on any machine."""
    work = Path(work)
    if not (work / RESULTS_FILE).is_file():
        raise NotFound(
            f"no benchmark results in {work} (expected {RESULTS_FILE}); run the benchmark first"
        )
    out = check_output(
        out,
        "benchmark-kept",
        overwrite=False,
        reuse=True,
        inputs=[work],
        what="kept results folder",
    )
    out.mkdir(parents=True, exist_ok=True)
    write_marker(out, "benchmark-kept", benchmark=str(work))
    for f in [work / RESULTS_FILE, work / "report.md", work / CONFIG_FILE, *work.glob("*.png")]:
        if f.is_file():
            tmp = out / (f.name + ".tmp")
            shutil.copyfile(f, tmp)
            tmp.replace(out / f.name)
    keep_data(work, out)
    return out


def keep_data(work: str | os.PathLike, out: str | os.PathLike) -> int:
    """Copy a benchmark's finished data cells into ``out/data/`` (beside a kept
    ``results.jsonl``), for :func:`restore_data`; returns how many."""
    src, dst = Path(work) / "cells", Path(out) / KEPT_DATA
    dst.mkdir(parents=True, exist_ok=True)
    n = 0
    for cell in sorted(src.glob("data-*")):
        if (cell / RESULT).is_file() and not (dst / cell.name / RESULT).is_file():
            tmp = dst / (cell.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(cell, tmp, ignore=shutil.ignore_patterns("*.lock"))
            tmp.replace(dst / cell.name)
            n += 1
    return n


def unrestore_mismatched(restored: list[Cell], upstream: dict[str, Cell], work: Path) -> str:
    """Undo the restoration of rows whose data differ from the data cells made here, so those
    runs train again; returns a one-line account ('' when every row matched).

    A row written since rows carry it has its data's fingerprint; an older row is checked
    through the rows on the original data of the same data cell (their dataset return and
    episode count are the data cell's own). Rows whose data cell is not made are left alone."""

    verdict: dict[str, bool] = {}
    made: dict[str, str | None] = {}  # each data cell's fingerprint, read once
    for c in restored:
        d = upstream.get(c.config.data)
        if d is None or not d.done(work):
            continue
        row, facts = c.result(work), d.result(work)
        if row.get("data_fingerprint") is not None:
            if d.key not in made:
                made[d.key] = _fingerprint(store_of(work, d.key))
            same = row["data_fingerprint"] == made[d.key]
        elif c.config.augment is None:
            same = (
                row.get("dataset_episodes") == facts.get("episodes")
                and abs(
                    row.get("dataset_return", float("nan")) - facts.get("return_mean", float("nan"))
                )
                <= 1e-9
            )
        else:
            continue
        verdict[d.key] = verdict.get(d.key, True) and same
    bad = {k for k, ok in verdict.items() if not ok}
    dropped = [c for c in restored if c.config.data in bad]
    for c in dropped:
        (c.folder(work) / RESULT).unlink()
    if not dropped:
        return ""
    names = sorted({upstream[k].labels.get("dataset", k) for k in bad})
    return (
        f"{len(dropped)} restored runs on {', '.join(names)} train again: their data differ "
        "from the data made here"
    )


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a benchmark's ``results.jsonl`` (the file or its folder)."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    if not p.is_file():
        raise NotFound(
            f"no benchmark results at {path} (expected {RESULTS_FILE}); run 'marl-augment "
            "benchmark' first"
        )
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


# -- executors -------------------------------------------------------------------------------------
Runner = Callable[[list[dict[str, Any]], str, str], Iterator[dict[str, Any]]]


def _executor(kind: str, workers: int, ray_address: str | None) -> Runner:
    if kind == "ray":
        return _ray_runner(ray_address, workers)
    return _local_runner(workers)


def _local_runner(workers: int) -> Runner:
    def run(cells: list[dict[str, Any]], work: str, device: str) -> Iterator[dict[str, Any]]:
        if not cells:
            return
        if workers == 1 or len(cells) == 1:
            for c in cells:
                yield run_cell(c, work, device)
            return

        pool = spawn_pool(min(workers, len(cells)))
        futures = [pool.submit(run_cell, c, work, device) for c in cells]
        try:
            for f in as_completed(futures):
                yield f.result()
        except BaseException:
            stop_pool(pool)  # interrupted or a cell failed; finished cells stay
            raise
        pool.shutdown(wait=True)

    return run


def _ray_runner(address: str | None, workers: int) -> Runner:
    try:
        import ray
    except ImportError:
        raise MissingDependency("ray", "ray", "--executor ray") from None

    def run(cells: list[dict[str, Any]], work: str, device: str) -> Iterator[dict[str, Any]]:
        if not cells:
            return
        if not ray.is_initialized():
            ray.init(
                address=address,
                num_cpus=None if address else workers,
                include_dashboard=False,
                log_to_driver=False,
                ignore_reinit_error=True,
            )
        task = ray.remote(num_cpus=1)(run_cell)
        pending = [task.remote(c, work, device) for c in cells]
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            yield ray.get(ready[0])

    return run
