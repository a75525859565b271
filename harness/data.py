"""The Dataset contract between dataset plugins and the trial runner, and helpers for loaders."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Task = Literal["binary", "multiclass", "regression", "next_token"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression", "next_token")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model builder needs to know about the data (no tensors)."""

    name: str
    input_shape: tuple[int, ...]
    task: Task
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    vocabulary: tuple[str, ...] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.task in ("binary", "multiclass", "next_token") and not self.num_classes:
            raise ValueError(f"a {self.task} dataset needs num_classes")
        if self.task == "binary" and self.num_classes != 2:
            raise ValueError("a binary dataset has exactly 2 classes")

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe description, for model cards."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data


@dataclass
class Dataset:
    """Unbatched ``tf.data`` splits plus their description.

    ``train`` and ``validation`` yield ``(features, label)`` pairs; ``test`` is
    optional. Labels are integer class ids (binary: 0/1; multiclass and
    next_token: 0..num_classes-1) or floats for regression.

    ``batch_map(x, y) -> (x, y)``, when set, turns a *batch* of any split into what the
    model takes, e.g. uint8 images into float32 in [0, 1]: every consumer batches first
    and then applies it (:meth:`model_batches`), so the work is vectorized once per batch
    and the splits can be held in memory in their compact form.
    """

    info: DatasetInfo
    train: Any
    validation: Any | None = None
    test: Any | None = None
    train_size: int | None = None
    batch_map: Callable[[Any, Any], tuple[Any, Any]] | None = None

    def model_batches(self, batches: Any) -> Any:
        """Batches of one of this dataset's splits (``split.batch(n)``, shuffled or not),
        as the model takes them: ``batch_map`` applied in a parallel map."""
        if self.batch_map is None:
            return batches
        import tensorflow as tf  # lazy: imports TensorFlow

        return batches.map(self.batch_map, num_parallel_calls=tf.data.AUTOTUNE)

    def model_split(self, name: str) -> Any:
        """The unbatched split ``name`` as the model sees it (for inspection and tests;
        training batches first, see :meth:`model_batches`)."""
        split = getattr(self, name)
        if split is None or self.batch_map is None:
            return split
        return self.model_batches(split.batch(1)).unbatch()


@dataclass(frozen=True)
class LoadContext:
    """What a loader may use besides its parameters: a cache folder and the study's seed."""

    cache_dir: Path
    seed: int = 0


def split_arrays(
    x: np.ndarray, y: np.ndarray, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle with ``seed`` and hold out ``validation_split`` of the rows, not stratified."""
    if not 0.0 < validation_split < 1.0:
        raise ValueError("validation_split must be between 0 and 1")
    order = np.random.default_rng(seed).permutation(len(x))
    cut = len(x) - max(1, int(round(len(x) * validation_split)))
    train, val = order[:cut], order[cut:]
    return x[train], y[train], x[val], y[val]


#: Where a loader's validation rows come from, recorded as ``preprocessing["validation_source"]``:
#: "train" (held out from, or equal to, the training data), "validation" (a dedicated
#: validation split, folder or file) or "test" (the test split: selection on it is biased).
VALIDATION_SOURCES: tuple[str, ...] = ("train", "validation", "test")


def stratified_split(
    labels: np.ndarray, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, validation)``: ``validation_split`` of each class, seeded.

    Each class holds out its exact share rounded down; then the classes with the
    largest remainders (ties broken with ``seed``) are rounded up until the total
    is ``round(len(labels) * validation_split)``. So every class's validation
    count is its share rounded down or up. A class with at least 2 rows keeps at
    least one row in each part (on tiny data that can hold out a few rows more);
    a class of one row stays in training, unless every class has a single row,
    when whole rows are held out at random (nothing else could validate). Which
    rows of a class validate is chosen with ``seed``: the same seed gives the
    same split. Both index arrays are sorted; ``validation_split = 0`` holds out
    nothing.
    """
    labels = np.asarray(labels).reshape(-1)
    if not 0.0 <= validation_split < 1.0:
        raise ValueError("validation_split must be in [0, 1)")
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    held = np.zeros(len(classes), dtype=np.int64)
    if validation_split > 0 and len(labels):
        total = max(1, int(round(len(labels) * validation_split)))
        several = counts >= 2
        if several.any():
            exact = counts * validation_split
            held = np.where(several, np.clip(np.floor(exact), 1, counts - 1), 0).astype(np.int64)
            short = total - int(held.sum())
            if short > 0:  # round up the classes with the largest remainders, random ties
                remainder = np.where(several & (held < counts - 1), exact - held, -1.0)
                order = np.lexsort((rng.random(len(classes)), -remainder))
                held[order[remainder[order] > 0][:short]] += 1
        else:  # only singletons: a plain seeded hold-out, training keeps at least one row
            picked = rng.permutation(len(classes))[: min(total, len(classes) - 1)]
            held[picked] = 1
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for index in range(len(classes)):
        rows = rng.permutation(np.flatnonzero(inverse == index))
        val.append(rows[: held[index]])
        train.append(rows[held[index] :])
    empty = np.zeros(0, dtype=np.int64)
    return (
        np.sort(np.concatenate([empty, *train])),
        np.sort(np.concatenate([empty, *val])),
    )


def stratified_split_arrays(
    x: np.ndarray, y: np.ndarray, validation_split: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`stratified_split` applied to ``(x, y)``: ``x_train, y_train, x_val, y_val``.

    Rows keep their original order within each part. ``y`` must be class
    labels; for regression targets use :func:`split_arrays`.
    """
    if not 0.0 < validation_split < 1.0:
        raise ValueError("validation_split must be between 0 and 1")
    train, val = stratified_split(y, validation_split, seed)
    return x[train], y[train], x[val], y[val]


def from_arrays(
    info: DatasetInfo,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
) -> Dataset:
    """Wrap in-memory arrays as a :class:`Dataset`."""
    import tensorflow as tf  # lazy: imports TensorFlow

    def make(x, y):
        if x is None:
            return None
        return tf.data.Dataset.from_tensor_slices((x, y))

    return Dataset(
        info,
        make(x_train, y_train),
        make(x_val, y_val),
        make(x_test, y_test),
        train_size=len(x_train),
    )


def cache_key(name: str, params: dict[str, Any]) -> str:
    """A stable key for one (dataset, resolved parameters) pair."""
    blob = json.dumps({"name": name, "params": params}, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
