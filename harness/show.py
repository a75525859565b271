"""The live trial table of a study, read from its storage (``harness show``).

``trials.csv`` is rewritten after every trial, but the storage is the truth:
it also lists the trials that are running now, on this machine or on another
one sharing the study. Reading never writes: a storage that is gone falls
back to ``trials.csv``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.results import (
    build_table,
    finished_counted,
    read_meta,
    read_table,
    read_test_results,
    resolve_storage,
    with_test_columns,
)
from harness.run_marker import run_active
from harness.study import Objective

if TYPE_CHECKING:
    import pandas as pd


def _optuna_records(run_dir: Path, meta: dict[str, Any]) -> list | None:
    storage = resolve_storage(run_dir, str(meta.get("storage") or "optuna.journal"))
    if storage is None:
        return None
    import optuna  # lazy: keeps optuna out of harness --help (its commands import this module)

    from harness.backends.optuna import read_storage, trial_records  # lazy: imports optuna

    try:
        study = optuna.load_study(study_name=meta["name"], storage=read_storage(storage))
    except (KeyError, ValueError, HarnessError):
        return None
    spec = SimpleNamespace(
        name=meta["name"], objectives=[Objective(**o) for o in meta.get("objectives", [])]
    )
    return _orphans_shown_interrupted(study, trial_records(study, spec))


def _orphans_shown_interrupted(study, records: list) -> list:
    """A trial still RUNNING in the storage whose process on this host is gone (the run
    was killed) is shown as the next run will record it: failed, interrupted, not counted.
    Nothing is written: reading never writes."""
    from harness.backends.optuna import ORPHANED, orphaned_trials  # lazy: imports optuna

    orphans = {trial.number for trial in orphaned_trials(study)}
    for record in records:
        if record.number in orphans:
            record.state = "failed"
            record.counted = False
            record.fail_reason = f"{ORPHANED} (recorded so, and re-run, when the study resumes)"
    return records


def study_table(run_dir: Path) -> pd.DataFrame:
    """Every trial of the study in ``run_dir``, best first, running ones included."""
    meta = read_meta(run_dir)
    records = _optuna_records(run_dir, meta) if meta.get("backend") == "optuna" else None
    if records is None:
        return read_table(run_dir)
    table = build_table(records, meta.get("objectives", []))
    return with_test_columns(table, read_test_results(run_dir))


def study_ended(run_dir: Path, table: pd.DataFrame) -> bool:
    """No trial is running, and the budget is met or no ``harness run`` is left to meet it
    (killed, or stopped by ``--timeout``): ``harness show --watch`` stops then."""
    if table.empty or (table["state"] == "running").any():
        return False
    if not run_active(run_dir):
        return True
    budget = int(read_meta(run_dir).get("trials") or 0)
    waiting = (table["state"] == "waiting").any()
    return not waiting and int(finished_counted(table).sum()) >= budget
