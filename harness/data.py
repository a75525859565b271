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
    #: Which examples belong together (frames of one hand, cells of one patient): one
    #: name per example of ``train`` and of ``validation``, in their order, or None when
    #: unknown. Cross-validation keeps a group inside one fold.
    train_groups: np.ndarray | None = None
    validation_groups: np.ndarray | None = None

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


@dataclass(frozen=True)
class SplitLabels:
    """The labels (and groups) of each split as the loader cuts them, without the examples:
    what a dataset's ``splits(params, seed)`` function returns for ``harness validate``.

    ``labels`` maps a split name (``train``, ``validation``, ``test``) to one class id
    per example (or regression targets, when ``class_names`` is None); ``groups``, the
    same splits to one group name per example, when the data has groups.
    """

    labels: dict[str, np.ndarray]
    class_names: tuple[str, ...] | None = None
    groups: dict[str, np.ndarray | None] = field(default_factory=dict)
    #: One line each about how the splits were cut (e.g. folders pooled), printed first.
    notes: tuple[str, ...] = ()

    def lines(self, most: int = 10) -> list[str]:
        """One line per split: examples per class (all of them up to ``most`` classes, else
        the range) and, with groups, the number of groups."""
        out: list[str] = list(self.notes)
        for split in ("train", "validation", "test"):
            if split not in self.labels:
                continue
            labels = np.asarray(self.labels[split]).reshape(-1)
            text = f"{split}: {len(labels):,} examples"
            if self.class_names is not None:
                counts = np.bincount(labels.astype(np.int64), minlength=len(self.class_names))
                if len(self.class_names) <= most:
                    text += " (" + ", ".join(
                        f"{name} {count:,}"
                        for name, count in zip(self.class_names, counts, strict=False)
                    ) + ")"
                else:
                    low = int(np.argmin(counts))
                    text += (
                        f" ({len(self.class_names)} classes, {counts.min():,} to "
                        f"{counts.max():,} each; fewest: {self.class_names[low]})"
                    )
            groups = self.groups.get(split)
            if groups is not None:
                text += f", {len(np.unique(np.asarray(groups).astype(str))):,} groups"
            out.append(text)
        named = [s for s in ("train", "validation", "test") if self.groups.get(s) is not None]
        for position, first in enumerate(named):
            for second in named[position + 1 :]:
                shared = np.intersect1d(
                    np.asarray(self.groups[first]).astype(str),
                    np.asarray(self.groups[second]).astype(str),
                )
                same = np.array_equal(self.groups[first], self.groups[second])
                if len(shared) and not same:  # same: validation = "test", said elsewhere
                    out.append(
                        f"note: {first} and {second} share {len(shared):,} groups (e.g. "
                        f"{shared[0]}), so {second} is not independent of {first}"
                    )
        return out


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


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded random sample of ``size`` rows, stratified by class.

    What ``limit`` means for the built-in loaders: each class keeps its share of
    ``size`` (rounded as in :func:`stratified_split`, so a class with at least 2
    rows keeps at least one), the rows within a class are drawn with ``seed``, and
    the same seed gives the same rows. ``size`` at or above ``len(labels)`` keeps
    every row.
    """
    labels = np.asarray(labels).reshape(-1)
    if size >= len(labels):
        return np.arange(len(labels))
    kept, _ = stratified_split(labels, 1.0 - size / len(labels), seed)
    return kept


def stratified_group_split(
    labels: np.ndarray | None,
    groups: np.ndarray | None,
    validation_split: float,
    seed: int,
    class_names: tuple[str, ...] | list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, validation)`` that keep each group on one side, seeded.

    ``groups`` names the group of each row (frames of one hand, cells of one
    patient); ``None`` falls back to :func:`stratified_split`. ``labels`` are class
    ids (``None`` for regression targets: groups are then drawn at random with
    scikit-learn's ``GroupShuffleSplit``).

    When every group lies within one class, each class holds out
    ``validation_split`` of its groups (rounded, at least one, never all) with
    ``GroupShuffleSplit``, so every class is on both sides. When groups span
    classes, the split is one fold of scikit-learn's ``StratifiedGroupKFold``
    with ``round(1 / validation_split)`` folds: of its folds, the one that has
    most classes on both sides, then whose size is nearest ``validation_split``.
    A class whose rows all belong to one group cannot be on both sides: that is
    a :class:`~harness.errors.HarnessError` naming the class. The result depends
    on the rows' (label, group) pairs and ``seed``, not on their order; both
    index arrays are sorted.
    """
    import warnings

    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    from harness.errors import HarnessError

    if groups is None:
        if labels is None:
            raise ValueError("stratified_group_split needs labels or groups")
        return stratified_split(labels, validation_split, seed)
    if not 0.0 < validation_split < 1.0:
        raise ValueError("validation_split must be between 0 and 1")
    groups = np.asarray(groups).astype(str).reshape(-1)
    names, group_ids = np.unique(groups, return_inverse=True)
    if len(names) < 2:
        raise HarnessError(
            f"every example is in one group ('{names[0]}'), so no validation split can keep "
            "groups apart; check the group setting (it must tell examples apart)"
        )
    rows = np.arange(len(groups))
    if labels is None:
        count = min(len(names) - 1, max(1, int(round(len(names) * validation_split))))
        splitter = GroupShuffleSplit(n_splits=1, test_size=count, random_state=seed)
        # Sorting by group name first makes the draw independent of the rows' order.
        by_name = np.argsort(group_ids, kind="stable")
        train, val = next(splitter.split(by_name, groups=group_ids[by_name]))
        return np.sort(by_name[train]), np.sort(by_name[val])
    labels = np.asarray(labels).reshape(-1)
    classes, class_ids = np.unique(labels, return_inverse=True)

    def label(index: int) -> str:
        value = classes[index]
        if class_names is not None and 0 <= int(value) < len(class_names):
            return str(class_names[int(value)])
        return str(value)

    pairs = np.unique(np.stack([group_ids, class_ids]), axis=1)
    for index in range(len(classes)):
        owned = pairs[0][pairs[1] == index]
        if len(owned) < 2:
            raise HarnessError(
                f"class {label(index)!r} has a single group ('{names[owned[0]]}'), so a "
                "validation split that keeps each group on one side leaves the class out of "
                "one side; check the group setting, or add examples of other groups"
            )
    val_mask = np.zeros(len(groups), dtype=bool)
    if len(np.unique(pairs[0])) == pairs.shape[1]:  # each group within one class
        for index in range(len(classes)):
            owned = np.sort(pairs[0][pairs[1] == index])
            count = min(len(owned) - 1, max(1, int(round(len(owned) * validation_split))))
            splitter = GroupShuffleSplit(n_splits=1, test_size=count, random_state=seed + index)
            _, picked = next(splitter.split(owned, groups=owned))
            val_mask |= np.isin(group_ids, owned[picked])
    else:
        folds = min(len(names), max(2, int(round(1 / validation_split))))
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        by_name = np.lexsort((class_ids, group_ids))  # order-independent input
        best = None
        with warnings.catch_warnings():  # "least populated class has fewer members than folds"
            warnings.simplefilter("ignore", UserWarning)
            for _, val in splitter.split(by_name, class_ids[by_name], group_ids[by_name]):
                mask = np.zeros(len(groups), dtype=bool)
                mask[by_name[val]] = True
                both = len(np.intersect1d(class_ids[mask], class_ids[~mask]))
                key = (-both, abs(mask.sum() - validation_split * len(groups)))
                if best is None or key < best[0]:
                    best = (key, mask)
        val_mask = best[1]
        both = np.intersect1d(class_ids[val_mask], class_ids[~val_mask])
        missing = sorted(set(range(len(classes))) - set(both.tolist()))
        if missing:
            raise HarnessError(
                f"no split of the groups puts class {label(missing[0])!r} on both sides of the "
                f"validation split (validation_split = {validation_split:g}); raise "
                "validation_split, or check the group setting"
            )
    return rows[~val_mask], rows[val_mask]


def from_arrays(
    info: DatasetInfo,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    groups_train: np.ndarray | None = None,
    groups_val: np.ndarray | None = None,
) -> Dataset:
    """Wrap in-memory arrays as a :class:`Dataset` (``groups_train`` and ``groups_val``:
    the group of each training and validation example, when the data has groups)."""
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
        train_groups=None if groups_train is None else np.asarray(groups_train),
        validation_groups=None if groups_val is None else np.asarray(groups_val),
    )


def cache_key(name: str, params: dict[str, Any]) -> str:
    """A stable key for one (dataset, resolved parameters) pair."""
    blob = json.dumps({"name": name, "params": params}, sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
