"""k-fold cross-validation (``[study].folds = K``): the folds, a cross-validated trial, and
a whole study through the CLI with both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from harness.data import DatasetInfo, from_arrays
from harness.errors import HarnessError, TrialPruned
from harness.folds import check_folds, make_folds, pool_of

STUDY = """
[study]
name = "cv"
trials = 2
seed = 5
folds = 3
ensemble = 2

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"
limit = 300
test_split = 0.2

[model]
name = "dense"
units = {choice = [8, 16]}

[train]
epochs = 2
batch_size = 32
learning_rate = 0.01
"""


def _dataset(n=60, groups=True, task="multiclass"):
    rng = np.random.default_rng(0)
    x = rng.random((n, 4)).astype("float32")
    y = np.arange(n) % 3 if task != "regression" else rng.random(n).astype("float32")
    g = np.array([f"subject{i // 4}" for i in range(n)]) if groups else None
    info = DatasetInfo("toy", (4,), task, num_classes=None if task == "regression" else 3)
    cut = n * 3 // 4
    return from_arrays(
        info, x[:cut], y[:cut], x[cut:], y[cut:],
        groups_train=None if g is None else g[:cut], groups_val=None if g is None else g[cut:],
    )


def test_every_example_validates_once_and_a_group_stays_in_one_fold():
    dataset = _dataset()
    pool = pool_of(dataset)
    folds = make_folds(dataset, 3, seed=1)
    validated = np.concatenate([f.validation_rows for f in folds])
    assert sorted(validated) == list(range(len(pool)))
    for fold in folds:
        assert not set(pool.groups[fold.train_rows]) & set(pool.groups[fold.validation_rows])
        assert set(pool.y[fold.validation_rows]) == {0, 1, 2}  # stratified: every class
        assert list(fold.dataset.validation_groups) == list(pool.groups[fold.validation_rows])
    again = make_folds(dataset, 3, seed=1)
    pairs = zip(folds, again, strict=True)
    assert all((a.validation_rows == b.validation_rows).all() for a, b in pairs)
    other = make_folds(dataset, 3, seed=2)
    pairs = zip(folds, other, strict=True)
    assert any(set(a.validation_rows) != set(b.validation_rows) for a, b in pairs)


def test_without_groups_each_example_is_its_own_and_regression_folds_too():
    folds = make_folds(_dataset(groups=False, task="regression"), 4, seed=0)
    assert sorted(np.concatenate([f.validation_rows for f in folds])) == list(range(60))


def test_more_folds_than_groups_or_class_members_is_one_line():
    with pytest.raises(HarnessError, match="has 15 groups .of 60 examples.; give at most 15"):
        check_folds(pool_of(_dataset()), 16, "multiclass")
    ungrouped = pool_of(_dataset(n=12, groups=False))
    with pytest.raises(HarnessError, match="class 0 has only 4 examples.*give at most 4 folds"):
        check_folds(ungrouped, 5, "multiclass")


def _harness(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-m", "harness", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("backend", ["optuna", "kerastuner"])
def test_a_cross_validated_study_reports_mean_and_spread_and_tests_a_refit(tmp_path, backend):
    path = tmp_path / "cv.toml"
    path.write_text(textwrap.dedent(STUDY), encoding="utf-8")
    done = _harness("run", str(path), "--runs-dir", str(tmp_path / "runs"), "--no-progress",
                    "--backend", backend)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "runs" / "cv"
    table = pd.read_csv(run_dir / "trials.csv")
    assert (table["state"] == "complete").all() and (table["folds"] == 3).all()
    assert table["val_accuracy_std"].between(0, 0.5).all()
    best = int(table.iloc[0]["number"])
    # The best configuration, refitted on all the training data, measured on the test split.
    tests = json.loads((run_dir / "test.json").read_text())["trials"]
    assert list(tests) == [str(best)]
    folds = sorted(p.name for p in (run_dir / "models").glob(f"trial-{best:04d}.fold-*.keras"))
    assert folds == [f"trial-{best:04d}.fold-{k}.keras" for k in (1, 2, 3)]
    oof = np.load(run_dir / "models" / f"trial-{best:04d}.oof.npy")
    assert oof.shape == (240, 10)  # 300 digits less the 60 held out for the test split
    assert np.allclose(oof.sum(axis=1), 1, atol=1e-4)  # every pooled example predicted
    ensemble = json.loads((run_dir / "ensemble.json").read_text())["ensemble"]
    assert ensemble["weighed_on"] == "out-of-fold predictions (3 folds)"
    assert "validation (out-of-fold): ensemble" in done.stdout
    shown = _harness("show", str(run_dir))
    header = next(line for line in shown.stdout.splitlines() if line.split()[0] == "number")
    assert header.split()[2:4] == ["val_accuracy", "val_accuracy_std"] and "folds" in header


def test_a_cross_validated_trial_is_pruned_between_folds(tmp_path, plugins):
    from harness.context import StudyContext, TrialContext
    from harness.study import load_study
    from harness.trial import run_trial

    path = tmp_path / "cv.toml"
    # its first fold learns nothing after one epoch: not stopped at chance, it reaches the pruner
    study = STUDY.replace("folds = 3", "folds = 4\nstop_at_chance = false")
    path.write_text(textwrap.dedent(study), encoding="utf-8")
    spec = load_study(path, plugins)
    steps = []

    class PruneAfterSecondFold:
        def report(self, step, metrics, *, last=False):
            steps.append((step, metrics["folds"], last))
            if step == 1:
                raise TrialPruned("pruned at fold 2")

    trial = TrialContext(StudyContext(spec, tmp_path / "run"), 0, {"model.units": 8})
    result = run_trial(trial, plugins, PruneAfterSecondFold())
    assert result.state == "pruned"
    assert steps == [(0, 1.0, False), (1, 2.0, False)]
    assert result.metrics["folds"] == 2 and "val_accuracy_std" in result.metrics


def test_one_fold_is_refused_in_the_study_file(tmp_path):
    path = tmp_path / "cv.toml"
    path.write_text(textwrap.dedent(STUDY).replace("folds = 3", "folds = 1"), encoding="utf-8")
    done = _harness("validate", str(path))
    assert done.returncode == 2 and "folds: 1 fold validates on nothing" in done.stderr



def test_a_split_read_in_another_order_each_pass_is_refused_with_groups():
    import tensorflow as tf

    dataset = _dataset()
    x = np.random.default_rng(0).random((45, 4)).astype("float32")
    y = (np.arange(45) % 3).astype("int32")
    rng = np.random.default_rng(1)

    def shuffled_each_pass():
        order = rng.permutation(45)
        yield from zip(x[order], y[order], strict=True)

    streamed = tf.data.Dataset.from_generator(
        shuffled_each_pass,
        output_signature=(tf.TensorSpec((4,), tf.float32), tf.TensorSpec((), tf.int32)),
    )
    from dataclasses import replace

    with pytest.raises(HarnessError, match="different order on each pass"):
        pool_of(replace(dataset, train=streamed))


def test_a_trial_no_longer_kept_loses_its_model_fold_models_and_predictions(tmp_path):
    from harness.results import prune_trial_models

    models = tmp_path / "models"
    models.mkdir()
    names = ["trial-0001.keras", "trial-0001.json", "trial-0001.oof.npy",
             "trial-0001.fold-1.keras", "trial-0002.keras", "trial-0002.fold-1.keras"]
    for name in names:
        (models / name).write_text("x")
    prune_trial_models(tmp_path, keep={2}, finished={1, 2})
    assert sorted(p.name for p in models.iterdir()) == ["trial-0002.fold-1.keras",
                                                        "trial-0002.keras"]
