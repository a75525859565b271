"""``transfer``: a frozen ``keras.applications`` backbone + a small head, optional fine-tuning.

The course's two transfer-learning recipes are this builder's defaults and one
switch away: InceptionV3 cut at ``mixed7`` -> Flatten -> Dense(1024, relu) ->
Dropout(0.2) -> output (the default), and VGG16 -> pooling -> Dense -> output
(``backbone = "vgg16"``). The backbone's own ``preprocess_input`` is a layer
of the model, so a saved model takes the same [0, 1] images the loaders produce.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

import harness
from harness.data import DatasetInfo
from harness.download import DEFAULT_TIMEOUT_S, keras_models_dir, offline
from harness.errors import HarnessError, TrialFailed
from harness.layers import custom_layers
from harness.models import BuiltModel, FineTune, output_layer

Backbone = Literal["vgg16", "inception_v3", "mobilenet_v2", "resnet50", "efficientnet_b0"]

#: backbone -> (keras.applications constructor, smallest input side, default cut layer)
BACKBONES: dict[str, tuple[str, int, str | None]] = {
    "vgg16": ("VGG16", 32, None),
    "inception_v3": ("InceptionV3", 75, "mixed7"),
    "mobilenet_v2": ("MobileNetV2", 32, None),
    "resnet50": ("ResNet50", 32, None),
    "efficientnet_b0": ("EfficientNetB0", 32, None),
}

#: The file Keras downloads for each backbone's ImageNet weights (without the classifier).
IMAGENET_FILES = {
    "vgg16": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "inception_v3": "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "mobilenet_v2": "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "efficientnet_b0": "efficientnetb0_notop.h5",
}


class TransferParams(BaseModel):
    """Parameters of the ``transfer`` builder."""

    model_config = ConfigDict(extra="forbid")

    backbone: Backbone = Field(
        "inception_v3", description="the keras.applications network used as the frozen base"
    )
    weights: str = Field(
        "imagenet",
        description='"imagenet" (downloaded once), "none" (random), or a local .h5 weights file',
    )
    cut_at: str | None = Field(
        None, description="layer whose output feeds the head (default: mixed7 for inception_v3)"
    )
    input_scale: float = Field(255.0, gt=0, description="multiplies [0, 1] inputs back to pixels")
    pooling: Literal["flatten", "avg", "max"] = Field(
        "flatten", description="the base's output to the head: Flatten, or global avg / max pooling"
    )
    units: int = Field(1024, ge=0, le=16384, description="Dense(relu) units of the head; 0: none")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="dropout before the output layer")
    fine_tune_at: str | int | None = Field(
        None, description="first base layer (name or index) unfrozen in the fine-tuning phase"
    )
    fine_tune_learning_rate: float = Field(
        1e-5, gt=0, le=1, description="the learning rate of the fine-tuning phase"
    )
    fine_tune_epochs: int = Field(0, ge=0, le=10_000, description="0: no fine-tuning phase")

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: str) -> str:
        if value in ("imagenet", "none") or value.endswith(".h5"):
            return value
        raise ValueError('use "imagenet", "none" or the path of a .h5 / .weights.h5 file')


def _weights_help(backbone: str) -> str:
    return (
        f"download {IMAGENET_FILES[backbone]} where a network is available and set "
        f'[model] weights = "/path/to/{IMAGENET_FILES[backbone]}", or set weights = "none" '
        "to train from random weights"
    )


def _imagenet_backbone(constructor, backbone: str, input_shape):
    """The backbone with ImageNet weights from Keras's cache or the network, or a clear error."""
    cached = list(keras_models_dir().glob(IMAGENET_FILES[backbone].replace("224", "*")))
    if offline() and not cached:
        raise HarnessError(
            f"the ImageNet weights of {backbone} are not in {keras_models_dir()} and "
            f"HARNESS_OFFLINE is set; {_weights_help(backbone)}"
        )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DEFAULT_TIMEOUT_S)
    try:
        return constructor(include_top=False, weights="imagenet", input_shape=input_shape)
    except Exception as exc:  # noqa: BLE001 - Keras raises bare Exception when offline
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise HarnessError(
            f"could not get the ImageNet weights of {backbone} ({reason}); "
            + _weights_help(backbone)
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def _file_backbone(constructor, backbone: str, input_shape, path: Path):
    if not path.is_file():
        raise HarnessError(f"[model] weights: no such file {path}; " + _weights_help(backbone))
    model = constructor(include_top=False, weights=None, input_shape=input_shape)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # noqa: BLE001 - any mismatch is the user's file
        raise HarnessError(
            f"[model] weights: {path} does not fit {backbone} without its classifier "
            f"({type(exc).__name__}: {str(exc).strip()[:200]}); it must be the 'notop' "
            f"weights, e.g. {IMAGENET_FILES[backbone]}"
        ) from None
    return model


def _weights_id(weights: str) -> str | None:
    """Identify the base's weights when every trial gets the same ones (None for random)."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).resolve()
    stat = path.stat()
    return f"file:{path}:{stat.st_size}:{stat.st_mtime_ns}"


def build_transfer(params: TransferParams, info: DatasetInfo) -> BuiltModel:
    """Backbone (frozen, cut at ``cut_at``) -> pooling -> Dense -> Dropout -> task output."""
    import keras  # lazy: imports TensorFlow

    if info.task == "next_token":
        raise TrialFailed("transfer needs image data; for next_token use the lstm_text model")
    if len(info.input_shape) != 3 or info.input_shape[-1] not in (1, 3):
        raise TrialFailed(
            f"transfer needs RGB or grey images (height, width, 3 or 1), got {info.input_shape}"
        )
    height, width, _ = info.input_shape
    constructor_name, min_side, default_cut = BACKBONES[params.backbone]
    if min(height, width) < min_side:
        raise TrialFailed(
            f"{params.backbone} needs images of at least {min_side}x{min_side}, got "
            f"{height}x{width}; raise [dataset] image_size"
        )
    constructor = getattr(keras.applications, constructor_name)
    shape = (height, width, 3)
    if params.weights == "imagenet":
        full = _imagenet_backbone(constructor, params.backbone, shape)
    elif params.weights == "none":
        full = constructor(include_top=False, weights=None, input_shape=shape)
    else:
        full = _file_backbone(constructor, params.backbone, shape, Path(params.weights))

    cut = params.cut_at or default_cut
    if cut is not None:
        names = [layer.name for layer in full.layers]
        if cut not in names:
            raise TrialFailed(
                f"cut_at: {params.backbone} has no layer {cut!r} (its last layers: "
                f"{', '.join(names[-5:])})"
            )
        base = keras.Model(full.input, full.get_layer(cut).output, name=f"{params.backbone}_base")
    else:
        base = keras.Model(full.input, full.output, name=f"{params.backbone}_base")
    base.trainable = False

    pooling = {
        "flatten": keras.layers.Flatten,
        "avg": keras.layers.GlobalAveragePooling2D,
        "max": keras.layers.GlobalMaxPooling2D,
    }[params.pooling](name=f"pool_{params.pooling}")
    head_layers = [pooling]
    if params.units:
        head_layers.append(keras.layers.Dense(params.units, activation="relu", name="head_dense"))
    if params.dropout:
        head_layers.append(keras.layers.Dropout(params.dropout, name="head_dropout"))
    head_layers.append(output_layer(info))

    def head_on(x):
        for layer in head_layers:
            x = layer(x)
        return x

    inputs = keras.Input(shape=info.input_shape, name="input")
    preprocess = custom_layers().BackbonePreprocess(
        params.backbone, input_scale=params.input_scale, name="preprocess"
    )
    features = base(preprocess(inputs), training=False)
    model = keras.Model(inputs, head_on(features), name=f"transfer_{params.backbone}")
    extractor = keras.Model(inputs, features, name=f"{params.backbone}_features")
    head_input = keras.Input(shape=tuple(features.shape[1:]), name="features")
    head = keras.Model(head_input, head_on(head_input), name="head")

    fine_tune = None
    if params.fine_tune_epochs:
        fine_tune = FineTune(
            base, params.fine_tune_at, params.fine_tune_learning_rate, params.fine_tune_epochs
        )
    extra = {}
    weights_id = _weights_id(params.weights)
    if weights_id is not None:
        extra["feature_key"] = (
            f"{params.backbone}|{weights_id}|cut={cut}|{height}x{width}x{info.input_shape[-1]}"
            f"|scale={params.input_scale}"
        )
    return BuiltModel(model, fine_tune=fine_tune, frozen_base=extractor, head=head, extra=extra)


@harness.hookimpl
def harness_register_models(register):
    """Register ``transfer``."""
    register("transfer", build_transfer, params=TransferParams,
             description="frozen keras.applications backbone + Dense head, optional fine-tuning")
