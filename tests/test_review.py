"""Reviewing results: ``harness tensorboard``, ``harness report``, ``harness export``.

One small study (digits, a tiny dense model, 2 epochs, 3 trials) is run once for
the module and shared by the tests that read its results.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import urllib.request

import pandas as pd
import pytest
from conftest import heavy_imports_after

from harness.cli import main
from harness.errors import HarnessError

STUDY = """
[study]
name = "review"
trials = 3
seed = 7
objective = "val_accuracy"

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"
limit = 400

[model]
name = "dense"
units = {choice = [8, 16, 32]}
dropout = {float = [0.0, 0.3]}
activation = {choice = ["relu", "tanh"]}

[train]
epochs = 2
batch_size = 64
learning_rate = {float = [0.001, 0.01], log = true}
"""
SEARCHED = ["model.units", "model.dropout", "model.activation", "train.learning_rate"]


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """Run the small study in this process once; returns its run directory."""
    from harness.orchestrator import RunOptions, run_study
    from harness.plugins import load_plugins
    from harness.study import load_study

    root = tmp_path_factory.mktemp("review")
    path = root / "review.toml"
    path.write_text(textwrap.dedent(STUDY), encoding="utf-8")
    saved = os.environ.get("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        plugins = load_plugins()
        spec = load_study(path, plugins)
        outcome = run_study(
            spec, plugins,
            RunOptions(runs_dir=root / "runs", in_process=True, show_progress=False),
        )
    finally:
        if saved is None:
            os.environ.pop("HARNESS_DISABLE_PLUGIN_AUTOLOAD", None)
        else:
            os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = saved
    assert (outcome.table["state"] == "complete").sum() == 3, outcome.table
    return outcome.run_dir


@pytest.fixture
def no_autoload(monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")


# --------------------------------------------------------------------------- histories


def test_histories_json_holds_each_trials_epochs(study_run):
    from harness.results import read_histories

    histories = read_histories(study_run)
    table = pd.read_csv(study_run / "trials.csv")
    assert sorted(histories) == sorted(table["number"])
    for history in histories.values():
        assert len(history["loss"]) == 2 and len(history["val_loss"]) == 2
        assert len(history["val_accuracy"]) == 2


def test_write_results_keeps_histories_without_records(tmp_path):
    from harness.results import TrialRecord, build_table, read_histories, write_results

    objectives = [{"metric": "val_loss", "direction": "minimize"}]
    records = [
        TrialRecord(0, "complete", {"val_loss": 0.5}, {"model.units": 8},
                    history={"loss": [1.0, 0.6], "val_loss": [0.9, 0.5]}),
        TrialRecord(1, "failed", {"val_loss": None}, {"model.units": 16}, fail_reason="boom"),
    ]
    write_results(tmp_path, build_table(records, objectives), objectives)
    assert read_histories(tmp_path) == {0: {"loss": [1.0, 0.6], "val_loss": [0.9, 0.5]}}
    # A table read back from CSV carries no histories: the file is left as it is.
    write_results(tmp_path, pd.read_csv(tmp_path / "trials.csv"), objectives)
    assert read_histories(tmp_path) == {0: {"loss": [1.0, 0.6], "val_loss": [0.9, 0.5]}}


# --------------------------------------------------------------------------- report


def test_report_has_every_plot_and_parameter(study_run, capsys):
    assert main(["report", str(study_run)]) == 0
    index = study_run / "report" / "index.html"
    assert str(index) in capsys.readouterr().out
    text = index.read_text()
    for name in SEARCHED:
        assert name in text
    images = re.findall(r'<img src="([^"]+)"', text)
    for image in images:
        assert not image.startswith(("/", "http")), "images are relative to the report"
        assert (index.parent / image).is_file(), image
    for required in ("history.png", "importances.png", "parallel_coordinates.png"):
        assert required in images
    assert len([i for i in images if i.startswith("slice_")]) == len(SEARCHED)
    table = pd.read_csv(study_run / "trials.csv")
    for number in table["number"]:  # three trials, all among the top 3
        assert f"curves_trial_{int(number):04d}.png" in images
    assert "gap at the end" in text
    assert "Best trial #" in text and "<table>" in text


def _fake_run(tmp_path, rows, histories=None):
    """A run directory written by hand: study.json, trials.csv (and histories.json)."""
    run_dir = tmp_path / "fake"
    run_dir.mkdir()
    meta = {
        "name": "fake", "backend": "kerastuner", "storage": str(run_dir / "kt"),
        "objectives": [{"metric": "val_loss", "direction": "minimize"}],
        "searched": {
            "model.units": {"domain": "choice 8, 16", "condition": None},
            "train.learning_rate": {"domain": "float [0.001, 0.1], log", "condition": None},
        },
        "literals": {"train.epochs": 3},
    }
    (run_dir / "study.json").write_text(json.dumps(meta))
    pd.DataFrame(rows).to_csv(run_dir / "trials.csv", index=False)
    if histories is not None:
        (run_dir / "histories.json").write_text(json.dumps(histories))
    return run_dir


def test_report_with_one_trial_notes_what_it_cannot_show(tmp_path):
    from harness.report import write_report

    run_dir = _fake_run(
        tmp_path,
        [{"number": 0, "state": "complete", "val_loss": 0.4, "model.units": 16,
          "train.learning_rate": 0.01, "fail_reason": None}],
        {"0": {"loss": [1.0, 0.7, 0.5], "val_loss": [0.8, 0.5, 0.4]}},
    )
    text = write_report(run_dir).read_text()
    assert "importances need at least 2 completed trials" in text
    assert "model.units" in text and "train.learning_rate" in text
    assert "validation loss still falls at the last epoch" in text
    assert (run_dir / "report" / "history.png").is_file()
    assert (run_dir / "report" / "curves_trial_0000.png").is_file()


def test_report_with_every_trial_failed(tmp_path):
    from harness.report import write_report

    run_dir = _fake_run(
        tmp_path,
        [{"number": n, "state": "failed", "val_loss": None, "model.units": 8,
          "train.learning_rate": 0.01, "fail_reason": "out of memory"} for n in range(2)],
    )
    text = write_report(run_dir).read_text()
    assert "No trial completed" in text and "out of memory" in text
    assert "no completed trial" in text
    assert not list((run_dir / "report").glob("*.png"))


def test_diagnose_calls_out_overfitting():
    from harness.report import diagnose

    found = diagnose({
        "loss": [1.0, 0.6, 0.4, 0.3, 0.2],
        "val_loss": [1.0, 0.7, 0.6, 0.65, 0.75],
        "accuracy": [0.5, 0.7, 0.8, 0.9, 0.95],
        "val_accuracy": [0.5, 0.65, 0.7, 0.7, 0.68],
    })
    assert found.verdict == "overfitting"
    assert "validation loss rises from epoch 3" in found.text
    assert "while training loss falls" in found.text
    assert found.gap == pytest.approx(0.55)
    assert "gap at the end 0.55" in found.text
    assert "gap +0.2700" in found.text
    assert diagnose({"loss": [1.0, 0.5], "val_loss": [0.9, 0.6]}).verdict == "still-improving"
    assert diagnose({"loss": [1.0, 0.5]}).verdict == "no-validation"
    assert diagnose({}).verdict == "no-history"


# --------------------------------------------------------------------------- export


def test_export_csv_and_json_round_trip(study_run, tmp_path):
    expected = pd.read_csv(study_run / "trials.csv")
    csv_path, json_path = tmp_path / "t.csv", tmp_path / "out" / "t.json"
    assert main(["export", str(study_run), "--format", "csv", "--output", str(csv_path)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), expected)
    assert main(["export", str(study_run), "--format", "json", "--output", str(json_path)]) == 0
    records = json.loads(json_path.read_text())
    assert [list(r) for r in records] == [list(expected.columns)] * len(expected)
    assert records == [
        {key: None if pd.isna(value) else value for key, value in row.items()}
        for row in expected.to_dict(orient="records")
    ]


def test_export_parquet_needs_pyarrow(study_run, tmp_path, monkeypatch, capsys):
    import harness.export

    monkeypatch.setattr(harness.export, "_has_parquet_engine", lambda: False)
    code = main(["export", str(study_run), "--format", "parquet", "--output",
                 str(tmp_path / "t.parquet")])
    assert code == 2
    assert "pip install pyarrow" in capsys.readouterr().err


def test_export_parquet_round_trip(study_run, tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.parquet"
    assert main(["export", str(study_run), "--format", "parquet", "--output", str(path)]) == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(path), pd.read_csv(study_run / "trials.csv"), check_dtype=False
    )


def test_export_argument_errors(study_run, tmp_path, capsys):
    assert main(["export", str(study_run)]) == 2
    assert "--format" in capsys.readouterr().err
    assert main(["export", str(study_run), "--best-model", str(tmp_path / "m.h5")]) == 2
    assert ".keras" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nowhere"), "--format", "csv"]) == 2
    assert "no study results" in capsys.readouterr().err


def _check_model(model_path, card_path, study_run):
    import keras
    import numpy as np

    card = json.loads(card_path.read_text())
    assert card["class_names"] == [str(d) for d in range(10)]
    assert card["input_shape"] == [8, 8, 1] and card["task"] == "multiclass"
    assert card["dataset"] == "digits" and card["preprocessing"]["color_mode"] == "grayscale"
    best = json.loads((study_run / "best.json").read_text())
    assert card["trial"] == best["trial"]
    assert set(card["searched_params"]) == set(SEARCHED)
    assert card["metrics"]["val_accuracy"] == pytest.approx(best["values"]["val_accuracy"])
    model = keras.models.load_model(model_path)
    batch = np.random.default_rng(0).random((5, *card["input_shape"]), dtype="float32")
    predicted = model.predict(batch, verbose=0)
    assert predicted.shape == (5, len(card["class_names"]))
    assert np.allclose(predicted.sum(axis=1), 1.0, atol=1e-4)
    return card


def test_export_best_model_loads_and_predicts(study_run, tmp_path, capsys):
    target = tmp_path / "models" / "best.keras"
    assert main(["export", str(study_run), "--best-model", str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    card = _check_model(target, target.with_suffix(".json"), study_run)
    assert card["retrained"] is None
    assert target.read_bytes() == (study_run / "best.keras").read_bytes()


def test_export_best_model_retrained_on_all_data(study_run, tmp_path, no_autoload):
    from harness.export import export_best_model

    model_path, card_path = export_best_model(study_run, tmp_path, retrain=True)
    assert model_path == tmp_path / "review-best.keras"
    card = _check_model(model_path, card_path, study_run)
    assert card["retrained"]["data"] == "train+validation"
    assert card["retrained"]["epochs"] == 2
    assert set(card["retrained"]["final_training_metrics"]) >= {"loss", "accuracy"}


def test_export_best_model_of_multi_objective_study_needs_retrain(tmp_path):
    from harness.export import export_best_model

    run_dir = _fake_run(
        tmp_path, [{"number": 0, "state": "complete", "val_loss": 0.3, "params": 100.0}]
    )
    meta = json.loads((run_dir / "study.json").read_text())
    meta["objectives"].append({"metric": "params", "direction": "minimize"})
    (run_dir / "study.json").write_text(json.dumps(meta))
    (run_dir / "best.json").write_text(json.dumps({"trial": 0, "values": {}, "params": {}}))
    with pytest.raises(HarnessError, match=r"keep no single best model\); use --retrain"):
        export_best_model(run_dir, tmp_path / "m.keras")


def test_export_best_model_with_no_complete_trial_says_to_run_the_study(tmp_path):
    from harness.export import export_best_model

    run_dir = _fake_run(tmp_path, [{"number": 0, "state": "failed", "val_loss": None}])
    with pytest.raises(HarnessError, match="run the study until a trial completes"):
        export_best_model(run_dir, tmp_path / "m.keras")


# --------------------------------------------------------------------------- tensorboard


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def test_tensorboard_serves_hparams_of_every_trial(study_run):
    from harness.serve import start_tensorboard

    table = pd.read_csv(study_run / "trials.csv")
    served = start_tensorboard(study_run / "tb", port=0, reload_interval=1)
    try:
        assert served.url.startswith("http://127.0.0.1:")
        request = {"startIndex": 0, "sliceSize": 100, "allowedStatuses": ALL_STATUSES}
        deadline = time.time() + 60
        while True:
            groups = _post(served.url + "data/plugin/hparams/session_groups", request)
            listed = {g["name"]: g for g in groups.get("sessionGroups", [])}
            if len(listed) >= len(table) or time.time() > deadline:
                break
            time.sleep(0.5)
        experiment = _post(served.url + "data/plugin/hparams/experiment", {})
    finally:
        served.stop()

    assert len(listed) == len(table), listed.keys()
    for _, row in table.iterrows():
        group = listed[f"trial-{int(row['number']):04d}"]
        assert [s.get("status") for s in group["sessions"]] == ["STATUS_SUCCESS"]
        assert group["hparams"]["state"] == "complete"
        for name in SEARCHED:
            value = group["hparams"][name]
            if isinstance(row[name], str):
                assert value == row[name]
            else:
                assert value == pytest.approx(float(row[name]))
        metrics = {m["name"]["tag"]: m["value"] for m in group["metricValues"]
                   if not m["name"].get("group")}
        assert metrics["final/val_accuracy"] == pytest.approx(row["val_accuracy"], rel=1e-5)
        assert metrics["final/val_loss"] == pytest.approx(row["val_loss"], rel=1e-5)

    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert set(infos) == {*SEARCHED, "state"}  # where a trial ran is a text, not an hparam
    assert infos["model.units"]["domainDiscrete"] == [8, 16, 32]
    assert infos["model.activation"]["domainDiscrete"] == ["relu", "tanh"]
    assert infos["model.dropout"]["domainInterval"] == {"minValue": 0.0, "maxValue": 0.3}
    interval = infos["train.learning_rate"]["domainInterval"]
    assert interval["minValue"] == pytest.approx(0.001)
    assert interval["maxValue"] == pytest.approx(0.01)
    tags = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"final/val_accuracy", "final/val_loss"} <= tags


def test_tensorboard_without_study_is_a_user_error(tmp_path, capsys):
    assert main(["tensorboard", "missing", "--runs-dir", str(tmp_path)]) == 2
    assert "no study results" in capsys.readouterr().err
    run_dir = tmp_path / "empty"
    run_dir.mkdir()
    (run_dir / "study.json").write_text("{}")
    assert main(["tensorboard", str(run_dir)]) == 2
    assert "tb does not exist" in capsys.readouterr().err


def test_tensorboard_port_in_use_is_a_user_error(study_run):
    import socket

    from harness.serve import start_tensorboard

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HarnessError, match=f"port {port}"):
            start_tensorboard(study_run / "tb", port=port)


def test_review_commands_keep_help_fast():
    heavy = ("tensorflow", "keras", "optuna", "matplotlib", "tensorboard")
    assert heavy_imports_after("import harness.cli as c; c.build_parser()", heavy) == []
    usage = subprocess.run(
        [sys.executable, "-m", "harness", "--help"], capture_output=True, text=True
    ).stdout
    for command in ("tensorboard", "report", "export"):
        assert command in usage
