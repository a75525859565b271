"""One test per hook of harness/hookspecs.py, each through a real plugin, and a golden test
of the lifecycle order (datasette's ``test_plugin_hooks_have_tests``, tox's golden order).

Everything runs the real command line once for the module (:func:`hook_run`):

* ``harness plugins --plugin tests/hook_recorder.py``;
* ``harness --help``;
* ``harness run hooks.toml`` with two ``--plugin`` files: tests/hook_recorder.py, which
  implements every hook, registers one component per family and appends every call to an
  events file (``$HOOK_RECORDER_EVENTS``, shared by the orchestrating process and its
  worker), and RAISER, a second tracker whose ``harness_trial_end`` and
  ``harness_test_evaluated`` raise. Three enqueued trials in one worker process: #0 and #1
  complete, #2 fails (the model builder refuses its parameters); the best trial is then
  measured on the test split;
* the same ``harness run`` again: the budget is met, so only the study hooks fire.

Every command line also has COMMANDS installed, as a distribution with an entry point
(only those are loaded before the command line is parsed): it implements
``harness_register_commands``, records its call in the same events file and adds the
command ``hook-listed``.

Under pytest-xdist the workers share that one run (a lock and a folder under the session's
common temporary directory).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_distribution

from harness import hookspecs

RECORDER = Path(__file__).with_name("hook_recorder.py")
#: Plugin names of ``--plugin FILE.py``: the module name the file is imported as.
RECORDER_NAME = "harness_extra_hook_recorder"
RAISER_NAME = "harness_extra_hook_raiser"
REGISTER_HOOKS = (
    "harness_register_datasets",
    "harness_register_models",
    "harness_register_augmentations",
    "harness_register_callbacks",
)
LIFECYCLE_HOOKS = (
    "harness_study_start",
    "harness_trial_start",
    "harness_trial_callbacks",
    "harness_trial_end",
    "harness_test_evaluated",
    "harness_ensemble_built",
    "harness_study_end",
)
CLASS_NAMES = ["red", "green", "blue"]
MODEL_LAYER = "hook_recorder_hidden"
REFUSED = "RuntimeError: hook_dense refuses 7 units"
#: ``harness --help``'s built-in commands, in its order.
BUILTIN_COMMANDS = [
    "run", "worker", "validate", "show", "evaluate", "plugins",
    "tensorboard", "report", "export", "predict", "ensemble",
]
#: The entry point (and module) of COMMANDS.
COMMANDS_PLUGIN = "hook_commands"

COMMANDS = '''
"""The hook tests' command plugin: records its harness_register_commands call, like the
recorder, and adds ``harness hook-listed``."""

import json
import os
import sys

import harness


def _listed(args):
    print("hook-listed ran")
    return 0


@harness.hookimpl
def harness_register_commands(subparsers, add_common):
    parser = subparsers.add_parser("hook-listed", help="added by the hook tests' entry point")
    add_common(parser)
    parser.set_defaults(handler=_listed)
    path = os.environ.get("HOOK_RECORDER_EVENTS")
    if path:
        event = {
            "hook": "harness_register_commands",
            "pid": os.getpid(),
            "plugin": "entry point",
            "tensorflow_imported": "tensorflow" in sys.modules,
            "commands": list(subparsers.choices),
            "options": [option for action in parser._actions for option in action.option_strings],
        }
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\\n")
'''

RAISER = '''
"""A second tracker, registered after the recorder (so pluggy calls it first): its
trial_end, test_evaluated and ensemble_built record that they ran, then raise; it adds no
callbacks."""

import json
import os

import harness


def _ran(hook, trial):
    path = os.environ.get("HOOK_RECORDER_EVENTS")
    if path:
        line = json.dumps({"hook": "raiser:" + hook, "pid": os.getpid(), "trial": trial})
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\\n")


@harness.hookimpl
def harness_trial_callbacks(trial):
    return None


@harness.hookimpl
def harness_trial_end(trial, result):
    _ran("harness_trial_end", trial.number)
    raise RuntimeError(f"raiser fails on purpose in trial {trial.number}")


@harness.hookimpl
def harness_test_evaluated(study, trial_number, metrics):
    _ran("harness_test_evaluated", trial_number)
    raise RuntimeError(f"raiser fails on purpose testing trial {trial_number}")


@harness.hookimpl
def harness_ensemble_built(study, ensemble):
    _ran("harness_ensemble_built", None)
    raise RuntimeError("raiser fails on purpose after the ensemble")
'''

STUDY = """
[study]
name = "hooks"
trials = 3
seed = 7
ensemble = 2

[optuna]
sampler = "random"
pruner = "none"

[dataset]
name = "hook_points"
size = 90

[model]
name = "hook_dense"
units = {choice = [3, 5, 7]}
refuse_units = 7

[augment.hook_count]

[callbacks.hook_stop]
stop_after = 1

[train]
epochs = 3
batch_size = 16

[[enqueue]]
model.units = 3

[[enqueue]]
model.units = 5

[[enqueue]]
model.units = 7
"""


def hook_names() -> list[str]:
    """Every function of harness.hookspecs marked with the hookspec marker."""
    marker = f"{hookspecs.PROJECT}_spec"
    return sorted(
        name
        for name, value in vars(hookspecs).items()
        if callable(value) and getattr(value, marker, None) is not None
    )


def test_plugin_hooks_have_tests():
    """Adding a hook to harness/hookspecs.py without a test_hook_<name> here fails."""
    hooks = hook_names()
    assert set(REGISTER_HOOKS + LIFECYCLE_HOOKS) <= set(hooks), "the marker was not found"
    assert all(name.startswith("harness_") for name in hooks)
    tests = {name for name, value in globals().items() if callable(value)}
    missing = [name for name in hooks if f"test_hook_{name}" not in tests]
    assert not missing, f"hooks without a test_hook_<name> in {Path(__file__).name}: {missing}"


# --- the module's one run ----------------------------------------------------------------


def _harness(root: Path, events: str, *args: str) -> dict:
    """Run ``python -m harness ARGS`` in ``root``; its pid, exit code and output."""
    env = {
        **os.environ,
        "PYTHONPATH": str(root / "site"),
        "HARNESS_PLUGINS": COMMANDS_PLUGIN,  # of the entry-point plugins, only COMMANDS
        "HOOK_RECORDER_EVENTS": str(root / events),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    for name in ("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "HARNESS_DISABLE_PLUGINS"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
    return {"pid": process.pid, "code": process.returncode, "out": stdout, "err": stderr}


def _run_everything(root: Path) -> None:
    (root / "hook_raiser.py").write_text(RAISER, encoding="utf-8")
    make_distribution(root / "site", "hook-commands", COMMANDS_PLUGIN, COMMANDS, COMMANDS_PLUGIN)
    (root / "hooks.toml").write_text(textwrap.dedent(STUDY), encoding="utf-8")
    run = [
        "run", "hooks.toml", "--runs-dir", str(root / "runs"), "--no-progress",
        "--plugin", str(RECORDER), "--plugin", str(root / "hook_raiser.py"),
    ]
    done = {
        "plugins": _harness(root, "plugins-events.jsonl", "plugins", "--plugin", str(RECORDER)),
        "help": _harness(root, "help-events.jsonl", "--help"),
        "run": _harness(root, "events.jsonl", *run),
        "resume": _harness(root, "resume-events.jsonl", *run),
        "ensemble": _harness(
            root, "ensemble-events.jsonl", "ensemble", "hooks", "--runs-dir", str(root / "runs"),
            "--plugin", str(RECORDER), "--plugin", str(root / "hook_raiser.py"),
        ),
    }
    (root / "cli.json").write_text(json.dumps(done), encoding="utf-8")


def _events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@dataclass
class HookRun:
    """What the module's command lines printed, recorded and wrote."""

    root: Path

    @cached_property
    def cli(self) -> dict:
        return json.loads((self.root / "cli.json").read_text(encoding="utf-8"))

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / "hooks"

    @property
    def main_pid(self) -> int:
        return self.cli["run"]["pid"]

    @cached_property
    def all_events(self) -> list[dict]:
        """Every line of the run's events file: the recorder's and the raiser's."""
        return _events(self.root / "events.jsonl")

    @cached_property
    def events(self) -> list[dict]:
        """The recorder's events of the run, in the order they happened."""
        return [e for e in self.all_events if not e["hook"].startswith("raiser:")]

    def calls(self, hook: str, events: list[dict] | None = None) -> list[dict]:
        return [e for e in (self.events if events is None else events) if e["hook"] == hook]

    def index(self, hook: str, trial: int | None = None) -> int:
        """Position of the one ``hook`` event (of ``trial``) among all the run's events."""
        found = [
            i for i, e in enumerate(self.all_events)
            if e["hook"] == hook and (trial is None or e.get("trial") == trial)
        ]
        assert len(found) == 1, (hook, trial, found)
        return found[0]

    @cached_property
    def table(self) -> pd.DataFrame:
        return pd.read_csv(self.run_dir / "trials.csv").set_index("number")

    @cached_property
    def best(self) -> int:
        return json.loads((self.run_dir / "best.json").read_text(encoding="utf-8"))["trial"]

    @cached_property
    def log(self) -> str:
        return (self.run_dir / "harness.log").read_text(encoding="utf-8")

    @cached_property
    def listing(self) -> dict[str, dict[str, str]]:
        """``harness plugins``: family (and ``lifecycle``) -> name -> rest of its line."""
        sections: dict[str, dict[str, str]] = {}
        current: dict[str, str] = {}
        for line in self.cli["plugins"]["out"].splitlines():
            if line and not line.startswith(" ") and line.endswith(":"):
                current = sections.setdefault(line[:-1], {})
            elif line.strip():
                name, _, rest = line.strip().partition(" ")
                current[name] = rest.strip()
        return sections

    def sequence(self) -> list[tuple[str, str, int | None]]:
        """(process, hook, trial) of each recorder event; the process is ``main`` (the
        ``harness run`` command itself), ``worker`` (the first other), or ``other N``."""
        roles = {self.main_pid: "main"}
        for event in self.events:
            if event["pid"] not in roles:
                roles[event["pid"]] = "worker" if len(roles) == 1 else f"other {len(roles)}"
        return [(roles[e["pid"]], e["hook"], e.get("trial")) for e in self.events]


@pytest.fixture(scope="module")
def hook_run(tmp_path_factory) -> HookRun:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this session's folder, common to its xdist workers
    root = base / "plugin-hooks"
    with open(base / "plugin-hooks.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "cli.json").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            _run_everything(root)
    run = HookRun(root)
    for name, done in run.cli.items():
        assert done["code"] == 0, f"harness {name} failed:\n{done['err'][-3000:]}"
    return run


# --- the register hooks ------------------------------------------------------------------


def _registered(run: HookRun, family: str, name: str, description: str) -> None:
    """``harness plugins`` lists the component with its description and its --plugin."""
    line = run.listing[family].get(name)
    assert line is not None, f"{name} not among the {family}: {sorted(run.listing[family])}"
    assert description in line and f"[--plugin {RECORDER}]" in line


def _complete(run: HookRun) -> list[int]:
    return sorted(run.table.index[run.table["state"] == "complete"])


def test_hook_harness_register_datasets(hook_run):
    _registered(hook_run, "datasets", "hook_points", "hook recorder points (three classes)")
    # The study trains on it: loaded once in the worker, with the study's value (size = 90,
    # not the default 60), a LoadContext with the study's seed and a cache folder in the run.
    (load,) = hook_run.calls("component:load_dataset")
    assert load["pid"] != hook_run.main_pid
    assert load["params_type"] == "PointsParams" and load["params"] == {"size": 90}
    assert load["seed"] == 7 and load["cache_dir_exists"]
    assert Path(load["cache_dir"]).parent == hook_run.run_dir / "cache"
    for build in hook_run.calls("component:build_model"):
        assert (build["info_name"], build["input_shape"], build["num_classes"]) == (
            "hook_points", [4], 3,
        )
    card = json.loads((hook_run.run_dir / "best_model.json").read_text(encoding="utf-8"))
    assert card["dataset"]["name"] == "hook_points"
    assert card["dataset"]["class_names"] == CLASS_NAMES
    assert card["dataset"]["input_shape"] == [4]
    # Every complete trial fitted on its 54 training rows (see the augmentation's count).
    train_rows = load["sizes"][0]
    assert train_rows == 54
    for end in hook_run.calls("harness_trial_end"):
        if end["state"] == "complete":
            assert end["augmented_samples"] == train_rows * len(end["history"]["loss"])


def test_hook_harness_register_models(hook_run):
    _registered(hook_run, "models", "hook_dense", "hook recorder model")
    table = hook_run.table
    builds = {e["trial"]: e for e in hook_run.calls("component:build_model")}
    assert sorted(builds) == [0, 1, 2], "built once per trial"
    for number, build in builds.items():
        assert build["params_type"] == "DenseParams"
        assert build["params"] == {"units": int(table.loc[number, "model.units"]),
                                   "refuse_units": 7}
    ends = {e["trial"]: e for e in hook_run.calls("harness_trial_end")}
    for number in _complete(hook_run):
        units = int(table.loc[number, "model.units"])
        # The trial fitted the builder's model: its layer, and its parameter count
        # (Dense(units) on 4 features, then 3 softmax outputs).
        assert MODEL_LAYER in ends[number]["model_layers"]
        assert ends[number]["model_params"] == 4 * units + units + units * 3 + 3
        assert table.loc[number, "params"] == ends[number]["model_params"]
    # A builder that raises fails that trial, with its message, and the study goes on.
    assert table.loc[2, "state"] == "failed" and table.loc[2, "fail_reason"] == REFUSED
    assert _complete(hook_run) == [0, 1]


def test_hook_harness_register_augmentations(hook_run):
    _registered(hook_run, "augmentations", "hook_count", "counts samples")
    (load,) = hook_run.calls("component:load_dataset")
    train_rows, val_rows, test_rows = load["sizes"]
    ends = {e["trial"]: e for e in hook_run.calls("harness_trial_end")}
    for number in _complete(hook_run):
        assert hook_run.index("component:make_augmentation", number) > hook_run.index(
            "component:build_model", number
        )
        epochs = int(hook_run.table.loc[number, "epochs_run"])
        # Every training sample of every epoch went through the layer, with training=True;
        # the validation (18) and test (18) rows never did, or the count would be larger.
        assert ends[number]["augmented_samples"] == epochs * train_rows
        assert ends[number]["augment_training_flags"]
        assert all(flag is True for flag in ends[number]["augment_training_flags"])
    assert val_rows and test_rows


def test_hook_harness_register_callbacks(hook_run):
    _registered(hook_run, "callbacks", "hook_stop", "stops after N epochs")
    made = {e["trial"]: e for e in hook_run.calls("component:make_callback")}
    assert sorted(made) == _complete(hook_run) == [0, 1]
    for event in made.values():
        assert event["params"] == {"stop_after": 1} and event["trial_type"] == "TrialContext"
    ends = {e["trial"]: e for e in hook_run.calls("harness_trial_end")}
    for number in _complete(hook_run):
        # Made after the model is built, and called during fit (after the callbacks that
        # harness_trial_callbacks added) ...
        assert hook_run.index("component:build_model", number) < hook_run.index(
            "component:make_callback", number
        )
        assert hook_run.index("component:trial_callback_epoch_end", number) < hook_run.index(
            "component:stop_callback_epoch_end", number
        ) < hook_run.index("harness_trial_end", number)
        # ... where it ended training early: [train] epochs = 3, yet one epoch ran and the
        # trial still completed.
        assert hook_run.table.loc[number, "epochs_run"] == 1
        assert len(ends[number]["history"]["loss"]) == 1


def test_register_hooks_run_in_every_process_that_loads_plugins(hook_run):
    # `harness plugins`: the command hook (its parser is built first), then the four
    # register hooks, in that order, and nothing else.
    plugins_events = _events(hook_run.root / "plugins-events.jsonl")
    assert [e["hook"] for e in plugins_events] == ["harness_register_commands", *REGISTER_HOOKS]
    assert not any(e["tensorflow_imported"] for e in plugins_events), "harness plugins stays light"
    assert hook_run.listing["lifecycle"][RECORDER_NAME] == ", ".join(
        hook.removeprefix("harness_") for hook in LIFECYCLE_HOOKS
    )
    # `harness run`: once in the orchestrating process and once in its worker.
    by_process = {}
    for process, hook, _ in hook_run.sequence():
        if hook in REGISTER_HOOKS:
            by_process.setdefault(process, []).append(hook)
    assert by_process == {"main": list(REGISTER_HOOKS), "worker": list(REGISTER_HOOKS)}


def test_hook_harness_register_commands(hook_run):
    """Called once per command line, in the process that parses it, first of every hook and
    without TensorFlow, after the built-in commands were added; ``--help`` lists what it
    adds. The recorder's implementation is never called: a ``--plugin`` comes too late."""
    (call,) = hook_run.calls("harness_register_commands")
    assert call["plugin"] == "entry point"
    assert call["pid"] == hook_run.main_pid and not call["tensorflow_imported"]
    assert hook_run.sequence()[0] == ("main", "harness_register_commands", None)
    assert call["commands"] == [*BUILTIN_COMMANDS, "hook-listed"]
    assert call["options"] == ["-h", "--help", "--runs-dir", "--plugin"]
    files = {"plugins": "plugins-events.jsonl", "help": "help-events.jsonl",
             "resume": "resume-events.jsonl", "ensemble": "ensemble-events.jsonl"}
    for name, events in files.items():
        calls = [
            (e["pid"], e["plugin"]) for e in _events(hook_run.root / events)
            if e["hook"] == "harness_register_commands"
        ]
        assert calls == [(hook_run.cli[name]["pid"], "entry point")], name
    usage = hook_run.cli["help"]["out"]
    assert "hook-listed" in usage and "added by the hook tests' entry point" in usage


# --- the lifecycle hooks -----------------------------------------------------------------


def test_hook_harness_study_start(hook_run):
    (start,) = hook_run.calls("harness_study_start")
    assert start["pid"] == hook_run.main_pid, "in the orchestrating process"
    assert not start["tensorflow_imported"], "the orchestrating process does not import TF"
    assert start["context_type"] == "StudyContext"
    assert start["name"] == "hooks" and Path(start["run_dir"]) == hook_run.run_dir
    assert start["run_dir_exists"] and start["study_json_written"]
    assert (start["dataset"], start["model"], start["trials"]) == ("hook_points", "hook_dense", 3)
    assert start["searched"] == {"model.units": "choice 3, 5, 7"}, "searched params, domains"
    assert hook_run.index("harness_study_start") < hook_run.index("harness_trial_start", 0)
    # Called again when the study is resumed (here with its budget met: no trial runs).
    resumed = _events(hook_run.root / "resume-events.jsonl")
    lifecycle = [e["hook"] for e in resumed if e["hook"] in LIFECYCLE_HOOKS]
    assert lifecycle == ["harness_study_start", "harness_study_end"]
    orchestrator = hook_run.cli["resume"]["pid"]
    assert all(e["pid"] == orchestrator for e in resumed if e["hook"] not in REGISTER_HOOKS)
    # The first worker starts before the budget is read, and is stopped once it is found
    # met; if it got as far as loading plugins, it called only the register hooks.
    assert {e["hook"] for e in resumed if e["pid"] != orchestrator} <= set(REGISTER_HOOKS)


def test_hook_harness_trial_start(hook_run):
    table = hook_run.table
    starts = hook_run.calls("harness_trial_start")
    assert [e["trial"] for e in starts] == [0, 1, 2]
    for start in starts:
        number = start["trial"]
        assert start["pid"] != hook_run.main_pid, "in the worker process"
        assert start["context_type"] == "TrialContext" and start["study"] == "hooks"
        assert Path(start["run_dir"]) == hook_run.run_dir
        units = int(table.loc[number, "model.units"])
        assert start["searched"] == {"model.units": units}
        assert start["params"]["model.units"] == units
        assert start["params"]["dataset.size"] == 90 and start["params"]["train.epochs"] == 3
        assert (start["worker"], start["device"]) == (
            table.loc[number, "worker"], table.loc[number, "device"],
        )
        assert "dataset_info" not in start["extra_before"], "the data is not loaded yet"
        # Its parameters are known before its data is loaded and its model built.
        assert hook_run.index("harness_trial_start", number) < hook_run.index(
            "component:build_model", number
        )
    assert hook_run.index("harness_trial_start", 0) < hook_run.index("component:load_dataset")


def test_hook_harness_trial_callbacks(hook_run):
    ends = {e["trial"]: e for e in hook_run.calls("harness_trial_end")}
    calls = hook_run.calls("harness_trial_callbacks")
    # Once per trial that trains (not #2, whose model failed to build), after the data is
    # loaded and the model built ("dataset_info" is in trial.extra by then).
    assert [e["trial"] for e in calls] == [0, 1]
    assert all(e["dataset_info_in_extra"] for e in calls)
    for number in _complete(hook_run):
        (epoch,) = [
            e for e in hook_run.calls("component:trial_callback_epoch_end")
            if e["trial"] == number
        ]
        # The callback it returned was called during fit, with the epoch's logs.
        assert hook_run.index("harness_trial_callbacks", number) < hook_run.all_events.index(
            epoch
        ) < hook_run.index("harness_trial_end", number)
        assert epoch["epoch"] == 0
        assert set(epoch["logs"]) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
        assert epoch["logs"] == {k: v[0] for k, v in ends[number]["history"].items()}
    # The raiser returns None from harness_trial_callbacks ("None for none"): no harm done.
    assert _complete(hook_run) == [0, 1]


def test_hook_harness_trial_end(hook_run):
    table = hook_run.table
    ends = {e["trial"]: e for e in hook_run.calls("harness_trial_end")}
    assert [e["trial"] for e in hook_run.calls("harness_trial_end")] == [0, 1, 2], (
        "once per trial, failed ones too"
    )
    for end in ends.values():
        number = end["trial"]
        assert end["pid"] != hook_run.main_pid, "in the worker process"
        assert end["state"] == table.loc[number, "state"]
        assert end["duration_s"] > 0
        assert end["extra_kept"], "trial.extra carries values from trial_start to trial_end"
    for number in _complete(hook_run):
        end = ends[number]
        assert end["fail_reason"] is None
        assert end["metrics"]["val_accuracy"] == pytest.approx(table.loc[number, "val_accuracy"])
        assert end["metrics"]["epochs_run"] == 1.0
        assert {"params", "train_seconds", "val_loss"} <= set(end["metrics"])
        assert end["model_layers"] is not None, "result.model: the trained model"
    assert ends[2]["state"] == "failed" and ends[2]["fail_reason"] == REFUSED
    assert ends[2]["metrics"] == {} and ends[2]["model_layers"] is None

    # The raiser's trial_end raised in every trial: each time a warning names the plugin,
    # the hook and the error ...
    for number in (0, 1, 2):
        assert any(
            "WARNING" in line and RAISER_NAME in line and "harness_trial_end" in line
            and f"raiser fails on purpose in trial {number}" in line
            for line in hook_run.log.splitlines()
        ), f"no warning for trial {number} in harness.log:\n{hook_run.log}"
        # ... and the other trackers still ran after it (pluggy calls the plugin registered
        # last first): the recorder ...
        assert hook_run.index("raiser:harness_trial_end", number) < hook_run.index(
            "harness_trial_end", number
        )
    # ... and the built-in TensorBoard tracker (registered first, so called last), whose
    # trial_end is the only writer in the folder of trial #2 (it never reached fit).
    assert list((hook_run.run_dir / "tb" / "trial-0002").glob("events.out.tfevents.*"))
    # The outcome is unchanged: complete trials with their values, the failed one with its
    # own reason, and `harness run` exits 0.
    assert list(table.loc[[0, 1], "state"]) == ["complete", "complete"]
    assert table["val_accuracy"].loc[[0, 1]].notna().all()
    assert table.loc[2, "fail_reason"] == REFUSED
    assert hook_run.cli["run"]["code"] == 0
    assert "2 complete, 1 failed" in hook_run.cli["run"]["out"]


def test_hook_harness_test_evaluated(hook_run):
    best = hook_run.best
    assert best in _complete(hook_run)
    (tested,) = hook_run.calls("harness_test_evaluated")
    # Once, for the best trial, in the worker that ran the last trial (TF loaded there),
    # after that trial ended and before the study ends.
    assert tested["trial"] == best and tested["pid"] != hook_run.main_pid
    assert tested["tensorflow_imported"]
    assert hook_run.index("harness_trial_end", 2) < hook_run.index("harness_test_evaluated")
    assert hook_run.index("harness_test_evaluated") < hook_run.index("harness_study_end")
    assert tested["context_type"] == "StudyContext" and tested["name"] == "hooks"
    assert Path(tested["run_dir"]) == hook_run.run_dir
    metrics = tested["metrics"]
    assert set(metrics) == {"test_accuracy", "test_loss"}
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    # The raiser's test_evaluated raised: a warning names it ...
    assert any(
        "WARNING" in line and RAISER_NAME in line and "harness_test_evaluated" in line
        and f"raiser fails on purpose testing trial {best}" in line
        for line in hook_run.log.splitlines()
    ), hook_run.log
    # ... the recorder and the TensorBoard tracker (its final/test_* go to one more event
    # file in the trial's run than the other complete trial has) still ran after it ...
    assert hook_run.index("raiser:harness_test_evaluated") < hook_run.index(
        "harness_test_evaluated"
    )
    (other,) = set(_complete(hook_run)) - {best}
    tb_files = {
        number: list((hook_run.run_dir / "tb" / f"trial-{number:04d}").glob("events.out.*"))
        for number in (best, other)
    }
    assert len(tb_files[best]) == len(tb_files[other]) + 1, tb_files
    # ... and the results are unchanged: test.json, trials.csv, the card, the summary.
    test_json = json.loads((hook_run.run_dir / "test.json").read_text(encoding="utf-8"))
    assert test_json["trials"] == {str(best): metrics}
    assert hook_run.table.loc[best, "test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    card = json.loads((hook_run.run_dir / "best_model.json").read_text(encoding="utf-8"))
    assert card["test"] == metrics
    assert f"test split, trial #{best}: test_accuracy={metrics['test_accuracy']:.4f}" in (
        hook_run.cli["run"]["out"]
    )


def test_hook_harness_study_end(hook_run):
    (end,) = hook_run.calls("harness_study_end")
    assert end["pid"] == hook_run.main_pid and not end["tensorflow_imported"]
    assert hook_run.all_events[-1] == end, "the last call of the run"
    assert end["name"] == "hooks" and Path(end["run_dir"]) == hook_run.run_dir
    # The results table: a DataFrame, one row per trial, best first, with the test figures.
    assert end["table_type"] == "DataFrame"
    assert end["numbers"] == list(hook_run.table.index) and sorted(end["numbers"]) == [0, 1, 2]
    assert end["numbers"][0] == hook_run.best
    assert end["states"] == ["complete", "complete", "failed"]
    assert end["val_accuracy"][0] >= end["val_accuracy"][1]
    assert {"state", "val_accuracy", "model.units", "test_accuracy"} <= set(end["columns"])
    assert end["columns"] == list(pd.read_csv(hook_run.run_dir / "trials.csv").columns)
    # Called again when the study is resumed, with the same table.
    resumed = _events(hook_run.root / "resume-events.jsonl")
    (again,) = [e for e in resumed if e["hook"] == "harness_study_end"]
    assert again["numbers"] == end["numbers"] and again["states"] == end["states"]


def test_hook_harness_ensemble_built(hook_run):
    """``harness ensemble hooks``: called once, in that process, with the record that
    ``ensemble.json`` keeps, after the files were written."""
    events = _events(hook_run.root / "ensemble-events.jsonl")
    (built,) = [e for e in events if e["hook"] == "harness_ensemble_built"]
    assert built["pid"] == hook_run.cli["ensemble"]["pid"] and built["tensorflow_imported"]
    assert built["context_type"] == "StudyContext" and built["name"] == "hooks"
    record = built["ensemble"]
    card = json.loads((hook_run.run_dir / "ensemble.json").read_text(encoding="utf-8"))
    assert record == card["ensemble"]
    assert sorted(m["trial"] for m in record["members"]) == [0, 1]  # #2 failed: no model
    assert record["best_single"] == hook_run.best
    assert set(record["test"]["ensemble"]) == {"accuracy", "loss"}
    # At the end of the run ([study].ensemble = 2), in the worker that measured the test
    # split, after it did: the same members.
    (at_end,) = hook_run.calls("harness_ensemble_built")
    assert at_end["ensemble"]["members"] == record["members"]
    assert hook_run.index("harness_test_evaluated") < hook_run.index("harness_ensemble_built")
    # The raiser's implementation raised first (pluggy calls the later plugin first): a
    # warning names it, the recorder's still ran, and the ensemble was written.
    assert hook_run.index("raiser:harness_ensemble_built") < hook_run.index(
        "harness_ensemble_built"
    )
    assert "raiser fails on purpose after the ensemble" in hook_run.cli["run"]["err"]


# --- the golden order --------------------------------------------------------------------


def test_lifecycle_order_golden(hook_run):
    """Every call of the recorder's hooks (and of the components it registered), in order,
    across the orchestrating process (main) and the worker that runs the trials."""
    best = hook_run.best
    main_registers = [("main", hook, None) for hook in REGISTER_HOOKS]
    worker_registers = [("worker", hook, None) for hook in REGISTER_HOOKS]
    assert hook_run.sequence() == [
        ("main", "harness_register_commands", None),
        *main_registers,
        ("main", "harness_study_start", None),
        *worker_registers,
        ("worker", "harness_trial_start", 0),
        ("worker", "component:load_dataset", None),
        ("worker", "component:build_model", 0),
        ("worker", "component:make_augmentation", 0),
        ("worker", "harness_trial_callbacks", 0),
        ("worker", "component:make_callback", 0),
        ("worker", "component:trial_callback_epoch_end", 0),
        ("worker", "component:stop_callback_epoch_end", 0),
        ("worker", "harness_trial_end", 0),
        ("worker", "harness_trial_start", 1),
        ("worker", "component:build_model", 1),
        ("worker", "component:make_augmentation", 1),
        ("worker", "harness_trial_callbacks", 1),
        ("worker", "component:make_callback", 1),
        ("worker", "component:trial_callback_epoch_end", 1),
        ("worker", "component:stop_callback_epoch_end", 1),
        ("worker", "harness_trial_end", 1),
        ("worker", "harness_trial_start", 2),
        ("worker", "component:build_model", 2),
        ("worker", "harness_trial_end", 2),
        ("worker", "harness_test_evaluated", best),
        ("worker", "harness_ensemble_built", None),
        ("main", "harness_study_end", None),
    ]
    # Every hook of the spec is in the golden list: a new hook needs a place in it.
    assert set(hook_names()) <= {hook for _, hook, _ in hook_run.sequence()}
