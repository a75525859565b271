"""The Python API: ``harness.run``, ``harness.load``, ``harness.evaluate_best`` and the
export functions, for notebooks and scripts. The commands call the same functions and
only print what they return.

Errors are :class:`~harness.errors.HarnessError` subclasses carrying the one line
the CLI prints after ``error:``; nothing here prints an error or exits. pandas and
TensorFlow are imported only when a function needs them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, StudyFileError
from harness.results import (
    BEST_CARD_FILE,
    BEST_MODEL_FILE,
    read_meta,
    read_test_results,
    resolve_run_dir,
)

if TYPE_CHECKING:
    import pandas as pd

    from harness.orchestrator import RunOptions, StudyOutcome

__all__ = [
    "BestTrial",
    "StudyResult",
    "evaluate_best",
    "export_best_model",
    "export_table",
    "load",
    "run",
    "run_with_options",
]

#: Rows of the trial table a result shows (text and HTML); ``result.trials`` has them all.
SHOWN_ROWS = 20


@dataclass
class BestTrial:
    """The best complete trial: the first row of the table, as ``harness show`` ranks it."""

    number: int
    #: Objective metric -> validation value.
    values: dict[str, float]
    #: Searched parameter (dotted key) -> value.
    params: dict[str, Any]
    #: ``test_<metric>`` -> value, when the trial was measured on the test split.
    test: dict[str, float] = field(default_factory=dict)


@dataclass(repr=False)
class StudyResult:
    """A study's results as ``harness show`` reads them from its run folder."""

    name: str
    run_dir: Path
    #: Every trial, best first (the ``harness show`` table, every column).
    trials: pd.DataFrame
    #: The best complete trial, or None when no trial completed.
    best: BestTrial | None
    #: Trial number -> its ``test_<metric>`` figures (``test.json``).
    test: dict[int, dict[str, float]]
    #: ``best.keras`` and its card ``best_model.json``, None when absent.
    best_model: Path | None
    best_card: Path | None
    #: What ``harness run`` would have exited with (0, 1 or 130); None for :func:`load`.
    exit_code: int | None = None
    interrupted: bool = False
    #: What a Ctrl-C stopped (``"trial"``, ``"between trials"``, ``"test split"``, ...).
    stopped: str | None = None

    def _header(self) -> str:
        states = self.trials["state"].value_counts() if not self.trials.empty else {}
        parts = ", ".join(f"{count} {state}" for state, count in states.items())
        line = f"study {self.name}: {len(self.trials)} trials" + (f" ({parts})" if parts else "")
        if self.best is not None:
            values = ", ".join(f"{k}={_short(v)}" for k, v in self.best.values.items())
            line += f"; best #{self.best.number}: {values}"
            test = ", ".join(f"{k}={_short(v)}" for k, v in self.best.test.items())
            line += f" (test: {test})" if test else ""
        if self.interrupted:
            line += "; interrupted"
        return line

    def __repr__(self) -> str:
        from harness.results import pandas  # lazy: the object exists only once pandas does

        shown = self.trials.head(SHOWN_ROWS)
        with pandas().option_context("display.max_columns", 12, "display.width", 120):
            body = shown.to_string(index=False) if not shown.empty else "(no trials yet)"
        more = len(self.trials) - len(shown)
        tail = f"\n... {more} more rows in .trials" if more > 0 else ""
        return f"{self._header()}\nrun_dir: {self.run_dir}\n{body}{tail}"

    def _repr_html_(self) -> str:
        shown = self.trials.head(SHOWN_ROWS)
        table = shown.to_html(index=False) if not shown.empty else "<p>(no trials yet)</p>"
        return (
            f"<p><b>{html.escape(self._header())}</b><br>"
            f"run_dir: <code>{html.escape(str(self.run_dir))}</code></p>{table}"
        )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run(
    study: str | Path,
    *,
    set: Mapping[str, Any] | None = None,  # the --set of `harness run`
    profile: str | None = None,
    trials: int | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    workers: int | None = None,
    devices: str | None = None,
    runs_dir: str | Path = "runs",
    storage: str | None = None,
    backend: str | None = None,
    recycle_after: int | None = None,
    retry_failed: bool = False,
    plugins: tuple[str, ...] | list[str] = (),
    in_process: bool = False,
    smoke: bool = False,
    progress: bool = True,
) -> StudyResult:
    """Run or resume the study file ``study``, as ``harness run STUDY`` does with the
    matching flags (``set={"train.epochs": 2}`` is ``--set train.epochs=2``,
    ``plugins`` is ``--plugin``, ``progress=False`` is ``--no-progress``).

    Returns the results as :func:`load` reads them. A bad study, flag or value raises
    a :class:`~harness.errors.HarnessError` before anything is written. Interrupting
    it (Ctrl-C, a notebook's stop button) ends the run as ``harness run`` does: the
    result says ``interrupted`` and running the same call again resumes it.
    """
    from harness.logs import configure_logging
    from harness.options import RunOptions  # lazy: pydantic models of the study

    configure_logging()  # as the CLI: warnings as one line, TensorFlow's chatter quiet
    if isinstance(study, Mapping):
        raise StudyFileError(
            "give the study as the path of its .toml file: its workers and `harness "
            "evaluate` read the study again from that file"
        )
    options = RunOptions(
        runs_dir=Path(runs_dir),
        trials=trials,
        timeout=timeout,
        seed=seed,
        workers=workers,
        devices=devices,
        storage=storage,
        backend=backend,
        recycle_after=recycle_after,
        retry_failed=retry_failed,
        extra_plugins=tuple(plugins),
        in_process=in_process,
        smoke=smoke,
        show_progress=progress,
        overrides=_checked_assignments(set or {}),
        profile=profile,
    )
    outcome = run_with_options(Path(study), options)
    return _result(
        outcome.run_dir,
        outcome.table,
        exit_code=outcome.exit_code,
        interrupted=outcome.interrupted,
        stopped=outcome.stopped,
    )


def run_with_options(study: Path, options: RunOptions) -> StudyOutcome:
    """The run both ``harness run`` and :func:`run` make: load the plugins and the study
    with its ``--set`` values, check the flags and the data before anything is written,
    then run it (starting the first worker early, so that it imports TensorFlow while the
    data is checked)."""
    from harness.backends import check_backend
    from harness.orchestrator import apply_options, run_study, workers_started_early
    from harness.plugins import load_plugins
    from harness.study import check_data, load_study

    plugins = load_plugins(options.extra_plugins)
    spec = load_study(study, plugins, options.overrides, options.profile)
    check_backend(spec, options.overrides)
    apply_options(spec, options)  # flags checked like the file, before anything is written
    with workers_started_early(spec, options) as launcher:
        check_data(spec, options.overrides)
        return run_study(spec, plugins, options, launcher)


def _checked_assignments(values: Mapping[str, Any]) -> dict[str, Any]:
    """``set=`` as ``--set`` values: dotted keys, each part named."""
    for key in values:
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            raise StudyFileError(
                f"set={{{key!r}: ...}}: expected a dotted key, e.g. "
                "set={'dataset.path': 'data/mnist', 'train.epochs': 3}"
            )
    return dict(values)


def load(run: str | Path | StudyResult, *, runs_dir: str | Path = "runs") -> StudyResult:
    """The results of a run folder, or of the study named ``run`` under ``runs_dir``, as
    ``harness show`` reads them (the storage first, so a running study's trials show);
    nothing is run or written."""
    run_dir = run_dir_of(run, runs_dir)
    from harness.show import study_table  # lazy: pandas, and optuna for its storage

    return _result(run_dir, study_table(run_dir))


def run_dir_of(run: str | Path | StudyResult, runs_dir: str | Path = "runs") -> Path:
    """The run folder of a result, a study name under ``runs_dir`` or a folder; a one-line
    :class:`HarnessError` when there is none."""
    if isinstance(run, StudyResult):
        return run.run_dir
    return resolve_run_dir(str(run), Path(runs_dir))


def _result(
    run_dir: Path,
    table: pd.DataFrame,
    *,
    exit_code: int | None = None,
    interrupted: bool = False,
    stopped: str | None = None,
) -> StudyResult:
    meta = read_meta(run_dir)
    tests = read_test_results(run_dir)
    model, card = run_dir / BEST_MODEL_FILE, run_dir / BEST_CARD_FILE
    return StudyResult(
        name=str(meta.get("name") or run_dir.name),
        run_dir=run_dir,
        trials=table,
        best=_best(table, meta, tests),
        test=tests,
        best_model=model if model.is_file() else None,
        best_card=card if card.is_file() else None,
        exit_code=exit_code,
        interrupted=interrupted,
        stopped=stopped,
    )


def _best(table: pd.DataFrame, meta: dict[str, Any], tests: dict) -> BestTrial | None:
    """The first complete row (the table is best first), as ``best.json`` records it:
    the dotted columns are the parameters."""
    if table.empty:
        return None
    complete = table[table["state"] == "complete"]
    if complete.empty:
        return None
    row = complete.iloc[0]
    number = int(row["number"])
    metrics = [o["metric"] for o in meta.get("objectives", [])]
    return BestTrial(
        number=number,
        values={m: _plain(row[m]) for m in metrics if m in row.index},
        params={k: _plain(v) for k, v in row.items() if "." in str(k) and _present(v)},
        test=dict(tests.get(number, {})),
    )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _present(value: Any) -> bool:
    return not (isinstance(value, float) and value != value)  # NaN: not set for this trial


def evaluate_best(
    run: str | Path | StudyResult,
    *,
    top: int = 1,
    runs_dir: str | Path = "runs",
    plugins: tuple[str, ...] | list[str] = (),
) -> dict[int, dict[str, float]]:
    """Measure the ``top`` best trials' kept models once on the test split, as ``harness
    evaluate`` does; returns trial number -> ``test_<metric>`` figures (empty when none
    could be measured: the warnings say why) and records them in ``test.json``."""
    if top < 1:
        raise HarnessError(f"--top must be at least 1, got {top}")
    run_dir = run_dir_of(run, runs_dir)
    from harness.devices import configure_tensorflow
    from harness.evaluate import chosen_trials, evaluate_trials, study_of_run
    from harness.logs import configure_logging
    from harness.quiet import start_tensorflow
    from harness.results import write_results
    from harness.show import study_table

    configure_logging()
    meta, loaded, spec = study_of_run(
        run_dir, tuple(plugins), "evaluate (its dataset table says where the test split is)"
    )
    table = study_table(run_dir)
    numbers = chosen_trials(table, meta.get("objectives", []), top, len(spec.enqueue))
    if not numbers:
        raise HarnessError(f"{run_dir}: no complete trial to evaluate yet")
    start_tensorflow(configure_tensorflow)
    tested = evaluate_trials(spec, loaded, run_dir, numbers)
    write_results(run_dir, study_table(run_dir), meta.get("objectives", []))
    return dict(sorted(tested.items()))


def export_table(
    run: str | Path | StudyResult,
    output: str | Path,
    *,
    format: str = "csv",  # the --format of `harness export`
    runs_dir: str | Path = "runs",
) -> Path:
    """Write the trial table to ``output`` as ``csv``, ``json`` or ``parquet`` (``harness
    export --format``); returns the file written."""
    from harness.export import export_table as write_table

    return write_table(run_dir_of(run, runs_dir), format, Path(output))


def export_best_model(
    run: str | Path | StudyResult,
    destination: str | Path,
    *,
    retrain: bool = False,
    runs_dir: str | Path = "runs",
    plugins: tuple[str, ...] | list[str] = (),
) -> tuple[Path, Path]:
    """Copy (or, with ``retrain``, train again) the best trial's model to ``destination``
    (a ``.keras`` file or a folder) with its card (``harness export --best-model``);
    returns the model's and the card's paths."""
    from harness.export import export_best_model as write_model
    from harness.logs import configure_logging
    from harness.quiet import start_tensorflow

    run_dir = run_dir_of(run, runs_dir)
    configure_logging()
    start_tensorflow()
    return write_model(run_dir, Path(destination), retrain=retrain, extra_plugins=tuple(plugins))
