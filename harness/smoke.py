"""``harness run --smoke``: the study's own pipeline at the smallest size that still runs it."""

from __future__ import annotations

import dataclasses
from typing import Any

from harness.space import SearchSpace
from harness.study import StudySpec

#: Examples per batch of a smoke run: two batches of two train, validate and test a model.
SMOKE_BATCH_SIZE = 2
SMOKE_LITERALS = {
    "train.epochs": 1,
    "train.steps_per_epoch": 2,
    "train.validation_steps": 2,
    "train.batch_size": SMOKE_BATCH_SIZE,
}
#: Test examples a smoke run measures the chosen trial on (two batches).
SMOKE_TEST_EXAMPLES = 2 * SMOKE_BATCH_SIZE
#: Images per class folder a smoke run decodes, for datasets with ``limit_per_class``.
SMOKE_PER_CLASS = 4
#: What ``test.json`` says about a smoke run's test figures.
SMOKE_NOTE = (
    "smoke run: measured on {examples} test examples only, to check that the test evaluation "
    "works; not a figure of the model (run without --smoke for one)"
)


def smoke_spec(spec: StudySpec) -> StudySpec:
    """A copy of ``spec`` named ``<name>-smoke``: one trial, one epoch, two batches of two
    examples, validated on two batches and measured on :data:`SMOKE_TEST_EXAMPLES` test
    examples; an image dataset with ``limit_per_class`` decodes a few images per class.

    Those parameters become literals; everything else (data loading, model building,
    augmentation, fine-tuning, callbacks) runs as in a real trial.
    """
    literals = dict(spec.space.literals)
    literals.update(SMOKE_LITERALS)
    literals.update(_dataset_limits(spec, literals))
    for name in [*literals, *(p.name for p in spec.space.params)]:
        if name.endswith("fine_tune_epochs"):
            literals[name] = 1
    params = [p for p in spec.space.params if p.name not in literals]
    enqueue = [{k: v for k, v in t.items() if k not in literals} for t in spec.enqueue]
    study = spec.study.model_copy(update={"name": f"{spec.name}-smoke", "trials": 1})
    return dataclasses.replace(
        spec, study=study, space=SearchSpace(params, literals), enqueue=enqueue[:1], smoke=True
    )


def _dataset_limits(spec: StudySpec, literals: dict[str, Any]) -> dict[str, Any]:
    """``dataset.limit_per_class`` capped at :data:`SMOKE_PER_CLASS` when the dataset takes
    it, so that a smoke run decodes a few images per class, not the whole tree."""
    key = f"{spec.dataset.prefix}.limit_per_class"
    if "limit_per_class" not in spec.dataset.component.params.model_fields:
        return {}
    current = literals.get(key)
    if isinstance(current, int) and current <= SMOKE_PER_CLASS:
        return {}
    return {key: SMOKE_PER_CLASS}


def smoke_test_split(split: Any) -> Any:
    """The first :data:`SMOKE_TEST_EXAMPLES` examples of a test split (a ``tf.data`` dataset)."""
    return split.take(SMOKE_TEST_EXAMPLES)
