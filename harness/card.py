"""A model card (``best_model.json``, ``MODEL.json``) read as data, never as code.

A card comes from wherever the model came from, so every field ``harness
predict`` uses is validated here (image size, colour mode, pixel range, scaling,
class names, task, standardization) and the image decoder it names is a *name*
looked up among the installed dataset plugins (``register(..., decoder=fn)``),
never an import path. Anything else is refused with one line.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from harness.data import TASKS
from harness.errors import HarnessError

_SCALAR = str | int | float | bool | None


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


class Standardization(BaseModel):
    """Per-column mean and standard deviation of numeric training data (``csv_table``)."""

    model_config = ConfigDict(extra="forbid")

    mean: list[float] = Field(max_length=100_000)
    std: list[float] = Field(max_length=100_000)


class CardPreprocessing(BaseModel):
    """How the training inputs were prepared; descriptive extra keys are kept as plain data."""

    model_config = ConfigDict(extra="allow")

    image_size: tuple[int, int] | None = None
    color_mode: Literal["rgb", "grayscale", "rgba"] | None = None
    rescale: float | None = None
    scale: float | None = None
    offset: float = 0.0
    #: The range of the training images' own pixel values, which ``scale``/``rescale``
    #: applies to (digits: 0..16); ``harness predict`` maps an image file's 0..255 onto it.
    pixel_range: tuple[float, float] = (0.0, 255.0)
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"] = (
        "bilinear"
    )
    decoder: str | None = Field(None, max_length=100)
    standardize: Standardization | None = None

    @field_validator("image_size")
    @classmethod
    def _sides(cls, value):
        if value is not None and not all(1 <= side <= 16_384 for side in value):
            raise ValueError("each side must be between 1 and 16384 pixels")
        return value

    @field_validator("rescale", "scale", "offset")
    @classmethod
    def _finite_number(cls, value):
        return _finite(value)

    @field_validator("pixel_range")
    @classmethod
    def _a_range(cls, value):
        low, high = (_finite(side) for side in value)
        if not low < high:
            raise ValueError(f"must be [low, high] with low < high, got [{low:g}, {high:g}]")
        return value

    @field_validator("decoder")
    @classmethod
    def _a_name(cls, value):
        if value is None:
            return None
        if not value.isidentifier():
            raise ValueError(
                "must be the name of an installed dataset plugin's decoder (e.g. "
                "'image_folder'), not an import path"
            )
        return value

    @model_validator(mode="after")
    def _extras_are_plain_data(self):
        for key, value in (self.model_extra or {}).items():
            if not _plain_data(value):
                raise ValueError(f"{key}: only strings, numbers and lists of them")
        return self


def _plain_data(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _SCALAR):
        return True
    if depth < 3 and isinstance(value, list):
        return all(_plain_data(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict):
        return all(isinstance(k, str) and _plain_data(v, depth + 1) for k, v in value.items())
    return False


class DatasetCard(BaseModel):
    """The dataset part of a model card: what ``predict`` needs to prepare and name inputs."""

    model_config = ConfigDict(extra="allow")

    name: str | None = Field(None, max_length=200)
    task: Literal[TASKS] | None = None  # type: ignore[valid-type]
    num_classes: int | None = Field(None, ge=1, le=1_000_000)
    class_names: list[str] | None = Field(None, max_length=1_000_000)
    input_shape: list[int] | None = Field(None, max_length=8)
    preprocessing: CardPreprocessing = Field(default_factory=CardPreprocessing)


def parse_card(data: Any, where: str) -> dict[str, Any]:
    """Validate a card's dataset section; returns it as a plain dict, or raises one line."""
    if not isinstance(data, dict):
        raise HarnessError(f"{where}: a model card is a JSON object")
    try:
        card = DatasetCard.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        raise HarnessError(
            f"{where}: {key or 'card'}: {message}; fix the model card or pass --card with a "
            "card written by harness"
        ) from None
    return card.model_dump(exclude_none=True)


def find_decoder(name: str | None, plugins: Any, where: str):
    """The decoder a card names, from the installed dataset plugins (None: none named)."""
    if name is None:
        return None
    component = plugins.datasets.components.get(name)
    decoder = getattr(component, "decoder", None)
    if decoder is None:
        offered = sorted(
            n for n, c in plugins.datasets.components.items() if getattr(c, "decoder", None)
        )
        raise HarnessError(
            f"{where}: preprocessing.decoder {name!r} is not a decoder of an installed dataset "
            f"plugin (installed: {', '.join(offered) or 'none'}); fix or remove it"
        )
    return decoder
