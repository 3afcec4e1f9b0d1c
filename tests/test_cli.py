"""The command line: real work, one-line errors with exit code 2, atomic outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

import marl_augment as ma
from marl_augment.cli import app
from marl_augment.testing import file_digest

pytest.importorskip("mpe2")
runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:")
    assert "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture
def recorded(tmp_path) -> Path:
    out = tmp_path / "out.zarr"
    r = run("record", "mpe2.simple_spread_v3", "--episodes", 50, "--policy", "random", out)
    assert r.exit_code == 0, r.output
    return out


def test_record_then_info(recorded):
    ds = ma.load(recorded)
    assert len(ds) == 50 and ds.spec.n_agents == 3 and ds.spec.obs_dim == 18
    assert ds.spec.n_actions == 5 and ds.spec.state_dim == 54
    r = run("info", recorded)
    assert r.exit_code == 0, r.output
    for needle in ("pettingzoo:mpe2.simple_spread_v3", "episodes", "50", "(verified)"):
        assert needle in r.output
    j = json.loads(run("info", recorded, "--json").output)
    assert j["stats"]["episodes"] == 50 and j["spec"]["obs_dim"] == 18
    assert j["source"]["recorded_from"] == "pettingzoo:mpe2.simple_spread_v3"


def test_record_is_deterministic(tmp_path):
    for name in ("a", "b"):
        r = run(
            "record",
            "mpe2.simple_spread_v3",
            "-n",
            3,
            "--seed",
            7,
            "-e",
            "max_cycles=10",
            tmp_path / f"{name}.zarr",
        )
        assert r.exit_code == 0, r.output
    assert ma.load(tmp_path / "a.zarr").fingerprint == ma.load(tmp_path / "b.zarr").fingerprint
    assert ma.load(tmp_path / "a.zarr").spec.max_episode_len == 10


def test_record_keeps_log_and_convert_reproduces(tmp_path):
    r = run(
        "record",
        "mpe2.simple_world_comm_v3",
        "-n",
        2,
        "-e",
        "max_cycles=8",
        "--log",
        tmp_path / "w.jsonl.gz",
        tmp_path / "w.zarr",
    )
    assert r.exit_code == 0, r.output
    r = run("convert", "--from", "pettingzoo-log", tmp_path / "w.jsonl.gz", tmp_path / "w2.zarr")
    assert r.exit_code == 0, r.output
    a, b = ma.load(tmp_path / "w.zarr"), ma.load(tmp_path / "w2.zarr")
    for n in a.spec.arrays():
        np.testing.assert_array_equal(a.columns[n], b.columns[n])


def test_existing_output_refused_unless_overwrite(recorded):
    before = file_digest(recorded)
    r = run("record", "mpe2.simple_spread_v3", "-n", 2, recorded)
    assert_user_error(r, "exists already", "--overwrite")
    assert file_digest(recorded) == before
    r = run("record", "mpe2.simple_spread_v3", "-n", 2, "--overwrite", recorded)
    assert r.exit_code == 0 and len(ma.load(recorded)) == 2


def test_subsample(recorded, tmp_path):
    r = run("subsample", recorded, tmp_path / "s.zarr", "--fraction", 0.1, "--seed", 0)
    assert r.exit_code == 0, r.output
    s = ma.load(tmp_path / "s.zarr")
    assert len(s) == 5 and s.provenance[0]["method"] == "subsample"
    assert_user_error(run("subsample", recorded, tmp_path / "t.zarr"), "exactly one of")
    assert_user_error(
        run("subsample", recorded, recorded, "--fraction", 0.5, "--overwrite"),
        "inputs are never written to",
    )


def test_datasets_commands(recorded):
    home = Path(os.environ["MARL_AUGMENT_HOME"]) / "datasets"
    home.mkdir(parents=True)
    shutil.copytree(recorded, home / "spread-random.zarr")
    r = run("datasets", "list", "--json")
    assert r.exit_code == 0, r.output
    local = json.loads(r.output)["local"]
    assert local[0]["name"] == "spread-random" and local[0]["episodes"] == 50
    assert len(ma.load("spread-random")) == 50  # names resolve through the data root
    r = run("datasets", "adapters")
    assert "pettingzoo-log" in r.output


def test_user_errors_are_one_red_line(recorded, tmp_path):
    assert_user_error(run("info", tmp_path / "missing.zarr"), "no episode store")
    bad = tmp_path / "nan.zarr"
    shutil.copytree(recorded, bad)
    zarr.open_array(str(bad / "obs"), mode="r+")[3, 0, 0] = np.nan
    assert_user_error(run("info", bad), "non-finite", "'obs'")
    log = tmp_path / "bad.jsonl"
    log.write_text('{"format": "marl-augment/pettingzoo-log", "version": 1}\n{oops\n')
    assert_user_error(run("convert", log, tmp_path / "x.zarr"), "header: 'agents' must be a list")
    log.write_text("{oops\n")
    assert_user_error(run("convert", log, tmp_path / "x.zarr"), "line 1 is not valid JSON")
    assert_user_error(run("convert", tmp_path / "nope.jsonl", tmp_path / "x.zarr"), "no log file")
    assert_user_error(
        run("convert", "--from", "vault", log, tmp_path / "x.zarr"), "unknown adapter"
    )
    assert_user_error(run("record", "mpe2.no_such_env", tmp_path / "y.zarr"), "cannot import")
    assert_user_error(run("record", "notapkg.env_v1", tmp_path / "y.zarr"), "cannot import")
    assert_user_error(run("record", "json", tmp_path / "y.zarr"), "not a PettingZoo environment")
    assert_user_error(
        run("record", "mpe2.simple_spread_v3", "-e", "nope", tmp_path / "y.zarr"), "key=value"
    )
    assert_user_error(
        run("record", "mpe2.simple_spread_v3", "--policy", "greedy", tmp_path / "y.zarr"),
        "unknown policy",
    )
    assert not (tmp_path / "x.zarr").exists() and not (tmp_path / "y.zarr").exists()


def _cli(*args, **kw):
    exe = Path(sys.executable).with_name("marl-augment")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "marl_augment"]
    return cmd + [str(a) for a in args]


def test_real_subprocess_run(tmp_path):
    out = tmp_path / "p.zarr"
    p = subprocess.run(
        _cli("record", "mpe2.simple_spread_v3", "-n", 3, out),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    p = subprocess.run(_cli("info", out, "--json"), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and json.loads(p.stdout)["stats"]["episodes"] == 3
    p = subprocess.run(
        _cli("info", tmp_path / "none.zarr"), capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().startswith("error:") and len(p.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def big_log(tmp_path_factory) -> Path:
    """A log of 2,000 episodes: 100 recorded ones, their lines repeated 20 times."""
    from mpe2 import simple_spread_v3

    from marl_augment.envs.recording import record

    d = tmp_path_factory.mktemp("biglog")
    small = record(simple_spread_v3.parallel_env(max_cycles=25), d / "small.jsonl", episodes=100)
    header, *body = small.read_text().splitlines(keepends=True)
    big = d / "big.jsonl"
    with open(big, "w") as f:
        f.write(header)
        for _ in range(20):
            f.writelines(body)
    return big


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_conversion_leaves_no_output(tmp_path, big_log, sig):
    log = tmp_path / "big.jsonl"
    shutil.copy(big_log, log)
    before = file_digest(log)
    out = tmp_path / "big.zarr"
    # a shell's background jobs inherit SIGINT ignored (and Python keeps it so): give the child
    # the default disposition, so Ctrl-C reaches it however the test suite itself was started
    proc = subprocess.Popen(
        _cli("convert", log, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    # wait until the writer's hidden partial output exists, i.e. conversion is under way
    while time.time() < deadline and not list(tmp_path.glob(".big.zarr.partial-*")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "conversion finished before it could be interrupted"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not out.exists()
    assert file_digest(log) == before
    if sig == signal.SIGINT:  # a clean interrupt removes its partial output too
        assert not list(tmp_path.glob(".big.zarr.partial-*"))
    # the next conversion succeeds (and clears a killed writer's leftovers)
    p = subprocess.run(_cli("convert", log, out), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert len(ma.load(out)) == 2000
    assert not list(tmp_path.glob(".big.zarr.partial-*"))


def test_options_lists_each_option_with_its_default_and_meaning():
    res = run("augment", "--method", "eaq", "--options")
    assert res.exit_code == 0, res.output
    assert "reward_calibration" in res.output and "quantile mapping" in res.output
    assert "train_steps" in res.output and "2000" in res.output
    res = run("augment", "--method", "eaq-q", "--options")
    assert "Always 0 for EAQ" in res.output  # the subclass's own text wins
    res = run("train", "--algo", "qmix-cql", "--options")
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.output.splitlines() if "cql_alpha" in ln)
    assert row.split("│")[2].strip() == "3" and "CQL" in row  # default, meaning
    assert_user_error(run("augment", "--method", "nope", "--options"), "nope")
