"""The search-backend contract: both built-ins satisfy it, anything else is one clear line."""

from __future__ import annotations

import importlib.metadata
import types

import pytest

from harness.backends import base
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


@pytest.mark.parametrize(
    ("value", "others", "direction", "expected"),
    [(0.9, [], "maximize", True), (0.9, [0.8, 0.95], "maximize", False),
     (0.1, [0.2, 0.3], "minimize", True), (0.2, [0.2], "minimize", False)],
)
def test_better_follows_the_direction(value, others, direction, expected):
    assert base.better(value, others, direction) is expected


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


def test_a_backend_without_join_storage_is_refused_by_harness_worker(
    write_study, capsys, monkeypatch
):
    from harness import cli

    lone = types.ModuleType("lone_backend")
    for function in base.REQUIRED:
        setattr(lone, function, lambda *args, **kwargs: None)
    monkeypatch.setattr(cli, "get_backend", lambda spec: lone)
    assert cli.main(["worker", _worker_study(write_study), "--storage", "sqlite:///x.db"]) == 2
    err = capsys.readouterr().err
    assert "cannot join a study from another machine" in err and "harness run" in err
