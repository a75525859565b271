"""Task-driven output heads, losses and metrics, shared by every model builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.data import DatasetInfo
from harness.errors import TrialFailed


@dataclass
class FineTune:
    """A second training phase: unfreeze ``base`` from ``unfreeze_from`` and recompile.

    ``unfreeze_from`` is a layer name or index inside ``base``; layers before it
    stay frozen (BatchNormalization layers stay frozen too, as Keras advises).
    """

    base: Any
    unfreeze_from: str | int | None
    learning_rate: float
    epochs: int


@dataclass
class BuiltModel:
    """What a builder may return instead of a bare model, to override defaults.

    A builder whose model is a frozen feature extractor followed by a trainable
    head sets ``frozen_base`` (model input -> features, every weight frozen) and
    ``head`` (features -> output, sharing its layers with ``model``), so that
    ``model(x) == head(frozen_base(x))``. The runner may then compute the
    features once and train only the head (see :mod:`harness.features`).
    ``extra["feature_key"]`` names the base's weights when they are the same in
    every trial (pretrained or from a file), which lets trials share the features.
    """

    model: Any
    loss: Any = None
    metrics: list[Any] | None = None
    fine_tune: FineTune | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    frozen_base: Any = None
    head: Any = None


def output_units_and_activation(info: DatasetInfo) -> tuple[int, str]:
    """The only output that fits the task: sigmoid(1), softmax(classes) or linear(1)."""
    if info.task == "binary":
        return 1, "sigmoid"
    if info.task in ("multiclass", "next_token"):
        return int(info.num_classes), "softmax"
    return 1, "linear"


def output_layer(info: DatasetInfo, name: str = "output"):
    """The Dense output layer for ``info``'s task: builders call this rather than guessing."""
    import keras  # lazy: imports TensorFlow

    units, activation = output_units_and_activation(info)
    return keras.layers.Dense(units, activation=activation, name=name)


def loss_and_metrics(info: DatasetInfo) -> tuple[str, list[Any]]:
    """Default loss and metrics for a task."""
    if info.task == "binary":
        return "binary_crossentropy", ["accuracy"]
    if info.task in ("multiclass", "next_token"):
        return "sparse_categorical_crossentropy", ["accuracy"]
    return "mse", ["mae"]


def check_output(model: Any, info: DatasetInfo) -> None:
    """Refuse a model whose output cannot express the task (Dense(1, softmax) for 10 classes)."""
    units, activation = output_units_and_activation(info)
    shape = tuple(model.output_shape)
    if shape[-1] != units:
        raise TrialFailed(
            f"model output has {shape[-1]} units but a {info.task} task with "
            f"{info.num_classes or 1} classes needs {units}; use harness.models.output_layer(info)"
        )
    last = model.layers[-1]
    used = getattr(getattr(last, "activation", None), "__name__", None)
    if used is not None and used != activation and info.task != "regression":
        raise TrialFailed(
            f"model output activation is {used!r} but a {info.task} task needs {activation!r}; "
            "use harness.models.output_layer(info)"
        )


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0):
    """A Keras optimizer by name."""
    import keras  # lazy: imports TensorFlow

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate, momentum=momentum)
    classes = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "nadam": keras.optimizers.Nadam,
        "adagrad": keras.optimizers.Adagrad,
    }
    return classes[name](learning_rate=learning_rate)
