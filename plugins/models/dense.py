"""``dense``: Flatten, hidden Dense layers, task-sized output (the course's first classifiers)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.data import DatasetInfo
from harness.models import output_layer

Activation = Literal["relu", "elu", "selu", "gelu", "tanh", "sigmoid", "swish"]


class DenseParams(BaseModel):
    """Parameters of the ``dense`` builder; ``units_N`` overrides ``units`` for layer N."""

    model_config = ConfigDict(extra="forbid")

    dense_layers: int = Field(1, ge=0, le=8, description="hidden layers")
    units: int = Field(128, ge=1, le=16384, description="neurons per hidden layer")
    units_1: int | None = Field(
        None, ge=1, le=16384, description="neurons of hidden layer 1 (default: units)"
    )
    units_2: int | None = Field(
        None, ge=1, le=16384, description="neurons of hidden layer 2 (default: units)"
    )
    units_3: int | None = Field(
        None, ge=1, le=16384, description="neurons of hidden layer 3 (default: units)"
    )
    units_4: int | None = Field(
        None, ge=1, le=16384, description="neurons of hidden layer 4 (default: units)"
    )
    activation: Activation = Field("relu", description="activation of the hidden layers")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each hidden layer")
    batch_norm: bool = Field(False, description="BatchNormalization after each hidden layer")


def layer_units(params, index: int) -> int:
    """Units of hidden layer ``index`` (1-based): its own ``units_N`` or the shared ``units``."""
    return getattr(params, f"units_{index}", None) or params.units


def dense_head(x, params, prefix: str = "dense"):
    """Hidden Dense [+ BatchNorm] + Dropout layers on tensor ``x`` (shared with ``cnn``)."""
    import keras  # lazy: imports TensorFlow

    for index in range(1, params.dense_layers + 1):
        x = keras.layers.Dense(
            layer_units(params, index), activation=params.activation, name=f"{prefix}_{index}"
        )(x)
        if getattr(params, "batch_norm", False):
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn_{index}")(x)
        if params.dropout:
            x = keras.layers.Dropout(params.dropout, name=f"{prefix}_dropout_{index}")(x)
    return x


def build_dense(params: DenseParams, info: DatasetInfo):
    """Flatten -> ``dense_layers`` x Dense(units) [+ BN] [+ Dropout] -> output for the task."""
    import keras  # lazy: imports TensorFlow

    inputs = keras.Input(shape=info.input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = dense_head(x, params)
    return keras.Model(inputs, output_layer(info)(x), name="dense")


@harness.hookimpl
def harness_register_models(register):
    """Register ``dense``."""
    register(
        "dense",
        build_dense,
        params=DenseParams,
        description="Flatten + hidden Dense layers (units, depth, dropout)",
    )
