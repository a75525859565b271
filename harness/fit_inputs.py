"""What a trial fits on: its resolved parameters, its batched data pipelines, and the
:class:`FitStrategy` contract through which the trial pipeline (:mod:`harness.pipeline`)
asks whether a cheaper way to fit applies (the frozen-base feature cache,
:mod:`harness.features`), so that neither calls back into the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ValidationError

from harness.data import Dataset
from harness.errors import TrialFailed
from harness.study import ComponentSpec, TrainParams

if TYPE_CHECKING:  # pragma: no cover - types only
    from harness.context import TrialContext
    from harness.models import BuiltModel


@dataclass
class FitInputs:
    """What ``fit`` runs on: the model it trains and its batched pipelines.

    ``model`` is the built model, or a part of it that shares its layers (a frozen
    base's head trained on cached features); the built model is what is evaluated
    and saved either way.
    """

    model: Any
    train: Any
    validation: Any | None


class FitStrategy(Protocol):
    """A cheaper way to fit a built model than on the dataset's pipelines every epoch."""

    def inputs(
        self, built: BuiltModel, dataset: Dataset, trial: TrialContext, train: TrainParams
    ) -> FitInputs | None:
        """The inputs to fit instead, or None when this strategy does not apply."""


def component_params(spec: ComponentSpec, params: dict[str, Any]) -> BaseModel:
    """Pick ``spec``'s resolved values out of the flat params and validate them."""
    prefix = spec.prefix + "."
    values = {k.removeprefix(prefix): v for k, v in params.items() if k.startswith(prefix)}
    try:
        return spec.component.params.model_validate(values)
    except ValidationError as exc:
        raise TrialFailed(f"invalid parameters for {spec.prefix} {spec.name!r}: {exc}") from exc


def train_params(params: dict[str, Any]) -> TrainParams:
    """The resolved ``[train]`` table."""
    values = {k.removeprefix("train."): v for k, v in params.items() if k.startswith("train.")}
    return TrainParams.model_validate(values)


def training_pipelines(dataset: Dataset, train: TrainParams, augment: Any, seed: int):
    """The batched ``(train, validation)`` tf.data pipelines a trial fits on.

    Training data is shuffled, batched, augmented (training only, after batching, one
    batch at a time so that the seeded random draws reproduce) and prefetched;
    validation data is batched and prefetched.
    """
    import tensorflow as tf  # lazy: imports TensorFlow

    train_ds = dataset.train
    if train.shuffle_buffer:
        train_ds = train_ds.shuffle(train.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    train_ds = dataset.model_batches(train_ds.batch(train.batch_size))
    if augment is not None:
        # One batch at a time: Keras's random layers draw from a seed generator whose state
        # each call advances, so parallel calls would hand batches their random numbers in
        # whatever order the threads ran, and the same study would train differently on
        # each run. Prefetch still overlaps augmenting the next batch with training.
        train_ds = train_ds.map(lambda x, y: (augment(x, training=True), y))
    if train.steps_per_epoch:
        train_ds = train_ds.repeat()
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = None
    if dataset.validation is not None:
        val_ds = dataset.model_batches(dataset.validation.batch(train.batch_size))
        if train.validation_steps:
            val_ds = val_ds.take(train.validation_steps)
        val_ds = val_ds.prefetch(tf.data.AUTOTUNE)
    return train_ds, val_ds
