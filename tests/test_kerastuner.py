"""KerasTuner backend: the same study, runner and outputs as with Optuna; Hyperband epochs,
grid, resume, failed trials, conditional parameters, chief/worker mode on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.backends import check_backend
from harness.backends.kerastuner.config import config as kerastuner_config
from harness.errors import HarnessError, StudyFileError
from harness.study import load_study

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore:.*currentThread|.*getName:DeprecationWarning")

STUDY = """
[study]
name = "kt"
trials = {trials}
seed = 5
backend = "{backend}"

[kerastuner]
tuner = "{tuner}"
{kerastuner}

[dataset]
name = "digits"
limit = 300

[model]
name = "dense"
units = {{int = [8, 32], step = 8}}
dropout = {{float = [0.0, 0.3]}}

[train]
epochs = {epochs}
learning_rate = 0.01
"""

CNN = """
[study]
name = "kt-cnn"
trials = {trials}
seed = 5
backend = "kerastuner"

[kerastuner]
tuner = "{tuner}"
{kerastuner}

[dataset]
name = "digits"
limit = 300

[model]
name = "cnn"
conv_layers = {conv_layers}
filters = {{choice = [4, 8, 16]}}
padding = "valid"
units = 16

[train]
epochs = 1
"""


def study(trials=3, backend="kerastuner", tuner="random", epochs="2", kerastuner=""):
    return STUDY.format(
        trials=trials, backend=backend, tuner=tuner, epochs=epochs, kerastuner=kerastuner
    )


def by_number(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("number").reset_index(drop=True)


def project_dir(outcome) -> Path:
    return outcome.run_dir / "kerastuner" / outcome.spec.name


def test_same_study_with_both_backends_gives_the_same_table(
    tmp_path, write_study, run_study_in_process, capsys
):
    path = write_study(study(backend="optuna"))
    optuna = run_study_in_process(path, runs_dir=tmp_path / "optuna")
    # `--backend kerastuner` on the same file: nothing else changes.
    kt = run_study_in_process(path, runs_dir=tmp_path / "kt", backend="kerastuner")
    assert kt.spec.study.backend == "kerastuner"
    tables = {}
    for name, outcome in (("optuna", optuna), ("kt", kt)):
        table = pd.read_csv(outcome.run_dir / "trials.csv")
        tables[name] = table
        assert sorted(table["number"]) == [0, 1, 2]
        assert set(table["state"]) == {"complete"}
        assert table["val_accuracy"].between(0, 1).all()
        assert (table["model.units"] % 8 == 0).all()
        assert table["model.dropout"].between(0, 0.3).all()
        assert (table["epochs_run"] == 2).all()
        best = json.loads((outcome.run_dir / "best.json").read_text())
        assert best["trial"] == int(table.iloc[0]["number"])
        assert set(best["params"]) == {"model.units", "model.dropout"}
        card = json.loads((outcome.run_dir / "best_model.json").read_text())
        assert card["trial"] == best["trial"]
        assert (outcome.run_dir / "best.keras").is_file()
        kept = sorted(p.name for p in (outcome.run_dir / "models").glob("trial-*.keras"))
        assert kept == [f"trial-{n:04d}.keras" for n in range(3)]  # keep_models = 3
        cards = [json.loads((outcome.run_dir / "models" / f"trial-{n:04d}.json").read_text())
                 for n in range(3)]
        assert [card["trial"] for card in cards] == [0, 1, 2]
        for number in range(3):
            assert (outcome.run_dir / "tb" / f"trial-{number:04d}" / "train").is_dir()
    assert list(tables["optuna"].columns) == list(tables["kt"].columns)
    assert json.loads((kt.run_dir / "study.json").read_text())["backend"] == "kerastuner"
    records = sorted(project_dir(kt).glob("trial_*/harness.json"))
    assert len(records) == 3
    record = json.loads(records[0].read_text())
    assert record["state"] == "complete" and len(record["history"]["val_accuracy"]) == 2

    from harness.cli import main

    capsys.readouterr()
    assert main(["show", "kt", "--runs-dir", str(tmp_path / "kt")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "study kt: 3 of 3 trials finished (3 complete)"
    assert lines[1].startswith("within noise of the best, #")
    assert lines[2].split()[:4] == ["number", "state", "val_accuracy", "val_accuracy_se"]
    assert len(lines) == 6



def test_hyperband_trains_trials_at_increasing_epoch_budgets(write_study, run_study_in_process):
    text = study(tuner="hyperband", epochs="{int = [1, 2]}", kerastuner="hyperband_factor = 2")
    outcome = run_study_in_process(write_study(text))
    table = by_number(outcome.table)
    # max_epochs = 2, factor 2: two trials at 1 epoch, then the better one goes on at 2.
    assert table["state"].tolist() == ["complete"] * 3
    assert table["epochs_run"].tolist() == [1, 1, 2]
    assert table["train.epochs"].tolist() == [1, 1, 2]
    first_round = table.head(2)
    better = first_round.loc[first_round["val_accuracy"].idxmax()]
    promoted = table.iloc[2]
    assert promoted["model.units"] == better["model.units"]
    assert promoted["model.dropout"] == pytest.approx(better["model.dropout"])
    record = json.loads((project_dir(outcome) / "trial_2" / "harness.json").read_text())
    assert record["kerastuner"]["epochs"] == 2
    assert record["kerastuner"]["initial_epoch"] == 1


def test_resume_keeps_finished_trials(write_study, run_study_in_process):
    path = write_study(study(trials=2, tuner="bayesian"))
    first = run_study_in_process(path)
    before = by_number(pd.read_csv(first.run_dir / "trials.csv"))
    second = run_study_in_process(path, trials=4)
    after = by_number(pd.read_csv(second.run_dir / "trials.csv"))
    assert after["number"].tolist() == [0, 1, 2, 3]
    assert set(after["state"]) == {"complete"}
    columns = ["number", "val_accuracy", "model.units", "model.dropout", "duration_s"]
    pd.testing.assert_frame_equal(before[columns], after[columns].head(2))
    third = run_study_in_process(path, trials=4)
    assert len(third.table) == 4, "budget met: nothing re-run"


def test_failing_trial_is_recorded_and_the_grid_goes_on(write_study, run_study_in_process):
    # Four 'valid' conv blocks shrink an 8x8 digit to nothing: that trial fails, the grid
    # goes on to one block, and ends (two combinations) before the budget of 4.
    text = CNN.format(trials=4, tuner="grid", kerastuner="", conv_layers="{choice = [4, 1]}")
    text = text.replace("filters = {choice = [4, 8, 16]}", "filters = 8")
    outcome = run_study_in_process(write_study(text))
    table = by_number(outcome.table)
    assert table["state"].tolist() == ["failed", "complete"]
    assert table["model.conv_layers"].tolist() == [4, 1]
    assert "shrink" in table.loc[0, "fail_reason"]
    assert 0 <= table.loc[1, "val_accuracy"] <= 1
    from harness.backends import kerastuner

    assert kerastuner.search_over(outcome.spec, str(project_dir(outcome)))


def test_too_many_failures_in_a_row_stop_with_one_message_then_retry(
    write_study, run_study_in_process
):
    text = CNN.format(
        trials=3, tuner="random", kerastuner="max_consecutive_failed_trials = 2", conv_layers=5
    )
    path = write_study(text)
    with pytest.raises(HarnessError, match=r"2 trials in a row failed.*shrink"):
        run_study_in_process(path)
    table = by_number(pd.read_csv(path.parent / "runs" / "kt-cnn" / "trials.csv"))
    assert table["state"].tolist() == ["failed", "failed"]
    # Fixed, then --retry-failed: KerasTuner re-runs both in place, then one more trial.
    write_study(text.replace("conv_layers = 5", "conv_layers = 1"))
    outcome = run_study_in_process(path, retry_failed=True)
    after = by_number(outcome.table)
    assert after["number"].tolist() == [0, 1, 2]
    assert after["state"].tolist() == ["complete"] * 3
    assert after["model.filters"].head(2).tolist() == table["model.filters"].tolist()


def test_conditional_parameters_translate(tmp_path, write_study, plugins):
    from harness.backends.kerastuner.space import declare_space, sample_params, translate
    from harness.backends.kerastuner.tuner import make_oracle

    text = study(
        kerastuner="",
        epochs="2",
    ).replace(
        "dropout = {float = [0.0, 0.3]}",
        """dense_layers = {int = [1, 3]}
units_2 = {int = [8, 16], step = 8, when = "dense_layers >= 2"}
units_3 = {int = [8, 16], step = 8, when = "units_2 in [16]"}
activation = {choice = ["relu", "tanh"]}
dropout = {float = [0.0, 0.3], when = "activation == 'relu'"}
batch_norm = {choice = [true, false], when = "dense_layers > 3"}""",
    )
    spec = load_study(write_study(text), plugins)
    kt_space = translate(spec)
    assert kt_space.scopes["model.units"] == ()
    assert kt_space.scopes["model.units_2"] == (("model.dense_layers", (2, 3)),)
    assert kt_space.scopes["model.units_3"] == (
        ("model.dense_layers", (2, 3)),
        ("model.units_2", (16,)),
    )
    assert kt_space.scopes["model.dropout"] == (("model.activation", ("relu",)),)
    assert "model.batch_norm" not in kt_space.scopes  # never active: dense_layers <= 3

    hp = declare_space(kt_space)
    conditions = {p.name: [(c.name, c.values) for c in p.conditions] for p in hp.space}
    assert conditions["model.units_3"] == [
        ("model.dense_layers", [2, 3]),
        ("model.units_2", [16]),
    ]
    assert conditions["model.dropout"] == [("model.activation", ["relu"])]

    oracle = make_oracle(spec, kt_space, budget=40)
    oracle._set_project_dir(str(tmp_path), "conditions")
    seen = []
    for index in range(20):
        trial = oracle.create_trial(f"t{index}")
        params = sample_params(kt_space, trial.hyperparameters)
        layers = params["model.dense_layers"]
        assert ("model.units_2" in params) == (layers >= 2)
        assert ("model.units_3" in params) == (params.get("model.units_2") == 16)
        assert ("model.dropout" in params) == (params["model.activation"] == "relu")
        assert "model.batch_norm" not in params
        assert params["model.units"] % 8 == 0 and params["train.epochs"] == 2
        seen.append(layers)
    assert len(set(seen)) > 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('tuner = "random"', None),
        ('tuner = "grid"', r"\[model\]\.dropout: tuner = 'grid' needs"),
        ("tuner = 'hyperband'\nhyperband_factor = 1", r"hyperband_factor"),
        ('tuner = "random"\nexecutions = 2', r"\[kerastuner\]\.executions: unknown key"),
    ],
)
def test_kerastuner_section_is_checked(write_study, plugins, change, message):
    text = study().replace('tuner = "random"', change)
    if message is None:
        spec = load_study(write_study(text), plugins)
        assert kerastuner_config(spec).tuner == "random"
        return
    with pytest.raises(StudyFileError, match=message):
        check_backend(load_study(write_study(text), plugins))


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (
            ('objective = "val_accuracy"', 'objective = ["val_accuracy", "params"]'),
            r"optimizes one objective",
        ),
        (
            ("dropout = {float = [0.0, 0.3]}", "dropout = {choice = [0, 0.5]}"),
            r"\[model\]\.dropout\.choice: KerasTuner's hp.Choice needs values of one type",
        ),
        (
            (
                "dropout = {float = [0.0, 0.3]}",
                'dropout = {float = [0.0, 0.3]}\nunits_2 = {int = [8, 16], when = "dropout > 0.1"}',
            ),
            r"\[model\]\.units_2\.when: KerasTuner can make a parameter depend on a float",
        ),
    ],
)
def test_what_kerastuner_cannot_express_is_a_study_file_error(
    write_study, plugins, replace, message
):
    text = study().replace("seed = 5", 'seed = 5\nobjective = "val_accuracy"').replace(*replace)
    with pytest.raises(StudyFileError, match=message):
        check_backend(load_study(write_study(text), plugins))


def test_chief_and_workers_slots_on_loopback(write_study, plugins, monkeypatch):
    from harness.backends.kerastuner import distributed_slots
    from harness.workers import plan_workers

    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        monkeypatch.delenv(name, raising=False)

    spec = load_study(write_study(study()), plugins)
    one = plan_workers(1, [])
    assert distributed_slots(spec, one) == one, "one worker: no chief unless asked"
    slots = distributed_slots(spec, plan_workers(2, ["0", "1"]))
    assert [s.worker_id for s in slots] == ["chief", "w0", "w1"]
    chief, *workers = slots
    assert chief.env["KERASTUNER_TUNER_ID"] == "chief"
    assert chief.env["CUDA_VISIBLE_DEVICES"] == ""
    assert [w.env["KERASTUNER_TUNER_ID"] for w in workers] == ["tuner0", "tuner1"]
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in workers] == ["0", "1"]
    for slot in slots:
        assert slot.env["KERASTUNER_ORACLE_IP"] == "127.0.0.1"
        assert slot.env["KERASTUNER_ORACLE_PORT"] == chief.env["KERASTUNER_ORACLE_PORT"]
    # A machine whose environment names a worker joins that chief instead of starting one.
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "10.0.0.5")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "box1")
    joining = distributed_slots(spec, plan_workers(2, []))
    assert [s.env["KERASTUNER_TUNER_ID"] for s in joining] == ["box1-0", "box1-1"]


def test_chief_with_one_worker_on_loopback_finishes_the_study(tmp_path, write_study):
    """KerasTuner's chief/worker mode through real processes: the orchestrator starts a
    chief (the oracle's gRPC service) and one worker, which trains every trial."""
    path = write_study(study(backend="optuna", kerastuner="distributed = true"))
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        env.pop(name, None)
    command = [sys.executable, "-m", "harness", "run", str(path), "--backend", "kerastuner"]
    command += ["--no-progress", "--runs-dir", str(tmp_path / "runs")]
    run = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "3 complete" in run.stdout
    table = by_number(pd.read_csv(tmp_path / "runs" / "kt" / "trials.csv"))
    assert table["number"].tolist() == [0, 1, 2]
    assert table["worker"].eq("w0").all()
    assert table["val_accuracy"].between(0, 1).all()
    project = tmp_path / "runs" / "kt" / "kerastuner" / "kt"
    assert (project / "chief.json").is_file(), "the chief saved the oracle"


def test_harness_worker_joins_a_kerastuner_chief(write_study, monkeypatch, capsys):
    """``harness worker --oracle HOST:PORT`` names this machine's workers after the host
    and points them at the chief; without an address it says what to pass."""
    from harness import cli
    from harness.commands import worker

    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        monkeypatch.setenv(name, "")  # recorded, so that what the CLI sets is undone after
        monkeypatch.delenv(name)
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    path = write_study(study())
    assert cli.main(["worker", str(path)]) == 2
    assert "--oracle HOST:PORT" in capsys.readouterr().err
    assert cli.main(["worker", str(path), "--oracle", "nohost"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err

    seen = {}

    def fake_run_study(spec, plugins, options):
        seen.update({k: os.environ[k] for k in os.environ if k.startswith("KERASTUNER_")})
        seen["workers"] = options.workers
        raise KeyboardInterrupt

    monkeypatch.setattr(worker, "run_study", fake_run_study)
    assert cli.main(["worker", str(path), "--oracle", "10.0.0.5:8000", "--workers", "2"]) == 130
    assert seen["KERASTUNER_ORACLE_IP"] == "10.0.0.5"
    assert seen["KERASTUNER_ORACLE_PORT"] == "8000"
    assert seen["KERASTUNER_TUNER_ID"] and "chief" not in seen["KERASTUNER_TUNER_ID"]
    assert seen["workers"] == 2


@pytest.mark.parametrize("backend", ["optuna", "kerastuner"])
def test_ctrl_c_notice_promises_the_re_run_both_backends_make(write_study, plugins, backend):
    """Both backends run an interrupted trial again by themselves (Optuna as a new trial,
    KerasTuner in place), so the resume command is the command that was run."""
    from types import SimpleNamespace

    from harness.commands.run import interrupted_notice

    text = STUDY.format(trials=2, backend=backend, tuner="random", kerastuner="", epochs=1)
    spec = load_study(write_study(text), plugins)
    notice = interrupted_notice(
        SimpleNamespace(command_line=["run", "kt.toml"], retry_failed=False), spec
    )
    assert "the interrupted one will run again" in notice
    assert notice.endswith("Resume with: harness run kt.toml")

    spec.study.max_retries = 0  # no re-run: say so, and resume with the retry
    notice = interrupted_notice(
        SimpleNamespace(command_line=["run", "kt.toml"], retry_failed=False), spec
    )
    assert "does not run again by itself ([study].max_retries = 0)" in notice
    assert notice.endswith("Resume with: harness run kt.toml --retry-failed")


def _interrupting(monkeypatch, numbers: list[int], error: BaseException):
    """Make the KerasTuner runner's trial #N raise ``error`` once for each N in
    ``numbers`` (Ctrl-C, or a problem that stops the study), as a real one would."""
    from harness.backends.kerastuner import tuner

    real = tuner.run_trial
    pending = list(numbers)

    def run_trial(ctx, plugins, reporter):
        if ctx.number in pending:
            pending.remove(ctx.number)
            raise error
        return real(ctx, plugins, reporter)

    monkeypatch.setattr(tuner, "run_trial", run_trial)


def test_an_interrupted_kerastuner_trial_runs_again_in_place_up_to_max_retries(
    write_study, run_study_in_process, monkeypatch
):
    path = write_study(study(trials=3, epochs="1"))
    _interrupting(monkeypatch, [1], KeyboardInterrupt())
    first = run_study_in_process(path)
    assert first.interrupted
    table = by_number(first.table)
    assert table["state"].tolist() == ["complete", "failed"]
    assert table["counted"].tolist() == [True, False]
    assert table.loc[1, "fail_reason"] == (
        "interrupted by the user (not counted; runs again in place when the study resumes)"
    )

    second = run_study_in_process(path)  # the same command: the trial runs again
    after = by_number(second.table)
    assert after["number"].tolist() == [0, 1, 2]
    assert after["state"].tolist() == ["complete"] * 3
    assert after.loc[1, "model.units"] == table.loc[1, "model.units"]
    assert after.loc[1, "model.dropout"] == pytest.approx(table.loc[1, "model.dropout"])

    # Interrupted on its re-run too: [study].max_retries = 1 is spent, so it counts.
    path = write_study(study(trials=3, epochs="1").replace('name = "kt"', 'name = "kt2"'))
    _interrupting(monkeypatch, [1], KeyboardInterrupt())
    run_study_in_process(path)
    _interrupting(monkeypatch, [1], KeyboardInterrupt())
    again = by_number(run_study_in_process(path).table)
    assert again.loc[1, "state"] == "failed" and bool(again.loc[1, "counted"])
    assert again.loc[1, "fail_reason"].endswith("(re-runs exhausted: [study].max_retries)")
    final = by_number(run_study_in_process(path).table)
    assert final["state"].tolist() == ["complete", "failed", "complete"], "budget of 3 met"


def test_a_machine_sharing_the_project_folder_is_checked_against_its_record(
    tmp_path, write_study, monkeypatch, capsys
):
    """The project folder records what the study trains, so a run from another runs
    dir (another machine) on the same folder with other values is refused."""
    from harness.cli import main

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    path = str(write_study(study(trials=1, epochs="1")))
    shared = tmp_path / "shared-project"
    common = ["--storage", str(shared), "--in-process", "--no-progress"]
    assert main(["run", path, *common, "--runs-dir", str(tmp_path / "a")]) == 0
    assert json.loads((shared / "harness_definition.json").read_text())["literals"]

    elsewhere = tmp_path / "b"
    code = main(["run", path, *common, "--set", "train.epochs=2", "--runs-dir", str(elsewhere)])
    err = capsys.readouterr().err
    assert code == 2 and "train.epochs = 1 there, 2 now" in err, err
    assert not (elsewhere / "kt").exists(), "nothing was written"
    assert main(["run", path, *common, "--trials", "2", "--runs-dir", str(elsewhere)]) == 0
    table = pd.read_csv(elsewhere / "kt" / "trials.csv")
    assert sorted(table["number"]) == [0, 1], "the other machine's trial counts"


def test_a_trial_recorded_complete_but_unheard_by_the_oracle_is_not_trained_again(
    write_study, run_study_in_process
):
    """A worker stopped between writing a trial's record and the oracle's end_trial
    leaves the trial "ongoing" in oracle.json; KerasTuner hands it out again on resume.
    It is done: its stored result is reported, not retrained."""
    path = write_study(study(trials=2, epochs="1"))
    first = run_study_in_process(path)
    before = by_number(first.table)
    project = project_dir(first)
    state = json.loads((project / "oracle.json").read_text())
    state["ongoing_trials"] = {"tuner0": "1"}  # as saved by create_trial, before end_trial
    state["end_order"] = [t for t in state["end_order"] if t != "1"]
    (project / "oracle.json").write_text(json.dumps(state))

    after = by_number(run_study_in_process(path, trials=3).table)
    assert after["state"].tolist() == ["complete"] * 3
    assert after.loc[1, "duration_s"] == before.loc[1, "duration_s"], "not trained again"
    assert after.loc[1, "val_accuracy"] == before.loc[1, "val_accuracy"]


def test_the_chief_waits_only_for_ongoing_trials_that_may_still_report(tmp_path):
    from types import SimpleNamespace

    from harness.backends.kerastuner.distributed import _awaited

    def record(trial_id: str, **fields):
        folder = tmp_path / f"trial_{trial_id}"
        folder.mkdir()
        (folder / "harness.json").write_text(json.dumps({"trial_id": trial_id, **fields}))

    record("0", state="running")
    record("1", state="failed", orphaned=True, retries=1)  # died, re-runs spent
    record("2", state="failed", orphaned=True, retries=0)  # died, will run again
    record("3", state="complete")

    def oracle(*ids):
        return SimpleNamespace(ongoing_trials={f"t{i}": SimpleNamespace(trial_id=i) for i in ids})

    assert _awaited(oracle("0"), tmp_path, max_retries=1)
    assert not _awaited(oracle("1", "3"), tmp_path, max_retries=1)
    assert _awaited(oracle("1", "2"), tmp_path, max_retries=1)
    assert not _awaited(oracle(), tmp_path, max_retries=1)


def test_a_kerastuner_trial_that_stopped_the_study_runs_again_once_it_is_fixed(
    write_study, run_study_in_process, monkeypatch
):
    from harness.errors import StudyAborted

    path = write_study(study(trials=2, epochs="1"))
    _interrupting(monkeypatch, [0], StudyAborted("the dataset folder is empty"))
    with pytest.raises(HarnessError, match="the dataset folder is empty"):
        run_study_in_process(path)
    table = by_number(pd.read_csv(path.parent / "runs" / "kt" / "trials.csv"))
    assert table["state"].tolist() == ["failed"] and not table["counted"].iloc[0]
    assert "stopped the study; not counted" in table["fail_reason"].iloc[0]

    outcome = run_study_in_process(path)  # "fixed": the same command runs the whole budget
    after = by_number(outcome.table)
    assert after["state"].tolist() == ["complete", "complete"]
    assert after.loc[0, "model.units"] == table.loc[0, "model.units"], "same trial, in place"
