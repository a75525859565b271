"""An ensemble of the models a study kept: ``runs/<study>/ensemble.keras`` and ``ensemble.json``.

The members are the kept trial models (``models/trial-NNNN.keras``, the
``[study].keep_models`` best), best first. Their predictions on the validation
split, the one that selected the trials, choose the weights
(:mod:`harness.ensemble_selection`). The test split is then measured once for the
ensemble and for the best single member, side by side; an ensemble already built
with the same members and weights is not measured again.

The ensemble is one Keras model: the members under one input, their outputs
averaged with the weights by harness's registered ``WeightedAverage`` layer, so
``keras.models.load_model`` loads it in safe mode and ``harness predict`` uses it.
``ensemble.json`` is its model card (the best member's dataset section, so predict
prepares inputs the same way) with an ``ensemble`` section: method, members,
weights, validation and test figures, and the members' disagreement.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import ensemble_selection as selection
from harness.context import StudyContext, TrialContext
from harness.errors import HarnessError
from harness.files import replacing, write_text_atomic
from harness.fit_inputs import train_params
from harness.pipeline import load_dataset
from harness.results import (
    ENSEMBLE_FILE,
    ENSEMBLE_MODEL_FILE,
    MODELS_DIR,
    out_of_fold_path,
    read_ensemble,
)

log = logging.getLogger(__name__)

METHODS = ("greedy", "average")
#: Rounds of greedy selection (auto-sklearn's default ensemble size).
ROUNDS = 50


@dataclass
class Member:
    """A kept trial model: its number, files and card."""

    number: int
    path: Path
    card: dict[str, Any]

    def value(self, metric: str) -> float | None:
        found = (self.card.get("metrics") or {}).get(metric)
        return None if found is None else float(found)


def kept_members(run_dir: Path, objective: dict[str, str]) -> list[Member]:
    """The kept trial models with a readable card, best first (ties: the lower number)."""
    members = []
    for path in sorted((run_dir / MODELS_DIR).glob("trial-*.keras")):
        if ".fold-" in path.name:
            continue  # a cross-validated trial's fold models sit beside its own
        try:
            number = int(path.stem.removeprefix("trial-"))
            card = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (ValueError, OSError):
            continue
        member = Member(number, path, card)
        if member.value(objective["metric"]) is not None:
            members.append(member)
    sign = -1 if objective["direction"] == "maximize" else 1
    return sorted(members, key=lambda m: (sign * m.value(objective["metric"]), m.number))


def choose_members(run_dir: Path, meta: dict[str, Any], size: int | None) -> list[Member]:
    """The ``size`` best kept models (all of them when None), or one line saying why an
    ensemble cannot be built from this run."""
    objectives = meta.get("objectives") or []
    if len(objectives) != 1:
        raise HarnessError(
            f"{run_dir}: an ensemble needs a study with one objective (this one has "
            f"{len(objectives)}); its models are selected on the first"
            if objectives else f"{run_dir}: no study here yet (study.json has no objective)"
        )
    members = kept_members(run_dir, objectives[0])
    if not members:
        raise HarnessError(
            f"{run_dir}: no kept trial models in {MODELS_DIR}/ (they were deleted, or "
            "[study].keep_models = 0); run the study with keep_models >= 2 to ensemble it"
        )
    if size is not None and size > len(members):
        raise HarnessError(
            f"an ensemble of {size} models: only {len(members)} kept in {run_dir / MODELS_DIR} "
            f"(give a size up to {len(members)}, or raise [study].keep_models and run again)"
        )
    return members[:size] if size is not None else members


def _compatible(members: list[Member], say=print) -> list[Member]:
    """Members whose inputs match the best member's (shape and preprocessing); the
    others are left out, each with one line saying why."""
    best = members[0].card.get("dataset") or {}
    keep = [members[0]]
    for member in members[1:]:
        mine = member.card.get("dataset") or {}
        for key in ("input_shape", "preprocessing", "task"):
            if mine.get(key) != best.get(key):
                say(
                    f"trial #{member.number}: left out of the ensemble: its inputs differ from "
                    f"trial #{members[0].number}'s ({key} {mine.get(key)} against "
                    f"{best.get(key)})"
                )
                break
        else:
            keep.append(member)
    return keep


def _out_of_fold(run_dir: Path, dataset, members: list[Member]):
    """The pooled training labels and each member's out-of-fold predictions on them: a
    cross-validated study's members were refitted on all its data, so their predictions
    on any of it would be seen data; each fold model's on its own fold are not."""
    from harness.folds import pool_of

    found = []
    for member in members:
        path = out_of_fold_path(run_dir, member.number)
        if not path.is_file():
            raise HarnessError(
                f"trial #{member.number}: its out-of-fold predictions ({path}) are gone; a "
                "cross-validated study's ensemble is weighed on them (run the study again)"
            )
        found.append(np.load(path).astype("float64"))
    labels = pool_of(dataset).y
    if any(len(p) != len(labels) for p in found):
        raise HarnessError(
            f"{run_dir}: the out-of-fold predictions do not match the training data "
            f"({len(labels)} examples now); the data changed since the run"
        )
    return labels.reshape(len(labels), -1), found


def _predict(model, dataset, split, batch_size: int) -> np.ndarray:
    batches = dataset.model_batches(split.batch(batch_size))
    return np.asarray(model.predict(batches, verbose=0), dtype="float64")


def _labels(dataset, split, batch_size: int) -> np.ndarray:
    batches = dataset.model_batches(split.batch(batch_size))
    return np.concatenate([np.asarray(y).reshape(len(y), -1) for _, y in batches])


def _rounded(found: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in found.items()}


def build_ensemble(
    spec: Any,
    plugins: Any,
    run_dir: Path,
    meta: dict[str, Any],
    size: int | None = None,
    method: str = "greedy",
    say=print,
) -> dict[str, Any]:
    """Build, save and measure the ensemble of the ``size`` best kept models, fire
    ``harness_ensemble_built``; return its record (``ensemble.json``'s ``ensemble``)."""
    import keras  # lazy: imports TensorFlow

    from harness.layers import custom_layers

    if method not in METHODS:
        raise HarnessError(f"ensemble method {method!r}: use one of {', '.join(METHODS)}")
    members = _compatible(choose_members(run_dir, meta, size), say)
    best = members[0]
    task = (best.card.get("dataset") or {}).get("task")
    if task not in selection.SCORES:
        raise HarnessError(
            f"{run_dir}: a {task} model is not ensembled: averaging next-word distributions "
            "of different vocabularies is not supported; use the best model"
        )
    objective = meta["objectives"][0]["metric"]
    params = dict(best.card.get("params") or {})
    context = TrialContext(StudyContext(spec, run_dir), best.number, params, worker="ensemble")
    dataset = load_dataset(context)
    batch_size = train_params(context.params).batch_size
    custom_layers()
    models = [keras.models.load_model(m.path, compile=False) for m in members]
    if spec.study.folds:
        source = f"out-of-fold predictions ({spec.study.folds} folds)"
        labels, val = _out_of_fold(run_dir, dataset, members)
    elif dataset.validation is None:
        raise HarnessError(f"dataset {spec.dataset.name!r} has no validation split to weigh "
                           "an ensemble on")
    else:
        source = "the validation split"
        labels = _labels(dataset, dataset.validation, batch_size)
        val = [_predict(model, dataset, dataset.validation, batch_size) for model in models]
    score = selection.selection_score(objective, task)
    weights = (
        selection.greedy_weights(val, labels, task, score, ROUNDS)
        if method == "greedy" and len(members) > 1
        else [1 / len(members)] * len(members)
    )
    study = StudyContext(spec, run_dir)
    record: dict[str, Any] = {
        "method": method,
        "task": task,
        "selected_on": f"val_{score}",
        "rounds": ROUNDS if method == "greedy" and len(members) > 1 else None,
        "members": [
            {"trial": m.number, "weight": round(w, 6)}
            for m, w in zip(members, weights, strict=True)
        ],
        "best_single": best.number,
        "weighed_on": source,
        "validation_size": int(len(labels)),
        "validation": _rounded(selection.figures(selection.combine(val, weights), labels, task)),
        "best_single_validation": _rounded(selection.figures(val[0], labels, task)),
        "disagreement": selection.disagreement(val, task),
    }
    used = [(m, model, w) for m, model, w in zip(members, models, weights, strict=True) if w > 0]
    _save_model(run_dir, used, best, record)
    record["test"] = _measure_test(run_dir, dataset, models, weights, task, batch_size, record)
    _write_card(run_dir, best, record)
    plugins.ensemble_built(study, record)
    return record


def _save_model(run_dir: Path, used, best: Member, record: dict[str, Any]) -> None:
    import keras  # lazy: imports TensorFlow

    from harness.layers import custom_layers

    shape = tuple((best.card.get("dataset") or {}).get("input_shape") or used[0][1].input_shape[1:])
    inputs = keras.Input(shape=shape, name="inputs")
    outputs = []
    for member, model, _ in used:
        model.name = f"trial_{member.number:04d}"  # unique names inside one model
        outputs.append(model(inputs))
    weights = [w for _, _, w in used]
    total = sum(weights)
    average = custom_layers().WeightedAverage([w / total for w in weights], name="ensemble")
    averaged = average(outputs)
    ensemble = keras.Model(inputs, averaged, name="ensemble")
    with replacing(run_dir / ENSEMBLE_MODEL_FILE) as tmp:
        ensemble.save(tmp)


def _measure_test(run_dir, dataset, models, weights, task, batch_size, record):
    """The test figures of the ensemble and of the best single member (``models[0]``):
    reused from an earlier build with the same members and weights, else measured now,
    once, from one prediction of the test split per member."""
    earlier = _earlier_record(run_dir)
    if earlier and earlier.get("members") == record["members"] and earlier.get("test"):
        return earlier["test"]
    if dataset.test is None:
        return None
    labels = _labels(dataset, dataset.test, batch_size)
    preds = [_predict(model, dataset, dataset.test, batch_size) for model in models]
    combined = selection.combine(preds, weights)
    single = preds[0]
    found = {
        "size": int(len(labels)),
        "ensemble": _rounded(selection.figures(combined, labels, task)),
        "best_single": _rounded(selection.figures(single, labels, task)),
    }
    if task != "regression":
        gap, error = selection.paired_accuracy_gap(combined, single, labels, task)
        found["accuracy_gap"] = round(gap, 6)
        found["gap_standard_error"] = round(error, 6)
    return found


def _earlier_record(run_dir: Path) -> dict[str, Any] | None:
    try:
        card = json.loads((run_dir / ENSEMBLE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card.get("ensemble") if isinstance(card, dict) else None


def _write_card(run_dir: Path, best: Member, record: dict[str, Any]) -> None:
    card = {
        "trial": None,
        "study": best.card.get("study"),
        "model": "ensemble",
        "params": {},
        "metrics": {f"val_{k}": v for k, v in record["validation"].items()},
        "dataset": best.card.get("dataset"),
        "ensemble": record,
    }
    if record.get("test"):
        card["test"] = {f"test_{k}": v for k, v in record["test"]["ensemble"].items()}
    write_text_atomic(run_dir / ENSEMBLE_FILE, json.dumps(card, indent=2, default=str) + "\n")


def ensemble_wanted(spec: Any, run_dir: Path) -> bool:
    """Whether the study asks for an ensemble at the end of its run
    (``[study].ensemble = K``) that is not built yet from its K best kept models."""
    size = getattr(spec.study, "ensemble", 0)
    if size < 2 or len(spec.objectives) != 1:
        return False
    objective = spec.objectives[0].model_dump()
    wanted = [m.number for m in kept_members(run_dir, objective)[:size]]
    record = read_ensemble(run_dir)
    return record is None or sorted(m["trial"] for m in record["members"]) != sorted(wanted)


def build_wanted_ensemble(spec: Any, plugins: Any, run_dir: Path) -> dict[str, Any] | None:
    """Build the ensemble ``[study].ensemble`` asks for at the end of a run; a study that
    cannot have one (too few kept models) is one warning, not a failed run."""
    meta = {"objectives": [o.model_dump() for o in spec.objectives]}
    try:
        return build_ensemble(spec, plugins, run_dir, meta, spec.study.ensemble, say=log.warning)
    except HarnessError as exc:
        log.warning("ensemble: %s", exc)
        return None


def summary_lines(record: dict[str, Any]) -> list[str]:
    """What the CLI prints of an ensemble: members, weights, validation and test figures."""
    members = ", ".join(f"#{m['trial']} x{m['weight']:.2f}" for m in record["members"])
    used = sum(1 for m in record["members"] if m["weight"] > 0)
    how = (f"greedy selection on {record['selected_on']}, {record['rounds']} rounds"
           if record.get("rounds") else "plain average")
    lines = [f"ensemble of {used} model(s) ({how}): {members}"]
    best = record["best_single"]
    where = "" if "folds" not in record.get("weighed_on", "") else " (out-of-fold)"
    lines.append(
        f"validation{where}: ensemble " + _pairs(record["validation"])
        + f"; best single (#{best}) " + _pairs(record["best_single_validation"])
    )
    test = record.get("test")
    if test:
        lines.append(
            f"test split ({test['size']} examples, measured once): ensemble "
            + _pairs(test["ensemble"])
            + f"; best single (#{best}) "
            + _pairs(test["best_single"])
        )
        if "accuracy_gap" in test:
            lines.append(selection.gap_line(test["accuracy_gap"], test["gap_standard_error"]))
    if record.get("disagreement") is not None and record.get("task") == "regression":
        lines.append(f"members differ by {record['disagreement']:.4g} on average (per pair, "
                     "validation examples)")
    elif record.get("disagreement") is not None:
        lines.append(f"members disagree on {record['disagreement']:.2%} of validation examples "
                     "(per pair, on average)")
    return lines


def _pairs(found: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in found.items())
