"""Plugin loading: built-ins, entry points, --plugin, env controls, clashes, hook contract."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import heavy_imports_after, make_distribution

from harness import hookspecs
from harness.errors import PluginError
from harness.orchestrator import RunOptions, run_study
from harness.plugins import load_plugins
from harness.study import load_study

TESTS = Path(__file__).parent

DATASET_PLUGIN = """
import harness
from pydantic import BaseModel, ConfigDict

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = 3

def load(params, context):
    raise RuntimeError("not used")

@harness.hookimpl
def harness_register_datasets(register):
    register("{name}", load, params=Params, description="a third-party dataset")
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A temporary site directory on sys.path, as if distributions were installed there."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    for var in ("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    yield root
    for name in list(sys.modules):
        if name.startswith("thirdparty_"):
            del sys.modules[name]


def test_builtins_are_registered_as_ordinary_plugins(plugins):
    assert "digits" in plugins.datasets.names()
    assert {"dense", "cnn"} <= set(plugins.models.names())
    assert {"threshold", "early_stopping"} <= set(plugins.callbacks.names())
    component = plugins.models.get("cnn")
    assert component.source.startswith("built-in")
    names = [loaded.name for loaded in plugins.loaded]
    assert "tensorboard" in names


def test_entry_point_plugin_is_loaded_with_its_distribution(site):
    make_distribution(
        site, "acme-data", "thirdparty_acme", DATASET_PLUGIN.format(name="acme"), "acme"
    )
    plugins = load_plugins()
    component = plugins.datasets.get("acme")
    assert "acme-data 1.2" in component.source
    assert component.description == "a third-party dataset"


def test_env_can_block_or_restrict_autoload(site, monkeypatch):
    make_distribution(
        site, "acme-data", "thirdparty_acme", DATASET_PLUGIN.format(name="acme"), "acme"
    )
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "acme")
    assert "acme" not in load_plugins().datasets.names()
    monkeypatch.delenv("HARNESS_DISABLE_PLUGINS")
    monkeypatch.setenv("HARNESS_PLUGINS", "something_else")
    assert "acme" not in load_plugins().datasets.names()
    monkeypatch.setenv("HARNESS_PLUGINS", "acme")
    assert "acme" in load_plugins().datasets.names()
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "acme" not in load_plugins().datasets.names()


def test_builtin_can_be_blocked_by_name(monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "tensorboard")
    names = [loaded.name for loaded in load_plugins().loaded]
    assert "tensorboard" not in names and "digits" in names


def test_broken_import_is_reported_and_others_still_load(site):
    make_distribution(site, "broken-pkg", "thirdparty_broken", "import no_such_module\n", "broken")
    make_distribution(
        site, "acme-data", "thirdparty_acme", DATASET_PLUGIN.format(name="acme"), "acme"
    )
    plugins = load_plugins()
    assert "acme" in plugins.datasets.names()
    assert len(plugins.broken) == 1
    assert "broken-pkg 1.2" in plugins.broken[0] and "no_such_module" in plugins.broken[0]


def test_register_hook_raising_is_reported_with_distribution(site):
    source = """
    import harness

    @harness.hookimpl
    def harness_register_models(register):
        raise ValueError("boom")
    """
    make_distribution(site, "raising-pkg", "thirdparty_raising", source, "raising")
    plugins = load_plugins()
    assert any("raising-pkg 1.2" in b and "boom" in b for b in plugins.broken)
    assert "cnn" in plugins.models.names()


def test_two_plugins_registering_one_name_is_an_error_naming_both(site):
    make_distribution(
        site, "clash-pkg", "thirdparty_clash", DATASET_PLUGIN.format(name="digits"), "clash"
    )
    with pytest.raises(PluginError) as caught:
        load_plugins()
    message = str(caught.value)
    assert "'digits' is registered twice" in message
    assert "harness_plugins.datasets.digits" in message and "clash-pkg 1.2" in message


def test_plugin_option_accepts_a_python_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    path = tmp_path / "my_plugin.py"
    path.write_text(DATASET_PLUGIN.format(name="from_file"))
    plugins = load_plugins([str(path)])
    assert plugins.datasets.get("from_file").source == f"--plugin {path}"


def test_plugin_option_accepts_a_module_path(site, monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    (site / "thirdparty_mod.py").write_text(DATASET_PLUGIN.format(name="from_module"))
    assert "from_module" in load_plugins(["thirdparty_mod"]).datasets.names()


def test_plugin_option_with_missing_module_is_clear():
    with pytest.raises(PluginError, match="--plugin no_such.module failed to import"):
        load_plugins(["no_such.module"])


def test_harness_plugins_command_lists_families_and_sources(site):
    make_distribution(
        site, "acme-data", "thirdparty_acme", DATASET_PLUGIN.format(name="acme"), "acme"
    )
    env = {**__import__("os").environ, "PYTHONPATH": str(site)}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "plugins"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for family in ("datasets:", "models:", "augmentations:", "callbacks:", "lifecycle:"):
        assert family in out
    assert "acme" in out and "acme-data 1.2" in out
    assert "digits" in out and "built-in" in out


def test_every_hookspec_is_documented():
    specs = [
        name
        for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("harness_")
    ]
    assert len(specs) >= 9
    for name in specs:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc) > 40, f"{name} needs a docstring for plugin authors"


def test_every_hook_has_a_test():
    """Guard (as datasette does): adding a hook without a test fails here."""
    specs = [
        name
        for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("harness_")
    ]
    tests_text = "\n".join(p.read_text() for p in TESTS.glob("test_*.py"))
    missing = [name for name in specs if f"def {name}(" not in tests_text]
    assert not missing, f"hooks without a test implementing them: {missing}"


RECORDER = """
import harness

EVENTS = []

@harness.hookimpl
def harness_register_datasets(register):
    pass

@harness.hookimpl
def harness_register_models(register):
    pass

@harness.hookimpl
def harness_register_augmentations(register):
    pass

@harness.hookimpl
def harness_register_callbacks(register):
    pass

@harness.hookimpl
def harness_study_start(study):
    EVENTS.append(("study_start", study.name))

@harness.hookimpl
def harness_trial_start(trial):
    EVENTS.append(("trial_start", trial.number))

@harness.hookimpl
def harness_trial_callbacks(trial):
    EVENTS.append(("trial_callbacks", trial.number))
    return []

@harness.hookimpl
def harness_trial_end(trial, result):
    EVENTS.append(("trial_end", trial.number, result.state))

@harness.hookimpl
def harness_study_end(study, table):
    EVENTS.append(("study_end", len(table)))
"""


def test_lifecycle_hooks_fire_in_order(tmp_path, write_study, monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    plugins = load_plugins([str(recorder)])
    study = write_study("""
        [study]
        name = "order"
        trials = 2
        [dataset]
        name = "digits"
        limit = 200
        [model]
        name = "dense"
        units = {choice = [8, 16]}
        [train]
        epochs = 1
    """)
    run_study(
        load_study(study, plugins),
        plugins,
        RunOptions(runs_dir=tmp_path / "runs", in_process=True, show_progress=False),
    )
    events = sys.modules["harness_extra_recorder"].EVENTS
    assert events == [
        ("study_start", "order"),
        ("trial_start", 0),
        ("trial_callbacks", 0),
        ("trial_end", 0, "complete"),
        ("trial_start", 1),
        ("trial_callbacks", 1),
        ("trial_end", 1, "complete"),
        ("study_end", 2),
    ]


def test_reduce_lr_lowers_the_learning_rate_on_a_plateau(write_study, run_study_in_process):
    """``[callbacks.reduce_lr]`` is Keras's ReduceLROnPlateau: with a metric that never
    improves after the first epoch (loss watched in "max" mode) it halves the rate after
    every later epoch; the epoch logs carry the rate each epoch trained with."""
    import json

    path = write_study(
        """
        [study]
        name = "lr"
        trials = 1
        seed = 0

        [dataset]
        name = "digits"
        limit = 200

        [model]
        name = "dense"
        units = 8

        [train]
        epochs = 4
        learning_rate = 0.004

        [callbacks.reduce_lr]
        monitor = "loss"
        mode = "max"
        factor = 0.5
        patience = 0
        """
    )
    outcome = run_study_in_process(path)
    histories = json.loads((outcome.run_dir / "histories.json").read_text())
    rates = next(iter(histories.values()))["learning_rate"]
    assert rates == pytest.approx([0.004, 0.004, 0.002, 0.001])


def test_loading_the_built_in_plugins_imports_no_heavy_library():
    # Workers load the plugins before they import TensorFlow, and `harness run` before it
    # starts its first worker: every module imported here delays the first trial.
    code = "from harness.plugins import load_plugins; load_plugins(())"
    assert heavy_imports_after(code, ("pandas", "tensorflow", "keras", "matplotlib")) == []
