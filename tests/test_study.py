"""Study files: every user mistake is one clear message naming the file, key path and fix."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.errors import StudyFileError
from harness.study import load_study

VALID = """
[study]
name = "s"
trials = 3

[dataset]
name = "digits"

[model]
name = "dense"
units = {int = [8, 64], step = 8}
"""


def _error(write_study, plugins, text: str) -> str:
    path = write_study(text)
    with pytest.raises(StudyFileError) as caught:
        load_study(path, plugins)
    message = str(caught.value)
    assert str(path) in message, "the message names the file"
    return message


def test_valid_study_has_typed_spec(write_study, plugins):
    spec = load_study(write_study(VALID), plugins)
    assert spec.name == "s"
    assert spec.study.trials == 3
    assert spec.objectives[0].metric == "val_accuracy"
    assert spec.objectives[0].direction == "maximize"
    assert spec.space.searched_names() == ["model.units"]


def test_malformed_toml_names_line(write_study, plugins):
    message = _error(write_study, plugins, "[study\nname = 1")
    assert "not valid TOML" in message
    assert "line 1" in message


def test_missing_file(plugins, tmp_path):
    with pytest.raises(StudyFileError, match="no such study file"):
        load_study(tmp_path / "nope.toml", plugins)


def test_unknown_table_suggests_closest(write_study, plugins):
    message = _error(write_study, plugins, VALID + "\n[trian]\nepochs = 2\n")
    assert "[trian]" in message and "did you mean 'train'" in message.lower()


def test_unknown_key_suggests_closest(write_study, plugins):
    message = _error(write_study, plugins, VALID.replace("units =", "unit ="))
    assert "[model].unit" in message
    assert "'units'" in message


def test_unknown_key_in_train(write_study, plugins):
    message = _error(write_study, plugins, VALID + "\n[train]\nepoch = 3\n")
    assert "[train].epoch" in message and "'epochs'" in message


def test_unknown_plugin_lists_available(write_study, plugins):
    message = _error(write_study, plugins, VALID.replace('name = "dense"', 'name = "dnse"'))
    assert "[model].name" in message
    assert "'dense'" in message and "cnn" in message


def test_unknown_dataset_lists_available(write_study, plugins):
    message = _error(write_study, plugins, VALID.replace('name = "digits"', 'name = "mnst"'))
    assert "unknown dataset 'mnst'" in message and "digits" in message


def test_unknown_augmentation_table(write_study, plugins):
    message = _error(write_study, plugins, VALID + "\n[callbacks.treshold]\nvalue = 0.9\n")
    assert "[callbacks.treshold]" in message and "'threshold'" in message


def test_wrong_type(write_study, plugins):
    message = _error(write_study, plugins, VALID.replace("trials = 3", 'trials = "many"'))
    assert "[study].trials" in message


@pytest.mark.parametrize(
    ("snippet", "key"),
    [
        ("\n[train]\nepochs = -1\n", "[train].epochs"),
        ("\n[train]\nlearning_rate = 0\n", "[train].learning_rate"),
    ],
)
def test_out_of_range_literal(write_study, plugins, snippet, key):
    message = _error(write_study, plugins, VALID + snippet)
    assert key in message


def test_out_of_range_distribution_bound(write_study, plugins):
    text = VALID + "dropout = {float = [0.0, 1.5]}\n"
    message = _error(write_study, plugins, text)
    assert "[model].dropout" in message and "1.5" in message


def test_empty_choice(write_study, plugins):
    message = _error(write_study, plugins, VALID + "activation = {choice = []}\n")
    assert "[model].activation.choice" in message and "non-empty" in message


def test_low_above_high(write_study, plugins):
    message = _error(write_study, plugins, VALID.replace("[8, 64]", "[64, 8]"))
    assert "swap" in message


def test_log_needs_positive_low(write_study, plugins):
    text = VALID + "\n[train]\nlearning_rate = {float = [0.0, 0.1], log = true}\n"
    assert "above 0" in _error(write_study, plugins, text)


def test_distribution_option_typo(write_study, plugins):
    message = _error(write_study, plugins, VALID.replace("step = 8", "stp = 8"))
    assert "'step'" in message


def test_bad_condition_syntax(write_study, plugins):
    text = VALID + 'units_2 = {int = [8, 16], when = "dense_layers >>> 2"}\n'
    assert "cannot read" in _error(write_study, plugins, text)


def test_condition_on_unknown_parameter(write_study, plugins):
    text = VALID + 'units_2 = {int = [8, 16], when = "dense_layer >= 2"}\n'
    message = _error(write_study, plugins, text)
    assert "unknown parameter 'model.dense_layer'" in message
    assert "model.dense_layers" not in message or "Did you mean" in message


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "a\\b"])
def test_study_name_with_path_separators_refused(write_study, plugins, name):
    message = _error(
        write_study, plugins, VALID.replace('name = "s"', f'name = "{name}"'.replace("\\", "\\\\"))
    )
    assert "[study].name" in message


def test_missing_required_table(write_study, plugins):
    assert "[model]: required" in _error(write_study, plugins, VALID.split("[model]")[0])


def test_unknown_objective_metric(write_study, plugins):
    text = VALID.replace("trials = 3", 'trials = 3\nobjective = "val_acc"')
    message = _error(write_study, plugins, text)
    assert "unknown metric 'val_acc'" in message and "val_accuracy" in message


def test_direction_defaults_follow_metric(write_study, plugins):
    text = VALID.replace("trials = 3", 'trials = 3\nobjective = ["val_accuracy", "params"]')
    spec = load_study(write_study(text), plugins)
    assert [o.direction for o in spec.objectives] == ["maximize", "minimize"]
    assert spec.multi_objective


def test_enqueue_must_name_searched_parameters(write_study, plugins):
    message = _error(write_study, plugins, VALID + "\n[[enqueue]]\nmodel.unit = 16\n")
    assert "[[enqueue]] #1.model.unit" in message and "model.units" in message


def test_enqueue_value_outside_domain(write_study, plugins):
    message = _error(write_study, plugins, VALID + "\n[[enqueue]]\nmodel.units = 4096\n")
    assert "outside [8, 64]" in message


def test_cli_prints_one_line_and_exits_2(write_study):
    path = write_study(VALID.replace("units =", "unit ="))
    done = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")


def test_validation_does_not_import_tensorflow(write_study):
    path = write_study(VALID)
    code = (
        "import sys; from harness.cli import main; "
        f"rc = main(['validate', {str(path)!r}]); main(['plugins']); "
        "print('TF-IMPORTED' if 'tensorflow' in sys.modules else 'NO-TF', rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip().endswith("NO-TF 0"), done.stdout + done.stderr
