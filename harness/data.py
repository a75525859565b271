"""The Dataset contract between dataset plugins and the trial runner, and helpers for loaders."""

from __future__ import annotations

import hashlib
import json
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
    """

    info: DatasetInfo
    train: Any
    validation: Any | None = None
    test: Any | None = None
    train_size: int | None = None


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
    import tensorflow as tf

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
