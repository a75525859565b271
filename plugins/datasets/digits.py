"""``digits``: scikit-learn's bundled 8x8 handwritten digits (real data, no network)."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.data import (
    Dataset,
    DatasetInfo,
    LoadContext,
    SplitLabels,
    from_arrays,
    stratified_sample,
    stratified_split_arrays,
)

CLASS_NAMES = tuple(str(d) for d in range(10))


class DigitsParams(BaseModel):
    """Parameters of the ``digits`` dataset."""

    model_config = ConfigDict(extra="forbid")

    validation_split: float = Field(0.2, gt=0, lt=1, description="share held out for validation")
    limit: int | None = Field(
        None, ge=20, description="use a random sample of N images, stratified by class and "
        "drawn with the study's seed (quick tests)"
    )
    test_split: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share held out first as a test split, measured once for the best trial "
        "(0: no test split)",
    )


def _arrays(params: DigitsParams, seed: int):
    """``x_train, y_train, x_val, y_val, x_test, y_test`` (test None without test_split)."""
    # lazy: scikit-learn takes ~1 s to import; harness plugins and validate stay fast
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images / 16.0).astype("float32")[..., np.newaxis]
    y = bunch.target.astype("int32")
    if params.limit:
        kept = stratified_sample(y, params.limit, seed)
        x, y = x[kept], y[kept]
    x_test = y_test = None
    if params.test_split:
        # A fixed seed: without limit, the test rows never change with the study's seed.
        x, y, x_test, y_test = stratified_split_arrays(x, y, params.test_split, seed=0)
    return (*stratified_split_arrays(x, y, params.validation_split, seed), x_test, y_test)


def digits_splits(params: DigitsParams, seed: int) -> SplitLabels:
    """The labels of each split a trial with ``seed`` loads (for ``harness validate``)."""
    _, y_train, _, y_val, _, y_test = _arrays(params, seed)
    labels = {"train": y_train, "validation": y_val}
    if y_test is not None:
        labels["test"] = y_test
    return SplitLabels(labels, CLASS_NAMES)


def load_digits(params: DigitsParams, context: LoadContext) -> Dataset:
    """1,797 grey 8x8 digit images scaled to [0, 1], shape (8, 8, 1), 10 classes."""
    x_train, y_train, x_val, y_val, x_test, y_test = _arrays(params, context.seed)
    info = DatasetInfo(
        name="digits",
        input_shape=(8, 8, 1),
        task="multiclass",
        num_classes=10,
        class_names=CLASS_NAMES,
        preprocessing={
            "image_size": [8, 8],
            "color_mode": "grayscale",
            "pixel_range": [0, 16],  # sklearn's grey levels; the model sees them * scale
            "scale": 1 / 16,
            "validation": f"{params.validation_split:g} of the images, stratified "
            f"(seed {context.seed})",
            "validation_source": "train",
        },
    )
    return from_arrays(info, x_train, y_train, x_val, y_val, x_test, y_test)


@harness.hookimpl
def harness_register_datasets(register):
    """Register ``digits``."""
    register(
        "digits",
        load_digits,
        params=DigitsParams,
        description="scikit-learn's 8x8 digits (1,797 images, 10 classes, offline)",
        tasks=("multiclass",),
        splits=digits_splits,
    )
