"""``cnn``: Conv2D blocks then a dense head (the course's Fashion-MNIST, horses, malaria CNNs)."""

from __future__ import annotations

from typing import Literal

from harness_plugins.models.dense import Activation, dense_head
from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.data import DatasetInfo
from harness.errors import TrialFailed
from harness.models import output_layer


class CnnParams(BaseModel):
    """Parameters of the ``cnn`` builder; ``filters_N`` overrides the filters of block N."""

    model_config = ConfigDict(extra="forbid")

    conv_layers: int = Field(2, ge=1, le=10, description="Conv2D + MaxPool blocks")
    convs_per_block: int = Field(
        1, ge=1, le=4, description="Conv2D layers stacked before each MaxPool (VGG style: 2)"
    )
    filters: int = Field(32, ge=1, le=4096, description="filters of the first block")
    filters_growth: Literal["constant", "double"] = Field(
        "constant", description="constant: every block has filters; double: doubled each block"
    )
    filters_2: int | None = Field(
        None, ge=1, le=4096, description="filters of block 2 (default: from filters_growth)"
    )
    filters_3: int | None = Field(
        None, ge=1, le=4096, description="filters of block 3 (default: from filters_growth)"
    )
    filters_4: int | None = Field(
        None, ge=1, le=4096, description="filters of block 4 (default: from filters_growth)"
    )
    filters_5: int | None = Field(
        None, ge=1, le=4096, description="filters of block 5 (default: from filters_growth)"
    )
    kernel_size: int = Field(3, ge=1, le=15, description="side of each Conv2D kernel")
    padding: Literal["valid", "same"] = Field(
        "valid", description="Conv2D and MaxPool padding: valid (none, shrinks) or same"
    )
    pool_size: int = Field(2, ge=1, le=8, description="side of each MaxPool window")
    pool_strides: int | None = Field(
        None, ge=1, le=8, description="MaxPool stride (default: pool_size)"
    )
    batch_norm: bool = Field(
        False, description="BatchNormalization after each Conv2D and hidden Dense layer"
    )
    conv_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout after each block")
    dense_layers: int = Field(1, ge=0, le=8, description="hidden Dense layers of the head")
    units: int = Field(128, ge=1, le=16384, description="neurons per hidden Dense layer")
    units_1: int | None = Field(
        None, ge=1, le=16384, description="neurons of hidden Dense layer 1 (default: units)"
    )
    units_2: int | None = Field(
        None, ge=1, le=16384, description="neurons of hidden Dense layer 2 (default: units)"
    )
    activation: Activation = Field(
        "relu", description="activation of the Conv2D and hidden Dense layers"
    )
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout in the dense head")


def block_filters(params: CnnParams, index: int) -> int:
    """Filters of block ``index`` (1-based): ``filters_N``, else constant or doubling."""
    own = getattr(params, f"filters_{index}", None)
    if own:
        return own
    if params.filters_growth == "double":
        return params.filters * 2 ** (index - 1)
    return params.filters


def build_cnn(params: CnnParams, info: DatasetInfo):
    """Blocks of [Conv2D [+ BN]] x ``convs_per_block`` + MaxPool [+ Dropout], then a dense head."""
    import keras  # lazy: imports TensorFlow

    if len(info.input_shape) != 3:
        raise TrialFailed(
            f"cnn needs image input (height, width, channels), got {info.input_shape}"
        )
    size = min(info.input_shape[:2])
    for _ in range(params.conv_layers):
        stride = params.pool_strides or params.pool_size
        if params.padding == "valid":
            size -= (params.kernel_size - 1) * params.convs_per_block
            size = (size - params.pool_size) // stride + 1
        else:
            size = -(-size // stride)
    if size < 1:
        raise TrialFailed(
            f"{params.conv_layers} conv blocks (kernel {params.kernel_size}, "
            f"padding {params.padding}) shrink a {info.input_shape[0]}x{info.input_shape[1]} "
            "image to nothing; lower conv_layers or use padding = 'same'"
        )
    inputs = keras.Input(shape=info.input_shape, name="input")
    x = inputs
    for index in range(1, params.conv_layers + 1):
        for repeat in range(1, params.convs_per_block + 1):
            suffix = f"{index}" if repeat == 1 else f"{index}_{repeat}"
            x = keras.layers.Conv2D(
                block_filters(params, index),
                params.kernel_size,
                padding=params.padding,
                activation=params.activation,
                name=f"conv_{suffix}",
            )(x)
            if params.batch_norm:
                x = keras.layers.BatchNormalization(name=f"conv_bn_{suffix}")(x)
        x = keras.layers.MaxPooling2D(
            params.pool_size,
            strides=params.pool_strides,
            padding=params.padding,
            name=f"pool_{index}",
        )(x)
        if params.conv_dropout:
            x = keras.layers.Dropout(params.conv_dropout, name=f"conv_dropout_{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = dense_head(x, params)
    return keras.Model(inputs, output_layer(info)(x), name="cnn")


@harness.hookimpl
def harness_register_models(register):
    """Register ``cnn``."""
    register(
        "cnn",
        build_cnn,
        params=CnnParams,
        description="Conv2D/MaxPool blocks + dense head (filters, depth, units, dropout)",
    )
