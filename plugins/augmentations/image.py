"""Image augmentations: Keras preprocessing layers, applied to training batches only.

Each ``[augment.<name>]`` table of a study enables one of these; its parameters
can be searched like any other, e.g. ``factor = {float = [0.0, 0.2]}``. They
replace the course's ``ImageDataGenerator`` arguments:

=====================================  ==========================================
ImageDataGenerator                     study
=====================================  ==========================================
``rotation_range=40`` (degrees)        ``[augment.rotation] factor = 0.11`` (40/360)
``width_shift_range=0.2``              ``[augment.shift] width = 0.2``
``height_shift_range=0.2``             ``[augment.shift] height = 0.2``
``shear_range=0.2``                    ``[augment.shear] x_factor = 0.2``
``zoom_range=0.2``                     ``[augment.zoom] factor = 0.2``
``horizontal_flip=True``               ``[augment.flip] mode = "horizontal"``
``fill_mode='nearest'``                ``fill_mode = "nearest"`` (each geometric one)
``rescale=1/255``                      ``[augment.rescale] scale = 0.00392156862745098``
``samplewise_center=True``             ``[augment.centering]``
=====================================  ==========================================

Images arrive as floats in [0, 1] (the loaders rescale), so brightness and
contrast default to ``value_range = [0.0, 1.0]``. ``rescale`` and
``centering`` are deterministic: like every augmentation they touch training
batches only, never validation data or the saved model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

import harness
from harness.errors import HarnessError
from harness.layers import custom_layers

FillMode = Literal["reflect", "wrap", "constant", "nearest"]
Interpolation = Literal["bilinear", "nearest"]


class _Geometric(BaseModel):
    """Options of the geometric augmentations: how pixels coming from outside are filled."""

    model_config = ConfigDict(extra="forbid")

    fill_mode: FillMode = Field("nearest", description="how to fill pixels from outside the image")
    fill_value: float = Field(0.0, description="the fill when fill_mode = 'constant'")
    interpolation: Interpolation = Field(
        "bilinear", description="how pixels are resampled: bilinear or nearest"
    )


class RotationParams(_Geometric):
    """``RandomRotation``: rotate by up to ``factor`` x 360 degrees either way."""

    factor: float = Field(
        0.1, ge=0.0, le=1.0, description="fraction of a full turn (40 degrees = 0.11)"
    )


class ShiftParams(_Geometric):
    """``RandomTranslation``: shift by up to ``width`` / ``height`` of the image either way."""

    width: float = Field(0.1, ge=0.0, le=1.0, description="fraction of the width")
    height: float = Field(0.1, ge=0.0, le=1.0, description="fraction of the height")


class ShearParams(_Geometric):
    """``RandomShear``: shear by up to ``x_factor`` / ``y_factor`` of the image either way."""

    x_factor: float = Field(
        0.2, ge=0.0, le=1.0, description="shear along the x axis, a fraction of the image"
    )
    y_factor: float = Field(
        0.0, ge=0.0, le=1.0, description="shear along the y axis, a fraction of the image"
    )


class ZoomParams(_Geometric):
    """``RandomZoom``: zoom in or out by up to ``factor`` (0.2: 80% to 120%)."""

    factor: float = Field(0.2, ge=0.0, lt=1.0, description="height zoom range, either way")
    width_factor: float | None = Field(
        None, ge=0.0, lt=1.0, description="width zoom range (default: keep the aspect ratio)"
    )


class FlipParams(BaseModel):
    """``RandomFlip``: mirror images at random."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["horizontal", "vertical", "horizontal_and_vertical"] = Field(
        "horizontal", description="mirror left-right (horizontal), up-down (vertical) or either"
    )


class _ValueRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value_range: tuple[float, float] = Field(
        (0.0, 1.0), description="the pixel range of the data: [0.0, 1.0] from harness loaders"
    )

    @model_validator(mode="after")
    def _ordered(self):
        low, high = self.value_range
        if not low < high:
            raise ValueError(f"value_range must be [low, high] with low < high, got {[low, high]}")
        return self


class BrightnessParams(_ValueRange):
    """``RandomBrightness``: add up to ``factor`` of the value range, either way."""

    factor: float = Field(
        0.2, ge=0.0, le=1.0, description="largest brightness change, a fraction of value_range"
    )


class ContrastParams(_ValueRange):
    """``RandomContrast``: scale contrast by a factor in [1 - factor, 1 + factor]."""

    factor: float = Field(
        0.2, ge=0.0, le=1.0, description="contrast is scaled by [1 - factor, 1 + factor]"
    )


class RescaleParams(BaseModel):
    """``Rescaling``: x * scale + offset."""

    model_config = ConfigDict(extra="forbid")

    scale: float = Field(1 / 255, description="multiplier, e.g. 1/255 for 0-255 pixels")
    offset: float = Field(0.0, description="added after scaling, e.g. -1 with scale 1/127.5")


class CenteringParams(BaseModel):
    """Subtract each image's own mean (the course's ``samplewise_center=True``)."""

    model_config = ConfigDict(extra="forbid")


def make_rotation(params: RotationParams):
    """A ``RandomRotation`` layer."""
    import keras  # lazy: imports TensorFlow

    return [keras.layers.RandomRotation(
        params.factor, fill_mode=params.fill_mode, interpolation=params.interpolation,
        fill_value=params.fill_value, name="aug_rotation",
    )]


def make_shift(params: ShiftParams):
    """A ``RandomTranslation`` layer."""
    import keras  # lazy: imports TensorFlow

    return [keras.layers.RandomTranslation(
        params.height, params.width, fill_mode=params.fill_mode,
        interpolation=params.interpolation, fill_value=params.fill_value, name="aug_shift",
    )]


def make_shear(params: ShearParams):
    """A ``RandomShear`` layer (Keras 3.8 or newer)."""
    import keras  # lazy: imports TensorFlow

    layer = getattr(keras.layers, "RandomShear", None)
    if layer is None:
        raise HarnessError(
            f"[augment.shear] needs keras.layers.RandomShear, which Keras {keras.__version__} "
            "lacks; upgrade Keras (pip install 'keras>=3.8') or drop [augment.shear]"
        )
    return [layer(
        x_factor=params.x_factor, y_factor=params.y_factor, fill_mode=params.fill_mode,
        interpolation=params.interpolation, fill_value=params.fill_value, name="aug_shear",
    )]


def make_zoom(params: ZoomParams):
    """A ``RandomZoom`` layer."""
    import keras  # lazy: imports TensorFlow

    return [keras.layers.RandomZoom(
        params.factor, params.width_factor, fill_mode=params.fill_mode,
        interpolation=params.interpolation, fill_value=params.fill_value, name="aug_zoom",
    )]


def make_flip(params: FlipParams):
    """A ``RandomFlip`` layer."""
    import keras  # lazy: imports TensorFlow

    return [keras.layers.RandomFlip(params.mode, name="aug_flip")]


def make_brightness(params: BrightnessParams):
    """A ``RandomBrightness`` layer."""
    import keras  # lazy: imports TensorFlow

    return [keras.layers.RandomBrightness(
        params.factor, value_range=params.value_range, name="aug_brightness"
    )]


def make_contrast(params: ContrastParams):
    """A ``RandomContrast`` layer."""
    import keras  # lazy: imports TensorFlow

    return [keras.layers.RandomContrast(
        params.factor, value_range=params.value_range, name="aug_contrast"
    )]


def make_rescale(params: RescaleParams):
    """A ``Rescaling`` layer."""
    import keras  # lazy: imports TensorFlow

    return [keras.layers.Rescaling(params.scale, offset=params.offset, name="aug_rescale")]


def make_centering(params: CenteringParams):
    """A layer subtracting each image's mean (see :mod:`harness.layers`)."""
    return [custom_layers().SampleCentering(name="aug_centering")]


@harness.hookimpl
def harness_register_augmentations(register):
    """Register the image augmentations."""
    register("rotation", make_rotation, params=RotationParams,
             description="RandomRotation (factor = fraction of a turn, fill_mode)")
    register("shift", make_shift, params=ShiftParams,
             description="RandomTranslation (width, height fractions, fill_mode)")
    register("shear", make_shear, params=ShearParams,
             description="RandomShear (x_factor, y_factor, fill_mode)")
    register("zoom", make_zoom, params=ZoomParams,
             description="RandomZoom (factor, width_factor, fill_mode)")
    register("flip", make_flip, params=FlipParams,
             description="RandomFlip (horizontal, vertical or both)")
    register("brightness", make_brightness, params=BrightnessParams,
             description="RandomBrightness (factor, value_range)")
    register("contrast", make_contrast, params=ContrastParams,
             description="RandomContrast (factor, value_range)")
    register("rescale", make_rescale, params=RescaleParams,
             description="Rescaling (scale, offset) on training batches")
    register("centering", make_centering, params=CenteringParams,
             description="subtract each image's mean (samplewise_center) on training batches")
