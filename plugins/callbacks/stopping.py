"""Training callbacks: metric threshold, early stopping, time budget, terminate on NaN, and
a learning rate lowered on plateaus."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import harness


class ThresholdParams(BaseModel):
    """Stop a trial's training once ``metric`` reaches ``value``."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field("accuracy", description="a metric in the epoch logs, e.g. val_accuracy")
    value: float = Field(0.99, description="the threshold")
    mode: Literal["max", "min"] = Field("max", description="max: stop when >= value; min: <=")


def make_threshold(params: ThresholdParams, trial):
    """The course's ``myCallback``: "Reached 99% accuracy so cancelling training!"."""
    import keras  # lazy: imports TensorFlow

    class MetricThreshold(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            current = (logs or {}).get(params.metric)
            if current is None:
                return
            reached = current >= params.value if params.mode == "max" else current <= params.value
            if reached:
                self.model.stop_training = True
                self.stopped_epoch = epoch

    return MetricThreshold()


class _MonitoredParams(BaseModel):
    """The metric a Keras callback watches, and which way is better."""

    model_config = ConfigDict(extra="forbid")

    monitor: str = Field("val_loss", description="a metric in the epoch logs, e.g. val_accuracy")
    mode: Literal["auto", "min", "max"] = Field(
        "auto", description="min: lower is better; max: higher; auto: from the metric's name"
    )


class EarlyStoppingParams(_MonitoredParams):
    """Keras EarlyStopping parameters."""

    patience: int = Field(3, ge=0, description="epochs without improvement before stopping")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")
    restore_best_weights: bool = Field(
        True, description="end training with the best epoch's weights, not the last"
    )


def make_early_stopping(params: EarlyStoppingParams, trial):
    """Stop when ``monitor`` has not improved for ``patience`` epochs."""
    import keras  # lazy: imports TensorFlow

    return keras.callbacks.EarlyStopping(
        monitor=params.monitor,
        patience=params.patience,
        min_delta=params.min_delta,
        mode=params.mode,
        restore_best_weights=params.restore_best_weights,
    )


class TimeBudgetParams(BaseModel):
    """Stop a trial's training after ``seconds`` of wall time (checked after each call into
    TensorFlow: every ``[train].steps_per_execution`` batches)."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(600.0, gt=0, description="wall time allowed for the trial's training")


def make_time_budget(params: TimeBudgetParams, trial):
    """Stop training once the trial has trained for ``seconds``."""
    import keras  # lazy: imports TensorFlow

    class TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.monotonic()

        def on_train_batch_end(self, batch, logs=None):
            if time.monotonic() - self.started >= params.seconds:
                self.model.stop_training = True

    return TimeBudget()


def make_terminate_on_nan(params, trial):
    """Stop at the first batch whose loss is NaN (the trial is then recorded as failed)."""
    import keras  # lazy: imports TensorFlow

    return keras.callbacks.TerminateOnNaN()


class ReduceLrParams(_MonitoredParams):
    """Keras ReduceLROnPlateau parameters."""

    factor: float = Field(0.5, gt=0, lt=1, description="multiply the learning rate by this")
    patience: int = Field(2, ge=0, description="epochs without improvement before lowering it")
    min_lr: float = Field(1e-6, ge=0, description="never lower the learning rate below this")


def make_reduce_lr(params: ReduceLrParams, trial):
    """Lower the learning rate by ``factor`` when ``monitor`` stops improving."""
    import keras  # lazy: imports TensorFlow

    return keras.callbacks.ReduceLROnPlateau(
        monitor=params.monitor,
        factor=params.factor,
        patience=params.patience,
        min_lr=params.min_lr,
        mode=params.mode,
        verbose=0,
    )


@harness.hookimpl
def harness_register_callbacks(register):
    """Register the stopping callbacks."""
    register(
        "threshold",
        make_threshold,
        params=ThresholdParams,
        description="stop when a metric reaches a value (e.g. accuracy 0.99)",
    )
    register(
        "early_stopping",
        make_early_stopping,
        params=EarlyStoppingParams,
        description="stop when a metric stops improving (patience, restore best)",
    )
    register(
        "time_budget",
        make_time_budget,
        params=TimeBudgetParams,
        description="stop a trial's training after N seconds",
    )
    register(
        "reduce_lr",
        make_reduce_lr,
        params=ReduceLrParams,
        description="lower the learning rate when a metric stops improving (factor, patience)",
    )
    register(
        "terminate_on_nan",
        make_terminate_on_nan,
        description="stop at the first NaN loss (trial recorded as failed)",
    )
