"""Whether a run resumes the study already under its name, or would mix in a different one.

The trials of one study are compared with each other, so each must train the same
thing: the same dataset, model, augmentation and callback plugins with the same fixed
values. ``harness run`` resumes whatever ``runs/<name>/`` holds, so another file, other
``--set`` values or another ``--profile`` under the same name would add trials that
cannot be compared with the earlier ones, and the table would not show it (fixed
values are not columns). Such a run is refused. A changed search domain is allowed
(each trial's drawn values are in the table) and said in one line, as is a moved
dataset folder (``dataset.path``), whose files cannot be compared cheaply.
"""

from __future__ import annotations

import json
from typing import Any

from harness.errors import HarnessError
from harness.space import distribution_to_json
from harness.study import StudySpec

#: Fixed values that may change between runs of one study with only a notice.
MOVABLE = ("dataset.path",)


def study_definition(spec: StudySpec) -> dict[str, Any]:
    """What every trial of the study trains, as ``study.json`` records it: the plugins
    (``components``), the fixed values (``literals``) and the search domains (``searched``)."""
    return _plain({
        "components": {
            "dataset": spec.dataset.name,
            "model": spec.model.name,
            "augment": [a.name for a in spec.augmentations],
            "callbacks": [c.name for c in spec.callbacks],
        },
        "literals": spec.space.literals,
        "searched": {
            p.name: {
                "domain": p.distribution.describe(),
                "distribution": distribution_to_json(p.distribution),
                "condition": p.condition.describe() if p.condition else None,
            }
            for p in spec.space.params
        },
    })


def check_resumes_same_study(
    name: str, previous: dict[str, Any], current: dict[str, Any], finished: bool = True
):
    """Refuse (:class:`HarnessError`) a run whose definition differs from the one recorded
    in ``previous`` (the run directory's ``study.json``; empty for a new study) in what
    its trials train; return one-line notices for the changes that are allowed.

    With no ``finished`` trial (complete or pruned) there is nothing to compare with, so
    every change is allowed: fixing the file after every trial failed, then
    ``--retry-failed``, is how a study is mended.
    """
    if not previous:
        return []
    changes: list[str] = []
    notices: list[str] = []
    before, now = previous.get("components"), current["components"]
    if isinstance(before, dict):
        for role, plugin in now.items():
            if _plain(before.get(role)) != plugin:
                changes.append(f"{role} {_show(before.get(role))} there, {_show(plugin)} now")
    old_literals = _plain(previous.get("literals") or {})
    old_searched = {
        key: _plain(value) for key, value in (previous.get("searched") or {}).items()
        if isinstance(value, dict)
    }
    literals, searched = current["literals"], current["searched"]
    for key in sorted(set(old_literals) | set(literals)):
        if key in literals and key in old_literals:
            if _differ(literals[key], old_literals[key]):
                change = f"{key} = {_show(old_literals[key])} there, {_show(literals[key])} now"
                (notices if key in MOVABLE else changes).append(change)
        elif key in old_searched or key in searched:
            continue  # searched on one side: reported below
        else:
            side = "now" if key in literals else "there"
            value = literals.get(key, old_literals.get(key))
            changes.append(f"{key} = {_show(value)} only {side}")
    for key in sorted(set(old_searched) | set(searched)):
        if key in old_searched and key in searched:
            if _differ(_drawn_from(old_searched[key]), _drawn_from(searched[key])):
                notices.append(
                    f"the search domain of {key} changed: {_domain(old_searched[key])} there, "
                    f"{_domain(searched[key])} now; earlier trials keep the values they drew"
                )
        elif key in searched:
            was = f"fixed at {_show(old_literals[key])}" if key in old_literals else "not set"
            changes.append(f"{key} is searched now, {was} there")
        else:
            now_ = f"fixed at {_show(literals[key])}" if key in literals else "not set"
            changes.append(f"{key} was searched there, {now_} now")
    if changes and not finished:
        notices.append(
            f"study {name!r} changed since its last run ({'; '.join(changes)}); allowed, "
            "as none of its trials had finished"
        )
    elif changes:
        more = f"; and {len(changes) - 3} more" if len(changes) > 3 else ""
        shown = "; ".join(changes[:3]) + more
        raise HarnessError(
            f"study {name!r} already holds trials of a different study ({shown}); its trials "
            f"could not be compared with this run's. Give this run its own name (--set "
            f"study.name={name}-2) or --runs-dir, or run it with the earlier values"
        )
    return notices


def _differ(a: Any, b: Any) -> bool:
    """Compared as JSON text, where NaN equals NaN (a NaN value never equals itself)."""
    return json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str)


def _drawn_from(searched: dict[str, Any]) -> tuple[Any, Any]:
    return searched.get("distribution"), searched.get("condition")


def _domain(searched: dict[str, Any]) -> str:
    shown = str(searched.get("domain") or _show(searched.get("distribution")))
    return f"{shown} when {searched['condition']}" if searched.get("condition") else shown


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples as lists), as ``study.json`` holds it."""
    return json.loads(json.dumps(value, default=str))


def _show(value: Any) -> str:
    return json.dumps(value, default=str)
