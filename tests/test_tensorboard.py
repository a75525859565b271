"""The TensorBoard tracker: HParams sessions that tell trials apart, domains, one config.

One small study (digits, a tiny dense model, 2 epochs) is run once for the module
with an in-test plugin that prunes trial 1 and fails trial 2, then resumed for one
more trial; the tests read its event files back, and one serves them through a
real TensorBoard.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import pytest

FATE_PLUGIN = '''
"""Test plugin: a callback that prunes or fails chosen trials at their second epoch,
and a recorder of harness_test_evaluated."""

from pydantic import BaseModel, ConfigDict

import harness
from harness.errors import TrialPruned

TESTED = []


class FateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prune: list[int] = []
    fail: list[int] = []


def make_fate(params, trial):
    import keras

    class Fate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1 and trial.number in params.prune:
                raise TrialPruned("pruned at epoch 2")
            if epoch == 1 and trial.number in params.fail:
                raise RuntimeError("boom")

    return Fate()


@harness.hookimpl
def harness_register_callbacks(register):
    register("fate", make_fate, params=FateParams, description="prune or fail trials")


@harness.hookimpl
def harness_test_evaluated(study, trial_number, metrics):
    TESTED.append((study.name, trial_number, dict(metrics)))
'''

STUDY = """
[study]
name = "fates"
trials = 3
seed = 5

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"
limit = 200
test_split = 0.2

[model]
name = "dense"
units = {int = [4, 16], step = 4}
dropout = {float = [0.0, 0.2], step = 0.1}

[train]
epochs = {int = [2, 3]}
learning_rate = {float = [0.001, 0.01], log = true}

[callbacks.fate]
prune = [1]
fail = [2]
"""
SEARCHED = {"model.units", "model.dropout", "train.epochs", "train.learning_rate"}
EXPECTED_STATE = {0: "complete", 1: "pruned", 2: "failed", 3: "complete"}


class FatesRun:
    """The module's study after its first run and its resume."""

    def __init__(self, run_dir: Path, first, second, tested: list):
        self.run_dir = run_dir
        self.tb = run_dir / "tb"
        self.first = first
        self.second = second
        self.tested = tested


@pytest.fixture(scope="module")
def fates(tmp_path_factory):
    """Run the study (3 trials: complete, pruned, failed), then resume it to 4 trials."""
    from harness.orchestrator import RunOptions, run_study
    from harness.plugins import load_plugins
    from harness.study import load_study

    root = tmp_path_factory.mktemp("fates")
    (root / "tb_fate.py").write_text(FATE_PLUGIN, encoding="utf-8")
    path = root / "fates.toml"
    path.write_text(textwrap.dedent(STUDY), encoding="utf-8")
    saved = os.environ.get("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        plugins = load_plugins([str(root / "tb_fate.py")])
        recorder = plugins.pm.get_plugin(plugins.loaded[-1].name)
        spec = load_study(path, plugins)
        options = dict(runs_dir=root / "runs", in_process=True, show_progress=False)
        first = run_study(spec, plugins, RunOptions(**options))
        second = run_study(spec, plugins, RunOptions(trials=4, **options))
    finally:
        if saved is None:
            os.environ.pop("HARNESS_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = saved
    states = dict(zip(second.table["number"], second.table["state"], strict=True))
    assert states == EXPECTED_STATE, second.table
    return FatesRun(second.run_dir, first, second, recorder.TESTED)


# --------------------------------------------------------------------------- reading events


def _load(path: Path):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.TENSORS: 0}
    )
    acc.Reload()
    return acc


def _plugin_data(acc, tag: str):
    from tensorboard.plugins.hparams import plugin_data_pb2

    return plugin_data_pb2.HParamsPluginData.FromString(acc.PluginTagToContent("hparams")[tag])


def _experiment(tb: Path):
    return _plugin_data(_load(tb), "_hparams_/experiment").experiment


def _session(run: Path):
    """(hparams as plain values, status name, the accumulator) of one trial's run."""
    from tensorboard.plugins.hparams import api_pb2

    acc = _load(run)
    start = _plugin_data(acc, "_hparams_/session_start_info").session_start_info
    end = _plugin_data(acc, "_hparams_/session_end_info").session_end_info
    values = {}
    for name, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        values[name] = getattr(value, kind)
    assert start.start_time_secs <= end.end_time_secs
    return values, api_pb2.Status.Name(end.status), acc


def _scalar(acc, tag: str) -> float:
    import tensorflow as tf

    return float(tf.make_ndarray(acc.Tensors(tag)[-1].tensor_proto))


def _text(acc, tag: str) -> str:
    import tensorflow as tf

    return tf.make_ndarray(acc.Tensors(tag)[-1].tensor_proto).item().decode()


def _domains(experiment) -> dict:
    """hparam name -> list of discrete values, (min, max) of an interval, or None."""
    from google.protobuf.json_format import MessageToDict

    found = {}
    for info in experiment.hparam_infos:
        as_dict = MessageToDict(info)
        if "domainDiscrete" in as_dict:
            found[info.name] = as_dict["domainDiscrete"]
        elif "domainInterval" in as_dict:
            interval = as_dict["domainInterval"]
            found[info.name] = (interval.get("minValue", 0.0), interval.get("maxValue", 0.0))
        else:
            found[info.name] = None
    return found


# --------------------------------------------------------------------------- a real study


def test_sessions_end_with_the_trials_status_and_state(fates):
    statuses = {}
    for number, state in EXPECTED_STATE.items():
        values, status, acc = _session(fates.tb / f"trial-{number:04d}")
        statuses[state] = status
        assert values["state"] == state
        assert set(values) == SEARCHED | {"state"}, "where it ran is no hyperparameter"
        assert _text(acc, "trial/worker") == "worker main on device cpu"
        text = _text(acc, "trial/status")
        assert text.startswith(state), text
    assert statuses == {
        "complete": "STATUS_SUCCESS",
        "failed": "STATUS_FAILURE",
        "pruned": "STATUS_UNKNOWN",
    }
    _, _, failed = _session(fates.tb / "trial-0002")
    assert _text(failed, "trial/status") == "failed after epoch 1: RuntimeError: boom"
    _, _, pruned = _session(fates.tb / "trial-0001")
    assert _text(pruned, "trial/status") == "pruned after epoch 1"


def test_every_trial_keeps_its_last_metrics_and_curves(fates):
    table = fates.second.table.set_index("number")
    for number, state in EXPECTED_STATE.items():
        run = fates.tb / f"trial-{number:04d}"
        acc = _load(run)
        tags = set(acc.Tags()["tensors"])
        assert {"final/val_accuracy", "final/val_loss", "final/loss", "final/accuracy"} <= tags
        epochs = table.loc[number, "train.epochs"] if state == "complete" else 1
        assert _scalar(acc, "final/epochs_run") == epochs
        if state == "complete":
            assert {"final/params", "final/train_seconds"} <= tags
        # The Keras callback logged each epoch the trial ran, also the one it stopped at.
        assert len(_load(run / "train").Tensors("epoch_loss")) == epochs
        assert len(_load(run / "validation").Tensors("epoch_accuracy")) == epochs
        value = table.loc[number, "val_accuracy"]
        if isinstance(value, float) and not math.isnan(value):
            assert _scalar(acc, "final/val_accuracy") == pytest.approx(value, rel=1e-5)


def test_one_config_lists_this_studys_metrics_and_domains(fates):
    events = sorted(fates.tb.glob("events.out.tfevents.*"))
    assert len(events) == 1, "one config, although the study ran twice"
    assert (fates.tb / ".hparams-config").is_file()
    experiment = _experiment(fates.tb)
    tags = [(m.name.tag, m.name.group) for m in experiment.metric_infos]
    assert tags[0] == ("final/val_accuracy", "")
    assert len(set(tags)) == len(tags)
    finals = {tag for tag, group in tags if not group}
    assert {
        "final/val_loss",
        "final/loss",
        "final/accuracy",
        "final/params",
        "final/train_seconds",
        "final/epochs_run",
        "final/test_loss",
        "final/test_accuracy",
    } <= finals
    assert not any("mae" in tag for tag, _ in tags), "a classifier has no val_mae"
    assert not any("learning_rate" in tag for tag, _ in tags)
    curves = {(tag, group) for tag, group in tags if group}
    assert curves == {
        ("epoch_loss", "train"),
        ("epoch_loss", "validation"),
        ("epoch_accuracy", "train"),
        ("epoch_accuracy", "validation"),
    }
    domains = _domains(experiment)
    assert set(domains) == SEARCHED | {"state"}
    differs = {info.name for info in experiment.hparam_infos if info.differs}
    assert differs == SEARCHED, "searched parameters are ticked first (module docstring)"
    assert domains["model.units"] == [4, 8, 12, 16]
    assert domains["train.epochs"] == [2, 3]
    assert domains["model.dropout"] == [0.0, 0.1, 0.2]
    assert domains["train.learning_rate"] == (pytest.approx(0.001), pytest.approx(0.01))
    assert domains["state"] == ["complete", "ensemble", "failed", "pruned"]  # sorted
    # Each session's value is one of its domain's values.
    for number in EXPECTED_STATE:
        values, _, _ = _session(fates.tb / f"trial-{number:04d}")
        assert values["model.units"] in domains["model.units"]
        assert values["model.dropout"] in domains["model.dropout"]


def test_test_metrics_land_in_the_best_trials_run(fates):
    # The best trial after each run (the first run's, then the resumed study's).
    tested = [number for _, number, _ in fates.tested]
    assert tested and tested[0] == 0, fates.tested
    assert set(tested) <= {0, 3}
    for study, number, metrics in fates.tested:
        assert study == "fates"
        assert set(metrics) == {"test_loss", "test_accuracy"}
        acc = _load(fates.tb / f"trial-{number:04d}")
        for name, value in metrics.items():
            assert _scalar(acc, f"final/{name}") == pytest.approx(value, rel=1e-6)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def test_tensorboard_serves_each_trials_status(fates):
    from harness.serve import start_tensorboard

    served = start_tensorboard(fates.tb, port=0, reload_interval=1)
    try:
        request = {"startIndex": 0, "sliceSize": 100, "allowedStatuses": ALL_STATUSES}
        deadline = time.time() + 60
        while True:
            groups = _post(served.url + "data/plugin/hparams/session_groups", request)
            listed = {g["name"]: g for g in groups.get("sessionGroups", [])}
            if len(listed) >= len(EXPECTED_STATE) or time.time() > deadline:
                break
            time.sleep(0.5)
        failed_only = _post(
            served.url + "data/plugin/hparams/session_groups",
            {**request, "allowedStatuses": ["STATUS_FAILURE"]},
        )
        experiment = _post(served.url + "data/plugin/hparams/experiment", {})
        # What the HParams dashboard asks for, and ticks the first five of.
        dashboard = _post(
            served.url + "data/plugin/hparams/experiment",
            {"experimentName": "", "hparamsLimit": 1000},
        )
    finally:
        served.stop()

    assert set(listed) == {f"trial-{n:04d}" for n in EXPECTED_STATE}
    served_status = {}
    for number, state in EXPECTED_STATE.items():
        group = listed[f"trial-{number:04d}"]
        (session,) = group["sessions"]
        served_status[state] = session.get("status", "STATUS_UNKNOWN")
        assert group["hparams"]["state"] == state
        metrics = {m["name"]["tag"] for m in group["metricValues"] if not m["name"].get("group")}
        assert "final/val_accuracy" in metrics
        if number == 0:
            assert "final/test_accuracy" in metrics
    assert served_status == {
        "complete": "STATUS_SUCCESS",
        "failed": "STATUS_FAILURE",
        "pruned": "STATUS_UNKNOWN",
    }
    assert [g["name"] for g in failed_only["sessionGroups"]] == ["trial-0002"]
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert infos["model.units"]["domainDiscrete"] == [4, 8, 12, 16]
    ticked = [info["name"] for info in dashboard["hparamInfos"]][:5]
    assert ticked == [*sorted(SEARCHED), "state"], "every searched parameter is shown"
    assert all(info.get("type") for info in dashboard["hparamInfos"]), "each has a type"
    assert not {"worker", "device"} & set(listed["trial-0000"]["hparams"])
    assert infos["state"]["domainDiscrete"] == ["complete", "ensemble", "failed", "pruned"]


# --------------------------------------------------------------------------- an interrupted trial

CTRL_C_PLUGIN = '''
"""Test plugin: Ctrl-C (a KeyboardInterrupt) at the second epoch of chosen trials."""

from pydantic import BaseModel, ConfigDict

import harness


class CtrlCParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trials: list[int] = []


def make_ctrl_c(params, trial):
    import keras

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1 and trial.number in params.trials:
                raise KeyboardInterrupt

    return CtrlC()


@harness.hookimpl
def harness_register_callbacks(register):
    register("ctrl_c", make_ctrl_c, params=CtrlCParams, description="Ctrl-C in a trial")
'''

CTRL_C_STUDY = """
[study]
name = "ctrlc"
trials = 3
seed = 1

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"
limit = 200

[model]
name = "dense"
units = {int = [4, 16], step = 4}

[train]
epochs = 2

[callbacks.ctrl_c]
trials = [1]
"""


def _harness(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    command = [sys.executable, "-m", "harness", *args, "--runs-dir", str(root / "runs")]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=root
    )


def _shown_row(out: str, number: int) -> dict[str, str]:
    """The row of trial ``number`` in ``harness show``'s table, by column name."""
    lines = out.splitlines()
    header = lines[1].split()
    row = next(line.split() for line in lines[2:] if line.split()[0] == str(number))
    return dict(zip(header, row, strict=False))


@pytest.mark.parametrize("backend", ["optuna", "kerastuner"])
def test_an_interrupted_trial_shows_the_same_figures_everywhere(tmp_path, backend):
    """Ctrl-C at trial 1's second epoch: TensorBoard, trials.csv and ``harness show`` give
    the same last-epoch figures for it (its objective included)."""
    import pandas as pd

    (tmp_path / "ctrl_c.py").write_text(CTRL_C_PLUGIN, encoding="utf-8")
    (tmp_path / "ctrlc.toml").write_text(CTRL_C_STUDY, encoding="utf-8")
    run = _harness(
        tmp_path, "run", str(tmp_path / "ctrlc.toml"), "--backend", backend, "--in-process",
        "--no-progress", "--plugin", str(tmp_path / "ctrl_c.py"),
    )
    assert run.returncode == 130, run.stderr[-3000:]

    run_dir = tmp_path / "runs" / "ctrlc"
    table = pd.read_csv(run_dir / "trials.csv").set_index("number")
    assert table.loc[1, "state"] == "failed"
    assert table.loc[1, "fail_reason"].startswith("interrupted by the user")
    acc = _load(run_dir / "tb" / "trial-0001")
    assert _text(acc, "trial/status") == "failed after epoch 1: interrupted by the user"
    for name in ("val_accuracy", "val_loss", "loss", "accuracy", "epochs_run"):
        board = _scalar(acc, f"final/{name}")
        assert table.loc[1, name] == pytest.approx(board, rel=1e-5), name
    assert table.loc[1, "epochs_run"] == 1

    shown = _harness(tmp_path, "show", "ctrlc")
    assert shown.returncode == 0, shown.stderr
    row = _shown_row(shown.stdout, 1)
    assert row["state"] == "failed"
    assert float(row["val_accuracy"]) == pytest.approx(_scalar(acc, "final/val_accuracy"), abs=1e-4)


# --------------------------------------------------------------------------- hooks called directly


@pytest.fixture
def study_context(tmp_path, write_study, plugins):
    """A StudyContext for a small classification study (nothing run)."""
    from harness.context import StudyContext
    from harness.study import load_study

    path = write_study("""
        [study]
        name = "direct"
        [dataset]
        name = "digits"
        limit = 200
        [model]
        name = "dense"
        units = {int = [8, 64], step = 8}
        [train]
        epochs = 3
    """)
    return StudyContext(load_study(path, plugins), tmp_path / "runs" / "direct")


def test_pruned_trial_called_directly_keeps_metrics_and_status(study_context):
    from harness_plugins.trackers import tensorboard as tracker

    from harness.context import TrialContext, TrialResult

    trial = TrialContext(study_context, 5, {"model.units": 24, "train.epochs": 3})
    history = {
        "loss": [1.9, 1.2],
        "accuracy": [0.4, 0.6],
        "val_loss": [1.8, 1.3],
        "val_accuracy": [0.45, 0.55],
    }
    metrics = {key: values[-1] for key, values in history.items()}
    metrics["epochs_run"] = 2.0
    tracker.harness_trial_start(trial)
    tracker.harness_trial_end(trial, TrialResult("pruned", metrics, history, duration_s=1.0))

    values, status, acc = _session(trial.tensorboard_dir)
    assert status == "STATUS_UNKNOWN"
    assert values == {"model.units": 24, "state": "pruned"}
    for name, value in metrics.items():
        assert _scalar(acc, f"final/{name}") == pytest.approx(value)
    assert _text(acc, "trial/status") == "pruned after epoch 2"
    # A pruned trial was the first with metrics: it wrote the config, complete with
    # the metrics that only complete trials and the test evaluation write.
    experiment = _experiment(study_context.tensorboard_dir)
    tags = {m.name.tag for m in experiment.metric_infos}
    assert {"final/params", "final/train_seconds", "final/test_accuracy"} <= tags
    assert _domains(experiment)["model.units"] == [8, 16, 24, 32, 40, 48, 56, 64]


def test_failed_trial_without_epochs_writes_no_config(study_context):
    from harness_plugins.trackers import tensorboard as tracker

    from harness.context import TrialContext, TrialResult

    trial = TrialContext(study_context, 0, {"model.units": 8})
    result = TrialResult("failed", fail_reason="ValueError: bad shape")
    tracker.harness_trial_end(trial, result)
    values, status, acc = _session(trial.tensorboard_dir)
    assert (status, values["state"]) == ("STATUS_FAILURE", "failed")
    assert _text(acc, "trial/status") == "failed: ValueError: bad shape"
    assert not (study_context.tensorboard_dir / tracker.CONFIG_MARKER).exists()
    assert not list(study_context.tensorboard_dir.glob("events.out.tfevents.*"))


def test_a_trial_run_again_under_its_number_replaces_the_earlier_attempt(study_context):
    """KerasTuner re-runs an interrupted or retried trial in place, under the same number.
    TensorBoard keeps the first record of a tag, so the failed attempt's session and
    curves must not stay in the run folder to stand for the re-run."""
    from harness_plugins.trackers import tensorboard as tracker

    from harness.context import TrialContext, TrialResult

    trial = TrialContext(study_context, 3, {"model.units": 16})
    tracker.harness_trial_start(trial)
    (trial.tensorboard_dir / "train").mkdir(parents=True)  # the attempt's Keras curves
    (trial.tensorboard_dir / "train" / "events.out.tfevents.1.attempt").write_bytes(b"")
    tracker.harness_trial_end(trial, TrialResult("failed", fail_reason="interrupted"))

    again = TrialContext(study_context, 3, {"model.units": 16})
    tracker.harness_trial_start(again)
    metrics = {"loss": 0.5, "accuracy": 0.8, "val_loss": 0.6, "val_accuracy": 0.75}
    tracker.harness_trial_end(again, TrialResult("complete", metrics, duration_s=1.0))
    values, status, acc = _session(again.tensorboard_dir)
    assert (status, values["state"]) == ("STATUS_SUCCESS", "complete")
    assert _scalar(acc, "final/val_accuracy") == pytest.approx(0.75)
    assert not (again.tensorboard_dir / "train").exists(), "the attempt's curves are gone"


def test_study_start_needs_no_tensorflow(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from harness_plugins.trackers import tensorboard as tracker

        class Study:
            tensorboard_dir = Path({str(tmp_path / "fresh" / "tb")!r})

        tracker.harness_study_start(Study())
        assert Study.tensorboard_dir.is_dir()
        heavy = [m for m in ("tensorflow", "keras", "tensorboard") if m in sys.modules]
        assert not heavy, heavy
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_one_config_however_many_writers(study_context):
    from harness_plugins.trackers import tensorboard as tracker

    from harness.context import TrialResult

    result = TrialResult("complete", {"loss": 0.5, "val_loss": 0.6})
    wrote: list[bool] = []
    barrier = threading.Barrier(4)

    def write():
        barrier.wait()
        wrote.append(tracker.write_experiment_config(study_context, result))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wrote) == [False, False, False, True]
    assert tracker.write_experiment_config(study_context, result) is False
    assert len(list(study_context.tensorboard_dir.glob("events.out.tfevents.*"))) == 1


def test_root_written_by_an_older_version_gets_no_second_config(study_context):
    from harness_plugins.trackers import tensorboard as tracker

    from harness.context import TrialResult

    root = study_context.tensorboard_dir
    root.mkdir(parents=True)
    (root / "events.out.tfevents.1.host.1.0.v2").write_bytes(b"")
    result = TrialResult("complete", {"loss": 0.5})
    assert tracker.write_experiment_config(study_context, result) is False
    assert len(list(root.glob("events.out.tfevents.*"))) == 1


def test_regression_metrics_are_the_ones_listed(tmp_path, write_study, plugins):
    from harness_plugins.trackers import tensorboard as tracker

    from harness.context import StudyContext, TrialResult
    from harness.study import load_study

    path = write_study(
        """
        [study]
        name = "line"
        objective = "val_mae"
        [dataset]
        name = "linear"
        [model]
        name = "linear"
    """,
        name="line.toml",
    )
    study = StudyContext(load_study(path, plugins), tmp_path / "runs" / "line")
    history = {
        "loss": [2.0],
        "mae": [1.1],
        "val_loss": [2.2],
        "val_mae": [1.2],
        "learning_rate": [0.001],
    }
    metrics = {key: values[-1] for key, values in history.items()}
    listed = tracker.experiment_metrics(study, TrialResult("pruned", metrics, history))
    finals = [tag for tag, group in listed if group is None]
    assert finals[0] == "final/val_mae", "the study's objective comes first"
    assert {"final/val_loss", "final/mae", "final/test_mae", "final/test_loss"} <= set(finals)
    assert {"final/params", "final/train_seconds", "final/epochs_run"} <= set(finals)
    assert not any("accuracy" in tag for tag, _ in listed), "a regression has no accuracy"
    assert "final/test_learning_rate" not in finals
    curves = [(tag, group) for tag, group in listed if group]
    assert curves == [
        ("epoch_loss", "train"),
        ("epoch_loss", "validation"),
        ("epoch_mae", "train"),
        ("epoch_mae", "validation"),
    ]


def test_domains_list_the_values_a_backend_can_suggest():
    from harness_plugins.trackers import tensorboard as tracker

    from harness.space import ChoiceDistribution, FloatDistribution, IntDistribution

    assert tracker.domain_values(IntDistribution(8, 30, 8)) == [8, 16, 24]
    assert tracker.domain_values(IntDistribution(1, 6, 1, log=True)) == [1, 2, 3, 4, 5, 6]
    assert tracker.domain_values(IntDistribution(0, 999)) == list(range(1000))
    assert tracker.domain_values(IntDistribution(0, 1000)) is None, "above the cap: interval"
    assert tracker.domain_values(FloatDistribution(0.1, 0.35, 0.05)) == [
        0.1,
        0.15,
        0.2,
        0.25,
        0.3,
        0.35,
    ]
    assert tracker.domain_values(FloatDistribution(0.0, 1.0, 0.0001)) is None
    assert tracker.domain_values(FloatDistribution(1e-4, 1e-2, log=True)) is None
    assert tracker.domain_values(FloatDistribution(0.0, 0.5)) is None
    assert tracker.domain_values(ChoiceDistribution((0, "block4"))) == ["0", "block4"]
    assert tracker.domain_values(ChoiceDistribution((True, False))) == [True, False]
    stepped = FloatDistribution(0.0, 0.5, 0.1)
    assert tracker.session_value(stepped, 3 * 0.1) == 0.3
    assert tracker.session_value(stepped, 3 * 0.1) in tracker.domain_values(stepped)


def test_the_callback_does_no_work_per_batch_and_writes_each_epoch(tmp_path):
    """Keras's TensorBoard callback writes epochs only here, yet its batch methods still
    call ``summary.scalar`` for every metric of every batch (a no-op without a batch writer,
    but not free: it showed as 1.1x to 1.3x the fit time of small models at one batch per
    call). The tracker's callback makes no per-batch call and still writes every epoch."""
    import keras
    import numpy as np
    import tensorflow as tf
    from harness_plugins.trackers.tensorboard import epoch_tensorboard
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class RecordingSummary:
        """tf.summary, recording the names given to ``scalar``."""

        def __init__(self):
            self.names: list[str] = []

        def __getattr__(self, name):
            return getattr(tf.summary, name)

        def scalar(self, name, *args, **kwargs):
            self.names.append(name)
            return tf.summary.scalar(name, *args, **kwargs)

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", steps_per_execution=1)
    x = np.arange(8, dtype="float32")[:, None]
    calls: dict[str, list[str]] = {}
    for label, board in (
        ("plain", keras.callbacks.TensorBoard(log_dir=str(tmp_path / "plain"))),
        ("tracker", epoch_tensorboard(tmp_path / "tracker")),
    ):
        recording = RecordingSummary()
        board._summary_module = recording  # where Keras's callback keeps tf.summary
        model.fit(x, 2 * x, validation_data=(x, 2 * x), epochs=3, batch_size=2, verbose=0,
                  callbacks=[board])
        calls[label] = recording.names
    assert any(name.startswith("batch_") for name in calls["plain"])  # what is avoided
    assert not any(name.startswith("batch_") for name in calls["tracker"])
    assert calls["tracker"].count("epoch_loss") == 6  # 3 epochs, train and validation
    events = EventAccumulator(str(tmp_path / "tracker" / "train"), size_guidance={"tensors": 0})
    events.Reload()
    assert [e.step for e in events.Tensors("epoch_loss")] == [0, 1, 2]
