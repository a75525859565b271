"""k-fold cross-validation data: a dataset's training data cut into stratified,
group-aware folds (``[study].folds = K``).

The training and validation splits a loader returns are pooled (the validation
split is then no longer held out: each fold validates on its own part of the pool),
and scikit-learn's ``StratifiedGroupKFold`` (``GroupKFold`` for a regression) cuts
the pool: every example validates in exactly one fold, classes keep their shares
where the groups allow it, and a group (``Dataset.train_groups`` /
``validation_groups``: frames of one hand, cells of one slide) stays inside one
fold. Without groups each example is its own group. The folds are seeded by the
study's seed, so every trial of a study sees the same folds, and the test split is
untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.data import Dataset
from harness.errors import HarnessError


@dataclass(frozen=True)
class Pool:
    """The pooled training data, as arrays in their compact form (before ``batch_map``)."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Fold:
    """One fold: the pool's rows it trains on and the rows it validates on, and its data."""

    index: int
    train_rows: np.ndarray
    validation_rows: np.ndarray
    dataset: Dataset


def _arrays(split: Any) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in split.batch(1024).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def pool_of(dataset: Dataset) -> Pool:
    """The dataset's training and validation examples together, with their groups."""
    parts = [dataset.train] + ([dataset.validation] if dataset.validation is not None else [])
    arrays = [_arrays(part) for part in parts]
    if dataset.train_groups is not None and not np.array_equal(
        _arrays(dataset.train)[1], arrays[0][1]
    ):
        # The groups name the split's examples in its order; a split read in another
        # order each pass (images streamed from disk in shuffled chunks) cannot be matched.
        raise HarnessError(
            f"[study].folds: dataset {dataset.info.name!r} reads its training examples in a "
            "different order on each pass (streamed from disk), so their groups cannot be "
            "matched; hold the images in memory ([dataset] cache = 'memory') or a smaller "
            "image_size"
        )
    x = np.concatenate([a[0] for a in arrays])
    y = np.concatenate([a[1] for a in arrays])
    known = [dataset.train_groups] + (
        [dataset.validation_groups] if dataset.validation is not None else []
    )
    if all(g is not None for g in known):
        groups = np.concatenate([np.asarray(g).astype(str) for g in known])
        if len(groups) != len(y):
            raise HarnessError(
                f"dataset {dataset.info.name!r} gave {len(groups)} group names for {len(y)} "
                "examples; its loader must give one per example of each split"
            )
    else:
        groups = np.arange(len(y)).astype(str)
    return Pool(x, y, groups)


def check_folds(pool: Pool, folds: int, task: str) -> None:
    """Refuse, in one line, more folds than the smallest class or the groups allow."""
    groups = len(np.unique(pool.groups))
    if groups < folds:
        raise HarnessError(
            f"[study].folds = {folds}: the training data has {groups} groups (of "
            f"{len(pool)} examples); give at most {groups} folds"
        )
    if task in ("binary", "multiclass"):
        classes, counts = np.unique(pool.y.reshape(len(pool), -1)[:, 0], return_counts=True)
        smallest = int(counts.min())
        if smallest < folds:
            name = classes[int(np.argmin(counts))]
            raise HarnessError(
                f"[study].folds = {folds}: class {name} has only {smallest} examples, so some "
                f"fold would not validate it; give at most {smallest} folds"
            )


def make_folds(dataset: Dataset, folds: int, seed: int) -> list[Fold]:
    """Cut the dataset's pooled training data into ``folds`` folds (see the module)."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    pool = pool_of(dataset)
    task = dataset.info.task
    check_folds(pool, folds, task)
    rows = np.arange(len(pool))
    if task in ("binary", "multiclass"):
        labels = pool.y.reshape(len(pool), -1)[:, 0]
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        cuts = splitter.split(rows, labels, pool.groups)
    else:
        cuts = GroupKFold(n_splits=folds).split(rows, groups=pool.groups)
    return [
        Fold(index, train, validation, _fold_dataset(dataset, pool, train, validation))
        for index, (train, validation) in enumerate(cuts)
    ]


def _fold_dataset(dataset: Dataset, pool: Pool, train: np.ndarray, validation: np.ndarray):
    import tensorflow as tf  # lazy: imports TensorFlow

    def split(rows):
        return tf.data.Dataset.from_tensor_slices((pool.x[rows], pool.y[rows]))

    return Dataset(
        dataset.info,
        split(train),
        split(validation),
        dataset.test,
        train_size=len(train),
        batch_map=dataset.batch_map,
        train_groups=pool.groups[train],
        validation_groups=pool.groups[validation],
    )


_FOLDS: dict[tuple[int, int, int], list[Fold]] = {}


def cached_folds(dataset: Dataset, folds: int, seed: int) -> list[Fold]:
    """:func:`make_folds`, once per process for a loaded dataset (every trial of a study
    sees the same folds)."""
    key = (id(dataset), folds, seed)
    if key not in _FOLDS:
        _FOLDS.clear()  # one dataset's folds at a time: a process serves one study
        _FOLDS[key] = make_folds(dataset, folds, seed)
    return _FOLDS[key]
