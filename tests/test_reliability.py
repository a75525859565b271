"""Reliability: crash and resume, Ctrl-C, fault isolation, worker recycling, hostile input."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import tomli_w
from conftest import PROBE_STUDY, TRIAL_PROBE, processes_in_group, read_probe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.orchestrator import RunOptions, run_study
from harness.plugins import load_plugins
from harness.study import load_study


def _start(tmp_path: Path, trials: int, *extra: str, hold: int | None = None,
           signals=None, hold_test: bool = False):
    """`harness run` of the probe study in its own session; ``signals`` sets the child's
    signal dispositions before exec (default: Ctrl-C as in a terminal); ``hold`` holds
    that trial, ``hold_test`` the end-of-study test evaluation."""
    study = tmp_path / "study.toml"
    study.write_text(PROBE_STUDY.format(name="crash", trials=trials, seed=5))
    env = _probe_env(tmp_path)
    if hold is not None:
        env["PROBE_HOLD"] = str(hold)
    if hold_test:
        env["PROBE_HOLD_TEST"] = "1"
    command = [
        sys.executable, "-m", "harness", "run", str(study), "--runs-dir", str(tmp_path / "runs"),
        "--plugin", str(TRIAL_PROBE), "--no-progress", *extra,
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=signals or _ctrl_c_as_in_a_terminal,
    )


def _probe_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PROBE_DIR": str(tmp_path), "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    for name in ("PROBE_HOLD", "PROBE_HOLD_TEST"):
        env.pop(name, None)
    return env


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child, before exec: SIGINT unblocked and at its default action, as a terminal
    gives it to a command. A test runner's worker process may have it blocked or ignored
    (both survive exec), and then `harness run` would never see the test's Ctrl-C."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _as_a_background_job() -> None:
    """In the child, before exec: SIGINT ignored, as a non-interactive shell starts
    `harness run ... &` (the disposition survives exec, into the workers too)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _wait_for_trial(tmp_path: Path, number: int, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(line.number == number for line in read_probe(tmp_path)):
            time.sleep(1.0)
            return
        time.sleep(0.5)
    raise AssertionError(f"trial {number} never started")


def _table(tmp_path: Path) -> pd.DataFrame:
    return pd.read_csv(tmp_path / "runs" / "crash" / "trials.csv").set_index("number")


def test_sigkill_mid_trial_then_resume_gives_exactly_the_budget(tmp_path):
    process = _start(tmp_path, 3, hold=2)
    _wait_for_trial(tmp_path, 2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)

    resumed = _start(tmp_path, 3)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    table = _table(tmp_path)
    assert (table.loc[[0, 1], "state"] == "complete").all()
    # The killed trial stays in the table, not counted; its parameters ran again as #3.
    assert table.loc[2, "state"] == "failed"
    assert "interrupted" in table.loc[2, "fail_reason"]
    assert "re-run as trial #3" in table.loc[2, "fail_reason"]
    assert not table.loc[2, "counted"]
    assert table.loc[3, "state"] == "complete"
    assert table.loc[3, "retry_of"] == 2
    assert table.loc[3, "model.units"] == table.loc[2, "model.units"], "same parameters re-run"
    counted = table[table["counted"] & table["state"].isin(["complete", "pruned", "failed"])]
    assert len(counted) == 3, table
    assert "3 of 3 trials finished" in out
    assert (tmp_path / "runs" / "crash" / "best.keras").is_file()


def test_ctrl_c_marks_the_trial_and_prints_a_resume_command_that_works(tmp_path):
    from harness.cli import main

    extra = ("--set", "train.batch_size=16", "--recycle-after", "5")
    process = _start(tmp_path, 3, *extra, hold=1)
    _wait_for_trial(tmp_path, 1)
    # Live results: trial 0 is in trials.csv and `show` lists trial 1 as running.
    assert _table(tmp_path).loc[0, "state"] == "complete"
    runs = str(tmp_path / "runs")
    os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        import contextlib
        import io

        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            assert main(["show", "crash", "--runs-dir", runs]) == 0
    finally:
        os.environ.pop("HARNESS_DISABLE_PLUGIN_AUTOLOAD", None)
    assert "1 still running" in shown.getvalue()
    assert "running" in shown.getvalue().split("\n", 2)[2]

    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    table = _table(tmp_path)
    assert table.loc[0, "state"] == "complete"
    assert "running" not in set(table["state"])
    assert table.loc[1, "state"] == "failed"
    assert table.loc[1, "fail_reason"].startswith("interrupted by the user")

    printed = err.split("Resume with: ", 1)[1].strip().splitlines()[0]
    words = shlex.split(printed)
    assert words[1:3] == ["-m", "harness"], "started as python -m harness: printed so"
    assert "--runs-dir" in words and "train.batch_size=16" in words
    resumed = subprocess.run(
        words, env=_probe_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    table = _table(tmp_path)
    assert "3 of 3 trials finished" in resumed.stdout
    assert table.loc[table["retry_of"] == 1, "state"].tolist() == ["complete"]


def test_ctrl_c_during_the_test_evaluation_says_the_test_split_was_not_measured(tmp_path):
    """Every trial has finished when Ctrl-C stops the end-of-study test evaluation: no trial
    was interrupted and the notice says so; running its command again measures the test."""
    process = _start(tmp_path, 1, "--set", "dataset.test_split=0.2", hold_test=True)
    deadline = time.time() + 240
    while not (tmp_path / "tested.txt").exists():
        assert time.time() < deadline and process.poll() is None, "the test was never measured"
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "interrupted" not in err, err[-3000:]
    assert "after every trial had finished" in err and "test split was not measured" in err
    assert _table(tmp_path).loc[0, "state"] == "complete"
    assert not (tmp_path / "runs" / "crash" / "test.json").exists()

    words = shlex.split(err.split("running the same command again: ", 1)[1].splitlines()[0])
    again = subprocess.run(
        words, env=_probe_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "test split, trial #0: test_accuracy=" in again.stdout
    assert (tmp_path / "runs" / "crash" / "test.json").is_file()


def test_printed_commands_name_the_program_as_it_was_typed(tmp_path):
    """Run as `.venv/bin/harness` (a relative path, not on PATH), the commands harness
    prints to copy start with that path, not a bare `harness` the shell cannot find."""
    script = Path(sys.executable).with_name("harness")
    typed = os.path.relpath(script, tmp_path)
    env = {**os.environ, "PATH": "/usr/bin:/bin", "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [typed, "show", "nothing", "--runs-dir", "runs"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"run `{typed} run STUDY.toml` first" in done.stderr


def test_the_tensorboard_hint_sits_next_to_harness_when_it_was_run_by_its_path(monkeypatch):
    from harness.program import sibling

    typed = os.path.relpath(Path(sys.executable).with_name("harness"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "argv", [typed])
    assert sibling("tensorboard") == os.path.join(os.path.dirname(typed), "tensorboard")
    monkeypatch.setattr(sys, "argv", ["harness"])
    assert sibling("tensorboard") == "tensorboard"


def test_sigterm_to_a_background_run_marks_the_trial_and_leaves_no_process(tmp_path):
    """`kill PID` (or `docker stop`, a scheduler's time limit) on a run started with `&`:
    handled like Ctrl-C although the job ignores SIGINT, and nothing is left running."""
    process = _start(tmp_path, 3, hold=1, signals=_as_a_background_job)
    _wait_for_trial(tmp_path, 1)
    os.kill(process.pid, signal.SIGTERM)  # the command alone, not its process group
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "Resume with: " in err
    table = _table(tmp_path)
    assert table.loc[0, "state"] == "complete"
    assert table.loc[1, "state"] == "failed"
    assert table.loc[1, "fail_reason"].startswith("interrupted by the user")
    assert not processes_in_group(process.pid)


def test_workers_are_recycled_and_memory_stays_bounded(tmp_path):
    process = _start(tmp_path, 4, "--recycle-after", "2")
    out, err = process.communicate(timeout=400)
    assert process.returncode == 0, err[-3000:]
    rows = sorted(read_probe(tmp_path))
    assert len(rows) == 4
    pids = [line.pid for line in rows]
    assert len(set(pids)) == 2, "a fresh worker after every 2 trials"
    by_pid: dict[int, list[float]] = {}
    for line in rows:
        by_pid.setdefault(line.pid, []).append(line.rss_mb)
    for samples in by_pid.values():
        assert samples[-1] - samples[0] < 300, samples


RAISING_MODEL = '''
import harness
from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: str = "ok"


def build(params, info):
    import keras
    import tensorflow as tf
    from harness.models import output_layer

    if params.mode == "oom":
        raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
    if params.mode == "bug":
        raise KeyError("a plugin bug")
    inputs = keras.Input(info.input_shape)
    return keras.Model(inputs, output_layer(info)(keras.layers.Flatten()(inputs)))


@harness.hookimpl
def harness_register_models(register):
    register("fragile", build, params=Params)
'''


def _run_fragile(tmp_path, write_study, modes: list[str]):
    plugin = tmp_path / "fragile.py"
    plugin.write_text(RAISING_MODEL)
    plugins = load_plugins([str(plugin)])
    enqueue = "".join(f'\n[[enqueue]]\nmodel.mode = "{m}"\n' for m in modes)
    study = write_study(
        f"""
[study]
name = "fragile"
trials = {len(modes)}
[optuna]
pruner = "none"
[dataset]
name = "digits"
limit = 100
[model]
name = "fragile"
mode = {{choice = ["ok", "oom", "bug"]}}
[train]
epochs = 1
"""
        + enqueue
    )
    spec = load_study(study, plugins)
    return run_study(
        spec, plugins, RunOptions(runs_dir=tmp_path / "runs", in_process=True, show_progress=False)
    )


def test_out_of_memory_and_plugin_bugs_fail_only_their_trial(tmp_path, write_study):
    outcome = _run_fragile(tmp_path, write_study, ["oom", "bug", "ok"])
    table = outcome.table.set_index("number")
    assert table.loc[0, "state"] == "failed"
    assert "out of memory" in table.loc[0, "fail_reason"]
    assert "batch_size" in table.loc[0, "fail_reason"]
    assert table.loc[1, "state"] == "failed" and "KeyError" in table.loc[1, "fail_reason"]
    assert table.loc[2, "state"] == "complete"


def test_study_where_every_trial_fails_ends_with_one_summary(tmp_path, write_study):
    from harness.commands.summary import summary

    outcome = _run_fragile(tmp_path, write_study, ["oom", "oom"])
    text = summary(outcome, outcome.spec)
    assert "2 failed" in text
    assert "every trial failed; most common reason: out of memory" in text


def test_missing_dataset_path_is_refused_before_anything_is_written(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text(
        '[study]\nname = "nodata"\n[dataset]\nname = "digits"\n[model]\nname = "dense"\n'
        .replace('name = "digits"', 'name = "csv_table"\npath = "missing/table.csv"\nlabel = "y"')
    )
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", str(study), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "[dataset].path: missing/table.csv does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


# -- hostile study files: generated input never produces a traceback ---------------------

KEYS = st.sampled_from(
    ["study", "name", "trials", "dataset", "model", "train", "epochs", "units", "filters",
     "dropout", "int", "float", "choice", "step", "log", "when", "objective", "direction",
     "optuna", "sampler", "pruner", "augment", "callbacks", "threshold", "enqueue", "path",
     "learning_rate", "batch_size", "conv_layers", "limit", "seed", "timeout", "x"]
)
SCALARS = st.one_of(
    st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.booleans(),
    st.sampled_from(["digits", "dense", "cnn", "tpe", "val_accuracy", "../x", "a/b", "maximize",
                     "units >= 2", "dense_layers >= 2"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)
    ),
    max_leaves=12,
)
STUDY_TABLES = st.fixed_dictionaries(
    {},
    optional={
        "study": st.dictionaries(KEYS, VALUES, max_size=5),
        "dataset": st.dictionaries(KEYS, VALUES, max_size=4),
        "model": st.dictionaries(KEYS, VALUES, max_size=5),
        "train": st.dictionaries(KEYS, VALUES, max_size=4),
        "optuna": st.dictionaries(KEYS, VALUES, max_size=3),
        "callbacks": st.dictionaries(KEYS, VALUES, max_size=2),
        "enqueue": st.lists(st.dictionaries(KEYS, VALUES, max_size=2), max_size=2),
    },
)


@pytest.fixture(scope="module")
def fuzz_plugins():
    os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        yield load_plugins()
    finally:
        os.environ.pop("HARNESS_DISABLE_PLUGIN_AUTOLOAD", None)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(tables=STUDY_TABLES)
def test_generated_study_files_never_raise_a_traceback(tables, fuzz_plugins, tmp_path_factory):
    base = {
        "study": {"name": "fuzz"},
        "dataset": {"name": "digits"},
        "model": {"name": "dense"},
    }
    for key, value in tables.items():
        base[key] = {**base[key], **value} if key in base and isinstance(value, dict) else value
    path = tmp_path_factory.mktemp("fuzz") / "study.toml"
    path.write_text(tomli_w.dumps(base))
    try:
        load_study(path, fuzz_plugins)
    except HarnessError as exc:
        assert str(path) in str(exc)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.text(max_size=200))
def test_arbitrary_text_is_a_clear_error(text, fuzz_plugins, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "study.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HarnessError):
        load_study(path, fuzz_plugins)


def _journal_with_trials(path: Path, count: int):
    import optuna

    from harness.backends.optuna import make_storage

    study = optuna.create_study(study_name="j", storage=make_storage(str(path)))
    for value in range(count):
        study.tell(study.ask(), float(value))
    return study


@pytest.mark.parametrize("chunk", [1 << 16, 7])  # 7: the last record spans many reads
def test_a_journal_cut_mid_record_is_mended_before_anything_is_appended(
    tmp_path, monkeypatch, caplog, chunk
):
    """A process killed while appending leaves half a line; appending onto it would corrupt
    the journal for good. Opening it moves the half line aside and keeps every full record."""
    import optuna

    from harness.backends import journal
    from harness.backends.optuna import make_storage

    monkeypatch.setattr(journal, "_CHUNK", chunk)
    path = tmp_path / "optuna.journal"
    _journal_with_trials(path, 3)
    whole = path.read_bytes()
    last_start = whole.rstrip(b"\n").rfind(b"\n") + 1
    half = whole[last_start : last_start + (len(whole) - last_start) // 2]
    path.write_bytes(whole[:last_start] + half)

    with caplog.at_level("WARNING"):
        study = optuna.load_study(study_name="j", storage=make_storage(str(path)))
    assert "cut off mid-write" in caplog.text
    (aside,) = tmp_path.glob("optuna.journal.cut-*")
    assert aside.read_bytes() == half
    assert path.read_bytes() == whole[:last_start]
    study.tell(study.ask(), 9.0)  # appends after the mend: the journal stays readable

    reread = optuna.load_study(study_name="j", storage=make_storage(str(path)))
    states = [t.state.name for t in reread.get_trials(deepcopy=False)]
    # the cut record was trial 2's "complete": it is running (an orphan harness re-runs)
    assert states == ["COMPLETE", "COMPLETE", "RUNNING", "COMPLETE"]
    assert reread.trials[-1].value == 9.0


def test_an_intact_journal_is_left_alone(tmp_path):
    from harness.backends.journal import repair_cut_record

    path = tmp_path / "optuna.journal"
    _journal_with_trials(path, 2)
    before = path.read_bytes()
    assert repair_cut_record(path) is None
    assert path.read_bytes() == before
    assert repair_cut_record(tmp_path / "absent.journal") is None
    (tmp_path / "empty.journal").write_bytes(b"")
    assert repair_cut_record(tmp_path / "empty.journal") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.journal", "optuna.journal"]
