"""``harness run --smoke``: the study's own pipeline at the smallest size that still runs it."""

from __future__ import annotations

import dataclasses

from harness.space import SearchSpace
from harness.study import StudySpec

SMOKE_LITERALS = {"train.epochs": 1, "train.steps_per_epoch": 2, "train.validation_steps": 2}


def _is_epochs(name: str) -> bool:
    return name in SMOKE_LITERALS or name.endswith("fine_tune_epochs")


def smoke_spec(spec: StudySpec) -> StudySpec:
    """A copy of ``spec`` named ``<name>-smoke``: one trial, one epoch, two batches.

    Epoch-like parameters become literals; everything else (data loading,
    model building, augmentation, fine-tuning, callbacks) runs as in a real trial.
    """
    literals = dict(spec.space.literals)
    literals.update(SMOKE_LITERALS)
    for name in list(literals):
        if name.endswith("fine_tune_epochs"):
            literals[name] = 1
    params = [p for p in spec.space.params if not _is_epochs(p.name)]
    for param in spec.space.params:
        if param.name.endswith("fine_tune_epochs"):
            literals[param.name] = 1
    enqueue = [{k: v for k, v in t.items() if not _is_epochs(k)} for t in spec.enqueue]
    study = spec.study.model_copy(update={"name": f"{spec.name}-smoke", "trials": 1})
    return dataclasses.replace(
        spec, study=study, space=SearchSpace(params, literals), enqueue=enqueue[:1]
    )
