"""``linear``: the course's first network, one neuron learning y = 2x - 1 from six points.

The course trains on x = -1, 0, 1, 2, 3, 4 and nothing is held out, so by
default the *training points are also the validation set*: ``val_loss`` then
exists (objectives and pruning need it) and equals the loss on the same
points, measured after the epoch. Set ``validation = true`` to hold out
``validation_split`` of the points instead.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.data import Dataset, DatasetInfo, LoadContext, from_arrays

from ._arrays import carve_validation


class LinearParams(BaseModel):
    """Parameters of ``linear``."""

    model_config = ConfigDict(extra="forbid")

    points: int = Field(
        6, ge=2, le=1_000_000, description="x = -1, 0, 1, ... (points values, step 1)"
    )
    slope: float = Field(2.0, description="y = slope * x + intercept")
    intercept: float = Field(-1.0, description="y = slope * x + intercept")
    noise: float = Field(0.0, ge=0.0, description="std of Gaussian noise added to y (study seed)")
    validation: bool = Field(
        False,
        description="hold out validation_split of the points; default: validate on the "
        "training points themselves",
    )
    validation_split: float = Field(
        0.25, gt=0, lt=1, description="share held out when validation = true"
    )


def linear_points(params: LinearParams, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x with shape (points, 1) and y with shape (points,), both float32."""
    x = np.arange(params.points, dtype="float64") - 1.0
    y = params.slope * x + params.intercept
    if params.noise:
        y = y + np.random.default_rng(seed).normal(0.0, params.noise, size=y.shape)
    return x.astype("float32")[:, np.newaxis], y.astype("float32")


def load_linear(params: LinearParams, context: LoadContext) -> Dataset:
    """x = -1, 0, 1, 2, 3, 4 and y = 2x - 1 (regression, input shape (1,))."""
    x, y = linear_points(params, context.seed)
    if params.validation:
        x_train, y_train, x_val, y_val = carve_validation(
            x, y, params.validation_split, context.seed, "linear", stratify=False
        )
        validation = f"{params.validation_split:g} of the points (seed {context.seed})"
    else:
        x_train, y_train, x_val, y_val = x, y, x, y
        validation = "the training points (nothing held out)"
    info = DatasetInfo(
        name="linear",
        input_shape=(1,),
        task="regression",
        preprocessing={
            "x": f"-1 .. {params.points - 2} step 1",
            "y": f"{params.slope:g} * x + {params.intercept:g}",
            "noise_std": params.noise,
            "validation": validation,
            "validation_source": "train",
        },
    )
    return from_arrays(info, x_train, y_train, x_val, y_val)


@harness.hookimpl
def harness_register_datasets(register):
    """Register ``linear``."""
    register(
        "linear",
        load_linear,
        params=LinearParams,
        description="six points of y = 2x - 1 (the course's first neuron; regression)",
        tasks=("regression",),
    )
