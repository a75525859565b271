"""Hostile input through the CLI: one `error:` line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness.commands.common
import harness.commands.run
import harness.orchestrator
import harness.plugins
from harness.cli import main

#: A valid study touching every part of the file: searched ints, floats, choices, a
#: condition, a callback, hand-picked trials.
BASE = {
    "study": {"name": "hostile", "trials": 3, "seed": 1, "objective": "val_accuracy"},
    "optuna": {"sampler": "tpe", "pruner": "median"},
    "dataset": {"name": "digits", "limit": 200, "validation_split": 0.2},
    "model": {
        "name": "dense",
        "dense_layers": {"int": [1, 3]},
        "units": {"int": [8, 64], "step": 8},
        "dropout": {"float": [0.0, 0.5]},
        "activation": {"choice": ["relu", "tanh"]},
    },
    "train": {"epochs": 2, "learning_rate": {"float": [1e-4, 1e-2], "log": True}},
    "callbacks": {"threshold": {"metric": "val_accuracy", "value": 0.99}},
    "enqueue": [
        {"model": {"dense_layers": 1, "units": 16, "dropout": 0.0, "activation": "relu"}}
    ],
}

SCALARS = st.one_of(
    st.integers(-(10**13), 10**13),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.booleans(),
    st.sampled_from(
        ["", "digits", "dense", "val_acc", "units >= 2", "dense_layers >= 'two'", "../x", "a\n",
         "x" * 300, "numpy.load", "tpe", "minimize", "int", "choice"]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(
    ["name", "trials", "seed", "int", "float", "choice", "step", "log", "when", "units",
     "dense_layers", "dropout", "epochs", "limit", "metric", "value", "x", "timeout", "workers"]
)


def _paths(node, prefix=()):
    """Every (path, value) in a nested study, tables and lists included."""
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


PATHS = [path for path, _ in _paths(BASE) if path]


def _set(study, path, value):
    node = study
    for part in path[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()
MUTATION = st.tuples(
    st.sampled_from(PATHS),
    st.sampled_from(["replace", "delete", "add", "wrap"]),
    VALUES,
    KEYS,
)


def mutate(mutations) -> dict:
    study = copy.deepcopy(BASE)
    for path, op, value, key in mutations:
        try:
            target = study
            for part in path:
                target = target[part]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
        if op == "replace":
            _set(study, path, value)
        elif op == "delete":
            _set(study, path, _DELETE)
        elif op == "add" and isinstance(target, dict):
            target[key] = value
        elif op == "wrap":
            _set(study, path, {key: target})
    return study


class _Valid(Exception):
    """Raised instead of running a study that passed every check."""


@pytest.fixture
def no_training(monkeypatch):
    """`harness run` on a valid study stops right where training would start."""

    def refuse_to_train(spec, plugins, options, launcher=None):
        raise _Valid(spec.name)

    # harness run and harness.run both go through harness.api.run_with_options
    monkeypatch.setattr(harness.orchestrator, "run_study", refuse_to_train)
    # and starts no worker early (it would import TensorFlow for every valid file)
    monkeypatch.setattr(
        harness.orchestrator,
        "workers_started_early",
        lambda spec, options: contextlib.nullcontext(),
    )
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    # The built-in plugins, loaded once: a thousand study files are checked in seconds.
    built_ins = harness.plugins.load_plugins()
    monkeypatch.setattr(
        harness.commands.common,
        "load_plugins",
        lambda extra=(): built_ins if not extra else _load(extra),
    )


_load = harness.plugins.load_plugins


def refused(args: list[str], runs: Path, capsys) -> str | None:
    """Run the CLI; None when the study was valid, else assert the rules of bad input
    and return the error line."""
    try:
        code = main([*args, "--runs-dir", str(runs)])
    except _Valid:
        return None
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert not runs.exists(), "nothing is written before an error"
    return lines[0]


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_mutated_study_files_are_refused_cleanly_or_valid(
    mutations, no_training, tmp_path_factory, capsys
):
    folder = tmp_path_factory.mktemp("hostile")
    path = folder / "study.toml"
    try:
        path.write_text(tomli_w.dumps(mutate(mutations)), encoding="utf-8")
    except (TypeError, ValueError):
        return  # not expressible in TOML (e.g. a list mixing tables and values)
    refused(["run", str(path)], folder / "runs", capsys)


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--trials", "1000000000000", "--trials 1000000000000: "),
        ("--workers", "100000", "--workers 100000: "),
        ("--timeout", "-5", "--timeout -5.0: "),
        ("--seed", "-1", "--seed -1: "),
        ("--recycle-after", "-1", "--recycle-after -1: "),
        ("--trials", "abc", "argument --trials: invalid int value"),
    ],
)
def test_flags_obey_the_study_file_limits(tmp_path, capsys, no_training, flag, value, expected):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(BASE))
    error = refused(["run", str(path), flag, value], tmp_path / "r", capsys)
    assert error is not None and expected in error


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"study": {"name": "ok\n"}}, "[study].name"),
        ({"study": {"name": "x" * 300}}, "at most 100 characters"),
        ({"study": {"seed": -1}}, "[study].seed"),
        ({"enqueue": [{"model": {"units": 12.5}}]}, "12.5 is not an integer"),
        ({"enqueue": [{"model": {"units": 12}}]}, "not on the grid"),
        ({"enqueue": [{"model": {"activation": True}}]}, "True is not one of"),
        ({"model": {"dropout": True}}, "expected a number, not true"),
        ({"study": {"objective": "val_acc"}}, "Did you mean 'val_accuracy'?"),
        (
            {"callbacks": {"threshold": {"metric": "val_acc", "value": 0.9}}},
            "[callbacks.threshold].metric: unknown metric 'val_acc'. Did you mean 'val_accuracy'?",
        ),
    ],
)
def test_study_file_mistakes_name_the_key_and_the_fix(
    tmp_path, capsys, no_training, change, message
):
    study = copy.deepcopy(BASE)
    for table, values in change.items():
        if isinstance(values, list):
            study[table] = values
        else:
            study[table] = {**study[table], **values}
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(study))
    error = refused(["run", str(path)], tmp_path / "r", capsys)
    assert error is not None and message in error


def test_conditions_and_enqueued_conditionals_are_checked(tmp_path, capsys, no_training):
    study = copy.deepcopy(BASE)
    study["model"]["dropout"] = {"float": [0.0, 0.5], "when": "dense_layers >= 'two'"}
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(study))
    assert main(["validate", str(path)]) == 2
    assert "never true" in capsys.readouterr().err
    study["model"]["dropout"] = {"float": [0.0, 0.5], "when": "dense_layers >= 2"}
    study["enqueue"] = [{"model": {"dense_layers": 1, "dropout": 0.1}}]
    path.write_text(tomli_w.dumps(study))
    assert main(["validate", str(path)]) == 2
    assert "only sampled when model.dense_layers >= 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "make",
    [
        lambda d: d,  # a directory
        lambda d: Path("/dev/zero"),
        lambda d: _write(d / "deep.toml", "a = " + "[" * 5000 + "]" * 5000),
        lambda d: _write_bytes(d / "bin.toml", bytes(range(256))),
    ],
)
def test_unreadable_study_files_are_one_line(tmp_path, capsys, no_training, make):
    path = make(tmp_path)
    assert refused(["run", str(path)], tmp_path / "r", capsys) is not None


def test_filesystem_problems_are_one_line(tmp_path, capsys, monkeypatch):
    """The real `harness run`, refused before any trial: nothing left behind."""
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(BASE))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["run", str(path), "--runs-dir", str(blocker / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "--runs-dir" in err and "Traceback" not in err
    runs = tmp_path / "r" / "deeper"
    code = main(["run", str(path), "--runs-dir", str(runs), "--storage", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "is a directory" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists(), "a refused run leaves no folder behind"


def test_a_result_file_that_cannot_be_replaced_is_named_not_its_temporary_copy(
    tmp_path, capsys, monkeypatch
):
    """Result files are written to a temporary file, then moved over the real one: the
    error must name the file the user knows (study.json), not the temporary copy."""
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(BASE))
    runs = tmp_path / "runs"
    assert main(["run", str(path), "--runs-dir", str(runs), "--in-process", "--no-progress"]) == 0
    capsys.readouterr()
    meta = next(runs.glob("*/study.json"))
    meta.unlink()
    meta.mkdir()  # a folder where the file goes
    code = main(["run", str(path), "--runs-dir", str(runs), "--in-process", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {meta}: Is a directory\n", err


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("trials.csv", "\x00\x01garbage"),
        ("trials.csv", ""),
        ("trials.csv", "a,b\n1,2\n"),
        ("study.json", '{"name": "x", "objectives": [{"metric": '),
        ("histories.json", "[1, 2"),
    ],
)
def test_damaged_result_files_are_one_line(tmp_path, capsys, name, content):
    run_dir = tmp_path / "runs" / "x"
    run_dir.mkdir(parents=True)
    objectives = [{"metric": "val_accuracy", "direction": "maximize"}]
    (run_dir / "study.json").write_text(json.dumps({"name": "x", "objectives": objectives}))
    (run_dir / "trials.csv").write_text("number,state,val_accuracy\n0,complete,0.5\n")
    (run_dir / name).write_text(content)
    exported = str(tmp_path / "out.csv")
    for command in (
        ["show", "x"],
        ["report", "x"],
        ["export", "x", "--format", "csv", "--output", exported],
    ):
        code = main([*command, "--runs-dir", str(tmp_path / "runs")])
        err = capsys.readouterr().err
        if name == "histories.json" and command[0] != "report":
            continue  # only the report reads the histories
        assert code == 2, (command, err)
        assert "Traceback" not in err and err.startswith("error: ") and name in err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_missing_database_driver_names_the_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(BASE))
    error = refused(
        ["run", str(path), "--storage", "mysql://user:secret@localhost/db"],
        tmp_path / "runs",
        capsys,
    )
    assert error is not None and "pip install pymysql" in error and "secret" not in error


def _idx(images: bool, count: int) -> bytes:
    import gzip
    import struct

    if images:
        body = struct.pack(">IIII", 2051, count, 28, 28) + bytes(count * 784)
    else:
        body = struct.pack(">II", 2049, count) + bytes(count)
    return gzip.compress(body)


@pytest.mark.parametrize(
    "damage",
    ["truncated", "swapped", "missing"],
)
def test_broken_data_files_are_refused_before_anything_is_written(
    tmp_path, capsys, monkeypatch, damage
):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    data = tmp_path / "mnist"
    data.mkdir()
    files = {
        "train-images-idx3-ubyte.gz": _idx(True, 20),
        "train-labels-idx1-ubyte.gz": _idx(False, 20),
        "t10k-images-idx3-ubyte.gz": _idx(True, 10),
        "t10k-labels-idx1-ubyte.gz": _idx(False, 10),
    }
    if damage == "truncated":
        files["train-images-idx3-ubyte.gz"] = files["train-images-idx3-ubyte.gz"][:-40]
    elif damage == "swapped":
        files["train-images-idx3-ubyte.gz"], files["train-labels-idx1-ubyte.gz"] = (
            files["train-labels-idx1-ubyte.gz"],
            files["train-images-idx3-ubyte.gz"],
        )
    else:
        del files["t10k-labels-idx1-ubyte.gz"]
    for name, content in files.items():
        (data / name).write_bytes(content)
    study = copy.deepcopy(BASE)
    study["dataset"] = {"name": "mnist", "path": str(data)}
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(study))
    error = refused(["run", str(path)], tmp_path / "runs", capsys)
    assert error is not None and "[dataset]" in error and "idx" in error.lower()


def test_a_sign_language_csv_with_text_cells_is_refused_before_anything_is_written(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
    row = "3," + ",".join(["0"] * 783) + ",dark"
    (tmp_path / "sign_mnist_train.csv").write_text(f"{header}\n{row}\n{row}\n")
    study = copy.deepcopy(BASE)
    study["dataset"] = {"name": "sign_language_mnist", "path": str(tmp_path)}
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(study))
    error = refused(["run", str(path)], tmp_path / "runs", capsys)
    assert error is not None and "non-numeric values in column(s) pixel784" in error


def test_a_refused_resume_never_appends_to_the_journal(tmp_path, capsys, monkeypatch):
    from harness.backends.optuna import prepare
    from harness.study import load_study

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(BASE))
    run_dir = tmp_path / "runs" / "hostile"
    run_dir.mkdir(parents=True)
    prepare(load_study(path, harness.plugins.load_plugins()), run_dir)
    journal = run_dir / "optuna.journal"
    before = journal.read_bytes()
    changed = copy.deepcopy(BASE)
    changed["study"]["direction"] = "minimize"
    path.write_text(tomli_w.dumps(changed))
    code = main(["run", str(path), "--runs-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and "directions" in err and "Traceback" not in err
    assert journal.read_bytes() == before, "a refused run appended to the journal"
    assert sorted(p.name for p in run_dir.iterdir()) == ["optuna.journal"]


def test_a_plugin_without_hooks_and_a_negative_top_are_refused(tmp_path, capsys, no_training):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(BASE))
    error = refused(["run", str(path), "--plugin", "json"], tmp_path / "r", capsys)
    assert error is not None and "--plugin json: defines no harness hook" in error
    run_dir = tmp_path / "r2" / "x"
    run_dir.mkdir(parents=True)
    (run_dir / "trials.csv").write_text("number,state\n0,complete\n")
    assert main(["show", "x", "--top", "-1", "--runs-dir", str(tmp_path / "r2")]) == 2
    assert "--top must be at least 1" in capsys.readouterr().err


def _exportable_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "runs" / "x"
    run_dir.mkdir(parents=True)
    objectives = [{"metric": "val_accuracy", "direction": "maximize"}]
    (run_dir / "study.json").write_text(json.dumps({"name": "x", "objectives": objectives}))
    (run_dir / "trials.csv").write_text("number,state,val_accuracy\n0,complete,0.5\n")
    return tmp_path / "runs"


def _export(runs: Path, output) -> int:
    return main(["export", "x", "--format", "csv", f"--output={output}", f"--runs-dir={runs}"])


def test_export_writes_through_links_and_into_pipes_never_over_them(tmp_path, capsys):
    """`--output` naming a symbolic link replaces the file it points to (the link stays);
    naming a FIFO writes into it: neither is swapped for a regular file."""
    import os
    import threading

    runs = _exportable_run(tmp_path)
    target = tmp_path / "kept.csv"
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    assert _export(runs, link) == 0
    assert link.is_symlink() and target.read_text().startswith("number,state,val_accuracy")

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    code = _export(runs, fifo)
    reader.join(timeout=10)
    assert code == 0 and received and received[0].startswith(b"number,state")
    assert fifo.is_fifo()
    capsys.readouterr()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_export_to_a_full_disk_is_one_line_and_leaves_the_device_alone(tmp_path, capsys):
    runs = _exportable_run(tmp_path)
    code = _export(runs, "/dev/full")
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: --output /dev/full: cannot write it: No space left on device\n"
    assert Path("/dev/full").is_char_device()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dataset.path=2024-01-01", "2024-01-01"),  # a TOML date stays the text typed
        ("dataset.path=12:30:00", "12:30:00"),
        ("train.epochs=3", 3),
        ('dataset.path="1e3"', "1e3"),
    ],
)
def test_set_values_that_look_like_toml_dates_stay_text(text, expected):
    from harness.study_source import parse_assignment

    assert parse_assignment(text)[1] == expected


def test_a_number_where_text_is_expected_says_how_to_quote_it(tmp_path, capsys, no_training):
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(BASE))
    code = main(["validate", str(path), "--set", "callbacks.threshold.metric=1e3"])
    err = capsys.readouterr().err
    assert code == 2 and "the value was read as a number" in err
    assert "--set 'callbacks.threshold.metric=\"...\"'" in err


def test_a_study_file_with_a_byte_order_mark_reads(tmp_path, capsys, no_training):
    """Windows Notepad starts UTF-8 files with a byte-order mark; it is not TOML."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + tomli_w.dumps(BASE).encode())
    assert main(["validate", str(path)]) == 0
    assert "valid study 'hostile'" in capsys.readouterr().out


def test_version_flag(capsys):
    from harness import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"harness {__version__}\n"


def test_exporting_a_study_with_no_complete_trial_does_not_offer_retrain(tmp_path, capsys):
    runs = _exportable_run(tmp_path)
    (runs / "x" / "trials.csv").write_text("number,state,val_accuracy\n0,failed,\n")
    target = tmp_path / "m.keras"
    assert main(["export", "x", "--best-model", str(target), f"--runs-dir={runs}"]) == 2
    err = capsys.readouterr().err
    assert "(no trial completed yet); run the study until a trial completes" in err
    assert "--retrain" not in err


# -- refused commands change nothing: the CLI as the user runs it -----------------------


def _harness(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``harness ARGS`` as a subprocess in ``cwd`` (workers start early, so this process
    never imports TensorFlow for a refusal)."""
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )


def _files(folder: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``folder``, by relative path."""
    return {
        str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None
        for path in sorted(folder.rglob("*"))
    }


def _assert_refused(done: subprocess.CompletedProcess, *named: str) -> None:
    """Exit code 2 and one ``error:`` line naming each of ``named``."""
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and all(n in lines[0] for n in named), lines[0]


@pytest.mark.parametrize(
    ("storage", "named"),
    [
        ("sqlite:///missing/dir/x.db", ["the folder missing/dir does not exist", "mkdir -p"]),
        ("sqlite:///a_folder", ["is a directory", "a_folder/study.db"]),
        ("sqlite://", ["in-memory SQLite", "sqlite:///study.db"]),
        ("a_folder", ["is a directory", "a_folder/study.journal"]),
        ("new_folder/", ["names a folder", "new_folder/study.journal"]),
        ("a_file/x.journal", ["a_file is a file, not a folder"]),
        ("notes.txt", ["notes.txt: not an Optuna journal", "give another --storage"]),
        ("/dev/null", ["not a regular file"]),
    ],
)
def test_a_storage_that_cannot_hold_the_study_is_refused_and_nothing_changes(
    tmp_path, storage, named
):
    """Before: the journal mended (cut) a text file it was given, an SQLite URL named
    the driver's "unable to open database file", an in-memory database raised a traceback."""
    (tmp_path / "s.toml").write_text(tomli_w.dumps(BASE))
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "notes.txt").write_text("not a journal\nits last line has no newline")
    before = _files(tmp_path)
    done = _harness(tmp_path, "run", "s.toml", "--storage", storage, "--no-progress")
    _assert_refused(done, *named)
    assert _files(tmp_path) == before


def test_a_storage_a_refused_run_created_is_removed(tmp_path):
    """The sampler is refused once the study is being created: its new journal and the
    folder made for it go again."""
    (tmp_path / "s.toml").write_text(tomli_w.dumps(BASE))
    before = _files(tmp_path)
    done = _harness(
        tmp_path, "run", "s.toml", "--storage", "new/study.journal", "--set",
        "optuna.sampler='gp'", "--no-progress",
    )
    if "needs PyTorch" not in done.stderr:
        pytest.skip("PyTorch is installed: the gp sampler is not refused")
    _assert_refused(done, "needs PyTorch")
    assert _files(tmp_path) == before


def _cut_study(tmp_path: Path) -> Path:
    """A run directory whose study has one complete trial and a journal whose last record
    was cut off mid-write (as a process killed while appending leaves it)."""
    import optuna

    from harness.backends.optuna import make_storage, prepare
    from harness.orchestrator import study_meta
    from harness.results import write_meta
    from harness.study import load_study

    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(BASE))
    run_dir = tmp_path / "runs" / "hostile"
    run_dir.mkdir(parents=True)
    spec = load_study(path, harness.plugins.load_plugins())
    url = prepare(spec, run_dir)
    write_meta(run_dir, study_meta(spec, url, run_dir=run_dir))
    study = optuna.load_study(study_name="hostile", storage=make_storage(url))
    study.tell(study.ask(), 0.5)
    (run_dir / "trials.csv").write_text("number,state,val_accuracy\n0,complete,0.5\n")
    journal = run_dir / "optuna.journal"
    last = journal.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    with open(journal, "ab") as f:
        f.write(last[: len(last) // 2])
    return journal


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (["run", "s.toml", "--set", "train.epochs=3", "--no-progress"],
         ["train.epochs = 2 there, 3 now"]),
        (["run", "other.toml", "--no-progress"], ["directions ['maximize']", "['minimize']"]),
        (["show", "hostile"], None),
        (["report", "hostile"], None),
    ],
    ids=["refused-resume", "refused-directions", "show", "report"],
)
def test_reading_or_refusing_never_mends_a_cut_journal(tmp_path, monkeypatch, command, named):
    """Only a run that goes ahead mends a journal: a read-only command reads past the cut
    record, a refused resume refuses before touching it (before: both moved it aside)."""
    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    _cut_study(tmp_path)
    other = copy.deepcopy(BASE)
    other["study"]["direction"] = "minimize"
    (tmp_path / "other.toml").write_text(tomli_w.dumps(other))
    before = _files(tmp_path)
    done = _harness(tmp_path, *command, "--runs-dir", "runs")
    if named is None:
        assert done.returncode == 0 and done.stderr == "", done.stderr
    else:
        _assert_refused(done, *named)
    if command[0] == "show":
        assert "1 of 3 trials finished" in done.stdout
    after = _files(tmp_path)
    if command[0] == "report":  # what it writes: the report, nothing else
        assert done.stdout.startswith("report: ") and "runs/hostile/report/index.html" in after
        after = {name: data for name, data in after.items() if "/report" not in name}
    assert after == before


@pytest.mark.parametrize("backend", ["optuna", "kerastuner"])
def test_a_class_folder_of_corrupt_images_is_refused_before_anything_is_written(
    tmp_path, backend
):
    """Before: found when the first trial decoded the images, after the run folder, its
    journal and its cache were written."""
    from PIL import Image

    for index in range(3):
        (tmp_path / "pets" / "cats").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (200, 10, 10)).save(tmp_path / "pets" / "cats" / f"{index}.png")
    (tmp_path / "pets" / "dogs").mkdir()
    (tmp_path / "pets" / "dogs" / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (tmp_path / "pets" / "dogs" / "b.png").write_bytes(b"\x89PNG garbage")
    study = copy.deepcopy(BASE)
    study["dataset"] = {"name": "image_folder", "path": "pets", "image_size": 8}
    (tmp_path / "s.toml").write_text(tomli_w.dumps(study))
    before = _files(tmp_path)
    done = _harness(tmp_path, "run", "s.toml", "--backend", backend, "--no-progress")
    _assert_refused(done, "class folder pets/dogs has no readable images")
    assert _files(tmp_path) == before
