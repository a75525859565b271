"""What a trial fits on: its resolved parameters and its batched data pipelines.

Shared by the trial runner (:mod:`harness.trial`), the frozen-backbone feature
cache (:mod:`harness.features`) and the best-model retrain, so that none of
them calls back into another.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from harness.data import Dataset
from harness.errors import TrialFailed
from harness.study import ComponentSpec, TrainParams


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

    Training data is shuffled, batched, augmented (training only, after batching,
    in a parallel map) and prefetched; validation data is batched and prefetched.
    """
    import tensorflow as tf

    train_ds = dataset.train
    if train.shuffle_buffer:
        train_ds = train_ds.shuffle(train.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    train_ds = train_ds.batch(train.batch_size)
    if augment is not None:
        train_ds = train_ds.map(
            lambda x, y: (augment(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    if train.steps_per_epoch:
        train_ds = train_ds.repeat()
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = None
    if dataset.validation is not None:
        val_ds = dataset.validation.batch(train.batch_size)
        if train.validation_steps:
            val_ds = val_ds.take(train.validation_steps)
        val_ds = val_ds.prefetch(tf.data.AUTOTUNE)
    return train_ds, val_ds
