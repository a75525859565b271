"""Results a user can act on: test split measured once, true exit codes, live and one-line
reports, problems no trial can avoid stop the study at once (all through the CLI)."""

from __future__ import annotations

import json
import math
import os
import socket
import textwrap

import pandas as pd
import pytest

from harness.cli import main

DIGITS_STUDY = """
[study]
name = "{name}"
trials = {trials}
seed = 3
{study_extra}
[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "{dataset}"
{dataset_extra}
[model]
name = "{model}"
{model_extra}
[train]
epochs = 1
"""

BROKEN_PLUGIN = '''
import harness
from pydantic import BaseModel, ConfigDict


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def load(params, context):
    raise ValueError("column 'pixel1' has text in row 7")


def build(params, info):
    import keras
    from harness.models import BuiltModel, output_layer

    inputs = keras.Input(info.input_shape)
    outputs = output_layer(info)(keras.layers.Flatten()(inputs))

    def nan_loss(y_true, y_pred):
        return keras.ops.mean(y_pred) * float("nan")

    return BuiltModel(keras.Model(inputs, outputs), loss=nan_loss)


@harness.hookimpl
def harness_register_datasets(register):
    register("broken_loader", load, params=Params)


@harness.hookimpl
def harness_register_models(register):
    register("nan_model", build, params=Params)
'''


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Run ``harness ...`` in this process (``--in-process``); returns (code, out, err)."""
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text(BROKEN_PLUGIN)

    def run(*args: str, plugin_file: bool = False):
        extra = ["--plugin", str(plugin)] if plugin_file else []
        code = main([*args, "--runs-dir", str(tmp_path / "runs"), *extra])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def study_file(tmp_path, **fields) -> str:
    values = {
        "name": "trust",
        "trials": 2,
        "study_extra": "",
        "dataset": "digits",
        "dataset_extra": "limit = 300\ntest_split = 0.2",
        "model": "dense",
        "model_extra": "units = {int = [8, 32]}",
        **fields,
    }
    path = tmp_path / f"{values['name']}.toml"
    path.write_text(textwrap.dedent(DIGITS_STUDY.format(**values)))
    return str(path)


def test_best_trial_is_measured_once_on_the_test_split(tmp_path, cli):
    code, out, err = cli("run", study_file(tmp_path), "--in-process", "--no-progress")
    assert code == 0, err
    run_dir = tmp_path / "runs" / "trust"
    table = pd.read_csv(run_dir / "trials.csv")
    best, other = table.iloc[0], table.iloc[1]
    assert 0.0 <= best["test_accuracy"] <= 1.0
    assert pd.isna(other["test_accuracy"]), "only the best trial is measured"
    best_json = json.loads((run_dir / "best.json").read_text())
    assert best_json["test"]["test_accuracy"] == pytest.approx(best["test_accuracy"])
    card = json.loads((run_dir / "best_model.json").read_text())
    assert card["test"]["test_accuracy"] == pytest.approx(best["test_accuracy"])
    assert card["dataset"]["preprocessing"]["validation_source"] == "train"
    assert f"test split, trial #{int(best['number'])}: test_accuracy=" in out
    assert "warning" not in out
    assert f"(harness show trust --runs-dir {tmp_path / 'runs'})" in out  # not ./runs

    # Not a terminal: one line per finished trial, no progress bar.
    lines = [line for line in out.splitlines() if line.startswith("trial #")]
    assert len(lines) == 2 and all("complete" in line and "model.units=" in line for line in lines)

    code, out, _ = cli("show", "trust")
    assert code == 0 and "test_accuracy" in out and "2 of 2 trials finished" in out

    code, out, err = cli("report", "trust")
    assert code == 0, err
    page = (run_dir / "report" / "index.html").read_text()
    assert "test split (measured once): test_accuracy" in page

    code, out, err = cli("evaluate", "trust", "--top", "2")
    assert code == 0, err
    table = pd.read_csv(run_dir / "trials.csv")
    assert table["test_accuracy"].notna().all(), "--top 2 measures both kept models"


def test_the_last_trials_model_is_measured_from_memory_with_the_saved_weights(
    tmp_path, cli, monkeypatch, plugins
):
    import keras

    from harness.evaluate import evaluate_trials
    from harness.results import forget_saved_model
    from harness.study import load_study

    loaded = []
    load_model = keras.models.load_model
    monkeypatch.setattr(
        keras.models, "load_model", lambda *a, **k: loaded.append(a) or load_model(*a, **k)
    )
    path = study_file(tmp_path, trials=1)
    code, _, err = cli("run", path, "--in-process", "--no-progress")
    assert code == 0, err
    assert loaded == [], "the trial's model was still in memory: nothing is loaded back"
    run_dir = tmp_path / "runs" / "trust"
    in_memory = json.loads((run_dir / "best_model.json").read_text())["test"]

    forget_saved_model()
    from_disk = evaluate_trials(load_study(path, plugins), plugins, run_dir, [0])[0]
    assert len(loaded) == 1
    assert from_disk == pytest.approx(in_memory, abs=1e-6)


def test_a_loader_raising_any_exception_stops_the_study_with_exit_2(tmp_path, cli):
    path = study_file(tmp_path, dataset="broken_loader", dataset_extra="", trials=4)
    code, out, err = cli("run", path, "--in-process", "--no-progress", plugin_file=True)
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken_loader" in errors[0] and "ValueError" in errors[0]
    assert "Traceback" not in err
    table = pd.read_csv(tmp_path / "runs" / "trust" / "trials.csv")
    assert len(table) == 1, "stopped at the first trial"


def test_a_study_where_every_trial_has_a_nan_loss_exits_1(tmp_path, cli):
    path = study_file(tmp_path, model="nan_model", model_extra="", trials=2)
    code, out, err = cli("run", path, "--in-process", "--no-progress", plugin_file=True)
    assert code == 1, err
    assert "every trial failed; most common reason: loss became nan" in out
    assert "Traceback" not in err and "Traceback" not in out
    log = (tmp_path / "runs" / "trust" / "harness.log").read_text()
    assert "Traceback" in log, "the full story is in harness.log"


def test_an_objective_the_task_does_not_produce_stops_at_the_first_trial(tmp_path, cli):
    # val_auc passes the study-file check (a model builder could add AUC) but this
    # model does not report it: the study stops after one epoch of its first trial.
    path = study_file(tmp_path, study_extra='objective = "val_auc"', trials=3)
    code, out, err = cli("run", path, "--in-process", "--no-progress")
    assert code == 2
    assert "'val_auc'" in err and "val_accuracy" in err
    table = pd.read_csv(tmp_path / "runs" / "trust" / "trials.csv")
    assert len(table) == 1


def test_exit_codes_are_documented_in_one_table():
    readme = (os.path.dirname(__file__) + "/../README.md")
    text = open(readme, encoding="utf-8").read()
    section = text.split("### Exit codes", 1)[1][:800]
    for code in ("| 0 ", "| 1 ", "| 2 ", "| 130 "):
        assert code in section


def test_a_multi_objective_study_measures_every_pareto_optimal_trial(tmp_path, cli):
    path = study_file(
        tmp_path, study_extra='objective = ["val_accuracy", "params"]', trials=3
    )
    code, out, err = cli("run", path, "--in-process", "--no-progress")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "runs" / "trust" / "trials.csv")
    complete = table[table["state"] == "complete"]
    points = list(zip(complete["val_accuracy"], -complete["params"], strict=True))

    def dominated(p):
        return any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)

    front = complete[[not dominated(p) for p in points]]
    assert front["test_accuracy"].notna().all()
    assert complete[[dominated(p) for p in points]]["test_accuracy"].isna().all()


def test_validate_refuses_an_objective_the_dataset_task_never_reports(tmp_path, cli):
    path = study_file(tmp_path, study_extra='objective = "val_mae"')
    code, out, err = cli("validate", path)
    assert code == 2
    assert "'val_mae' is not reported for dataset 'digits'" in err and "'val_accuracy'" in err
    path = study_file(
        tmp_path, name="cb", model_extra='units = 8\n[callbacks.early_stopping]\nmonitor = "mae"'
    )
    code, out, err = cli("validate", path)
    assert code == 2 and "[callbacks.early_stopping].monitor" in err


def test_the_dataset_check_refuses_bad_data_before_anything_is_written(tmp_path, cli):
    only = tmp_path / "pets" / "cats"
    only.mkdir(parents=True)
    (only / "a.png").write_bytes(b"not really a png")
    path = study_file(
        tmp_path, dataset="image_folder", dataset_extra=f'path = "{tmp_path / "pets"}"'
    )
    code, out, err = cli("validate", path)
    assert code == 2 and "at least 2 class folders" in err
    code, out, err = cli("run", path, "--in-process")
    assert code == 2 and "at least 2 class folders" in err
    assert not (tmp_path / "runs").exists(), "nothing written"


def test_a_dataset_without_a_test_split_says_its_figure_is_not_unbiased(tmp_path, cli):
    path = study_file(tmp_path, dataset_extra="limit = 200", trials=1)
    code, out, err = cli("run", path, "--in-process", "--no-progress")
    assert code == 0, err
    assert "no test split in this dataset" in out
    assert "test split, trial" not in out


def test_selecting_on_the_test_split_must_be_asked_for_and_is_flagged(tmp_path, cli):
    from conftest import write_mnist_idx

    data = write_mnist_idx(tmp_path / "mnist")
    extra = f'path = "{data}"'
    code, out, err = cli(
        "run", study_file(tmp_path, dataset="mnist", dataset_extra=extra, trials=1),
        "--in-process", "--no-progress",
    )
    assert code == 0, err
    card = json.loads((tmp_path / "runs" / "trust" / "best_model.json").read_text())
    assert card["dataset"]["preprocessing"]["validation_source"] == "train"
    assert "warning" not in out and "test split, trial #0" in out

    extra += '\nvalidation = "test"'
    code, out, err = cli(
        "run", study_file(tmp_path, name="biased", dataset="mnist", dataset_extra=extra, trials=1),
        "--in-process", "--no-progress",
    )
    assert code == 0, err
    card = json.loads((tmp_path / "runs" / "biased" / "best_model.json").read_text())
    assert card["dataset"]["preprocessing"]["validation_source"] == "test"
    assert "warning: validation = 'test'" in out and "not an unbiased estimate" in out


def test_show_watch_returns_once_the_study_has_ended(tmp_path, cli):
    code, _, err = cli("run", study_file(tmp_path, trials=1), "--in-process", "--no-progress")
    assert code == 0, err
    code, out, _ = cli("show", "trust", "--watch")
    assert code == 0 and out.startswith("study trust: 1 of 1 trials finished")


def test_resuming_with_other_fixed_values_or_plugins_is_refused_before_anything_is_written(
    tmp_path, cli
):
    """Trials of one study must train the same thing: another file, `--set` value or
    dataset under the same name would mix in trials that cannot be compared."""
    code, _, err = cli("run", study_file(tmp_path), "--in-process", "--no-progress")
    assert code == 0, err
    run_dir = tmp_path / "runs" / "trust"
    journal = (run_dir / "optuna.journal").read_bytes()
    meta = (run_dir / "study.json").read_text()

    refusals = [
        (("--set", "train.epochs=2"), "train.epochs = 1 there, 2 now"),
        (("--set", "train.batch_size=16"), "train.batch_size = 16 only now"),
        (("--set", "model.units=16"), "model.units was searched there, fixed at 16 now"),
    ]
    for flags, named in refusals:
        code, _, err = cli("run", study_file(tmp_path), "--trials", "3", *flags, "--in-process")
        assert code == 2 and named in err and "--set study.name=trust-2" in err, err
    # Another file under the same name: a different model plugin.
    (tmp_path / "other").mkdir()
    other = study_file(tmp_path / "other", model="cnn", model_extra="filters = 4")
    code, _, err = cli("run", other, "--trials", "3", "--in-process")
    assert code == 2 and 'model "dense" there, "cnn" now' in err, err
    assert (run_dir / "optuna.journal").read_bytes() == journal, "nothing was appended"
    assert (run_dir / "study.json").read_text() == meta

    # A new search domain is allowed (each trial's values are in the table), and said.
    code, _, err = cli(
        "run", study_file(tmp_path), "--trials", "3", "--set", "model.units={int = [40, 48]}",
        "--in-process", "--no-progress",
    )
    assert code == 0, err
    assert "search domain of model.units changed: int [8, 32] there, int [40, 48] now" in err
    table = pd.read_csv(run_dir / "trials.csv").sort_values("number")
    assert table["model.units"].iloc[-1] >= 40 and (table["model.units"].iloc[:2] <= 32).all()


def test_a_machine_joining_shared_storage_is_checked_against_the_storages_record(
    tmp_path, cli, capsys
):
    """Another machine has no study.json of its own: what the study trains is recorded in
    the shared database, so a `harness worker` with other values is refused there too."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    code, _, err = cli(
        "run", study_file(tmp_path), "--storage", url, "--in-process", "--no-progress"
    )
    assert code == 0, err
    elsewhere = tmp_path / "machine-b"  # its own runs dir, the same database

    code = main([
        "worker", study_file(tmp_path), "--storage", url, "--set", "train.epochs=2",
        "--runs-dir", str(elsewhere), "--no-progress",
    ])
    err = capsys.readouterr().err
    assert code == 2 and "train.epochs = 1 there, 2 now" in err, err
    assert not (elsewhere / "trust").exists(), "nothing was written"

    code = main([
        "run", study_file(tmp_path), "--storage", url, "--trials", "3", "--in-process",
        "--no-progress", "--runs-dir", str(elsewhere),
    ])
    assert code == 0, capsys.readouterr().err
    table = pd.read_csv(elsewhere / "trust" / "trials.csv")
    assert sorted(table["number"]) == [0, 1, 2], "the first machine's trials count"


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() outside optimize()
def test_a_study_training_on_another_machine_is_not_changed_under_it(tmp_path, cli):
    """No trial has finished yet, but one is running on another machine: a run with
    other values would train something else alongside it, so it is refused too. A
    running trial left by a dead process on this host does not count."""
    import optuna

    from harness.backends.optuna import HOST, make_storage

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    path = study_file(tmp_path, model="nan_model", model_extra="", trials=1)
    code, _, _ = cli("run", path, "--storage", url, "--in-process", plugin_file=True)
    assert code == 1, "its one trial failed: nothing finished"
    study = optuna.load_study(study_name="trust", storage=make_storage(url))
    elsewhere = study.ask()
    elsewhere.set_user_attr("pid", 1)
    elsewhere.set_user_attr("host", "another-machine")

    code, _, err = cli(
        "run", path, "--storage", url, "--set", "train.epochs=2", "--in-process",
        plugin_file=True,
    )
    assert code == 2 and "train.epochs = 1 there, 2 now" in err, err

    study.tell(elsewhere, state=optuna.trial.TrialState.FAIL)
    dead_here = study.ask()
    dead_here.set_user_attr("pid", _dead_pid())
    dead_here.set_user_attr("host", HOST)
    code, _, err = cli(
        "run", path, "--storage", url, "--set", "train.epochs=2", "--in-process",
        "--no-progress", plugin_file=True,
    )
    assert "changed since its last run" in err and "different study" not in err, err


def test_a_first_run_may_keep_its_sqlite_database_in_its_own_run_directory(tmp_path, cli):
    url = f"sqlite:///{tmp_path / 'runs' / 'trust' / 'optuna.db'}"
    code, _, err = cli("run", study_file(tmp_path), "--storage", url, "--in-process")
    assert code == 0, err
    assert (tmp_path / "runs" / "trust" / "optuna.db").is_file()


def test_a_trial_that_stopped_the_study_does_not_use_up_the_budget(tmp_path, cli):
    """Bad data stops the study at its first trial; once the data is fixed, the same
    command runs the whole budget (the stopped trial never trained, so it does not
    count) and the summary no longer reports the old error."""
    path = study_file(tmp_path, dataset="broken_loader", dataset_extra="", trials=2)
    code, _, err = cli("run", path, "--in-process", "--no-progress", plugin_file=True)
    assert code == 2 and "column 'pixel1'" in err
    code, out, _ = cli("show", "trust")
    assert "0 of 2 trials finished (none); 1 interrupted or replaced, not counted" in out

    study_file(tmp_path, dataset="digits", dataset_extra="limit = 300", trials=2)  # fixed
    code, out, err = cli("run", path, "--in-process", "--no-progress", plugin_file=True)
    assert code == 0, err
    assert "2 of 2 trials finished (2 complete); 1 interrupted or replaced" in out
    assert "every trial failed" not in out
    table = pd.read_csv(tmp_path / "runs" / "trust" / "trials.csv")
    stopped = table[table["state"] == "failed"]
    assert len(stopped) == 1 and not stopped["counted"].iloc[0]
    assert stopped["fail_reason"].iloc[0].endswith("(re-run as trial #1)")  # same parameters
    assert "changed since its last run" in err  # another dataset: allowed, none had finished


def test_retry_failed_replaces_failed_trials_that_have_no_searched_values(tmp_path, cli):
    """With every value fixed there are no parameters to enqueue; --retry-failed must
    still stop counting the failed trials, so new ones take their place."""
    path = study_file(tmp_path, model="nan_model", model_extra="", trials=2)
    code, out, err = cli("run", path, "--in-process", "--no-progress", plugin_file=True)
    assert code == 1 and "2 of 2 trials finished (2 failed)" in out, err
    study_file(tmp_path, model="dense", model_extra="units = 8", trials=2)  # fixed
    code, out, err = cli(
        "run", path, "--retry-failed", "--in-process", "--no-progress", plugin_file=True
    )
    assert code == 0, err
    assert "2 of 2 trials finished (2 complete); 2 interrupted or replaced, not counted" in out


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_runs_trial_shows_as_interrupted_and_watch_returns(tmp_path, cli):
    """After SIGKILL the storage still says RUNNING; `show` must not report it as still
    running forever, and `show --watch` must return once no run is left to finish it."""
    import optuna

    from harness.backends.optuna import HOST, make_storage
    from harness.run_marker import MARKER_FILE, marking_the_run

    code, _, err = cli("run", study_file(tmp_path, trials=1), "--in-process", "--no-progress")
    assert code == 0, err
    run_dir = tmp_path / "runs" / "trust"
    assert not (run_dir / MARKER_FILE).exists(), "the marker goes when the run ends"
    meta = json.loads((run_dir / "study.json").read_text())
    meta["trials"] = 3
    (run_dir / "study.json").write_text(json.dumps(meta))
    storage = make_storage(str(run_dir / "optuna.journal"))
    orphan = optuna.load_study(study_name="trust", storage=storage).ask()
    orphan.set_user_attr("pid", _dead_pid())
    orphan.set_user_attr("host", HOST)

    code, out, _ = cli("show", "trust")
    assert "1 of 3 trials finished (1 complete); 1 interrupted or replaced" in out
    assert "still running" not in out and "interrupted: its worker process ended" in out
    units = int(pd.read_csv(run_dir / "trials.csv")["model.units"].iloc[0])
    row = next(line.split() for line in out.splitlines() if line.split()[:2] == ["0", "complete"])
    assert str(units) in row and f"{units}.0" not in row, row  # an int, despite the gap
    code, out, err = cli("show", "trust", "--watch")
    assert code == 0 and "no harness run is running this study now" in err

    with marking_the_run(run_dir):  # a live run (this process) is left to finish it
        from harness.show import study_ended, study_table

        assert not study_ended(run_dir, study_table(run_dir))
    assert study_ended(run_dir, study_table(run_dir))


def test_the_run_marker_trusts_other_hosts_and_not_dead_processes(tmp_path):
    from harness.run_marker import MARKER_FILE, marking_the_run, run_active

    assert not run_active(tmp_path)
    with marking_the_run(tmp_path):
        assert run_active(tmp_path)
    assert not (tmp_path / MARKER_FILE).exists()
    here = socket.gethostname()
    (tmp_path / MARKER_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": here}))
    assert not run_active(tmp_path)
    (tmp_path / MARKER_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    assert run_active(tmp_path)


def test_evaluate_finds_the_study_file_from_any_folder(tmp_path, cli, monkeypatch):
    """study.json records the study file's absolute path, not the one typed in the folder
    the run started from."""
    study_file(tmp_path, trials=1)
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("run", "trust.toml", "--in-process", "--no-progress")
    assert code == 0, err
    assert "(harness show trust)" in out  # ./runs is the default: no flag needed
    meta = json.loads((tmp_path / "runs" / "trust" / "study.json").read_text())
    assert meta["study_file"] == str(tmp_path.resolve() / "trust.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out, err = cli("evaluate", "trust")
    assert code == 0 and "test_accuracy" in out, err


def test_results_of_a_study_whose_journal_was_moved_away_are_set_aside(tmp_path, cli):
    """Moving a corrupt journal away (as its error advises) starts the study afresh; the
    old best model must not be shown or exported as the new study's."""
    code, _, err = cli("run", study_file(tmp_path, trials=1), "--in-process", "--no-progress")
    assert code == 0, err
    run_dir = tmp_path / "runs" / "trust"
    (run_dir / "optuna.journal").rename(tmp_path / "old.journal")
    path = study_file(tmp_path, model="nan_model", model_extra="", trials=1)
    code, out, err = cli("run", path, "--in-process", "--no-progress", plugin_file=True)
    assert code == 1, err
    assert "held the results of an earlier study that its storage no longer has" in err
    (aside,) = run_dir.glob("stale-*")
    assert (aside / "best.keras").is_file() and (aside / "best.json").is_file()
    assert not (run_dir / "best.keras").exists() and not (run_dir / "best.json").exists()
    code, _, err = cli("export", "trust", "--best-model", str(tmp_path / "x.keras"))
    assert code == 2 and not (tmp_path / "x.keras").exists(), err


def test_report_prints_no_drawing_warnings(tmp_path, cli, recwarn):
    """One trial: each slice plot has a single point, which matplotlib warns about."""
    code, _, err = cli("run", study_file(tmp_path, trials=1), "--in-process", "--no-progress")
    assert code == 0, err
    recwarn.clear()
    code, out, err = cli("report", "trust")
    assert code == 0 and out.startswith("report: "), err
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)], [
        str(w.message) for w in recwarn
    ]


def test_a_run_leaves_a_later_runs_marker_in_place(tmp_path):
    """Two runs of one study: the first to end must not remove the other's marker."""
    from harness.run_marker import MARKER_FILE, marking_the_run, run_active

    with marking_the_run(tmp_path):
        later = {"pid": os.getppid(), "host": socket.gethostname()}  # a live process
        (tmp_path / MARKER_FILE).write_text(json.dumps(later))
    assert json.loads((tmp_path / MARKER_FILE).read_text()) == later
    assert run_active(tmp_path)


def test_a_nan_fixed_value_resumes_its_own_study():
    """NaN never equals itself: compared as values, a study with a NaN fixed value would
    be refused as "different" on every resume."""
    from harness.errors import HarnessError
    from harness.resume import check_resumes_same_study

    now = {"components": {"model": "dense"}, "literals": {"model.x": float("nan")}, "searched": {}}
    recorded = json.loads(json.dumps(now))  # as study.json and the storage give it back
    assert check_resumes_same_study("s", recorded, now, finished=True) == []
    changed = {**now, "literals": {"model.x": 0.5}}
    with pytest.raises(HarnessError, match="model.x = NaN there, 0.5 now"):
        check_resumes_same_study("s", recorded, changed, finished=True)


def test_the_best_is_compared_with_the_hand_picked_trial_on_both_splits_with_its_noise(
    tmp_path, cli
):
    """Trial #0 is hand-picked (a learning rate too small to learn in one epoch): it is
    measured on the test split beside the best although keep_models = 1 keeps only the
    best's model otherwise, and every gap printed carries its standard error."""
    path = study_file(tmp_path, trials=3, study_extra="keep_models = 1")
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(
            "learning_rate = {choice = [0.00001, 0.02]}\n\n"
            "[[enqueue]]\nmodel.units = 8\ntrain.learning_rate = 0.00001\n"
        )
    code, out, err = cli("run", path, "--in-process", "--no-progress")
    assert code == 0, err
    run_dir = tmp_path / "runs" / "trust"
    table = pd.read_csv(run_dir / "trials.csv")
    best, picked = table.iloc[0], table[table["number"] == 0].iloc[0]
    assert int(best["number"]) != 0, "the hand-picked trial learned nothing"
    examples = int(picked["val_examples"])
    assert examples > 0 and (table["val_examples"] == examples).all()
    assert (run_dir / "models" / "trial-0000.keras").is_file(), "kept to be measured"
    assert table["test_accuracy"].notna().sum() == 2, "the best and the hand-picked one"

    gap = best["val_accuracy"] - picked["val_accuracy"]
    error = math.hypot(
        *(math.sqrt(p * (1 - p) / examples) for p in (best["val_accuracy"], picked["val_accuracy"]))
    )
    assert (
        f"hand-picked trial #0: val_accuracy={picked['val_accuracy']:.4f}; the search's best "
        f"is better by {gap:.4f} (standard error {error:.4f})"
    ) in out
    tests = [ln for ln in out.splitlines() if ln.startswith("test split, trial #")]
    assert tests[0].startswith(f"test split, trial #{int(best['number'])} (best): test_accuracy=")
    figure = f"test_accuracy={picked['test_accuracy']:.4f}"
    assert tests[1].startswith(f"test split, trial #0 (hand-picked): {figure}")
    test_gap = best["test_accuracy"] - picked["test_accuracy"]
    assert f"; the search's best is better by {test_gap:.4f} (standard error 0.0" in tests[1]

    code, out, err = cli("show", "trust")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].startswith(f"within noise of the best, #{int(best['number'])} (gap under two")
    assert lines[2].startswith("hand-picked trial #0: val_accuracy=")
    assert lines[3].split()[:5] == [
        "number", "state", "hand_picked", "val_accuracy", "val_accuracy_se"
    ]
    row = next(ln.split() for ln in lines[4:] if ln.split()[0] == "0")
    assert row[1:3] == ["complete", "yes"]

    code, out, err = cli("report", "trust")
    assert code == 0, err
    page = (run_dir / "report" / "index.html").read_text()
    assert "the search&#x27;s best is better by" in page and "(standard error 0.0" in page
    assert "hand-picked trial #0 on the test split (measured once): test_accuracy" in page
    assert "<th class=\"text\">hand_picked</th>" in page
