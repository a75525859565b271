"""``[profiles.NAME]`` and ``--profile``: a named variant of a study, run as its own study."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from harness.errors import StudyFileError
from harness.study import load_study

STUDY = """
[study]
name = "digits_small"
trials = 2
seed = 4

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "digits"

[model]
name = "dense"
units = {choice = [16, 32]}
dropout = 0.1

[train]
epochs = 4

[[enqueue]]
model.units = 32

[profiles.tiny]
dataset.limit = 300
train.epochs = 1
model.units = {choice = [8, 16]}

[profiles.named]
study.name = "my_own_name"

[profiles.wider]
model.units = {choice = [16, 32, 64]}
"""


def test_a_profile_sets_its_values_and_names_the_study_after_itself(write_study, plugins):
    spec = load_study(write_study(STUDY), plugins, profile="tiny")
    assert spec.profile == "tiny"
    assert spec.name == "digits_small-tiny"
    assert spec.space.literals["dataset.limit"] == 300
    assert spec.space.literals["train.epochs"] == 1
    assert spec.space.literals["model.dropout"] == 0.1  # untouched
    [units] = spec.space.params
    assert units.distribution.describe() == "choice 8, 16"
    # like --set, a key the profile sets is dropped from the enqueued trials
    assert spec.enqueue == [{}]
    plain = load_study(write_study(STUDY), plugins)
    assert plain.enqueue == [{"model.units": 32}]
    assert plain.name == "digits_small" and plain.profile is None
    assert plain.space.literals["train.epochs"] == 4


def test_a_profile_domain_that_can_draw_the_enqueued_value_keeps_it(write_study, plugins):
    """trial #0 keeps the course's value wherever the profile's domain allows it."""
    spec = load_study(write_study(STUDY), plugins, profile="wider")
    assert spec.enqueue == [{"model.units": 32}]
    assert spec.space.params[0].distribution.describe() == "choice 16, 32, 64"


def test_set_values_win_over_the_profile_and_a_profile_may_name_the_study(
    write_study, plugins
):
    path = write_study(STUDY)
    spec = load_study(path, plugins, {"train.epochs": 2}, profile="tiny")
    assert spec.space.literals["train.epochs"] == 2
    assert spec.space.literals["dataset.limit"] == 300
    assert load_study(path, plugins, profile="named").name == "my_own_name"


def test_an_unknown_profile_lists_the_declared_ones(write_study, plugins):
    with pytest.raises(StudyFileError) as caught:
        load_study(write_study(STUDY), plugins, profile="gpu")
    message = str(caught.value)
    assert message.startswith("--profile gpu:")
    assert "[profiles.gpu]" in message and "tiny, named" in message


def test_a_bad_profile_value_is_blamed_on_the_profile(write_study, plugins):
    text = STUDY + "\n[profiles.broken]\ntrain.epochs = -3\n"
    path = write_study(text)
    with pytest.raises(StudyFileError) as caught:
        load_study(path, plugins, profile="broken")
    assert "[profiles.broken]" in str(caught.value) and "epochs" in str(caught.value)
    load_study(path, plugins, profile="tiny")  # the other profiles still load


def test_a_profile_cannot_replace_a_whole_table(write_study, plugins):
    path = write_study(STUDY + "\n[profiles.flat]\ntrain = 3\n")
    with pytest.raises(StudyFileError, match=r"\[profiles.flat\]: train = 3 would replace"):
        load_study(path, plugins, profile="flat")


def _harness(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False,
    )


def test_validate_checks_every_declared_profile(write_study):
    path = write_study(STUDY)
    done = _harness("validate", str(path))
    assert done.returncode == 0, done.stderr
    assert "profile tiny: valid (study 'digits_small-tiny'" in done.stdout
    assert "profile named: valid (study 'my_own_name'" in done.stdout
    broken = write_study(STUDY + "\n[profiles.broken]\nmodel.units = 0\n", name="broken.toml")
    done = _harness("validate", str(broken))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "[profiles.broken]" in done.stderr


def test_run_with_a_profile_trains_the_profile_in_its_workers(write_study, tmp_path):
    """The worker processes re-read the study file: they apply the same profile, the run
    lives in its own folder, and study.json records the profile for evaluate/export."""
    runs = tmp_path / "runs"
    done = _harness("run", str(write_study(STUDY)), "--profile", "tiny", "--runs-dir", str(runs),
                    "--no-progress")
    assert done.returncode == 0, done.stderr
    run_dir = runs / "digits_small-tiny"
    table = pd.read_csv(run_dir / "trials.csv")
    assert len(table) == 2
    assert set(table["epochs_run"]) == {1.0}  # the profile's epochs, not the file's 4
    assert set(table["model.units"]) <= {8, 16}
    meta = json.loads((run_dir / "study.json").read_text())
    assert meta["profile"] == "tiny"
    assert not (runs / "digits_small").exists()
