"""Ensembles of the kept models: ``harness ensemble STUDY`` and the selection under it.

One small study (digits with a test split, a tiny dense model, 4 trials, the 3 best
kept) is run once through the CLI for the module; the tests ensemble it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness import ensemble_selection as selection

STUDY = """
[study]
name = "ens"
trials = 4
seed = 3
keep_models = 3

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"
test_split = 0.2

[model]
name = "dense"
units = {choice = [8, 16, 32]}
dropout = {float = [0.0, 0.3]}

[train]
epochs = 3
batch_size = 64
learning_rate = {float = [0.003, 0.03], log = true}
"""


def _harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        env=env, capture_output=True, text=True, timeout=300, cwd=cwd,
    )


@pytest.fixture(scope="module")
def study_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ensemble")
    path = root / "ens.toml"
    path.write_text(textwrap.dedent(STUDY), encoding="utf-8")
    done = _harness("run", str(path), "--runs-dir", str(root / "runs"), "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "runs" / "ens"


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def copy_of(study_run, tmp_path):
    """A copy of the study's run folder (a test may break it)."""
    target = tmp_path / "runs" / "ens"
    shutil.copytree(study_run, target)
    return target


def test_ensemble_is_one_model_that_keras_and_predict_load(copy_of):
    run_dir = copy_of
    done = _harness("ensemble", str(run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert out.startswith("ensemble of ") and "greedy selection on val_accuracy" in out
    assert "test split (359 examples, measured once): ensemble accuracy=" in out
    assert "ensemble minus best single on test accuracy:" in out

    card = json.loads((run_dir / "ensemble.json").read_text())
    record = card["ensemble"]
    kept = sorted(int(p.stem[6:]) for p in (run_dir / "models").glob("trial-*.keras"))
    assert sorted(m["trial"] for m in record["members"]) == kept and len(kept) == 3
    assert sum(m["weight"] for m in record["members"]) == pytest.approx(1.0)
    best = json.loads((run_dir / "best.json").read_text())["trial"]
    assert record["best_single"] == best
    # The best single model's figure, computed from its predictions, is the one Keras
    # measured at the end of the run.
    tests = json.loads((run_dir / "test.json").read_text())["trials"]
    keras_figure = tests[str(best)]["test_accuracy"]
    assert record["test"]["best_single"]["accuracy"] == pytest.approx(keras_figure, abs=1e-6)
    assert card["dataset"]["task"] == "multiclass" and card["test"]["test_accuracy"] > 0.5

    # Plain Keras, safe mode, harness's layers registered: the weighted average of members.
    check = textwrap.dedent(f"""
        import json, keras, numpy as np
        from harness.layers import register
        register()
        run = {str(run_dir)!r}
        ensemble = keras.models.load_model(run + "/ensemble.keras", safe_mode=True)
        members = json.load(open(run + "/ensemble.json"))["ensemble"]["members"]
        x = np.random.default_rng(0).random((5, 8, 8, 1)).astype("float32")
        expected = sum(m["weight"] * keras.models.load_model(
            f"{{run}}/models/trial-{{m['trial']:04d}}.keras").predict(x, verbose=0)
            for m in members)
        print(float(np.abs(ensemble.predict(x, verbose=0) - expected).max()))
    """)
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-5

    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    image = run_dir.parent / "digit.png"
    Image.fromarray((digits.images[0] * 255 / 16).astype("uint8")).save(image)
    done = _harness("predict", str(run_dir / "ensemble.keras"), str(image), "--top", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == str(image)


def test_show_report_tensorboard_and_export_read_the_ensemble(copy_of, tmp_path):
    run_dir = copy_of
    assert _harness("ensemble", str(run_dir)).returncode == 0
    record = json.loads((run_dir / "ensemble.json").read_text())["ensemble"]

    shown = _harness("show", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    last = shown.stdout.strip().splitlines()[-1].split()
    members = "+".join(f"#{m['trial']}" for m in record["members"] if m["weight"] > 0)
    assert last[:3] == ["ensemble", members, f"{record['validation']['accuracy']:.6f}"]

    assert _harness("report", str(run_dir)).returncode == 0
    page = (run_dir / "report" / "index.html").read_text()
    assert '<h2 id="ensemble">Ensemble</h2>' in page
    assert f"{record['test']['ensemble']['accuracy']:.4f}" in page

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tb" / "ensemble"))
    events.Reload()
    from tensorboard.util.tensor_util import make_ndarray

    (value,) = events.Tensors("final/test_accuracy")
    assert float(make_ndarray(value.tensor_proto)) == pytest.approx(
        record["test"]["ensemble"]["accuracy"], abs=1e-6
    )

    exported = tmp_path / "out" / "digits.keras"
    done = _harness("export", str(run_dir), "--best-model", str(exported), "--ensemble")
    assert done.returncode == 0, done.stderr
    card = json.loads(exported.with_suffix(".json").read_text())
    assert card["ensemble"]["members"] == record["members"] and card["task"] == "multiclass"
    refused = _harness("export", str(run_dir), "--best-model", str(exported), "--ensemble",
                       "--retrain")
    assert refused.returncode == 2 and "give one of them" in refused.stderr


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("ensemble = 1", "ensemble: 1 model is the best model itself"),
        ("ensemble = 4", "ensemble: 4 models, but keep_models = 3 keeps only that many"),
    ],
)
def test_a_study_asking_for_an_impossible_ensemble_is_refused(tmp_path, table, message):
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(STUDY).replace("keep_models = 3", f"keep_models = 3\n{table}"))
    done = _harness("validate", str(path))
    assert done.returncode == 2 and message in done.stderr


def test_plain_average_gives_equal_weights(copy_of):
    done = _harness("ensemble", str(copy_of), "--method", "average", "--size", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((copy_of / "ensemble.json").read_text())["ensemble"]
    assert [m["weight"] for m in record["members"]] == [0.5, 0.5]
    assert record["method"] == "average" and "plain average" in done.stdout


@pytest.mark.parametrize(
    ("breakage", "args", "message"),
    [
        (None, ("--size", "4"), "an ensemble of 4 models: only 3 kept in"),
        (None, ("--size", "0"), "--size must be at least 1, got 0"),
        ("models", (), "no kept trial models in models/"),
    ],
)
def test_an_ensemble_that_cannot_be_built_is_one_line_and_writes_nothing(
    copy_of, breakage, args, message
):
    if breakage == "models":
        shutil.rmtree(copy_of / "models")
    before = _files(copy_of)
    done = _harness("ensemble", str(copy_of), *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert _files(copy_of) == before


def test_greedy_selection_weighs_the_member_that_helps():
    labels = np.array([0, 1, 1, 0, 1, 0])
    right = np.eye(2)[labels] * 0.8 + 0.1
    wrong_half = right.copy()
    wrong_half[:3] = wrong_half[:3, ::-1]
    weights = selection.greedy_weights([wrong_half, right], labels, "multiclass", "accuracy", 10)
    assert weights == [0.0, 1.0]
    # Equal members: the tie goes to the first (the best single model).
    assert selection.greedy_weights([right, right], labels, "multiclass", "loss", 4) == [1.0, 0.0]


def test_regression_and_binary_figures_match_keras_definitions():
    y = np.array([1.0, 2.0, 4.0])
    found = selection.figures(np.array([[1.0], [3.0], [4.0]]), y, "regression")
    assert found == {"loss": pytest.approx(1 / 3), "mse": pytest.approx(1 / 3),
                     "mae": pytest.approx(1 / 3)}
    binary = selection.figures(np.array([[0.9], [0.2], [0.6]]), np.array([1, 0, 0]), "binary")
    assert binary["accuracy"] == pytest.approx(2 / 3)
    assert binary["loss"] == pytest.approx(-(np.log(0.9) + np.log(0.8) + np.log(0.4)) / 3)


def test_paired_gap_counts_only_the_examples_one_model_gets_right():
    labels = np.array([0, 0, 0, 0])
    first = np.eye(2)[[0, 0, 0, 1]]
    second = np.eye(2)[[0, 0, 1, 1]]
    gap, error = selection.paired_accuracy_gap(first, second, labels, "multiclass")
    assert gap == pytest.approx(0.25)
    assert error == pytest.approx(np.sqrt((0.25 - 0.0625) / 4))


def test_members_whose_inputs_differ_are_left_out_with_one_line_each(tmp_path):
    from harness.ensemble import Member, _compatible

    def member(number, size):
        dataset = {"task": "binary", "input_shape": [size, size, 3],
                   "preprocessing": {"image_size": [size, size]}}
        return Member(number, tmp_path / f"trial-{number}.keras", {"dataset": dataset})

    said = []
    kept = _compatible([member(4, 150), member(1, 300), member(7, 150)], said.append)
    assert [m.number for m in kept] == [4, 7]
    assert said == [
        "trial #1: left out of the ensemble: its inputs differ from trial #4's "
        "(input_shape [300, 300, 3] against [150, 150, 3])"
    ]
