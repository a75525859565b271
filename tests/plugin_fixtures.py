"""Tiny in-memory datasets for model, augmentation and predict tests (a ``--plugin`` file).

Load with ``load_plugins([str(PATH)])``. Everything is generated from a seed,
so tests can rebuild the same arrays (``images(...)``) to write image files.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.data import DatasetInfo, from_arrays

SIX_X = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 4.0], dtype="float32")[:, None]
SIX_Y = np.array([-3.0, -1.0, 1.0, 3.0, 5.0, 7.0], dtype="float32")

HEADLINES = [
    "washington dc is busy today",
    "washington dc is quiet tonight",
    "today in new york the mayor spoke",
    "the school district has new rules",
    "crime has become a campaign issue",
]


class PointsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    with_validation: bool = True


def load_points(params: PointsParams, context):
    """The course's six points of y = 2x - 1 (validated on themselves, if at all)."""
    info = DatasetInfo(name="fx_points", input_shape=(1,), task="regression")
    if not params.with_validation:
        return from_arrays(info, SIX_X, SIX_Y)
    return from_arrays(info, SIX_X, SIX_Y, SIX_X, SIX_Y)


class ImagesParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: Literal["binary", "multiclass", "regression"] = "binary"
    size: int = Field(32, ge=4)
    channels: Literal[1, 3] = 3
    count: int = Field(24, ge=4)
    classes: int = Field(3, ge=2)


def images(size: int, channels: int, count: int, classes: int, seed: int = 0):
    """Images in [0, 1] whose brightness says their class, and the class ids."""
    rng = np.random.default_rng(seed)
    y = np.arange(count) % classes
    x = rng.uniform(0.0, 0.3, size=(count, size, size, channels))
    x = x + (y / max(classes - 1, 1) * 0.6)[:, None, None, None]
    return x.astype("float32"), y.astype("int32")


def load_images(params: ImagesParams, context):
    """Small synthetic images for binary, multiclass or regression tasks."""
    classes = 2 if params.task == "binary" else params.classes
    x, y = images(params.size, params.channels, params.count, classes, context.seed)
    names = tuple(f"class_{i}" for i in range(classes))
    if params.task == "binary":
        names = ("cats", "dogs")
    info = DatasetInfo(
        name="fx_images",
        input_shape=(params.size, params.size, params.channels),
        task=params.task,
        num_classes=None if params.task == "regression" else classes,
        class_names=None if params.task == "regression" else names,
        preprocessing={
            "image_size": [params.size, params.size],
            "color_mode": "rgb" if params.channels == 3 else "grayscale",
            "rescale": 1 / 255,
        },
    )
    target = y.astype("float32") if params.task == "regression" else y
    cut = params.count * 3 // 4
    return from_arrays(info, x[:cut], target[:cut], x[cut:], target[cut:])


class TextParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    with_validation: bool = True


def text_sequences():
    """(x, y, vocabulary): pre-padded n-gram prefixes of HEADLINES and their next word."""
    words = sorted({w for line in HEADLINES for w in line.split()})
    vocabulary = ["", "[UNK]", *words]
    index = {w: i for i, w in enumerate(vocabulary)}
    rows = []
    for line in HEADLINES:
        ids = [index[w] for w in line.split()]
        rows += [ids[: i + 1] for i in range(1, len(ids))]
    length = max(len(r) for r in rows)
    padded = np.array([[0] * (length - len(r)) + r for r in rows], dtype="int32")
    return padded[:, :-1], padded[:, -1], vocabulary


def load_text(params: TextParams, context):
    """Next-word n-grams of five headlines (vocabulary index 0 pads, 1 is unknown)."""
    x, y, vocabulary = text_sequences()
    info = DatasetInfo(
        name="fx_text",
        input_shape=(x.shape[1],),
        task="next_token",
        num_classes=len(vocabulary),
        vocabulary=tuple(vocabulary),
        preprocessing={"lowercase": True, "strip_punctuation": True, "oov_index": 1},
    )
    if not params.with_validation:
        return from_arrays(info, x, y)
    return from_arrays(info, x, y, x, y)


@harness.hookimpl
def harness_register_datasets(register):
    """Register the fixture datasets."""
    register("fx_points", load_points, params=PointsParams)
    register("fx_images", load_images, params=ImagesParams)
    register("fx_text", load_text, params=TextParams)


class FrozenParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fine_tune_at: str | int | None = "conv_b"
    fine_tune_learning_rate: float = 1e-4
    fine_tune_epochs: int = 0
    feature_key: str | None = None


def build_frozen(params: FrozenParams, info):
    """A tiny frozen base (Conv, BatchNorm, Conv) and a head: the transfer contract, fast."""
    import keras

    from harness.models import BuiltModel, FineTune, output_layer

    base_in = keras.Input(info.input_shape)
    x = keras.layers.Conv2D(4, 3, name="conv_a")(base_in)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(4, 3, name="conv_b")(x)
    base = keras.Model(base_in, x, name="base")
    base.trainable = False
    pool, out = keras.layers.GlobalAveragePooling2D(), output_layer(info)
    inputs = keras.Input(info.input_shape)
    features = base(inputs, training=False)
    model = keras.Model(inputs, out(pool(features)))
    head_in = keras.Input(tuple(features.shape[1:]))
    fine_tune = None
    if params.fine_tune_epochs:
        fine_tune = FineTune(
            base, params.fine_tune_at, params.fine_tune_learning_rate, params.fine_tune_epochs
        )
    return BuiltModel(
        model,
        fine_tune=fine_tune,
        frozen_base=keras.Model(inputs, features),
        head=keras.Model(head_in, out(pool(head_in))),
        extra={"feature_key": params.feature_key} if params.feature_key else {},
    )


@harness.hookimpl
def harness_register_models(register):
    """Register the fixture model."""
    register("fx_frozen", build_frozen, params=FrozenParams)
