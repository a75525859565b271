"""Trials -> pandas table (``trials.csv``), best parameters (``best.json``), best model."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError
from harness.files import replacing, write_text_atomic
from harness.program import command

if TYPE_CHECKING:
    import pandas as pd

TABLE_FILE = "trials.csv"
BEST_FILE = "best.json"
META_FILE = "study.json"
BEST_MODEL_FILE = "best.keras"
BEST_CARD_FILE = "best_model.json"
HISTORIES_FILE = "histories.json"
#: Trial number -> its ``test_<metric>`` figures, measured once on the test split.
TEST_FILE = "test.json"
#: Saved models of the best few trials (``[study].keep_models``) or the Pareto front.
MODELS_DIR = "models"
#: The ensemble of the kept models (``harness ensemble``) and its card with its record.
ENSEMBLE_MODEL_FILE = "ensemble.keras"
ENSEMBLE_FILE = "ensemble.json"


@dataclass
class TrialRecord:
    """One trial as every backend reports it."""

    number: int
    state: str
    values: dict[str, float | None]
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    duration_s: float | None = None
    worker: str | None = None
    device: str | None = None
    fail_reason: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    #: The trial this one re-runs (an interrupted or ``--retry-failed`` trial), if any.
    retry_of: int | None = None
    #: Whether it takes a slot of the budget (interrupted and replaced trials do not).
    counted: bool = True


def pandas():
    """The pandas module, imported on first use: ``harness run`` would otherwise pay 0.4 s
    for it before its first worker starts (workers get it with TensorFlow anyway)."""
    import pandas  # lazy: see the docstring

    return pandas


def build_table(records: list[TrialRecord], objectives: list[dict[str, str]]) -> pd.DataFrame:
    """One row per trial, best first: number, state, objective value(s), parameters, metrics,
    duration, worker, device, fail reason.

    A trial that did not complete (pruned, failed, interrupted) shows its last epoch's
    value of each objective, the figure TensorBoard shows as ``final/<metric>``."""
    metric_names = [o["metric"] for o in objectives]
    rows = []
    for record in records:
        row: dict[str, Any] = {"number": record.number, "state": record.state}
        for name in metric_names:
            value = record.values.get(name)
            row[name] = record.metrics.get(name) if value is None else value
        row.update(record.params)
        for key, value in record.metrics.items():
            if key not in metric_names:
                row[key] = value
        row.update(
            duration_s=record.duration_s,
            worker=record.worker,
            device=record.device,
            retry_of=record.retry_of,
            counted=record.counted,
            fail_reason=record.fail_reason,
        )
        rows.append(row)
    table = pandas().DataFrame(rows)
    if table.empty:
        table = pandas().DataFrame(columns=["number", "state", *metric_names])
    else:
        table = sort_best_first(table, objectives)
    # Per-epoch histories ride along to write_results (trials.csv has no room for them).
    table.attrs["histories"] = _Histories(
        {record.number: record.history for record in records if record.history}
    )
    return table


class _Histories(dict):
    """Trial number -> per-epoch Keras logs; kept by reference when pandas copies ``attrs``."""

    def __deepcopy__(self, memo):
        return self


#: The states of a trial that has ended; only counted ones take a slot of the budget.
FINISHED_STATES = ("complete", "pruned", "failed")


def counted_mask(table: pd.DataFrame) -> pd.Series:
    """Rows that take a slot of the budget (not interrupted, not replaced); every row of a
    table written before the ``counted`` column existed."""
    if "counted" not in table:
        return pandas().Series(True, index=table.index)
    return table["counted"].fillna(True).astype(bool)


def finished_counted(table: pd.DataFrame) -> pd.Series:
    """Rows of trials that have ended and count toward the budget."""
    return table["state"].isin(FINISHED_STATES) & counted_mask(table)


def hand_picked_numbers(enqueued: int, reruns: dict[int, int] | None = None) -> set[int]:
    """The numbers of a study's hand-picked trials: its ``enqueued`` ``[[enqueue]]`` trials
    run first on every backend (numbers 0 .. enqueued-1), plus every re-run of one of them
    (``reruns``: trial number -> the number it re-runs, as the ``retry_of`` column)."""
    numbers = set(range(enqueued))
    grew = bool(reruns)
    while grew:
        found = {n for n, r in (reruns or {}).items() if r in numbers and n not in numbers}
        numbers |= found
        grew = bool(found)
    return numbers


def hand_picked_in(table: pd.DataFrame, enqueued: int) -> set[int]:
    """:func:`hand_picked_numbers` of the trials in ``table`` (its ``retry_of`` column)."""
    if not enqueued or table.empty:
        return set()
    reruns = {}
    if "retry_of" in table.columns:
        pd = pandas()
        reruns = {
            int(n): int(r)
            for n, r in zip(table["number"], table["retry_of"], strict=True)
            if pd.notna(r)
        }
    return hand_picked_numbers(enqueued, reruns)


def sort_best_first(table: pd.DataFrame, objectives: list[dict[str, str]]) -> pd.DataFrame:
    """Completed trials first, ordered by the first objective's direction; then the rest."""
    if table.empty or not objectives:
        return table
    first = objectives[0]
    complete = table["state"] == "complete"
    done = table[complete].sort_values(
        first["metric"], ascending=first["direction"] == "minimize", na_position="last"
    )
    rest = table[~complete].sort_values("number")
    return pandas().concat([done, rest]).reset_index(drop=True)


def write_results(
    run_dir: Path,
    table: pd.DataFrame,
    objectives: list[dict[str, str]],
    histories: dict[int, dict[str, list[float]]] | None = None,
) -> pd.DataFrame:
    """Write ``trials.csv``, ``histories.json`` and ``best.json`` atomically (a crash never
    leaves half a file); returns the table as written (with the ``test_*`` columns).

    ``histories`` (trial number -> per-epoch Keras logs) defaults to the ones
    :func:`build_table` attached to the table; without either, ``histories.json``
    is left as it is.
    """
    tests = read_test_results(run_dir)
    table = with_test_columns(table, tests)
    write_text_atomic(run_dir / TABLE_FILE, table.to_csv(index=False))
    if histories is None:
        histories = table.attrs.get("histories")
    if histories is not None:
        payload = {str(number): history for number, history in sorted(histories.items())}
        write_text_atomic(run_dir / HISTORIES_FILE, json.dumps(payload) + "\n")
    complete = table[table["state"] == "complete"] if not table.empty else table
    if complete.empty:
        return table
    best = complete.iloc[0]
    metric_names = [o["metric"] for o in objectives]
    params = {
        k: _plain(v)
        for k, v in best.items()
        if "." in str(k) and not (isinstance(v, float) and math.isnan(v))
    }
    payload = {
        "trial": int(best["number"]),
        "values": {m: _plain(best[m]) for m in metric_names},
        "params": params,
    }
    test = tests.get(int(best["number"]))
    if test:
        payload["test"] = test
    write_text_atomic(run_dir / BEST_FILE, json.dumps(payload, indent=2) + "\n")
    return table


def with_test_columns(table: pd.DataFrame, tests: dict[int, dict[str, float]]) -> pd.DataFrame:
    """``table`` with a ``test_<metric>`` column per measured figure (blank for the trials
    that were not evaluated on the test split); ``table`` itself when there is none."""
    if not tests or table.empty:
        return table
    table = table.copy()
    names = sorted({name for metrics in tests.values() for name in metrics})
    numbers = table["number"].astype(int)
    for name in names:
        table[name] = [tests.get(n, {}).get(name) for n in numbers]
    return table


def read_test_results(run_dir: Path) -> dict[int, dict[str, float]]:
    """``test.json``: trial number -> ``{"test_accuracy": ..., ...}`` (empty if absent)."""
    path = run_dir / TEST_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            int(number): {str(k): float(v) for k, v in metrics.items()}
            for number, metrics in data.get("trials", {}).items()
        }
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        raise HarnessError(
            f"{path}: not a test-results file written by harness; delete it and run "
            f"`{command('evaluate', 'STUDY')}` to measure the test split again"
        )


def write_test_results(
    run_dir: Path, results: dict[int, dict[str, float]], note: str, examples: int | None = None
) -> None:
    """Add ``results`` to ``test.json`` (``note`` says what the test split is, ``examples``
    how many examples it held, when known)."""
    merged = read_test_results(run_dir)
    merged.update(results)
    payload: dict[str, Any] = {"note": note}
    if examples is not None:
        payload["examples"] = examples
    payload["trials"] = {str(n): metrics for n, metrics in sorted(merged.items())}
    write_text_atomic(run_dir / TEST_FILE, json.dumps(payload, indent=2) + "\n")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def make_folder(folder: Path, flag: str) -> Path:
    """``folder`` created (with parents), or one line blaming ``flag`` when it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"{flag} {folder}: cannot create this folder ({exc.strerror or exc}); "
            "choose a writable place"
        ) from None
    return folder


def stored_storage(run_dir: Path, storage: str) -> str:
    """How ``study.json`` records the storage: a journal inside the run directory relative
    to it (so a copied or moved run directory reads its own journal), anything else as is."""
    if "://" in storage:
        return storage
    try:
        return str(Path(storage).resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return storage


def resolve_storage(run_dir: Path, stored: str) -> str | None:
    """The storage ``study.json`` names, read back: a relative journal path is inside
    ``run_dir``; an absolute one is used only when ``run_dir`` has no journal of that name
    (runs written before paths were relative). None when the journal is gone."""
    if "://" in stored:
        return stored
    path = Path(stored)
    own = run_dir / (path if not path.is_absolute() else path.name)
    if own.is_file():
        return str(own)
    return str(path) if path.is_absolute() and path.is_file() else None


def write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    """Write ``study.json``: objectives, searched domains, backend and storage."""
    write_text_atomic(run_dir / META_FILE, json.dumps(meta, indent=2, default=str) + "\n")


def read_json_file(path: Path, what: str, expect: type = dict) -> Any:
    """A JSON file harness wrote, or one line naming it and the fix when it is damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise HarnessError(
            f"{path}: cannot read the {what} ({reason}); it is damaged. Restore it, or run "
            f"the study again with `{command('run')}` (the storage rewrites it)"
        ) from None
    if not isinstance(data, expect):
        raise HarnessError(f"{path}: not a {what} written by harness; restore it")
    return data


def read_meta(run_dir: Path) -> dict[str, Any]:
    """Read ``study.json`` (empty if the study never started)."""
    path = run_dir / META_FILE
    if not path.is_file():
        return {}
    meta = read_json_file(path, "study description")
    objectives = meta.get("objectives", [])
    if not isinstance(objectives, list) or not all(
        isinstance(o, dict) and isinstance(o.get("metric"), str) for o in objectives
    ):
        raise HarnessError(f"{path}: its objectives are damaged; restore study.json")
    return meta


def resolve_run_dir(target: str, runs_dir: Path) -> Path:
    """A study name under ``runs_dir`` or a run directory path."""
    candidates = [Path(target), runs_dir / target]
    for candidate in candidates:
        if (candidate / TABLE_FILE).is_file() or (candidate / META_FILE).is_file():
            return candidate
    raise HarnessError(
        f"no study results for {target!r} (looked in {' and '.join(map(str, candidates))}); "
        f"run `{command('run', 'STUDY.toml')}` first or pass --runs-dir"
    )


def read_histories(run_dir: Path) -> dict[int, dict[str, list[float]]]:
    """Read ``histories.json``: trial number -> per-epoch Keras logs (empty if absent)."""
    path = run_dir / HISTORIES_FILE
    if not path.is_file():
        return {}
    data = read_json_file(path, "per-epoch histories")
    try:
        return {int(number): dict(history) for number, history in data.items()}
    except (TypeError, ValueError):
        raise HarnessError(f"{path}: not a histories file written by harness; delete it")


def read_table(run_dir: Path) -> pd.DataFrame:
    """Read ``trials.csv`` sorted best first."""
    table = read_table_file(run_dir / TABLE_FILE)
    objectives = read_meta(run_dir).get("objectives", [])
    missing = [o["metric"] for o in objectives if o["metric"] not in table.columns]
    if missing:
        raise HarnessError(
            f"{run_dir / TABLE_FILE}: no column {missing[0]!r} (the study's objective); the "
            "file is damaged or from another study. Run the study again to rewrite it"
        )
    return sort_best_first(table, objectives)


def read_table_file(path: Path) -> pd.DataFrame:
    """``trials.csv`` as written, checked: a readable CSV with ``number`` and ``state``."""
    if not path.is_file():
        raise HarnessError(f"{path} does not exist yet; the study has no finished trial")
    pd = pandas()
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError):
        raise HarnessError(
            f"{path}: not a readable trials table; it is damaged. Run the study again (the "
            "storage rewrites it) or restore it"
        ) from None
    missing = [c for c in ("number", "state") if c not in table.columns]
    if missing or not pd.api.types.is_numeric_dtype(table["number"]):
        raise HarnessError(
            f"{path}: not a trials table written by harness (no {' or '.join(missing) or 'number'} "
            "column); run the study again to rewrite it"
        )
    return table


def model_card(trial: Any, result: Any) -> dict[str, Any]:
    """The JSON card saved next to a model: trial, parameters, metrics, dataset."""
    info = trial.extra.get("dataset_info")
    return {
        "trial": trial.number,
        "study": trial.study.name,
        "params": trial.params,
        "metrics": result.metrics,
        "dataset": info.to_json() if info is not None else None,
        "has_test_split": trial.extra.get("has_test_split"),
    }


def trial_model_path(run_dir: Path, number: int) -> Path:
    """Where trial ``number``'s model is kept (``models/trial-NNNN.keras``)."""
    return run_dir / MODELS_DIR / f"trial-{number:04d}.keras"


def fold_model_path(run_dir: Path, number: int, fold: int) -> Path:
    """Where fold ``fold``'s model of a cross-validated trial is kept, beside its model."""
    return run_dir / MODELS_DIR / f"trial-{number:04d}.fold-{fold + 1}.keras"


def out_of_fold_path(run_dir: Path, number: int) -> Path:
    """Where a cross-validated trial's out-of-fold predictions are kept, beside its model."""
    return run_dir / MODELS_DIR / f"trial-{number:04d}.oof.npy"


#: The model this process saved last, as (run directory, trial number, model). A study's
#: test split is measured by the worker that ran its last trial; when that trial is the
#: one measured, its model is still in memory and is used as it is, not loaded back from
#: disk and traced again (about 1 s of a one-trial study). Forgotten when a trial starts.
_LAST_SAVED: tuple[Path, int, Any] | None = None


def _remember_saved(run_dir: Path, number: int, model: Any) -> None:
    global _LAST_SAVED
    _LAST_SAVED = (Path(run_dir).resolve(), number, model)


def saved_model_in_memory(run_dir: Path, number: int) -> Any | None:
    """The model of trial ``number`` of the run in ``run_dir`` if this process saved it last
    and has started no trial since (the same weights as the saved file), else None."""
    if _LAST_SAVED is None:
        return None
    saved_dir, saved_number, model = _LAST_SAVED
    return model if (saved_dir, saved_number) == (Path(run_dir).resolve(), number) else None


def forget_saved_model() -> None:
    """Let the last saved model go (a trial is starting: its memory is the trial's)."""
    global _LAST_SAVED
    _LAST_SAVED = None


def save_trial_model(run_dir: Path, trial: Any, result: Any) -> Path:
    """Keep ``result.model`` as ``models/trial-NNNN.keras`` with its card, atomically."""
    path = trial_model_path(run_dir, trial.number)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = result.final_model()
    with replacing(path) as tmp:
        model.save(tmp)
    _remember_saved(run_dir, trial.number, model)
    for index, fold_model in enumerate(result.fold_models or ()):
        with replacing(fold_model_path(run_dir, trial.number, index)) as tmp:
            fold_model.save(tmp)
    if result.out_of_fold is not None:
        import numpy as np  # lazy: only cross-validated trials have these

        with replacing(out_of_fold_path(run_dir, trial.number)) as tmp, open(tmp, "wb") as f:
            np.save(f, result.out_of_fold)
    card = json.dumps(model_card(trial, result), indent=2, default=str) + "\n"
    write_text_atomic(path.with_suffix(".json"), card)
    return path


def prune_trial_models(run_dir: Path, keep: set[int], finished: set[int]) -> None:
    """Delete kept models of finished trials that are no longer in ``keep`` (a running
    trial's model, being saved by another worker, is left alone)."""
    folder = run_dir / MODELS_DIR
    for path in folder.glob("trial-*") if folder.is_dir() else ():
        # trial-0007.keras, .json, .oof.npy, .fold-2.keras: all trial 7's
        number = path.name.removeprefix("trial-").split(".", 1)[0]
        if number.isdigit() and int(number) in finished and int(number) not in keep:
            path.unlink(missing_ok=True)


def save_best_model(run_dir: Path, trial: Any, result: Any) -> Path:
    """Save ``result.model`` as ``best.keras`` with a JSON model card, atomically (a copy
    of ``models/trial-NNNN.keras`` when that was just saved)."""
    path = run_dir / BEST_MODEL_FILE
    kept = trial_model_path(run_dir, trial.number)
    with replacing(path) as tmp:
        if kept.is_file():
            shutil.copyfile(kept, tmp)
        else:
            result.final_model().save(tmp)
    _remember_saved(run_dir, trial.number, result.final_model())
    card = json.dumps(model_card(trial, result), indent=2, default=str) + "\n"
    write_text_atomic(run_dir / BEST_CARD_FILE, card)
    return path


def read_ensemble(run_dir: Path) -> dict[str, Any] | None:
    """The record of the study's ensemble (``ensemble.json``'s ``ensemble`` section), or
    None when it has none (or its model file is gone)."""
    if not (run_dir / ENSEMBLE_MODEL_FILE).is_file():
        return None
    try:
        card = json.loads((run_dir / ENSEMBLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    record = card.get("ensemble") if isinstance(card, dict) else None
    return record if isinstance(record, dict) else None
