"""marl-augment never deletes or writes into what it did not make (docs/cli.md, "your data").

Each case drives a command as a user would and checks: exit code 2, one line on stderr naming
the problem and the fix, no traceback, the input's bytes unchanged, and no half-made output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import marl_augment as ma
from marl_augment.cli import app
from marl_augment.data.synthetic import smac_like_dataset
from marl_augment.errors import AlreadyExists
from marl_augment.outputs import (
    MARKER,
    kind_of,
    new_output,
    remove_stale,
    swap_into_place,
    write_marker,
)
from marl_augment.testing import file_digest

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_refused(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and "Traceback" not in result.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


def siblings(path: Path) -> list[str]:
    """Hidden leftovers beside ``path`` (partial or old outputs)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


@pytest.fixture
def store(tmp_path) -> Path:
    path = tmp_path / "data" / "3m.zarr"
    smac_like_dataset(12, path, seed=0)
    return path


@pytest.fixture
def precious(tmp_path) -> Path:
    """A user's folder with files marl-augment did not make."""
    p = tmp_path / "thesis"
    (p / "chapter").mkdir(parents=True)
    (p / "notes.txt").write_text("years of work")
    (p / "chapter" / "draft.tex").write_text("\\section{}")
    return p


TRAIN = ("train", "--algo", "bc", "--no-eval", "--steps", "3", "-o", "batch_size=4")


# -- training runs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where,needle",
    [
        ("input", "is the input"),
        ("inside", "is the input"),
        ("above", "contains the input"),
    ],
)
def test_train_never_writes_into_or_over_its_input(store, where, needle):
    out = {"input": store, "inside": store / "runs", "above": store.parent}[where]
    before = file_digest(store.parent)
    r = run(*TRAIN, store, "--out", out, "--overwrite")
    assert_refused(r, needle, "choose a path")
    assert file_digest(store.parent) == before


def test_train_overwrite_refuses_a_users_folder(store, precious):
    before = file_digest(precious)
    r = run(*TRAIN, store, "--out", precious, "--overwrite")
    assert_refused(r, "not made by marl-augment", "--overwrite replaces only")
    assert file_digest(precious) == before


def test_train_overwrite_refuses_another_kind_of_output(store, tmp_path):
    other = tmp_path / "other.zarr"
    smac_like_dataset(3, other, seed=1)
    before = file_digest(other)
    r = run(*TRAIN, store, "--out", other, "--overwrite")
    assert_refused(r, "holds a marl-augment store", "run folder")
    assert file_digest(other) == before


def test_train_output_that_is_a_file_or_below_a_file(store, tmp_path):
    f = tmp_path / "results.csv"
    f.write_text("a,b\n")
    assert_refused(run(*TRAIN, store, "--out", f, "--overwrite"), "is a file")
    assert_refused(run(*TRAIN, store, "--out", f / "run"), "is a file, not a folder")
    assert f.read_text() == "a,b\n"


@pytest.mark.parametrize(
    "algo,option",
    [("bc", "hidden=1000000"), ("qmix-cql", "hypernet_embed=10000000"), ("qmix-bcq", "hidden=-1")],
)
def test_train_absurd_network_size_is_refused_before_allocating(store, tmp_path, algo, option):
    out = tmp_path / "run"
    r = run("train", store, "--algo", algo, "--no-eval", "--steps", "1", "-o", option, "--out", out)
    assert_refused(r, option.split("=")[0])
    assert not out.exists()


def test_train_output_that_is_a_link(store, tmp_path):
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link"
    link.symlink_to(target)
    assert_refused(run(*TRAIN, store, "--out", link), "symbolic link")


def test_train_overwrite_replaces_own_run_and_marks_it(store, tmp_path):
    out = tmp_path / "run"
    assert run(*TRAIN, store, "--out", out).exit_code == 0
    assert kind_of(out) == "run" and json.loads((out / MARKER).read_text())["kind"] == "run"
    assert_refused(run(*TRAIN, store, "--out", out), "finished run", "--overwrite")
    r = run(*TRAIN, store, "--out", out, "--overwrite", "--seed", "1")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "run.json").read_text())["run"]["seed"] == 1
    assert siblings(out) == []


def test_interrupted_overwrite_leaves_the_old_run_whole(store, tmp_path):
    from marl_augment.training import train

    out = tmp_path / "run"
    train(store, "bc", out=out, steps=3, evaluate=False, options={"batch_size": 4})
    before = file_digest(out)

    def stop(*_a, **_k):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            store,
            "bc",
            out=out,
            steps=50,
            evaluate=False,
            overwrite=True,
            seed=3,
            options={"batch_size": 4},
            progress=stop,
        )
    assert file_digest(out) == before and siblings(out) == []


def test_bad_algorithm_option_creates_no_run_folder(store, tmp_path):
    out = tmp_path / "run"
    r = run(*TRAIN, store, "--out", out, "-o", "no_such_option=1")
    assert r.exit_code == 2 and not out.exists()


# -- augment, models, fits ------------------------------------------------------------------


def test_augment_output_refuses_users_folder_and_input(store, precious):
    before, mine = file_digest(store), file_digest(precious)
    assert_refused(
        run("augment", store, precious, "--method", "rad-s", "--overwrite"),
        "not made by marl-augment",
    )
    assert_refused(
        run("augment", store, store.parent, "--method", "rad-s", "--overwrite"),
        "contains the input",
    )
    assert file_digest(store) == before and file_digest(precious) == mine


def test_save_model_never_replaces_a_users_folder_or_the_input(store, precious, tmp_path):
    before, mine = file_digest(store), file_digest(precious)
    out = tmp_path / "aug.zarr"
    r = run("augment", store, out, "--method", "rad-s", "--save-model", precious, "--overwrite")
    assert_refused(r, "model folder", "not made by marl-augment")
    r = run("augment", store, out, "--method", "rad-s", "--save-model", store, "--overwrite")
    assert_refused(r, "is the input")
    r = run("augment", store, out, "--method", "rad-s", "--save-model", out / "m")
    assert_refused(r, "is the input")
    assert file_digest(store) == before and file_digest(precious) == mine and not out.exists()


def test_save_model_overwrites_its_own_kind(store, tmp_path):
    model, out = tmp_path / "model", tmp_path / "aug.zarr"
    assert run("augment", store, out, "--method", "rad-s", "--save-model", model).exit_code == 0
    assert kind_of(model) == "model"
    r = run("augment", store, out, "--method", "rad-m", "--save-model", model, "--overwrite")
    assert r.exit_code == 0, r.output
    assert json.loads((model / "augmenter.json").read_text())["method"] == "rad-m"
    assert siblings(model) == [] and siblings(out) == []


def test_fit_checkpoints_never_replace_a_users_folder(store, tmp_path):
    out = tmp_path / "aug.zarr"
    users = tmp_path / "aug.zarr.train"
    users.mkdir()
    (users / "keep.txt").write_text("mine")
    r = run("augment", store, out, "--method", "eaq", "-o", "train_steps=2")
    assert_refused(r, "fit checkpoint folder", "not made by marl-augment")
    assert (users / "keep.txt").read_text() == "mine"


# -- reports ----------------------------------------------------------------------------------


def test_fidelity_report_folder_rules(store, tmp_path, precious):
    aug = tmp_path / "aug.zarr"
    assert run("augment", store, aug, "--method", "rad-s", "--scale", "1").exit_code == 0
    before = file_digest(store)
    assert_refused(run("fidelity", store, aug, "--out", store / "plots"), "is the input")
    assert_refused(
        run("fidelity", store, aug, "--out", precious, "--overwrite"), "not made by marl-augment"
    )
    rep = tmp_path / "fid"
    r = run("fidelity", store, aug, "--out", rep, "--json")
    assert r.exit_code == 0, r.output
    plots = json.loads(r.output)["plots"]
    assert all(Path(p).parent == rep and Path(p).is_file() for p in plots.values())
    assert kind_of(rep) == "report"
    assert_refused(run("fidelity", store, aug, "--out", rep), "--overwrite")
    assert run("fidelity", store, aug, "--out", rep, "--overwrite").exit_code == 0
    assert file_digest(store) == before and siblings(rep) == []


def test_compare_report_folder_never_inside_an_input(store, tmp_path):
    other = tmp_path / "b.zarr"
    smac_like_dataset(5, other, seed=3)
    before = file_digest(store)
    assert_refused(run("compare", store, other, "--out", other / "cmp"), "is the input")
    assert file_digest(store) == before


# -- stores, logs, Vaults, benchmarks ------------------------------------------------------


def test_subsample_refuses_the_folder_above_its_input(store):
    before = file_digest(store.parent)
    assert_refused(
        run("subsample", store, store.parent, "-n", "3", "--overwrite"), "contains the input"
    )
    assert file_digest(store.parent) == before


def test_convert_output_that_is_a_file(tmp_path):
    log = tmp_path / "x.jsonl"
    log.write_text("{}\n")
    assert_refused(run("convert", log, log, "--overwrite"), "is the input")
    target = tmp_path / "a-file"
    target.write_text("data")
    assert_refused(run("convert", log, target, "--overwrite"), "is a file")
    assert target.read_text() == "data"


def test_record_log_never_replaces_a_foreign_file(tmp_path):
    pytest.importorskip("mpe2")
    log = tmp_path / "diary.jsonl"
    log.write_text("dear diary\n")
    r = run(
        "record",
        "mpe2.simple_spread_v3",
        tmp_path / "o.zarr",
        "-n",
        "1",
        "--log",
        log,
        "--overwrite",
    )
    assert_refused(r, "not a marl-augment log")
    assert log.read_text() == "dear diary\n"


def test_vault_export_replaces_only_its_own_dataset(store, tmp_path):
    pytest.importorskip("tensorstore")
    vault = tmp_path / "mine.vlt"
    (vault / "Good").mkdir(parents=True)
    (vault / "Good" / "metadata.json").write_text('{"version": 1}')
    before = file_digest(vault)
    r = run("export", store, vault, "--uid", "Good", "--overwrite")
    assert_refused(r, "Vault dataset", "not made by marl-augment")
    assert file_digest(vault) == before
    assert run("export", store, vault, "--uid", "Medium").exit_code == 0
    assert kind_of(vault / "Medium") == "vault-dataset"
    assert run("export", store, vault, "--uid", "Medium", "--overwrite").exit_code == 0
    assert file_digest(vault / "Good") == file_digest(tmp_path / "mine.vlt" / "Good")


def test_benchmark_refuses_a_users_folder(precious):
    from marl_augment.bench import BenchConfig
    from marl_augment.bench.grid import run_benchmark

    before = file_digest(precious)
    with pytest.raises(AlreadyExists, match="not made by marl-augment"):
        run_benchmark(BenchConfig(), precious)
    assert file_digest(precious) == before


# -- the mechanism ----------------------------------------------------------------------------


def test_new_output_is_atomic(tmp_path):
    out = tmp_path / "rep"
    with new_output(out, "report", overwrite=False) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), new_output(out, "report", overwrite=True) as tmp:
        (tmp / "a.txt").write_text("2")
        raise RuntimeError("crash mid-write")
    assert (out / "a.txt").read_text() == "1" and siblings(out) == []
    with new_output(out, "report", overwrite=True) as tmp:
        (tmp / "b.txt").write_text("3")
    assert not (out / "a.txt").exists() and (out / "b.txt").read_text() == "3"
    assert siblings(out) == []


def test_swap_refuses_an_output_that_changed_kind(tmp_path):
    out, tmp = tmp_path / "o", tmp_path / ".o.partial-1-x"
    out.mkdir()
    (out / "user.txt").write_text("x")
    tmp.mkdir()
    write_marker(tmp, "report")
    with pytest.raises(AlreadyExists, match="changed while writing"):
        swap_into_place(tmp, out, "report")
    assert (out / "user.txt").read_text() == "x"


def test_a_swap_cut_short_is_undone(tmp_path):
    out = tmp_path / "rep"
    old = tmp_path / ".rep.old-12345678"
    old.mkdir()
    write_marker(old, "report")
    (old / "a.txt").write_text("kept")
    foreign = tmp_path / ".rep.old-deadbeef"  # not ours: never touched
    foreign.mkdir()
    remove_stale(out)
    assert (out / "a.txt").read_text() == "kept" and foreign.is_dir()


def test_empty_folder_is_taken_as_new(store, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert run(*TRAIN, store, "--out", out).exit_code == 0
    assert kind_of(out) == "run"


def test_legacy_outputs_are_recognised(tmp_path):
    run_dir = tmp_path / "old-run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(
        json.dumps({"run": {}, "algo_config": {}, "package_version": "0.1.0"})
    )
    assert kind_of(run_dir) == "run"
    assert kind_of(tmp_path) is None


# -- kill -9 -------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_during_train_overwrite_keeps_the_old_run(store, tmp_path):
    out = tmp_path / "run"
    assert run(*TRAIN, store, "--out", out).exit_code == 0
    before = file_digest(out)
    env = dict(os.environ, MARL_AUGMENT_NO_CPP="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "marl_augment",
            "train",
            str(store),
            "--algo",
            "bc",
            "--no-eval",
            "--steps",
            "1000000",
            "-o",
            "batch_size=4",
            "--out",
            str(out),
            "--overwrite",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not any(
            (tmp_path / n / "metrics.jsonl").exists() for n in siblings(out)
        ):
            time.sleep(0.2)
        assert siblings(out), "the overwrite never started"
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert file_digest(out) == before  # the old run is whole
    r = run(*TRAIN, store, "--out", out, "--overwrite")  # the next writer cleans up
    assert r.exit_code == 0, r.output
    assert siblings(out) == []
    assert ma.load(store).num_transitions > 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_interrupted_augment_leaves_nothing_behind(tmp_path, sig, delay):
    src = tmp_path / "big.zarr"
    smac_like_dataset(300, src, seed=0)
    before = file_digest(src)
    out = tmp_path / "aug.zarr"
    cmd = [
        sys.executable,
        "-m",
        "marl_augment",
        "augment",
        str(src),
        str(out),
        "--method",
        "rad-s",
        "--scale",
        "40",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # a background job inherits SIGINT ignored; a user's Ctrl-C reaches a default handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = False
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if siblings(out):
            seen = True
            time.sleep(delay)
            proc.send_signal(sig)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=120)
    time.sleep(0.5)  # no writer thread may recreate anything after the process is gone
    assert file_digest(src) == before
    if seen and proc.returncode != 0 and out.exists():  # the signal came after the swap
        assert len(ma.load(out)) == 300 * 41, err  # then the output is complete
    elif seen and proc.returncode != 0:
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and siblings(out) == []
            assert "interrupted" in err and "Traceback" not in err
        # the next run completes and removes a killed writer's leftovers
        assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    else:  # finished before the signal arrived: the output must then be complete
        assert proc.returncode == 0
    assert ma.load(out).num_transitions > 0 and siblings(out) == []


def _big_log(path: Path, episodes: int) -> None:
    step = _STEP.replace(
        '"terminations":{"a":true,"b":true}', '"terminations":{"a":false,"b":false}'
    )
    with open(path, "w") as f:
        f.write(_header() + "\n")
        for _ in range(episodes):
            f.write(_RESET + "\n" + (step + "\n") * 19 + _STEP + "\n")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
@pytest.mark.parametrize(
    "when", ["starting", "partial made", "0.7 s into writing", "1.5 s into writing"]
)
def test_signal_during_convert_overwrite_keeps_the_old_store(tmp_path, when, sig):
    """Ctrl-C or kill -9 at several moments of a `convert --overwrite`: the log is untouched,
    OUT is the old store or the complete new one, never a mix, and the next run cleans up."""
    old_log, log, out = tmp_path / "old.jsonl", tmp_path / "big.jsonl", tmp_path / "out.zarr"
    _big_log(old_log, 5)
    assert run("convert", old_log, out).exit_code == 0
    _big_log(log, 3000)  # ~4 s to convert on a 2-core CPU
    before_log, before_out = file_digest(log), file_digest(out)
    cmd = [sys.executable, "-m", "marl_augment", "convert", str(log), str(out), "--overwrite"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        if when == "starting":
            time.sleep(0.3)
        else:
            deadline = time.time() + 60
            while time.time() < deadline and proc.poll() is None and not siblings(out):
                time.sleep(0.01)
            time.sleep(
                {"partial made": 0.0, "0.7 s into writing": 0.7, "1.5 s into writing": 1.5}[when]
            )
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT and proc.returncode not in (0, -signal.SIGINT):
        # our handler ran (not Python still starting up): one line, exit 130, nothing left
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
        assert siblings(out) == []
    assert file_digest(log) == before_log
    if proc.returncode == 0:  # it finished first: the new store is whole
        assert len(ma.load(out)) == 3000
    elif file_digest(out) != before_out:  # killed after the swap: the new store is whole
        assert len(ma.load(out)) == 3000
    else:
        assert len(ma.load(out)) == 5
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(ma.load(out)) == 3000 and siblings(out) == []
    assert file_digest(log) == before_log


# -- bad PettingZoo logs: one line each, nothing allocated from absurd sizes, no output -------

_HEADER = {
    "format": "marl-augment/pettingzoo-log",
    "version": 1,
    "env_id": "pettingzoo:toy",
    "agents": ["a", "b"],
    "obs_dims": {"a": 2, "b": 2},
    "n_actions": {"a": 3, "b": 3},
    "state_dim": None,
    "has_action_mask": False,
    "meta": {},
}
_RESET = '{"t":"reset","obs":{"a":[0,0],"b":[0,1]},"infos":{}}'
_STEP = (
    '{"t":"step","actions":{"a":1,"b":2},"rewards":{"a":1.0,"b":0.0},'
    '"terminations":{"a":true,"b":true},"truncations":{"a":false,"b":false},'
    '"obs":{"a":[1,0],"b":[1,1]},"infos":{}}'
)


def _header(**change) -> str:
    h = dict(_HEADER)
    h.update(change)
    return json.dumps(h)


BAD_LOGS = {
    "agents not a list": [_header(agents="ab"), _RESET, _STEP],
    "agents empty": [_header(agents=[]), _RESET, _STEP],
    "agent name not a string": [_header(agents=[1, 2]), _RESET, _STEP],
    "agent twice": [_header(agents=["a", "a"]), _RESET, _STEP],
    "obs_dims a list": [_header(obs_dims=[2, 2]), _RESET, _STEP],
    "obs_dims missing an agent": [_header(obs_dims={"a": 2}), _RESET, _STEP],
    "obs_dim a float": [_header(obs_dims={"a": 2.5, "b": 2}), _RESET, _STEP],
    "obs_dim a string": [_header(obs_dims={"a": "2", "b": 2}), _RESET, _STEP],
    "obs_dim zero": [_header(obs_dims={"a": 0, "b": 2}), _RESET, _STEP],
    "obs_dim negative": [_header(obs_dims={"a": -4, "b": 2}), _RESET, _STEP],
    "obs_dim a bool": [_header(obs_dims={"a": True, "b": 2}), _RESET, _STEP],
    "obs_dim absurd": [_header(obs_dims={"a": 10**12, "b": 2}), _RESET, _STEP],
    "n_actions 1e12": [_header(n_actions={"a": 10**12, "b": 3}), _RESET, _STEP],
    "n_actions null": [_header(n_actions={"a": None, "b": 3}), _RESET, _STEP],
    "state_dim a string": [_header(state_dim="54"), _RESET, _STEP],
    "state_dim absurd": [_header(state_dim=10**15), _RESET, _STEP],
    "has_action_mask a string": [_header(has_action_mask="yes"), _RESET, _STEP],
    "env_id a number": [_header(env_id=3), _RESET, _STEP],
    "meta a list": [_header(meta=[1]), _RESET, _STEP],
    "wrong format": [_header(format="other"), _RESET, _STEP],
    "wrong version": [_header(version=99), _RESET, _STEP],
    "header not an object": ["[1,2,3]", _RESET, _STEP],
    "not JSON": [_header(), "{not json", _STEP],
    "deeply nested": [_header(), "[" * 100_000 + "]" * 100_000, _STEP],
    "action NaN": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":NaN,"b":2')],
    "action 1e400": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":1e400,"b":2')],
    "action -Infinity": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":-Infinity,"b":2')],
    "action negative": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":-1,"b":2')],
    "action 1.5": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":1.5,"b":2')],
    "action out of range": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":3,"b":2')],
    "action a string": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":"1","b":2')],
    "action a list": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":[1],"b":2')],
    "action true": [_header(), _RESET, _STEP.replace('"a":1,"b":2', '"a":true,"b":2')],
    "actions a list": [
        _header(),
        _RESET,
        _STEP.replace('"actions":{"a":1,"b":2}', '"actions":[1,2]'),
    ],
    "reward NaN": [_header(), _RESET, _STEP.replace('"rewards":{"a":1.0', '"rewards":{"a":NaN')],
    "reward a string": [
        _header(),
        _RESET,
        _STEP.replace('"rewards":{"a":1.0', '"rewards":{"a":"1"'),
    ],
    "reward 1e400": [
        _header(),
        _RESET,
        _STEP.replace('"rewards":{"a":1.0', '"rewards":{"a":1e400'),
    ],
    "terminations a list": [
        _header(),
        _RESET,
        _STEP.replace('"terminations":{"a":true,"b":true}', '"terminations":[true,true]'),
    ],
    "termination a string": [
        _header(),
        _RESET,
        _STEP.replace('"terminations":{"a":true', '"terminations":{"a":"yes"'),
    ],
    "truncations a number": [
        _header(),
        _RESET,
        _STEP.replace('"truncations":{"a":false,"b":false}', '"truncations":7'),
    ],
    "infos a list": [_header(), _RESET, _STEP.replace('"infos":{}}', '"infos":[1]}')],
    "obs NaN": [_header(), _RESET.replace("[0,0]", "[NaN,0]"), _STEP],
    "obs too short": [_header(), _RESET.replace("[0,0]", "[0]"), _STEP],
    "obs strings": [_header(), _RESET.replace("[0,0]", '["x","y"]'), _STEP],
    "obs a ragged list": [_header(), _RESET.replace("[0,0]", "[[0],[0,0]]"), _STEP],
    "obs of an unknown agent": [_header(), _RESET.replace('"b":[0,1]', '"c":[0,1]'), _STEP],
    "obs not an object": [_header(), '{"t":"reset","obs":[1,2]}', _STEP],
    "mask ragged": [
        _header(),
        _RESET.replace('"infos":{}', '"action_mask":{"a":[[1],[1,1]]},"infos":{}'),
        _STEP,
    ],
    "mask of 7s": [
        _header(),
        _RESET.replace('"infos":{}', '"action_mask":{"a":[7,7,7]},"infos":{}'),
        _STEP,
    ],
    "mask a list": [
        _header(),
        _RESET.replace('"infos":{}', '"action_mask":[1,1,1],"infos":{}'),
        _STEP,
    ],
    "mask forbids the action": [
        _header(),
        _RESET.replace('"infos":{}', '"action_mask":{"a":[1,0,1]},"infos":{}'),
        _STEP,
    ],
    "step before reset": [_header(), _STEP],
    "unknown record type": [_header(), '{"t":"jump"}', _STEP],
    "empty file": [],
}


@pytest.mark.parametrize("case", sorted(BAD_LOGS))
def test_bad_log_gets_one_line_and_no_output(tmp_path, case):
    log = tmp_path / "bad.jsonl"
    log.write_text("".join(line + "\n" for line in BAD_LOGS[case]))
    before = file_digest(log)
    out = tmp_path / "out.zarr"
    r = run("convert", log, out)
    assert_refused(r)
    assert file_digest(log) == before and not out.exists() and siblings(out) == []


def test_the_good_log_behind_the_bad_ones_converts(tmp_path):
    log = tmp_path / "good.jsonl"
    log.write_text("".join(line + "\n" for line in [_header(), _RESET, _STEP]))
    r = run("convert", log, tmp_path / "out.zarr")
    assert r.exit_code == 0, r.output
    assert ma.load(tmp_path / "out.zarr").num_transitions == 1


# -- tampered stores: the spec is checked and covered by the fingerprint ----------------------


def _edit_spec(store: Path, **change) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    for k, v in change.items():
        if v is _DROP:
            meta["attributes"]["spec"].pop(k)
        else:
            meta["attributes"]["spec"][k] = v
    (store / "zarr.json").write_text(json.dumps(meta))


_DROP = object()
TAMPERED_SPECS = {
    "n_actions raised": dict(n_actions=12),
    "n_actions a string": dict(n_actions="9"),
    "n_actions a float": dict(n_actions=9.0),
    "n_actions zero": dict(n_actions=0),
    "n_actions absurd": dict(n_actions=10**12),
    "obs_dim a bool": dict(obs_dim=True),
    "obs_dim changed": dict(obs_dim=7),
    "state_dim negative": dict(state_dim=-1),
    "agent_ids a string": dict(agent_ids="abc"),
    "agent_ids of numbers": dict(agent_ids=[0, 1, 2]),
    "an agent dropped": dict(agent_ids=["agent_0", "agent_1"]),
    "an agent renamed": dict(agent_ids=["agent_0", "agent_1", "x"]),
    "duplicate agents": dict(agent_ids=["agent_0", "agent_0", "agent_1"]),
    "has_alive a string": dict(has_alive="yes"),
    "has_avail_actions dropped to false": dict(has_avail_actions=False),
    "extras a list": dict(extras=[1]),
    "env_id a number": dict(env_id=3),
    "env_id changed": dict(env_id="smax:8m"),
    "max_episode_len a string": dict(max_episode_len="60"),
    "obs_dims ragged": dict(obs_dims=[1, 2]),
    "n_actions missing": dict(n_actions=_DROP),
    "unknown field": dict(colour="red"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED_SPECS))
def test_tampered_spec_is_refused_in_one_line(store, case):
    _edit_spec(store, **TAMPERED_SPECS[case])
    before = file_digest(store)
    assert_refused(run("info", store))
    out = store.parent / "aug.zarr"
    assert_refused(run("augment", store, out, "--method", "rad-s"))
    assert file_digest(store) == before and not out.exists()


@pytest.mark.parametrize(
    "case",
    [
        "spec a list",
        "fingerprint edited",
        "format removed",
        "schema version 99",
        "obs metadata garbage",
        "obs metadata deleted",
        "offsets deleted",
    ],
)
def test_damaged_store_metadata_is_refused_in_one_line(store, case):
    meta = json.loads((store / "zarr.json").read_text())
    if case == "spec a list":
        meta["attributes"]["spec"] = [1, 2]
    elif case == "fingerprint edited":
        meta["attributes"]["fingerprint"] = "sha256+spec:" + "0" * 64
    elif case == "format removed":
        del meta["attributes"]["format"]
    elif case == "schema version 99":
        meta["attributes"]["schema_version"] = 99
    (store / "zarr.json").write_text(json.dumps(meta))
    if case == "obs metadata garbage":
        (store / "obs" / "zarr.json").write_text('{"zarr_format": 3, "shape": "x"}')
    elif case == "obs metadata deleted":
        (store / "obs" / "zarr.json").unlink()
    elif case == "offsets deleted":
        (store / "episode_offsets" / "zarr.json").unlink()
    assert_refused(run("info", store))
    if case != "fingerprint edited":  # --no-validate trusts the content: only metadata is read
        assert_refused(run("info", store, "--no-validate"))


# -- tampered model folders: one line, nothing huge allocated ----------------------------------


@pytest.fixture(scope="module")
def eaq_model(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("eaq")
    src = d / "3m.zarr"
    smac_like_dataset(8, src, seed=0)
    model = d / "model"
    r = run(
        "augment",
        src,
        d / "aug.zarr",
        "--method",
        "eaq",
        "--scale",
        "1",
        "-o",
        "train_steps=2",
        "-o",
        "diffusion_steps=4",
        "--save-model",
        model,
    )
    assert r.exit_code == 0, r.output
    return src, model


def _tamper_model(model: Path, case: str) -> None:
    state_path = model / "augmenter.json"
    state = json.loads(state_path.read_text())
    if case == "horizon 1e6":
        state["facts"]["horizon"] = 10**6
    elif case == "horizon a string":
        state["facts"]["horizon"] = "60"
    elif case == "spec n_actions absurd":
        state["facts"]["spec"]["n_actions"] = 10**12
    elif case == "spec missing":
        del state["facts"]["spec"]
    elif case == "facts a list":
        state["facts"] = [1]
    elif case == "method missing":
        del state["method"]
    elif case == "method unknown":
        state["method"] = "nope"
    elif case == "config has an unknown option":
        state["config"]["colour"] = "red"
    elif case == "not JSON":
        state_path.write_text("{oops")
        return
    elif case == "arrays truncated":
        f = model / "arrays.safetensors"
        f.write_bytes(f.read_bytes()[:200])
    elif case == "arrays deleted":
        (model / "arrays.safetensors").unlink()
    elif case == "obs_dim changed":
        state["facts"]["spec"]["obs_dim"] += 3
    state_path.write_text(json.dumps(state))


MODEL_CASES = [
    "horizon 1e6",
    "horizon a string",
    "spec n_actions absurd",
    "spec missing",
    "facts a list",
    "method missing",
    "method unknown",
    "config has an unknown option",
    "not JSON",
    "arrays truncated",
    "arrays deleted",
    "obs_dim changed",
]


@pytest.mark.parametrize("case", MODEL_CASES)
def test_tampered_model_folder_is_refused_in_one_line(eaq_model, tmp_path, case):
    import shutil

    src, good = eaq_model
    model = tmp_path / "model"
    shutil.copytree(good, model)
    _tamper_model(model, case)
    before = file_digest(src)
    out = tmp_path / "aug.zarr"
    assert_refused(run("augment", src, out, "--checkpoint", model))
    assert file_digest(src) == before and not out.exists()


@pytest.mark.parametrize(
    "case",
    [
        "policy.json not JSON",
        "spec absurd",
        "weights truncated",
        "weights of another size",
        "weights deleted",
        "hidden absurd",
        "state_dim absurd",
        "state_dim not a number",
        "hidden negative",
    ],
)
def test_tampered_policy_is_refused_in_one_line(store, tmp_path, case):
    from safetensors.torch import load_file, save_file

    from marl_augment.algos import load_policy
    from marl_augment.errors import FormatError, MarlAugmentError

    run_dir = tmp_path / "run"
    assert run(*TRAIN, store, "--out", run_dir).exit_code == 0
    pol = run_dir / "policy"
    meta = json.loads((pol / "policy.json").read_text())
    weights = next(p for p in pol.iterdir() if p.suffix == ".safetensors")
    if case == "policy.json not JSON":
        (pol / "policy.json").write_text("{")
    elif case == "spec absurd":
        meta["spec"]["obs_dim"] = 10**9
        (pol / "policy.json").write_text(json.dumps(meta))
    elif case in ("hidden absurd", "hidden negative"):  # 10^6 would allocate ~24 TB
        meta["config"]["hidden"] = 10**6 if case == "hidden absurd" else -3
        (pol / "policy.json").write_text(json.dumps(meta))
    elif case.startswith("state_dim"):
        meta["state_dim"] = 10**9 if case == "state_dim absurd" else "many"
        (pol / "policy.json").write_text(json.dumps(meta))
    elif case == "weights truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif case == "weights of another size":
        t = load_file(str(weights))
        k = next(iter(t))
        t[k] = t[k][..., :1].contiguous()
        save_file(t, str(weights))
    elif case == "weights deleted":
        weights.unlink()
    with pytest.raises(MarlAugmentError) as err:
        load_policy(run_dir)
    assert isinstance(err.value, FormatError) and "\n" not in str(err.value)


@pytest.mark.slow
def test_killed_record_leaves_a_readable_log_and_says_so_on_rerun(tmp_path):
    pytest.importorskip("mpe2")
    log = tmp_path / "spread.jsonl.gz"
    partial = tmp_path / "spread.jsonl.gz.partial"
    cmd = [
        sys.executable,
        "-m",
        "marl_augment",
        "record",
        "mpe2.simple_spread_v3",
        "-n",
        "100000",
        "--log",
        str(log),
        str(tmp_path / "spread.zarr"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and (not partial.exists() or partial.stat().st_size < 200_000):
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert partial.exists() and not log.exists() and not (tmp_path / "spread.zarr").exists()
    # readable up to its last complete episode
    r = run("convert", partial, tmp_path / "saved.zarr")
    assert r.exit_code == 0, r.output
    saved = ma.load(tmp_path / "saved.zarr")
    assert len(saved) >= 1 and int(saved.episode_lengths.max()) == 25
    # a rerun names the interrupted log and what to do, and touches nothing
    before = file_digest(partial)
    r = run("record", "mpe2.simple_spread_v3", "-n", "2", "--log", log, tmp_path / "again.zarr")
    assert_refused(r, "interrupted recording", "marl-augment convert")
    assert file_digest(partial) == before
    r = run(
        "record",
        "mpe2.simple_spread_v3",
        "-n",
        "2",
        "--log",
        log,
        tmp_path / "again.zarr",
        "--overwrite",
    )
    assert r.exit_code == 0, r.output
    assert log.exists() and not partial.exists()


def _sigint_when(cmd: list[str], ready) -> tuple[int, str]:
    """Run ``cmd``, send SIGINT once ``ready()`` holds; (return code, stderr)."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, MARL_AUGMENT_NO_CPP="1"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.mark.slow
def test_ctrl_c_during_train_keeps_a_resumable_run_or_the_old_one(store, tmp_path):
    out = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "marl_augment",
        *TRAIN[:4],
        "--steps",
        "1000000",
        "-o",
        "batch_size=4",
        str(store),
        "--out",
        str(out),
    ]
    # a new run: stopped with 130, its folder marked and resumable
    rc, err = _sigint_when(base, lambda: (out / "metrics.jsonl").exists())
    assert rc == 130 and "interrupted" in err and "Traceback" not in err
    assert kind_of(out) == "run"
    assert run(*TRAIN, store, "--out", out, "--resume").exit_code == 0
    before = file_digest(out)
    # an overwrite: stopped with 130, the old run whole, nothing beside it
    rc, err = _sigint_when(
        [*base, "--overwrite"],
        lambda: any((tmp_path / n / "metrics.jsonl").exists() for n in siblings(out)),
    )
    assert rc == 130 and "Traceback" not in err
    assert file_digest(out) == before and siblings(out) == []


@pytest.mark.slow
def test_ctrl_c_during_record_leaves_nothing(tmp_path):
    pytest.importorskip("mpe2")
    log, out = tmp_path / "s.jsonl.gz", tmp_path / "s.zarr"
    partial = tmp_path / "s.jsonl.gz.partial"
    rc, err = _sigint_when(
        [
            sys.executable,
            "-m",
            "marl_augment",
            "record",
            "mpe2.simple_spread_v3",
            "-n",
            "100000",
            "--log",
            str(log),
            str(out),
        ],
        lambda: partial.exists() and partial.stat().st_size > 50_000,
    )
    assert rc == 130 and "Traceback" not in err
    assert not log.exists() and not partial.exists() and not out.exists() and siblings(out) == []


def test_only_our_partials_are_ever_cleaned_up(tmp_path):
    pytest.importorskip("mpe2")
    out = tmp_path / "s.zarr"
    lookalike = tmp_path / ".s.zarr.partial-999999999-notours"  # not a name partial_dir makes
    lookalike.mkdir()
    (lookalike / "keep.txt").write_text("mine")
    log = tmp_path / "s.jsonl"
    foreign = tmp_path / "s.jsonl.partial"
    foreign.write_text("my own notes\n")
    r = run("record", "mpe2.simple_spread_v3", "-n", "1", "--log", log, out, "--overwrite")
    assert_refused(r, "not a marl-augment log", "never replaced")
    assert foreign.read_text() == "my own notes\n"
    assert run("record", "mpe2.simple_spread_v3", "-n", "1", out).exit_code == 0
    assert (lookalike / "keep.txt").read_text() == "mine"


# -- library functions keep the same promise -------------------------------------------------


def test_fidelity_report_never_writes_into_an_input_or_a_users_folder(store, precious):
    from marl_augment.augment.fidelity import fidelity_report

    ds = ma.load(store)
    before, mine = file_digest(store), file_digest(precious)
    real, syn = ds.select(range(6)), ds.select(range(6, 12))
    with pytest.raises(AlreadyExists, match="is the input"):
        fidelity_report(real, syn, out_dir=store / "plots")  # derived datasets keep their source
    with pytest.raises(AlreadyExists, match="not made by marl-augment"):
        fidelity_report(real, syn, out_dir=precious)
    assert file_digest(store) == before
    assert file_digest(precious) == mine


def test_fidelity_report_folder_is_marked_and_can_be_rewritten(store, tmp_path):
    from marl_augment.augment.fidelity import fidelity_report

    ds = ma.load(store)
    out = tmp_path / "report"
    for _ in range(2):
        rep = fidelity_report(
            ds.select(range(6)), ds.select(range(6, 12)), out_dir=out, tsne_points=50
        )
        assert kind_of(out) == "report" and Path(rep["plots"]["returns"]).is_file()


def test_plots_replace_only_marl_augment_figures(store, tmp_path):
    from marl_augment.training import plot_learning_curve

    run_dir = tmp_path / "run"
    assert run(*TRAIN, store, "--out", run_dir).exit_code == 0
    metrics = run_dir / "metrics.jsonl"
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\n my own figure")
    with pytest.raises(AlreadyExists, match="not made by marl-augment"):
        plot_learning_curve(metrics, mine)
    assert mine.read_bytes() == b"\x89PNG\r\n\x1a\n my own figure"
    out = tmp_path / "curve.png"
    plot_learning_curve(metrics, out)
    plot_learning_curve(metrics, out)  # our own figure is replaced
    assert out.stat().st_size > 1000
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []


def test_an_output_folder_without_write_permission_is_one_line(store, tmp_path, monkeypatch):
    """Root writes anywhere, so the refusal is shown by making the permission check say no."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw),
    )
    for args in [
        (*TRAIN, store, "--out", locked / "run"),
        ("augment", store, locked / "aug.zarr", "--method", "rad-s", "--scale", "1"),
        ("fidelity", store, store, "--out", locked / "report"),
    ]:
        assert_refused(run(*args), "no permission to write in", "choose a folder")
    assert list(locked.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only folder")
def test_an_output_folder_without_write_permission_for_real(store, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert_refused(run(*TRAIN, store, "--out", locked / "run"), "no permission")
    finally:
        locked.chmod(0o700)
