"""The noise in a comparison of two trials: standard errors, and when a gap is noise.

A trial's figure has a standard error from one of two sources:

- a cross-validated trial (``[study].folds``) records ``folds`` and ``<objective>_std``,
  the spread of the objective over its folds: the standard error of their mean is
  ``std / sqrt(folds)``;
- a proportion (an accuracy) measured once on ``n`` examples (``val_examples``, or the
  test split's size) has the binomial one, ``sqrt(p (1 - p) / n)``.

A loss or an error measured once has neither, so its gaps carry no verdict. Two trials
are compared by the unpaired ``sqrt(se1^2 + se2^2)``: a paired standard error needs both
trials' predictions on the same examples, which are not kept (it would be smaller when
the two models get the same examples wrong, so the unpaired one errs on the side of
"noise"). A gap under two standard errors is called noise.

The CLI's summary and ``show``, and the HTML report, all word their comparisons here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.results import hand_picked_in

#: Metrics that are proportions of examples (with or without ``val_``/``test_``).
PROPORTIONS = frozenset(
    {"accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy"}
)
#: The trials-table column with how many validation examples a trial was measured on.
EXAMPLES = "val_examples"
#: A gap under this many standard errors is noise.
NOISE_ERRORS = 2.0


def is_proportion(metric: str) -> bool:
    """Whether ``metric`` is a proportion of examples (an accuracy), whatever its split."""
    return metric.removeprefix("val_").removeprefix("test_") in PROPORTIONS


def _figure(value: Any) -> float | None:
    """A table cell as a float, None when missing (NaN, None, not a number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def standard_error(
    metric: str,
    value: Any,
    *,
    examples: Any = None,
    folds: Any = None,
    spread: Any = None,
) -> float | None:
    """The standard error of one figure: the fold spread (``spread / sqrt(folds)``) when
    there are two folds or more, else the binomial one of a proportion measured on
    ``examples``; None when neither is known (a loss measured once)."""
    folds, spread = _figure(folds), _figure(spread)
    if folds is not None and folds >= 2 and spread is not None:
        return spread / math.sqrt(folds)
    p, n = _figure(value), _figure(examples)
    if not is_proportion(metric) or p is None or not n or not 0 <= p <= 1:
        return None
    return math.sqrt(p * (1 - p) / n)


def trial_error(row: Mapping[str, Any], metric: str) -> float | None:
    """The standard error of a trial's validation ``metric`` (a trials-table row or its
    metrics): its folds' spread, or the binomial one from ``val_examples``."""
    return standard_error(
        metric,
        row.get(metric),
        examples=row.get(EXAMPLES),
        folds=row.get("folds"),
        spread=row.get(f"{metric}_std"),
    )


def gap_error(first: float | None, second: float | None) -> float | None:
    """The unpaired standard error of the gap between two figures (None if one is unknown)."""
    if first is None or second is None:
        return None
    return math.hypot(first, second)


def within_noise(gap: float, error: float | None) -> bool:
    """Whether a gap is under two standard errors (False when the error is unknown)."""
    return error is not None and abs(gap) < NOISE_ERRORS * error


def short_number(value: float) -> str:
    """Four decimals, or three significant digits for a figure under 0.01."""
    return f"{value:.4f}" if value == 0 or abs(value) >= 0.01 else f"{value:.3g}"


def gap_text(gap: float, error: float | None, metric: str) -> str:
    """``better by 0.0174 (standard error 0.0145: within noise)``; ``gap`` is positive
    when the first of the two is better."""
    words = f"{'better' if gap >= 0 else 'worse'} by {short_number(abs(gap))}"
    if error is None:
        why = (
            "the number of examples was not recorded" if is_proportion(metric)
            else f"{metric} is not a proportion; [study].folds measures its spread"
        )
        return f"{words} (standard error unknown: {why})"
    verdict = ": within noise" if within_noise(gap, error) else ""
    return f"{words} (standard error {short_number(error)}{verdict})"


@dataclass
class HandPicked:
    """The search's best trial against the best hand-picked (``[[enqueue]]``) one."""

    best: int
    picked: int
    metric: str
    value: float
    #: best minus hand-picked, positive when the best is better; None when it is the same.
    gap: float | None
    error: float | None
    #: The same on the test split, when both trials were measured there.
    test_metric: str | None = None
    test_value: float | None = None
    test_gap: float | None = None
    test_error: float | None = None
    several: bool = False

    def validation_line(self) -> str:
        """``hand-picked trial #0: val_accuracy=0.9583; the search's best is better by ...``"""
        if self.gap is None:
            return f"the hand-picked trial #{self.picked} is still the best"
        label = "best hand-picked trial" if self.several else "hand-picked trial"
        return (
            f"{label} #{self.picked}: {self.metric}={short_number(self.value)}; "
            f"the search's best is {gap_text(self.gap, self.error, self.metric)}"
        )

    def test_line(self) -> str | None:
        """``the search's best is better by ... on the test split`` (None: not measured)."""
        if self.test_gap is None or self.test_metric is None:
            return None
        return f"the search's best is {gap_text(self.test_gap, self.test_error, self.test_metric)}"


def compare_with_hand_picked(
    table: Any,
    objectives: list[dict[str, str]],
    enqueued: int,
    test_examples: int | None = None,
) -> HandPicked | None:
    """The best complete trial of ``table`` (best first) against the best of the study's
    ``enqueued`` hand-picked ones; None with several objectives, fewer than two complete
    trials or no complete hand-picked one. ``test_examples``: the test split's size, for
    the test figures' standard errors."""
    if table.empty or len(objectives) != 1:
        return None
    complete = table[table["state"] == "complete"]
    picked_numbers = hand_picked_in(table, enqueued)
    picked = complete[complete["number"].isin(picked_numbers)]
    if len(complete) < 2 or picked.empty:
        return None
    metric, sign = objectives[0]["metric"], 1 if objectives[0]["direction"] == "maximize" else -1
    best, first = complete.iloc[0], picked.iloc[0]
    found = HandPicked(
        best=int(best["number"]), picked=int(first["number"]), metric=metric,
        value=float(first[metric]), gap=None, error=None, several=enqueued > 1,
    )
    if found.best == found.picked:
        return found
    found.gap = sign * (float(best[metric]) - float(first[metric]))
    found.error = gap_error(trial_error(best, metric), trial_error(first, metric))
    test_metric = f"test_{metric.removeprefix('val_')}" if metric.startswith("val_") else None
    if test_metric is not None and test_metric in table.columns:
        mine, theirs = _figure(best[test_metric]), _figure(first[test_metric])
        if mine is not None and theirs is not None:
            found.test_metric, found.test_value = test_metric, theirs
            found.test_gap = sign * (mine - theirs)
            found.test_error = gap_error(
                standard_error(test_metric, mine, examples=test_examples),
                standard_error(test_metric, theirs, examples=test_examples),
            )
    return found


def within_noise_of_best(table: Any, objective: dict[str, str]) -> list[int] | None:
    """Numbers of the complete trials whose gap to the best (``table``'s first complete
    row) is under two standard errors; None when the best's standard error is unknown or
    no other trial completed."""
    complete = table[table["state"] == "complete"] if not table.empty else table
    if len(complete) < 2:
        return None
    metric = objective["metric"]
    best = complete.iloc[0]
    mine = trial_error(best, metric)
    if mine is None or _figure(best[metric]) is None:
        return None
    close = []
    for _, row in complete.iloc[1:].iterrows():
        value = _figure(row[metric])
        error = gap_error(mine, trial_error(row, metric))
        if value is not None and within_noise(float(best[metric]) - value, error):
            close.append(int(row["number"]))
    return close


def with_noise_columns(table: Any, objectives: list[dict[str, str]], enqueued: Any) -> Any:
    """``table`` with each objective's standard error (``<metric>_se``, when one is known)
    and, when the study has ``enqueued`` hand-picked trials, a ``hand_picked`` column
    (``yes`` or ``no``, never blank: a row still splits into its columns) after ``state``:
    what ``show`` and the report print."""
    if table.empty:
        return table
    table = table.copy()
    for objective in objectives:
        metric = objective["metric"]
        errors = [trial_error(row, metric) for _, row in table.iterrows()]
        if any(e is not None for e in errors):
            table[f"{metric}_se"] = errors
    picked = hand_picked_in(table, int(enqueued or 0))
    if picked:
        where = list(table.columns).index("state") + 1 if "state" in table.columns else 1
        marks = ["yes" if n in picked else "no" for n in table["number"]]
        table.insert(where, "hand_picked", marks)
    return table
