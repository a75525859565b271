"""The search-backend contract: both built-ins satisfy it, anything else is one clear line."""

from __future__ import annotations

import importlib.metadata
import types

import pytest

from harness.backends import base, keep
from harness.errors import PluginError


@pytest.mark.parametrize("name", ["optuna", "kerastuner"])
def test_built_in_backends_satisfy_the_contract(name):
    backend = base.load_backend(name)
    assert isinstance(backend, base.SearchBackend)
    assert all(callable(getattr(backend, f)) for f in base.REQUIRED)


def test_an_entry_point_backend_is_found_and_checked(monkeypatch):
    complete = types.ModuleType("complete_backend")
    for function in base.REQUIRED:
        setattr(complete, function, lambda *args, **kwargs: None)
    partial = types.ModuleType("partial_backend")
    partial.prepare = lambda *args, **kwargs: None

    class Entry:
        def __init__(self, name, module):
            self.name, self.value, self.module = name, f"{module.__name__}:", module

        def load(self):
            return self.module

    entries = [Entry("mine", complete), Entry("half", partial)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: entries)
    assert base.backend_names() == ["half", "kerastuner", "mine", "optuna"]
    assert base.load_backend("mine") is complete
    with pytest.raises(PluginError, match="backend 'half' lacks run_worker, records"):
        base.load_backend("half")
    with pytest.raises(PluginError, match="unknown backend 'nope'; installed: half, kerastuner"):
        base.load_backend("nope")


def _spec(direction: str, keep: int = 3, objectives: int = 1):
    from types import SimpleNamespace

    return SimpleNamespace(
        objectives=[SimpleNamespace(direction=direction)] * objectives,
        multi_objective=objectives > 1,
        study=SimpleNamespace(keep_models=keep),
    )


@pytest.mark.parametrize(
    ("number", "done", "direction", "expected"),
    [(0, {0: [0.9]}, "maximize", True), (2, {0: [0.8], 1: [0.95], 2: [0.9]}, "maximize", False),
     (2, {0: [0.2], 1: [0.3], 2: [0.1]}, "minimize", True),
     (3, {1: [0.2], 3: [0.2]}, "minimize", False), (1, {1: [0.2], 3: [0.2]}, "minimize", True)],
)
def test_best_follows_the_direction_and_a_tie_goes_to_the_lower_number(
    number, done, direction, expected
):
    assert keep.is_best(done, _spec(direction), number) is expected


def test_kept_models_are_the_best_few_with_ties_to_the_lower_number():
    done = {0: [0.5], 1: [0.9], 2: [0.7], 3: [0.9], 4: [0.7]}
    assert keep.models_to_keep(done, _spec("maximize", keep=3)) == {1, 3, 2}
    assert keep.models_to_keep(done, _spec("minimize", keep=2)) == {0, 2}
    front = {0: [0.9, 5.0], 1: [0.8, 10.0], 2: [0.7, 4.0]}
    assert keep.models_to_keep(front, _spec("maximize", objectives=2)) == {0, 1}


def test_the_best_hand_picked_trials_model_is_kept_to_be_measured_beside_the_best():
    from harness.results import hand_picked_numbers

    done = {1: [0.9], 2: [0.8], 3: [0.95], 4: [0.6], 5: [0.5]}
    # Hand-picked #0 was interrupted, re-run as #2, interrupted, re-run as #4; #1 is not.
    picked = hand_picked_numbers(1, {2: 0, 4: 2})
    assert picked == {0, 2, 4}
    assert keep.models_to_keep(done, _spec("maximize", keep=2), picked) == {3, 1, 2}
    assert keep.models_to_keep(done, _spec("maximize", keep=1), {4, 5}) == {3, 4}
    assert keep.models_to_keep(done, _spec("maximize", keep=1), {6}) == {3}, "not complete"


def _worker_study(write_study, backend_table: str = "") -> str:
    return str(
        write_study(f"""
        [study]
        name = "joined"
        {backend_table}
        [dataset]
        name = "digits"
        [model]
        name = "dense"
    """)
    )


@pytest.mark.parametrize(
    "storage",
    [None, "runs/joined/optuna.journal"],  # none, and a journal file: one machine's only
)
def test_optuna_worker_needs_a_database_every_machine_reaches(write_study, capsys, storage):
    from harness import cli

    args = ["worker", _worker_study(write_study)] + (["--storage", storage] if storage else [])
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "postgresql://USER:PASSWORD@HOST/DB" in err and "Traceback" not in err
    if storage:  # the flag was given: say what is wrong with it, not to pass it
        assert f"--storage {storage}: a journal file is one machine's" in err
        assert "pass --storage" not in err
    else:
        assert "pass --storage postgresql://" in err


def test_a_database_servers_storage_is_opened_once_per_process_with_a_bounded_pool(
    monkeypatch, tmp_path
):
    """Every progress poll and command of a process reuses one storage per server URL,
    whose pool holds at most POOL_CONNECTIONS (a new storage per poll opened a new
    connection every time); a journal or SQLite file is still opened afresh each time."""
    from harness.backends import optuna_storage

    opened = []

    class FakeRDBStorage:
        def __init__(self, url, engine_kwargs, **kwargs):
            opened.append((url, engine_kwargs))

    monkeypatch.setattr(optuna_storage.optuna.storages, "RDBStorage", FakeRDBStorage)
    monkeypatch.setattr(optuna_storage, "_SERVER_STORAGES", {}, raising=False)
    url = "postgresql://harness:secret@db-host/harness"
    first = optuna_storage.make_storage(url)
    assert optuna_storage.make_storage(url) is first
    assert optuna_storage.read_storage(url) is first
    assert [u for u, _ in opened] == [url], "one storage for the process's life"
    engine = opened[0][1]
    assert engine["pool_size"] + engine["max_overflow"] == 2 and engine["pool_pre_ping"]
    other = optuna_storage.make_storage("mysql://harness:secret@db-host/other")
    assert other is not first and len(opened) == 2
    sqlite = f"sqlite:///{tmp_path / 'study.db'}"
    assert optuna_storage.make_storage(sqlite) is not optuna_storage.make_storage(sqlite)
    assert "pool_size" not in opened[-1][1], "SQLite keeps SQLAlchemy's own pool"


def test_a_backend_without_join_storage_is_refused_by_harness_worker(
    write_study, capsys, monkeypatch
):
    from harness import cli
    from harness.commands import worker

    lone = types.ModuleType("lone_backend")
    for function in base.REQUIRED:
        setattr(lone, function, lambda *args, **kwargs: None)
    monkeypatch.setattr(worker, "get_backend", lambda spec: lone)
    assert cli.main(["worker", _worker_study(write_study), "--storage", "sqlite:///x.db"]) == 2
    err = capsys.readouterr().err
    assert "cannot join a study from another machine" in err and "harness run" in err



def _named_study(write_study, plugins, objective: str):
    from harness.study import load_study

    text = f"""
        [study]
        name = "named"
        objective = {objective}
        [dataset]
        name = "digits"
        [model]
        name = "dense"
    """
    return load_study(write_study(text), plugins)


def _metric_names(url: str) -> list[str] | None:
    import optuna

    from harness.backends.optuna import make_storage

    return optuna.load_study(study_name="named", storage=make_storage(url)).metric_names


@pytest.mark.parametrize(
    ("objective", "names"),
    [
        ('"val_accuracy"', ["val_accuracy"]),
        ('["val_accuracy", "params"]', ["val_accuracy", "params"]),
    ],
)
def test_optuna_names_the_studys_objectives(tmp_path, write_study, plugins, objective, names):
    """optuna-dashboard labels an unnamed objective "Objective 0": name each after its metric,
    also in a study an older version created unnamed (named when it resumes or is joined)."""
    import optuna

    from harness.backends import optuna as backend

    spec = _named_study(write_study, plugins, objective)
    run_dir = tmp_path / "runs" / "named"
    assert _metric_names(backend.prepare(spec, run_dir)) == names

    older = tmp_path / "older.journal"  # created without names, as before
    directions = [o.direction for o in spec.objectives]
    storage = backend.make_storage(str(older))
    optuna.create_study(study_name="named", storage=storage, directions=directions)
    assert _metric_names(str(older)) is None
    backend.prepare(spec, run_dir, storage_override=str(older))  # resumed
    assert _metric_names(str(older)) == names
    size = older.stat().st_size
    joined = backend.open_study(spec, backend.make_storage(str(older)))  # a worker's open
    assert joined.metric_names == names
    assert older.stat().st_size == size, "named once, not again on every open"
