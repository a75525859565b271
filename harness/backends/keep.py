"""Which trial models stay on disk: the same rule for every search backend.

A backend hands over the objective values of its complete trials (``trial number ->
values``, the new trial's included) and the numbers of its finished ones; this module
saves the new trial's model when it is among the kept ones (``[study].keep_models``
best and the best hand-picked one, or the Pareto front of a multi-objective study),
deletes the kept models that no longer are, and refreshes ``best.keras`` when the new
trial is the best so far. Ties go to the lower trial number, everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.results import (
    hand_picked_numbers,
    prune_trial_models,
    save_best_model,
    save_trial_model,
)


def _signs(spec: Any) -> list[int]:
    return [1 if o.direction == "maximize" else -1 for o in spec.objectives]


def _dominates(a: list[float], b: list[float], signs: list[int]) -> bool:
    """``a`` is at least as good as ``b`` on every objective and better on one."""
    better = [sa * x > sa * y for sa, x, y in zip(signs, a, b, strict=True)]
    worse = [sa * x < sa * y for sa, x, y in zip(signs, a, b, strict=True)]
    return any(better) and not any(worse)


def models_to_keep(
    done: dict[int, list[float]], spec: Any, hand_picked: set[int] = frozenset()
) -> set[int]:
    """Trial numbers whose models stay on disk, of the complete trials in ``done``: the
    ``keep_models`` best (ties: the lower number) and the best of ``hand_picked`` (measured
    on the test split beside the best), or the Pareto front of a multi-objective study."""
    signs = _signs(spec)
    if spec.multi_objective:
        return {
            n
            for n, v in done.items()
            if not any(_dominates(w, v, signs) for m, w in done.items() if m != n)
        }
    ranked = sorted(done, key=lambda n: (-signs[0] * done[n][0], n))
    picked = [n for n in ranked if n in hand_picked]
    return set(ranked[: spec.study.keep_models]) | set(picked[:1])


def is_best(done: dict[int, list[float]], spec: Any, number: int) -> bool:
    """Whether trial ``number`` is the best of ``done`` on the first objective (ties: the
    lower number wins, so a later trial that only equals the best is not)."""
    sign = _signs(spec)[0]
    mine = sign * done[number][0]
    return all(
        mine > sign * values[0] or (mine == sign * values[0] and number < other)
        for other, values in done.items()
        if other != number
    )


def keep_trial_model(
    run_dir: Path,
    spec: Any,
    trial: Any,
    result: Any,
    done: dict[int, list[float]],
    finished: set[int],
    reruns: dict[int, int] | None = None,
) -> None:
    """After trial ``trial.number`` completed with ``result`` (its values already in
    ``done``): save its model if it is kept, drop the models of ``finished`` trials
    that no longer are, and refresh ``best.keras`` when it is the best so far.
    ``reruns`` (trial number -> the one it re-runs) finds re-run hand-picked trials."""
    picked = hand_picked_numbers(len(spec.enqueue), reruns)
    keep = models_to_keep(done, spec, picked)
    if trial.number in keep:
        save_trial_model(run_dir, trial, result)
    if not spec.multi_objective and is_best(done, spec, trial.number):
        save_best_model(run_dir, trial, result)
    prune_trial_models(run_dir, keep, finished | {trial.number})
