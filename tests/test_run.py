"""Running studies: results table, resume, failed-trial isolation, CLI end to end.

TensorBoard's event files are checked in tests/test_tensorboard.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import processes_in_group

from harness.study import load_study

REPO = Path(__file__).resolve().parents[1]

SMALL = """
[study]
name = "small"
trials = {trials}
seed = 3

[optuna]
sampler = "{sampler}"
pruner = "none"

[dataset]
name = "digits"
limit = 300

[model]
name = "dense"
units = {{int = [8, 32], step = 8}}
dropout = {{float = [0.0, 0.3]}}

[train]
epochs = 2
"""


def small(trials=2, sampler="tpe", extra=""):
    return SMALL.format(trials=trials, sampler=sampler) + extra


def test_trials_csv_has_a_row_per_trial_with_every_column(write_study, run_study_in_process):
    outcome = run_study_in_process(write_study(small(trials=3)))
    table = pd.read_csv(outcome.run_dir / "trials.csv")
    assert len(table) == 3
    for column in (
        "number",
        "state",
        "val_accuracy",
        "model.units",
        "model.dropout",
        "duration_s",
        "device",
        "fail_reason",
        "val_loss",
        "params",
        "train_seconds",
    ):
        assert column in table.columns, column
    assert set(table["state"]) == {"complete"}
    assert table["val_accuracy"].between(0, 1).all()
    assert list(table["val_accuracy"]) == sorted(table["val_accuracy"], reverse=True)
    assert (table["model.units"] % 8 == 0).all()
    best = json.loads((outcome.run_dir / "best.json").read_text())
    assert best["trial"] == int(table.iloc[0]["number"])
    assert best["values"]["val_accuracy"] == pytest.approx(table.iloc[0]["val_accuracy"])
    assert set(best["params"]) >= {"model.units", "model.dropout"}
    assert (outcome.run_dir / "best.keras").is_file()
    card = json.loads((outcome.run_dir / "best_model.json").read_text())
    assert card["trial"] == best["trial"]
    assert card["dataset"]["class_names"] == [str(d) for d in range(10)]


def test_resume_keeps_finished_trials(write_study, run_study_in_process):
    first = run_study_in_process(write_study(small(trials=2)))
    before = pd.read_csv(first.run_dir / "trials.csv").sort_values("number")
    second = run_study_in_process(write_study(small(trials=3)))
    after = pd.read_csv(second.run_dir / "trials.csv").sort_values("number")
    assert list(after["number"]) == [0, 1, 2]
    pd.testing.assert_frame_equal(
        before[["number", "val_accuracy", "model.units"]].reset_index(drop=True),
        after[["number", "val_accuracy", "model.units"]].head(2).reset_index(drop=True),
    )
    third = run_study_in_process(write_study(small(trials=3)))
    assert len(pd.read_csv(third.run_dir / "trials.csv")) == 3, "budget met: nothing re-run"


def test_failing_trial_is_recorded_and_study_goes_on(write_study, run_study_in_process):
    text = """
        [study]
        name = "failing"
        trials = 2
        [optuna]
        pruner = "none"
        [dataset]
        name = "digits"
        limit = 200
        [model]
        name = "cnn"
        conv_layers = {choice = [4, 1]}
        filters = 4
        units = 8
        [train]
        epochs = 1
        [[enqueue]]
        model.conv_layers = 4
        [[enqueue]]
        model.conv_layers = 1
    """
    outcome = run_study_in_process(write_study(text))
    table = outcome.table.set_index("number")
    assert table.loc[0, "state"] == "failed"
    assert "shrink" in table.loc[0, "fail_reason"] and "conv_layers" in table.loc[0, "fail_reason"]
    assert table.loc[1, "state"] == "complete"


REGRESSION_PLUGIN = """
import numpy as np
import harness
from harness.data import DatasetInfo, from_arrays

def load(params, context):
    x = np.linspace(-1, 4, 200, dtype="float32").reshape(-1, 1)
    y = 2 * x - 1
    info = DatasetInfo(name="line", input_shape=(1,), task="regression")
    return from_arrays(info, x, y, x, y)

@harness.hookimpl
def harness_register_datasets(register):
    register("line", load)
"""


def test_nan_loss_fails_the_trial_with_a_reason(tmp_path, write_study, monkeypatch):
    from harness.orchestrator import RunOptions, run_study
    from harness.plugins import load_plugins

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugin = tmp_path / "line_plugin.py"
    plugin.write_text(REGRESSION_PLUGIN)
    plugins = load_plugins([str(plugin)])
    text = """
        [study]
        name = "nan"
        trials = 2
        objective = "val_loss"
        [optuna]
        pruner = "none"
        [dataset]
        name = "line"
        [model]
        name = "dense"
        dense_layers = 0
        [train]
        epochs = 3
        batch_size = 8
        optimizer = "sgd"
        learning_rate = {choice = [5.0, 0.01]}
        [[enqueue]]
        train.learning_rate = 5.0
        [[enqueue]]
        train.learning_rate = 0.01
    """
    spec = load_study(write_study(text), plugins)
    outcome = run_study(
        spec, plugins, RunOptions(runs_dir=tmp_path / "runs", in_process=True, show_progress=False)
    )
    table = outcome.table.set_index("number")
    assert table.loc[0, "state"] == "failed"
    assert "nan" in table.loc[0, "fail_reason"].lower() or "inf" in table.loc[0, "fail_reason"]
    assert "learning rate" in table.loc[0, "fail_reason"]
    assert table.loc[1, "state"] == "complete"


CHANCE_PLUGIN = """
import numpy as np
from pydantic import BaseModel
import harness
from harness.data import DatasetInfo, from_arrays

class Params(BaseModel):
    signal: bool = False
    rows: int = 370  # 320 training rows: 20 batches of 16, the fewest stop_at_chance judges

def load(params, context):
    size = params.rows
    y = np.arange(size) % 10
    x = np.eye(10, dtype="float32")[y] if params.signal else np.zeros((size, 10), "float32")
    info = DatasetInfo(name="tenclass", input_shape=(10,), task="multiclass", num_classes=10)
    return from_arrays(info, x[:-50], y[:-50], x[-50:], y[-50:])

@harness.hookimpl
def harness_register_datasets(register):
    register("tenclass", load, params=Params)
"""


def _run_tenclass(tmp_path, monkeypatch, signal: bool, backend="optuna", rows=370, **study):
    """Run trials (1 by default) of 3 epochs on 10 balanced classes whose features are all
    zero (nothing to learn: the model's output is constant) or, with ``signal``, the one-hot
    label."""
    from harness.orchestrator import RunOptions, run_study
    from harness.plugins import load_plugins
    from harness.study import parse_study

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "tensorboard")
    plugin = tmp_path / "tenclass_plugin.py"
    plugin.write_text(CHANCE_PLUGIN)
    plugins = load_plugins([str(plugin)])
    raw = {
        "study": {"name": "chance", "trials": 1, "seed": 0, "backend": backend} | study,
        "dataset": {"name": "tenclass", "signal": signal, "rows": rows},
        "model": {"name": "dense", "units": {"int": [4, 16]}},
        "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.05},
    }
    spec = parse_study(raw, plugins, tmp_path / "study.toml")
    options = RunOptions(runs_dir=tmp_path / "runs", in_process=True, show_progress=False)
    return run_study(spec, plugins, options)


@pytest.mark.parametrize(
    ("backend", "rows", "study"),
    [("optuna", 370, {}), ("optuna", 370, {"objective": ["val_accuracy", "params"]}),
     ("optuna", 690, {"folds": 2}), ("kerastuner", 370, {})],
    ids=["optuna", "optuna-multi-objective", "optuna-folds", "kerastuner"],
)
def test_a_trial_no_better_than_chance_is_pruned_after_its_first_epoch(
    tmp_path, monkeypatch, backend, rows, study
):
    """Three in a row: KerasTuner's oracle sees them as failed, yet goes on (its
    max_consecutive_failed_trials = 3 counts broken trials only). A fold trains on half
    of the 690 pooled rows: 345, 21 batches."""
    from harness.results import read_histories

    outcome = _run_tenclass(
        tmp_path, monkeypatch, signal=False, backend=backend, rows=rows, trials=3, **study
    )
    assert list(outcome.table["state"]) == ["pruned"] * 3
    trial = outcome.table.set_index("number").loc[0]
    assert trial["fail_reason"].startswith("stopped after epoch 1: no better than chance")
    assert re.search(r"\(val_accuracy 0\.(0|1)\d{3} <= 0\.12, loss ", trial["fail_reason"])
    assert ">= 0.95 ln 10); [study].stop_at_chance = false" in trial["fail_reason"]
    assert trial["epochs_run"] == 1
    assert len(read_histories(outcome.run_dir)[0]["loss"]) == 1
    csv = pd.read_csv(outcome.run_dir / "trials.csv")
    assert csv.loc[0, "fail_reason"] == trial["fail_reason"]


@pytest.mark.parametrize(
    ("signal", "rows", "study"),
    [(False, 370, {"stop_at_chance": False}), (True, 370, {}), (False, 354, {})],
    ids=["stop_at_chance-off", "learning-model", "19-batches"],
)
def test_stop_at_chance_off_a_learning_model_or_a_short_epoch_runs_every_epoch(
    tmp_path, monkeypatch, signal, rows, study
):
    """304 training rows are 19 batches of 16: too few updates to judge a model by."""
    outcome = _run_tenclass(tmp_path, monkeypatch, signal=signal, rows=rows, **study)
    trial = outcome.table.set_index("number").loc[0]
    assert trial["state"] == "complete", trial["fail_reason"]
    assert trial["epochs_run"] == 3
    assert (trial["val_accuracy"] > 0.5) == signal


def test_only_multiclass_datasets_of_three_or_more_classes_stop_at_chance():
    """A binary model often sits at 50% for an epoch before it learns: it is left alone."""
    from types import SimpleNamespace

    from harness.data import DatasetInfo
    from harness.trial import chance_classes

    def classes(task, count, on=True):
        spec = SimpleNamespace(study=SimpleNamespace(stop_at_chance=on))
        return chance_classes(spec, DatasetInfo("d", (4,), task, num_classes=count))

    assert classes("multiclass", 10) == 10
    assert classes("multiclass", 3) == 3
    assert classes("multiclass", 10, on=False) is None
    assert classes("binary", 2) is None
    assert classes("regression", None) is None


def test_missing_objective_metric_aborts_with_one_message(write_study, run_study_in_process):
    from harness.errors import HarnessError

    # The study file is refused before any trial: digits declares a multiclass task.
    text = small(trials=3).replace("seed = 3", 'seed = 3\nobjective = "val_mae"')
    with pytest.raises(HarnessError, match=r"'val_mae' is not reported for dataset 'digits'"):
        run_study_in_process(write_study(text))
    # A metric no task check can rule out stops the study at the first epoch of trial 0.
    text = small(trials=3).replace("seed = 3", 'seed = 3\nobjective = "val_auc"')
    with pytest.raises(HarnessError, match=r"metric 'val_auc' \(named by the study\) is not among"):
        run_study_in_process(write_study(text))


def test_multi_objective_with_nsga2(write_study, run_study_in_process):
    text = small(trials=3, sampler="nsga2").replace(
        "seed = 3", 'seed = 3\nobjective = ["val_accuracy", "params"]'
    )
    outcome = run_study_in_process(write_study(text))
    table = outcome.table
    assert {"val_accuracy", "params"} <= set(table.columns)
    assert (table["state"] == "complete").all()
    assert table["params"].gt(0).all()


@pytest.mark.parametrize("sampler", ["random", "cmaes"])
def test_other_samplers_run(write_study, run_study_in_process, sampler):
    outcome = run_study_in_process(write_study(small(trials=2, sampler=sampler)))
    assert (outcome.table["state"] == "complete").all()


@pytest.mark.parametrize("pruner", ["median", "hyperband", "successive_halving"])
def test_pruners_are_fed_each_epoch(write_study, run_study_in_process, pruner):
    text = small(trials=4).replace('pruner = "none"', f'pruner = "{pruner}"\nstartup_trials = 1')
    text = text.replace("epochs = 2", "epochs = 3")
    outcome = run_study_in_process(write_study(text))
    import optuna

    study = optuna.load_study(
        study_name="small",
        storage=__import__("harness.backends.optuna", fromlist=["x"]).make_storage(
            str(outcome.run_dir / "optuna.journal")
        ),
    )
    reported = [len(t.intermediate_values) for t in study.trials]
    assert all(n >= 1 for n in reported), reported
    assert max(reported) == 3


def test_quickstart_cli_end_to_end(tmp_path):
    """The README's main job at a reduced budget, through real worker processes."""
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            str(REPO / "studies" / "quickstart.toml"),
            "--trials",
            "2",
            "--no-progress",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    stdout, stderr = process.communicate(timeout=400)
    run = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    left = processes_in_group(process.pid)
    assert not left, f"processes left behind by harness run: {left}"
    assert run.returncode == 0, run.stderr[-3000:]
    assert "best trial #" in run.stdout
    assert "hand-picked" in run.stdout, "the summary compares the best with trial #0"
    for chatter in ("oneDNN custom operations", "absl::InitializeLog", "cuInit"):
        assert chatter not in run.stderr, "TensorFlow's native start-up logs are silenced"
    show = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "show",
            "quickstart",
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert show.returncode == 0, show.stderr
    lines = show.stdout.strip().splitlines()
    assert lines[0] == "study quickstart: 2 of 2 trials finished (2 complete)"
    assert lines[1].startswith("within noise of the best, #")
    assert lines[2].startswith(("hand-picked trial #0: ", "the hand-picked trial #0 is still"))
    assert lines[3].split()[:5] == [
        "number", "state", "hand_picked", "val_accuracy", "val_accuracy_se"
    ]
    assert len(lines) == 6
    assert "test split, trial #" in run.stdout, "the best trial is measured on the test split"
    table = pd.read_csv(tmp_path / "runs" / "quickstart" / "trials.csv")
    assert table.loc[0, "number"] == 0 or table["number"].tolist().count(0) == 1
    assert table["worker"].eq("w0").all()


def test_smoke_runs_one_short_trial(tmp_path, plugins):
    from harness.orchestrator import RunOptions, run_study

    spec = load_study(REPO / "studies" / "quickstart.toml", plugins)
    outcome = run_study(
        spec,
        plugins,
        RunOptions(runs_dir=tmp_path, in_process=True, show_progress=False, smoke=True),
    )
    assert outcome.run_dir.name == "quickstart-smoke"
    assert len(outcome.table) == 1
    assert outcome.table.loc[0, "epochs_run"] == 1


def test_smoke_run_measures_a_smoke_sized_test_split_and_says_so(tmp_path, plugins):
    """quickstart holds out 360 test digits; a smoke run measures a few, records how many,
    and its summary and test.json say the figure is not a real one."""
    from harness.commands.summary import summary
    from harness.orchestrator import RunOptions, run_study

    spec = load_study(REPO / "studies" / "quickstart.toml", plugins)
    outcome = run_study(
        spec,
        plugins,
        RunOptions(runs_dir=tmp_path, in_process=True, show_progress=False, smoke=True),
    )
    test = json.loads((outcome.run_dir / "test.json").read_text())
    assert test.get("examples", 360) < 360, "a smoke run measures a few test examples"
    from harness.smoke import SMOKE_TEST_EXAMPLES

    assert test["examples"] == SMOKE_TEST_EXAMPLES
    assert "smoke run" in test["note"] and "not a figure of the model" in test["note"]
    assert list(outcome.tested) == [0]
    text = summary(outcome, outcome.spec)
    assert f"smoke-sized test split ({SMOKE_TEST_EXAMPLES} examples; not a real figure)" in text


def test_resumed_and_recycled_workers_draw_new_parameters(write_study, run_study_in_process):
    """Each worker process seeds its sampler apart from the others: a resumed (or
    recycled, or parallel) worker must not replay the first worker's draws."""
    from harness.backends.optuna import worker_seed

    path = write_study(small(trials=3, sampler="random"))
    run_study_in_process(path)
    path.write_text(path.read_text().replace("trials = 3", "trials = 6"))
    table = run_study_in_process(path).table
    drawn = list(zip(table["model.units"], table["model.dropout"], strict=True))
    assert len(table) == 6 and len(set(drawn)) == 6, drawn
    assert worker_seed(3, "main", 0) == 3, "a fresh one-worker study keeps its seed"
    seeds = {worker_seed(3, w, n) for w in ("w0", "w1") for n in (0, 10)}
    assert len(seeds) == 4
    assert worker_seed(None, "w1", 5) is None


def test_summary_compares_the_best_trial_with_the_hand_picked_one(tmp_path, plugins):
    from types import SimpleNamespace

    from harness.commands.summary import summary
    from harness.study import load_study

    spec = load_study(REPO / "studies" / "quickstart.toml", plugins)
    table = pd.DataFrame(
        {"number": [3, 0, 1], "state": ["complete"] * 3, "val_accuracy": [0.97, 0.9, 0.5],
         "fail_reason": [None] * 3}
    )
    text = summary(SimpleNamespace(table=table, run_dir=tmp_path), spec)
    assert "best trial #3: val_accuracy=0.9700" in text
    # As a run builds it: no re-run, so retry_of holds None (an object column).
    with_none = table.assign(retry_of=pd.Series([None] * 3, dtype=object))
    assert summary(SimpleNamespace(table=with_none, run_dir=tmp_path), spec) == text
    assert "hand-picked trial #0: val_accuracy=0.9000" in text
    assert "the search's best is better by 0.0700" in text
    text = summary(SimpleNamespace(table=table.iloc[1:], run_dir=tmp_path), spec)
    assert "the hand-picked trial #0 is still the best" in text

    # #0 was interrupted twice; its third run (#4, re-run of re-run #2) is the hand-picked one.
    rerun = pd.DataFrame(
        {"number": [3, 4, 1, 0, 2], "state": ["complete"] * 3 + ["failed"] * 2,
         "val_accuracy": [0.97, 0.95, 0.5, None, None], "retry_of": [None, 2, None, None, 0],
         "fail_reason": [None] * 3 + ["interrupted"] * 2}
    )
    text = summary(SimpleNamespace(table=rerun, run_dir=tmp_path), spec)
    assert "hand-picked trial #4: val_accuracy=0.9500; the search's best is better by 0.02" in text
    text = summary(SimpleNamespace(table=rerun.iloc[1:], run_dir=tmp_path), spec)
    assert "the hand-picked trial #4 is still the best" in text

    # Two hand-picked trials: the best of them is the one to beat, and can be the best.
    spec.enqueue = [*spec.enqueue, dict(spec.enqueue[0])]
    text = summary(SimpleNamespace(table=table, run_dir=tmp_path), spec)
    assert "best hand-picked trial #0: val_accuracy=0.9000; the search's best is better" in text
    two = pd.DataFrame(
        {"number": [1, 0, 2], "state": ["complete"] * 3, "val_accuracy": [0.97, 0.9, 0.5],
         "fail_reason": [None] * 3}
    )
    text = summary(SimpleNamespace(table=two, run_dir=tmp_path), spec)
    assert "the hand-picked trial #1 is still the best" in text and "better by" not in text


def test_summary_of_a_timeout_before_any_trial_and_of_a_budget_met_already(tmp_path, plugins):
    from types import SimpleNamespace

    from harness.commands.summary import summary
    from harness.study import load_study

    spec = load_study(REPO / "studies" / "quickstart.toml", plugins)
    spec.study = spec.study.model_copy(update={"timeout": 1e-9})
    waiting = pd.DataFrame(
        {"number": [0], "state": ["waiting"], "val_accuracy": [None], "fail_reason": [None]}
    )
    text = summary(SimpleNamespace(table=waiting, run_dir=tmp_path, interrupted=False), spec)
    assert "0 of 12 trials finished (none)" in text
    assert "no trial finished: the --timeout of 1e-09 s ended the study before one could" in text

    spec.study = spec.study.model_copy(update={"trials": 2, "timeout": None})
    done = pd.DataFrame(
        {"number": [0, 1, 2], "state": ["complete"] * 3, "val_accuracy": [0.9, 0.8, 0.7],
         "fail_reason": [None] * 3}
    )
    text = summary(SimpleNamespace(table=done, run_dir=tmp_path), spec)
    assert "3 trials finished, over the budget of 2 (3 complete)" in text


def test_the_terminal_leaves_tensorflows_retracing_notes_to_the_log_file():
    """Each trial builds a new model, so TensorFlow retraces by design; its note is noise
    in the terminal. Other TensorFlow warnings still show."""
    import logging

    from harness.logs import _NotTrialFailures

    def record(name: str, message: str) -> logging.LogRecord:
        return logging.LogRecord(name, logging.WARNING, __file__, 1, message, None, None)

    keep = _NotTrialFailures().filter
    retrace = "5 out of the last 15 calls to <function f> triggered tf.function retracing."
    assert not keep(record("tensorflow", retrace))
    assert keep(record("tensorflow", "Your input ran out of data"))
    assert not keep(record("optuna.study._optimize", "Trial 3 failed with parameters"))
    assert keep(record("harness.orchestrator", "study changed"))
