"""What a report is drawn from: the run directory's ``trials.csv``, ``study.json`` and
``histories.json``, and an in-memory Optuna study rebuilt from them for Optuna's plots
and importance evaluator.

A searched parameter's domain is ``study.json``'s structured ``distribution``, read
as data (:func:`harness.space.distribution_from_json`); without one, a domain holding
every observed value is inferred. No domain is parsed out of text.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import read_histories, read_meta, read_table
from harness.space import ChoiceDistribution, distribution_from_json
from harness.space import IntDistribution as HarnessInt

log = logging.getLogger(__package__)  # the logger name harness.log has always shown


@dataclass
class ReportData:
    """What the report is drawn from."""

    run_dir: Path
    meta: dict[str, Any]
    table: Any  # pandas DataFrame, best first
    histories: dict[int, dict[str, list[float]]]
    objectives: list[dict[str, str]]
    searched: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def metric(self) -> str | None:
        return self.objectives[0]["metric"] if self.objectives else None

    @property
    def direction(self) -> str:
        return self.objectives[0]["direction"] if self.objectives else "maximize"

    @property
    def complete(self):
        table = self.table
        if table.empty or self.metric not in table.columns:
            return table.iloc[0:0]
        done = table[(table["state"] == "complete") & table[self.metric].notna()]
        return done


def load_report_data(run_dir: Path) -> ReportData:
    """Read ``trials.csv``, ``study.json`` and the per-trial histories of ``run_dir``."""
    meta = read_meta(run_dir)
    table = read_table(run_dir)
    objectives = meta.get("objectives") or []
    if not objectives and "value" in table.columns:
        objectives = [{"metric": "value", "direction": "minimize"}]
    searched = [name for name in meta.get("searched", {}) if name in table.columns]
    data = ReportData(run_dir, meta, table, {}, objectives, searched)
    data.histories = read_histories(run_dir)
    missing = [name for name in meta.get("searched", {}) if name not in table.columns]
    if missing:
        data.notes.append(
            f"never sampled in any trial (no column in trials.csv): {', '.join(missing)}"
        )
    return data


def optuna_distribution(data: Any):
    """The Optuna distribution of a searched parameter from ``study.json``'s structured
    ``distribution`` (read as data and validated, never parsed out of text)."""
    # optuna: loaded when a report is drawn, never by `harness --help`
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    distribution = distribution_from_json(data)
    if isinstance(distribution, ChoiceDistribution):
        return CategoricalDistribution(list(distribution.choices))
    if isinstance(distribution, HarnessInt):
        return IntDistribution(
            distribution.low, distribution.high, step=distribution.step, log=distribution.log
        )
    return FloatDistribution(
        distribution.low, distribution.high, step=distribution.step, log=distribution.log
    )


def _infer_domain(values):
    """A distribution holding every observed value (when ``study.json`` has none)."""
    # optuna: loaded when a report is drawn, never by `harness --help`
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    plain = [_plain(v) for v in values]
    if plain and all(isinstance(v, int) and not isinstance(v, bool) for v in plain):
        return IntDistribution(min(plain), max(plain))
    if plain and all(isinstance(v, int | float) and not isinstance(v, bool) for v in plain):
        return FloatDistribution(float(min(plain)), float(max(plain)))
    return CategoricalDistribution(sorted(set(plain), key=str) or [None])


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _cast(value: Any, distribution) -> Any:
    """A table cell as ``distribution`` expects it (CSV reads 64 as 64.0 in a column with NaN)."""
    # optuna: loaded when a report is drawn, never by `harness --help`
    from optuna.distributions import CategoricalDistribution, IntDistribution

    value = value.item() if hasattr(value, "item") else value
    if isinstance(distribution, IntDistribution):
        return int(value)
    if isinstance(distribution, CategoricalDistribution):
        for choice in distribution.choices:
            if choice == value or str(choice) == str(value):
                return choice
        return value
    return float(value)


def rebuild_study(data: ReportData):
    """An in-memory Optuna study of the completed trials, numbered as in the table.

    Each trial that did not complete is added as a FAIL trial without parameters:
    the trial numbers then match the table's, and Optuna's plots leave those out.
    """
    # optuna: loaded when a report is drawn, never by `harness --help`
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    complete = data.complete
    domains = data.meta.get("searched", {})
    parsed = {}
    for name in data.searched:
        try:
            parsed[name] = optuna_distribution(domains[name]["distribution"])
        except (HarnessError, KeyError, TypeError, ValueError):  # older or damaged study.json
            parsed[name] = _infer_domain(complete[name].dropna().tolist())
    try:
        return _build(data, parsed)
    except ValueError as exc:  # a value outside the recorded domain (study file changed)
        log.info("rebuilding the study with observed domains: %s", exc)
        inferred = {n: _infer_domain(complete[n].dropna().tolist()) for n in data.searched}
        return _build(data, inferred)


def _build(data: ReportData, distributions: dict[str, Any]):
    # optuna: loaded when a report is drawn, never by `harness --help`
    import optuna
    from optuna.trial import TrialState, create_trial  # lazy: optuna, kept out of harness --help

    study = optuna.create_study(direction=data.direction)
    rows = {int(row["number"]): row for _, row in data.complete.iterrows()}
    top = max([int(n) for n in data.table["number"]], default=-1)
    for number in range(top + 1):
        row = rows.get(number)
        if row is None:
            study.add_trial(create_trial(state=TrialState.FAIL))
            continue
        params = {
            name: _cast(row[name], distributions[name])
            for name in data.searched
            if not _missing(row[name])
        }
        study.add_trial(
            create_trial(
                value=float(row[data.metric]),
                params=params,
                distributions={name: distributions[name] for name in params},
            )
        )
    return study


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
