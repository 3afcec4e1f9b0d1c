"""The benchmark: plan, caching, resuming, executors (local, Ray), reports, compare, quickstart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from marl_augment.bench import load_config, plan, read_results, run_benchmark
from marl_augment.bench.report import (
    aggregates,
    iqm,
    measures_table,
    performance_profile,
    probability_of_improvement,
    probability_of_improvement_ci,
    run_measures,
    stratified_bootstrap_ci,
    table1,
)
from marl_augment.errors import AlreadyExists, ConfigError

from .test_cli import assert_user_error, run

TINY = dict(
    scenarios=["smax:3m"],
    qualities=["medium"],
    episodes=24,
    methods=["original", "rad-s"],
    algos=["bc"],
    seeds=[0],
    steps=12,
    eval_every=6,
    eval_episodes=4,
    device="cpu",
)


def mtimes(work) -> dict[str, float]:
    return {p.parent.name: p.stat().st_mtime_ns for p in (work / "cells").glob("*/result.json")}


def test_plan_is_the_product_and_keys_follow_settings():
    cfg = load_config(
        None,
        **{
            **TINY,
            "methods": ["original", "rad-s", "eaq"],
            "algos": ["bc", "qmix-cql"],
            "seeds": [0, 1],
            "qualities": ["poor", "medium"],
        },
    )
    data, aug, train = plan(cfg)
    assert len(data) == 2 and len(aug) == 2 * 2 * 2 and len(train) == 2 * 3 * 2 * 2
    assert len({c.key for c in train}) == len(train)
    again = plan(
        load_config(
            None,
            **{
                **TINY,
                "methods": ["original", "rad-s", "eaq"],
                "algos": ["bc", "qmix-cql"],
                "seeds": [0, 1],
                "qualities": ["poor", "medium"],
                "steps": 99,
            },
        )
    )
    assert [c.key for c in again[0]] == [c.key for c in data]  # data unchanged
    assert [c.key for c in again[1]] == [c.key for c in aug]  # augmenters unchanged
    assert not {c.key for c in again[2]} & {c.key for c in train}  # every training run changed


def test_a_code_version_bump_recomputes_only_that_methods_cells(monkeypatch):
    from marl_augment.augment import AUGMENTERS

    cfg = load_config(None, **{**TINY, "methods": ["original", "rad-s", "rad-m"], "algos": ["bc"]})
    _, aug, train = plan(cfg)
    monkeypatch.setattr(AUGMENTERS.get("rad-m"), "version", 7)
    _, aug2, train2 = plan(cfg)
    changed = {c.labels["method"] for c, d in zip(aug, aug2) if c.key != d.key}
    assert changed == {"rad-m"}
    assert {c.labels["method"] for c, d in zip(train, train2) if c.key != d.key} == {"rad-m"}
    assert AUGMENTERS.get("eaq").version >= 2  # reward calibration changed EAQ


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown benchmark setting"):
        load_config(None, scenario=["smax:3m"])
    with pytest.raises(Exception, match="unknown augmenter 'eaqq'"):
        load_config(None, methods=["eaqq"])
    with pytest.raises(ConfigError, match="makes datasets on smax:<map>, mamujoco:"):
        load_config(None, scenarios=["smac:3m"])
    bad = tmp_path / "b.toml"
    bad.write_text("seeds = [0,")
    with pytest.raises(Exception, match="not valid TOML"):
        load_config(bad)
    good = tmp_path / "g.toml"
    good.write_text('algos = ["bc"]\nseeds = [1, 2]\n[method_options.rad-s]\nalpha = 0.9\n')
    cfg = load_config(good, seeds=[3])
    assert (
        cfg.algos == ["bc"] and cfg.seeds == [3] and cfg.method_options == {"rad-s": {"alpha": 0.9}}
    )


def test_flags_that_run_part_of_a_config_drop_the_options_of_what_they_leave_out():
    configs = Path(__file__).parent.parent / "benchmarks" / "configs"
    path = configs / "continuous-learners.toml"
    cfg = load_config(path, scenarios=["mamujoco:2x3-HalfCheetah"], algos=["td3-bc"])
    assert cfg.scenarios == ["mamujoco:2x3-HalfCheetah"] and cfg.algos == ["td3-bc"]
    assert set(cfg.matd3_options) == {"mamujoco:2x3-HalfCheetah"}
    assert cfg.shifted_env_args == {}
    full = load_config(path)
    assert cfg.matd3_for("mamujoco:2x3-HalfCheetah") == full.matd3_for("mamujoco:2x3-HalfCheetah")
    small = configs / "continuous-learners-small.toml"
    part = load_config(small, algos=["dom2:hidden=64", "td3-bc"])  # a variant keeps its options
    assert part.algo_options == {"dom2": load_config(small).algo_options["dom2"]}
    # options for entries the file never listed are still an error
    with pytest.raises(ConfigError, match="matd3_options for"):
        load_config(
            None,
            scenarios=["mpe:simple_spread"],
            behaviour="learned",
            matd3_options={"mpe:simple_tag": {}},
        )


def test_rerun_and_interrupted_run_recompute_nothing_finished(tmp_path):
    cfg = load_config(None, **TINY)
    work = tmp_path / "bench"

    class Stop(Exception):
        pass

    def stop_after_first_train(stage, n, total):
        if stage == "train" and total == 0:  # a train cell just finished
            raise Stop

    with pytest.raises(Stop):
        run_benchmark(cfg, work, workers=1, progress=stop_after_first_train)
    first = mtimes(work)
    assert sum(k.startswith("train-") for k in first) == 1 and not (work / "results.jsonl").exists()
    rows = run_benchmark(cfg, work, workers=1)
    second = mtimes(work)
    assert all(second[k] == v for k, v in first.items())  # nothing finished was redone
    assert sum(k.startswith("train-") for k in second) == 2
    assert [r["method"] for r in rows] == ["original", "rad-s"]
    assert all(np.isfinite(r["return_mean"]) and r["curve"][0][0] == 0 for r in rows)
    assert read_results(work) == json.loads(json.dumps(rows))
    assert (
        (work / "report.md").is_file()
        and (work / "iqm.png").is_file()
        and (work / "learning_curves.png").is_file()
    )
    assert (work / "profiles.png").is_file() and "P(better than original)" in (
        work / "report.md"
    ).read_text()
    assert "## Fidelity gates of the augmented datasets" in (work / "report.md").read_text()
    # a changed setting recomputes only what it touches
    run_benchmark(load_config(None, **{**TINY, "steps": 8}), work, workers=1)
    third = mtimes(work)
    assert all(third[k] == v for k, v in second.items())
    assert len(third) == len(second) + 2  # two new training runs only


def test_rounds_go_seed_by_seed_and_committed_rows_restore_a_lost_folder(tmp_path):
    """Seed 0's round finishes (rows and report written) before seed 1's cells start; a new
    folder given the rows of a lost one recomputes only the runs the rows do not hold."""
    cfg = load_config(None, **{**TINY, "seeds": [0, 1]})
    work = tmp_path / "bench"
    started: list[tuple[str, int]] = []

    class Stop(Exception):
        pass

    def stop_in_second_round(stage, n, total):
        if total == 0:
            done = json.loads(
                max(
                    (work / "cells").glob("*/result.json"), key=lambda p: p.stat().st_mtime_ns
                ).read_text()
            )
            started.append((done["kind"], done.get("seed", 0)))
            if done["kind"] == "train" and done["seed"] == 1:
                raise Stop

    with pytest.raises(Stop):
        run_benchmark(cfg, work, workers=1, progress=stop_in_second_round)
    seeds = [s for _, s in started]
    assert seeds == sorted(seeds) and seeds[-1] == 1  # seed 0 entirely before seed 1
    partial = read_results(work)
    assert {r["seed"] for r in partial} == {0} and len(partial) == 2
    assert "2 training runs" in (work / "report.md").read_text()
    # the folder is lost; its rows were kept (e.g. committed) and restore the finished runs
    kept = tmp_path / "kept.jsonl"
    kept.write_text((work / "results.jsonl").read_text())
    fresh = tmp_path / "fresh"
    rows = run_benchmark(cfg, fresh, workers=1, restore=kept)
    trained = [p for p in (fresh / "cells").glob("train-*/run")]
    assert len(rows) == 4 and len(trained) == 2  # only seed 1's runs were trained
    assert [r["return_mean"] for r in rows if r["seed"] == 0] == [r["return_mean"] for r in partial]
    assert not any((fresh / "cells").glob("augment-*")) or all(
        json.loads((p / "result.json").read_text())["seed"] == 1
        for p in (fresh / "cells").glob("augment-*")
    )
    assert all(r["data_fingerprint"] for r in rows)
    # kept with its data cells (benchmark --keep), a folder restores the very same data
    from marl_augment.bench.grid import keep_results

    kept_dir = keep_results(work, tmp_path / "kept")
    assert (kept_dir / "results.jsonl").is_file() and (kept_dir / "report.md").is_file()
    assert len(list((kept_dir / "data").glob("data-*/store.zarr"))) == 1
    again = tmp_path / "again"
    told: list[str] = []
    rows2 = run_benchmark(cfg, again, workers=1, restore=kept_dir, notify=told.append)
    assert len(list((again / "cells").glob("train-*/run"))) == 2 and not told
    assert json.loads(next((again / "cells").glob("data-*/result.json")).read_text())[
        "store"
    ] == str(next((again / "cells").glob("data-*")) / "store.zarr")
    assert [r["return_mean"] for r in rows2 if r["seed"] == 0] == [
        r["return_mean"] for r in partial
    ]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("a researcher's file")
    with pytest.raises(AlreadyExists, match="was not made by marl-augment"):
        keep_results(work, tmp_path / "mine")
    # rows of other data (behaviour data regenerated differently on another machine) train
    # again, told in one line; rows written before they carried a fingerprint are checked by
    # the dataset return of their runs on the original data
    (tmp_path / "same.jsonl").write_text(
        "".join(
            json.dumps({k: v for k, v in r.items() if k != "data_fingerprint"}) + "\n"
            for r in partial
        )
    )
    told: list[str] = []
    run_benchmark(
        cfg, tmp_path / "same", workers=1, restore=tmp_path / "same.jsonl", notify=told.append
    )
    assert len(list((tmp_path / "same" / "cells").glob("train-*/run"))) == 2 and not told
    for name, tamper in (
        ("fp", lambda r: {**r, "data_fingerprint": "0" * 16}),
        (
            "old",
            lambda r: {
                **{k: v for k, v in r.items() if k != "data_fingerprint"},
                "dataset_return": r["dataset_return"] + 0.01,
            },
        ),
    ):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps(tamper(r) if r["seed"] == 0 else r) + "\n" for r in partial)
        )
        told: list[str] = []
        run_benchmark(
            cfg, tmp_path / name, workers=1, restore=tmp_path / f"{name}.jsonl", notify=told.append
        )
        assert len(list((tmp_path / name / "cells").glob("train-*/run"))) == 4, name
        assert told == [
            f"2 restored runs on {partial[0]['dataset']} train again: their data "
            "differ from the data made here"
        ], told


def test_one_shared_fit_per_dataset_and_method_when_asked(tmp_path):
    """fit_per_seed = false: EAQ is fitted once (seed 0) and each seed samples its own
    episodes from that model; learned-augmenter cells of the default keep their keys."""
    base = {
        **TINY,
        "methods": ["original", "rad-s", "eaq"],
        "seeds": [0, 1],
        "method_options": {"eaq": {"train_steps": 4, "sample_steps": 2, "diffusion_steps": 4}},
    }
    per_seed = plan(load_config(None, **base))[1]
    shared_plan = plan(load_config(None, **{**base, "fit_per_seed": False}))[1]
    same = [a.key == b.key for a, b in zip(per_seed, shared_plan)]
    assert same == [c.labels["method"] == "rad-s" for c in per_seed]  # only EAQ's cells change
    cfg = load_config(None, **{**base, "fit_per_seed": False, "methods": ["eaq"], "algos": ["bc"]})
    run_benchmark(cfg, tmp_path / "w", report=False)
    assert len(list((tmp_path / "w" / "fits").glob("eaq-*/model"))) == 1
    import marl_augment as ma

    stores = sorted((tmp_path / "w" / "cells").glob("augment-*/store.zarr"))
    assert len(stores) == 2
    a, b = (ma.load(p).where("synthetic") for p in stores)
    assert len(a) == len(b) and not np.array_equal(a.columns["obs"], b.columns["obs"])


def test_local_workers_and_ray_give_the_same_results(tmp_path):
    """Worker processes (the default executor) and Ray tasks compute the same numbers."""
    pytest.importorskip("ray")
    import shutil

    import ray

    from marl_augment.outputs import write_marker

    cfg = load_config(None, **TINY)
    pooled = run_benchmark(cfg, tmp_path / "pooled", workers=2, report=False)
    data = next((tmp_path / "pooled" / "cells").glob("data-*"))
    shutil.copytree(
        data, tmp_path / "ray" / "cells" / data.name
    )  # the same data, not collected again
    write_marker(tmp_path / "ray", "benchmark")  # a folder seeded by hand is ours once marked
    try:
        on_ray = run_benchmark(cfg, tmp_path / "ray", executor="ray", workers=2, report=False)
    finally:
        ray.shutdown()

    def key(rows):
        return [(r["method"], r["algo"], r["seed"], r["return_mean"], r["curve"]) for r in rows]

    assert key(pooled) == key(on_ray)
    assert len({r["key"] for r in on_ray}) == 2


def test_table1_bold_avg_and_improvement():
    rows = []
    for d, base in (("smax:3m medium", 1.0), ("smax:8m medium", 0.8)):
        for m, gain in (("original", 0.0), ("eaq", 0.2)):
            for s in (0, 1):
                rows.append(
                    {
                        "dataset": d,
                        "algo": "qmix-cql",
                        "method": m,
                        "seed": s,
                        "return_mean": base + gain + 0.1 * s,
                        "normalised_return": (base + gain + 0.1 * s) / 2,
                    }
                )
    t = table1(rows, ["original", "eaq"], ["qmix-cql"])
    lines = t.splitlines()
    assert lines[0] == "| dataset | qmix-cql · original | qmix-cql · eaq |"
    assert lines[2] == "| smax:3m medium | 1.050 ± 0.050 | **1.250 ± 0.050** |"
    avg_orig, avg_eaq = (1.05 + 0.85) / 4, (1.25 + 1.05) / 4
    assert lines[4] == f"| AVG medium (normalised) | {avg_orig:.3f} | {avg_eaq:.3f} |"
    assert lines[5] == (
        f"| vs original, medium | – | {avg_eaq - avg_orig:+.3f} "
        f"({100 * (avg_eaq - avg_orig) / avg_orig:+.1f}%) |"
    )
    aggs = aggregates(rows)
    assert [(g["method"], g["runs"]) for g in aggs] == [("original", 4), ("eaq", 4)]
    assert aggs[1]["ci_low"] <= aggs[1]["iqm"] <= aggs[1]["ci_high"]


def test_final_best_and_last_third_tell_collapse_from_peak():
    # original peaks early and collapses; eaq holds: final and last third differ, best barely
    collapse = [(1000, 1.26), (2000, 1.05), (3000, 0.78), (6000, 0.62)]
    holds = [(1000, 0.98), (2000, 1.24), (3000, 1.31), (6000, 1.30)]
    rows = [
        {
            "dataset": "smax:3m poor",
            "algo": "qmix-cql",
            "method": m,
            "seed": 0,
            "return_mean": c[-1][1],
            "normalised_return": c[-1][1] / 2,
            "curve": c,
        }
        for m, c in (("original", collapse), ("eaq", holds))
    ]
    m = run_measures(rows[0])
    assert m == {"final": 0.31, "best": 0.63, "last_third": 0.31}
    # an affine reference (continuous scenarios: the behaviour run's range) maps the curve too
    shifted = {**rows[0], "reference_returns": [-1.0, 3.0], "normalised_return": (0.62 + 1) / 4}
    assert run_measures(shifted) == pytest.approx(
        {"final": 0.405, "best": (1.26 + 1) / 4, "last_third": 0.405}
    )
    assert run_measures(rows[1])["best"] == 1.31 / 2
    t = measures_table(rows, ["original", "eaq"]).splitlines()
    assert t[2].startswith("| qmix-cql · original | 1 | 0.310 | – | 0.630 | – |")
    assert t[3].startswith(
        "| qmix-cql · eaq | 1 | 0.650 | +0.340 (+109.7%) | 0.655 | +0.025 (+4.0%)"
    )


def test_iqm_and_bootstrap():
    from scipy.stats import trim_mean

    rng = np.random.default_rng(0)
    for n in (1, 4, 7, 10, 33):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(trim_mean(x, 0.25))
    lo, hi = stratified_bootstrap_ci([np.arange(10.0), np.arange(10.0) + 100])
    assert lo < iqm(np.r_[np.arange(10.0), np.arange(10.0) + 100]) < hi
    assert stratified_bootstrap_ci([np.ones(5)]) == (1.0, 1.0)


def test_cli_benchmark_compare_and_quickstart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfgfile = tmp_path / "tiny.json"
    cfgfile.write_text(json.dumps(TINY))
    r = run("benchmark", cfgfile, "--out", "b1", "--workers", "1")
    assert r.exit_code == 0, r.output
    assert "smax:3m medium" in r.output and (tmp_path / "b1" / "report.md").is_file()
    assert "## Where the time goes" in (tmp_path / "b1" / "report.md").read_text()
    r = run("benchmark", cfgfile, "--out", "b1", "--dry-run", "--restore", "b1", "--seeds", "0-1")
    assert "train       4 cells, 2 cached" in r.output and "restore  2 of 2 rows" in r.output
    assert "train: bc" in r.output and "Remaining: about" in r.output
    (tmp_path / "b1" / "report.md").unlink()
    r = run(
        "benchmark",
        cfgfile,
        "--out",
        "b1",
        "--report-only",
        "--seeds",
        "0-1",  # seed 1: not run
        "--keep",
        "kept",
    )
    assert r.exit_code == 0, r.output
    assert len(read_results(tmp_path / "b1")) == 2 and (tmp_path / "b1" / "report.md").is_file()
    assert len(read_results(tmp_path / "kept")) == 2 and any((tmp_path / "kept" / "data").iterdir())
    r = run("benchmark", cfgfile, "--out", "b2", "--workers", "1", "--steps", "6", "--json")
    assert r.exit_code == 0, r.output
    r = run("compare", "b1", "b2", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert {(x["method"], x["seeds_a"], x["seeds_b"]) for x in res["rows"]} == {
        ("original", 1, 1),
        ("rad-s", 1, 1),
    }
    # datasets: the real store and the RAD-s augmented one
    real = next((tmp_path / "b1" / "cells").glob("data-*/store.zarr"))
    aug = next((tmp_path / "b1" / "cells").glob("augment-*/store.zarr"))
    r = run("compare", real, aug, "--out", "plots", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["stats"][1]["synthetic_episodes"] == 5 * res["stats"][0]["episodes"]
    assert res["fidelity"]["real_episodes"] == res["stats"][0]["episodes"]
    assert (tmp_path / "plots" / "returns.png").is_file() and (
        tmp_path / "plots" / "tsne_obs.png"
    ).is_file()
    assert_user_error(run("compare", real, "b1"), "not both")
    assert_user_error(run("benchmark", "--method", "eaqq", "--out", "b3"), "unknown augmenter")
    assert_user_error(run("benchmark", "--seeds", "0,x"), "seeds", "0-4")
    r = run(
        "quickstart",
        "--episodes",
        "16",
        "--steps",
        "6",
        "--fit-steps",
        "4",
        "--workers",
        "1",
        "--device",
        "cpu",
    )
    assert r.exit_code == 0, r.output
    report = (tmp_path / "marl-augment-quickstart" / "report.md").read_text()
    assert "| dataset | qmix-cql · original | qmix-cql · rad-s | qmix-cql · eaq |" in report
    assert len(read_results(tmp_path / "marl-augment-quickstart")) == 3


def test_paper_protocol_configs_load_and_plan():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"
    for name, runs in (("smax-paper.toml", 540), ("smax-paper-small.toml", 160)):
        cfg = load_config(root / name).check()
        assert cfg.behaviour == "learned" and cfg.steps == 15000 and len(cfg.seeds) == 5
        assert len(plan(cfg)[2]) == runs
    # the full run's generator option, fixed in advance, with the paper's sampling beside it
    augment = plan(load_config(root / "smax-paper.toml").check())[1]
    noising = {(c.config.method, c.config.options.get("partial_noise")) for c in augment}
    assert ("eaq", 0.2) in noising and ("eaq-q", 0.2) in noising and ("eaq", 1.0) in noising
    # every shipped config loads and plans (a config key renamed in code would break them)
    for path in sorted(root.glob("*.toml")):
        assert plan(load_config(path).check())[2], path.name
    cfg = load_config(root / "continuous-learners.toml").check()
    assert {"dom2", "omsd"} <= set(cfg.algos) and len(plan(cfg)[2]) == 450
    assert all(
        c.config.shifted_env_args == {"agent_speed_min": 0.3}
        for c in plan(cfg)[2]
        if c.config.env_id == "mpe:simple_spread"
    )


def test_cell_keys_of_kept_results_do_not_drift():
    """A change to how cells are described must not change their keys: the kept rows and data
    cells in docs/results/ would no longer match their cells, and every cache would be lost."""
    from pathlib import Path

    from marl_augment.bench.grid import KEPT_DATA

    root = Path(__file__).resolve().parents[1]
    kept = root / "docs" / "results" / "smax-paper-small"
    data, _, train = plan(load_config(root / "benchmarks" / "configs" / "smax-paper-small.toml"))
    rows = read_results(kept)
    assert rows and {r["key"] for r in rows} <= {c.key for c in train}
    assert {p.name for p in (kept / KEPT_DATA).iterdir()} <= {c.key for c in data}


def test_cells_travel_as_json_and_come_back_the_same():
    from pathlib import Path

    from marl_augment.bench.cells import Cell

    root = Path(__file__).resolve().parents[1] / "benchmarks" / "configs"
    data, augment, train = plan(load_config(root / "continuous-learners-small.toml"))
    for c in (data[0], augment[0], train[0], train[-1]):
        back = Cell.from_json(json.loads(json.dumps(c.to_json())))
        assert back.key == c.key and back.config == c.config and back.labels == c.labels
    with pytest.raises(ConfigError, match="not a benchmark cell"):
        Cell.from_json({"kind": "train", "config": {"data": "x"}})


def test_method_variants_are_separate_cells_with_their_options():
    cfg = load_config(None, **{**TINY, "methods": ["original", "eaq:lam=0.5", "eaq:lam=0.01"]})
    _, augment, train = plan(cfg.check())
    assert [(a.config.method, a.config.options, a.labels["method"]) for a in augment] == [
        ("eaq", {"lam": 0.5}, "eaq:lam=0.5"),
        ("eaq", {"lam": 0.01}, "eaq:lam=0.01"),
    ]
    assert len({a.key for a in augment}) == 2
    with pytest.raises(ConfigError, match="has no option"):
        load_config(None, **{**TINY, "methods": ["eaq:lamb=1"]}).check()
    with pytest.raises(ConfigError, match="methods repeat"):
        load_config(None, **{**TINY, "methods": ["rad-s", "rad-s"]}).check()


def test_learned_behaviour_data_cell(tmp_path, monkeypatch):
    pytest.importorskip("jaxmarl")
    from marl_augment.envs import behaviour

    # a tiny MAPPO run cannot be relied on to reach a band: accept any return here
    monkeypatch.setattr(behaviour, "QUALITY_BANDS", {"medium": (0.0, 1.0), "poor": (0.0, 1.0)})
    trained: list[str] = []
    real_train = behaviour.train_behaviour

    def counting(*a, **k):
        res = real_train(*a, **k)
        trained.append(res["train_seconds"])
        return res

    monkeypatch.setattr(behaviour, "train_behaviour", counting)
    opts = dict(
        total_steps=256,
        num_envs=8,
        rollout=16,
        minibatches=2,
        epochs=1,
        hidden=16,
        checkpoint_every=128,
        dense_until=0,
        eval_episodes=8,
    )
    cfg = load_config(
        None,
        **{
            **TINY,
            "behaviour": "learned",
            "transitions": 400,
            "subsample": 0.5,
            "behaviour_options": opts,
            "methods": ["original"],
            "qualities": ["poor", "medium"],
        },
    )
    rows = run_benchmark(cfg, tmp_path / "w", report=False)
    for data in (tmp_path / "w" / "cells").glob("data-*"):
        res = json.loads((data / "result.json").read_text())
        assert res["behaviour_checkpoint"].startswith("ckpt-") and res["full_transitions"] >= 400
        assert res["episodes"] == round(0.5 * res["full_episodes"])
    assert len(rows) == 2 and all(r["return_mean"] is not None for r in rows)
    # one behaviour learner for both qualities: the second data cell found it trained
    assert len(list((tmp_path / "w" / "behaviour").glob("smax-3m-*/checkpoints.jsonl"))) == 1
    assert len(trained) == 2 and min(trained) == 0.0 < max(trained)  # the second trained nothing


def test_best_variant_is_chosen_per_cell_and_marked_as_an_oracle(tmp_path):
    from marl_augment.bench.report import best_variant_rows, write_report

    rows = []
    for d, lam_best in (("3m poor", "eaq:lam=0.5"), ("3m medium", "eaq:lam=0.1")):
        for m in ("original", "eaq:lam=0.5", "eaq:lam=0.1", "rad-s"):
            for s in range(2):
                v = 1.2 if m == lam_best else 1.0
                rows.append(
                    {
                        "dataset": d,
                        "algo": "qmix-cql",
                        "method": m,
                        "seed": s,
                        "return_mean": v + 0.01 * s,
                        "normalised_return": (v + 0.01 * s) / 2,
                    }
                )
    oracle, names = best_variant_rows(rows)
    assert names == ["eaq (best variant)"]
    assert {(r["dataset"], r["picked"]) for r in oracle} == {
        ("3m poor", "eaq:lam=0.5"),
        ("3m medium", "eaq:lam=0.1"),
    }
    assert best_variant_rows([r for r in rows if r["method"] != "eaq:lam=0.1"]) == ([], [])
    from marl_augment.bench import load_config

    cfg = load_config(None, methods=["original", "eaq:lam=0.5", "eaq:lam=0.1", "rad-s"])
    text = write_report(rows, tmp_path, cfg).read_text()
    assert "## The paper's way: the best variant per cell" in text
    assert "qmix-cql · eaq (best variant)" in text


def test_probability_of_improvement_is_rliables():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    x = [rng.normal(0.6, 0.1, 5), np.array([0.5, 0.5, 0.7])]
    y = [rng.normal(0.5, 0.1, 5), np.array([0.5, 0.4, 0.6])]
    per_task = [mannwhitneyu(a, b).statistic / (len(a) * len(b)) for a, b in zip(x, y)]
    assert probability_of_improvement(x, y) == pytest.approx(np.mean(per_task))
    assert probability_of_improvement([np.array([1.0])], [np.array([1.0])]) == 0.5
    lo, hi = probability_of_improvement_ci(x, y, reps=500)
    assert 0 <= lo <= probability_of_improvement(x, y) <= hi <= 1
    rows = [
        {
            "dataset": d,
            "algo": "bc",
            "method": m,
            "seed": i,
            "return_mean": v,
            "normalised_return": v,
        }
        for d, xs, ys in (("a", x[0], y[0]), ("b", x[1], y[1]))
        for m, vals in (("eaq", xs), ("original", ys))
        for i, v in enumerate(vals)
    ]
    aggs = {g["method"]: g for g in aggregates(rows, ["original", "eaq"])}
    assert "p_improve" not in aggs["original"]
    assert aggs["eaq"]["p_improve"] == pytest.approx(np.mean(per_task))


def test_performance_profile():
    taus = np.array([0.0, 0.5, 1.0])
    assert performance_profile(np.array([0.2, 0.6, 0.9, 1.2]), taus).tolist() == [1.0, 0.75, 0.25]


def test_algorithm_variants_sweep_the_synthetic_share(tmp_path):
    """``algo:synthetic_share=…`` variants are their own training runs on augmented data; on the
    original data, which has no synthetic episodes, a variant's run is the plain algorithm's
    (one run, two rows, each with its own label)."""
    cfg = load_config(None, **{**TINY, "algos": ["bc", "bc:synthetic_share=0.5"]}).check()
    _, _, train = plan(cfg)
    by_label = {(c.labels["method"], c.labels["algo"]): c for c in train}
    assert by_label["rad-s", "bc:synthetic_share=0.5"].config.options == {"synthetic_share": 0.5}
    assert by_label["rad-s", "bc:synthetic_share=0.5"].config.algo == "bc"
    assert by_label["original", "bc:synthetic_share=0.5"].key == by_label["original", "bc"].key
    assert len({c.key for c in train}) == 3
    rows = run_benchmark(cfg, tmp_path / "bench", workers=1)
    assert sorted((r["method"], r["algo"]) for r in rows) == sorted(by_label)
    assert len(list((tmp_path / "bench" / "cells").glob("train-*/result.json"))) == 3
    with pytest.raises(ConfigError, match="has no option"):
        load_config(None, **{**TINY, "algos": ["bc:sharee=1"]}).check()
    with pytest.raises(ConfigError, match="algos repeat"):
        load_config(None, **{**TINY, "algos": ["bc", "bc"]}).check()
