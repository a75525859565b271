"""``csv_table``: any CSV of numeric feature columns and one label column (pandas).

The task is inferred from the label column unless given: integer, boolean or
string labels with at most ``MAX_AUTO_CLASSES`` distinct values are a
classification (binary with two), anything else (floats, many integers) a
regression. Class names are the sorted distinct label values. Features are
z-scored with the training rows' mean and standard deviation (recorded in
``DatasetInfo.preprocessing``) unless ``standardize = false``. There is no test
split: ``validation_split`` of the rows validate, chosen with the study's seed
and stratified by class for a classification. With ``group`` (a column naming
which rows belong together, e.g. a patient id), whole groups are held out
(:func:`harness.data.stratified_group_split`) and the loader gives each row's
group beside its label.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import harness
from harness.data import (
    Dataset,
    DatasetInfo,
    LoadContext,
    SplitLabels,
    from_arrays,
    stratified_group_split,
)
from harness.errors import HarnessError

from ._arrays import carve_validation, user_path

MAX_AUTO_CLASSES = 50


class CsvTableParams(BaseModel):
    """Parameters of ``csv_table``."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the CSV file (first row: column names)")
    label: str = Field(description="name of the label column")
    features: list[str] | None = Field(
        None, min_length=1, description="feature columns; default: every other numeric column"
    )
    task: Literal["auto", "binary", "multiclass", "regression"] = Field(
        "auto",
        description=f"auto: integer/string labels with <= {MAX_AUTO_CLASSES} values are "
        "classes, anything else regression",
    )
    validation_split: float = Field(
        0.2, gt=0, lt=1, description="share of the rows held out for validation with the "
        "study's seed (stratified by class for a classification)"
    )
    group: str | None = Field(
        None, description="column naming which rows belong together (a patient, a "
        "subject): a group's rows stay on one side of the validation split; never a feature"
    )
    standardize: bool = Field(True, description="z-score features with training-set statistics")
    delimiter: str = Field(",", min_length=1, max_length=1, description="field separator")
    drop_missing: bool = Field(
        False, description="drop rows with an empty label or feature cell instead of failing"
    )


def _listing(names, limit: int = 8) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _read(params: CsvTableParams):
    import pandas as pd  # lazy: importing it with the plugins costs every run 0.4 s

    path = user_path(params.path, "csv_table [dataset] path")
    if not path.is_file():
        raise HarnessError(f"{path} is a folder; set [dataset] path to the CSV file itself")
    try:
        frame = pd.read_csv(path, sep=params.delimiter)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise HarnessError(
            f"{path}: not a readable CSV ({type(exc).__name__}: {str(exc).strip()[:200]}); "
            "check the file and [dataset] delimiter"
        ) from None
    frame.columns = [str(c) for c in frame.columns]
    return path, frame


def _feature_columns(params: CsvTableParams, frame, path) -> tuple[list[str], list[str]]:
    """(feature columns, skipped non-numeric columns)."""
    import pandas as pd  # lazy: importing it with the plugins costs every run 0.4 s

    columns = list(frame.columns)
    if params.label not in columns:
        raise HarnessError(
            f"{path}: no label column {params.label!r}; set [dataset] label to one of the "
            f"columns: {_listing(columns, 40)}"
        )
    if params.group is not None and params.group not in columns:
        raise HarnessError(
            f"{path}: no group column {params.group!r}; set [dataset] group to one of the "
            f"columns: {_listing(columns, 40)}"
        )
    if params.features is None:
        others = [c for c in columns if c not in (params.label, params.group)]
        features = [c for c in others if pd.api.types.is_numeric_dtype(frame[c])]
        skipped = [c for c in others if c not in features]
        if not features:
            raise HarnessError(
                f"{path}: no numeric column besides the label {params.label!r} "
                f"(non-numeric: {_listing(skipped)}); encode the features as numbers"
            )
        return features, skipped
    unknown = [c for c in params.features if c not in columns]
    if unknown:
        raise HarnessError(
            f"{path}: [dataset] features names unknown column(s) {_listing(unknown)}; the "
            f"columns are: {_listing(columns, 40)}"
        )
    if params.label in params.features:
        raise HarnessError(
            f"{path}: [dataset] features includes the label column {params.label!r}; remove it"
        )
    if params.group is not None and params.group in params.features:
        raise HarnessError(
            f"{path}: [dataset] features includes the group column {params.group!r} (a model "
            "would learn the groups, not the task); remove it"
        )
    text = [c for c in params.features if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise HarnessError(
            f"{path}: feature column(s) {_listing(text)} are not numeric; encode them as "
            "numbers or leave them out of [dataset] features"
        )
    return list(dict.fromkeys(params.features)), []


def _labels(params: CsvTableParams, column, path):
    """(task, label array, class names or None) for the label column."""
    import pandas as pd  # lazy: importing it with the plugins costs every run 0.4 s

    values = column.to_numpy()
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    discrete = not numeric or pd.api.types.is_integer_dtype(column)
    distinct = column.unique()
    task = params.task
    if task == "auto":
        if discrete and len(distinct) <= MAX_AUTO_CLASSES:
            task = "binary" if len(distinct) == 2 else "multiclass"
        elif numeric:
            task = "regression"
        else:
            raise HarnessError(
                f"{path}: label column {params.label!r} has {len(distinct)} distinct "
                f"non-numeric values (more than {MAX_AUTO_CLASSES}); set [dataset] task "
                "explicitly (multiclass) or pick another label column"
            )
    if task == "regression":
        if not numeric:
            raise HarnessError(
                f"{path}: label column {params.label!r} is not numeric, so it cannot be a "
                "regression target; set [dataset] task to binary or multiclass"
            )
        return task, values.astype("float32"), None
    if numeric and not pd.api.types.is_integer_dtype(column):
        if (values != np.round(values)).any():
            raise HarnessError(
                f"{path}: label column {params.label!r} holds fractional values, which are not "
                f'class labels; set [dataset] task = "regression"'
            )
    classes = sorted(distinct.tolist(), key=lambda v: (isinstance(v, str), v))
    if len(classes) < 2:
        raise HarnessError(
            f"{path}: label column {params.label!r} has a single value ({classes[0]!r}); a "
            "classifier needs at least 2 classes"
        )
    if task == "binary" and len(classes) != 2:
        raise HarnessError(
            f'{path}: [dataset] task = "binary" but label column {params.label!r} has '
            f'{len(classes)} classes ({_listing(classes)}); use task = "multiclass"'
        )
    ids = pd.Categorical(values, categories=classes).codes.astype("int32")
    names = tuple(_class_name(v) for v in classes)
    return task, ids, names


def _class_name(value) -> str:
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def _checked_table(params: CsvTableParams):
    """Read the CSV and check it: (path, frame, features, skipped columns, dropped rows,
    task, labels, class names)."""
    path, frame = _read(params)
    features, skipped = _feature_columns(params, frame, path)
    used = [*features, params.label, *([params.group] if params.group else [])]
    empty = [c for c in used if frame[c].isna().any()]
    dropped = 0
    if empty:
        if not params.drop_missing:
            raise HarnessError(
                f"{path}: empty or NaN cells in column(s) {_listing(empty)}; fill them, or set "
                "drop_missing = true in the [dataset] table to drop those rows"
            )
        before = len(frame)
        frame = frame.dropna(subset=used)
        dropped = before - len(frame)
    _refuse_infinite(frame, used, path)
    if len(frame) < 2:
        raise HarnessError(f"{path}: {len(frame)} usable row(s); a CSV needs at least 2 rows")
    task, y, class_names = _labels(params, frame[params.label], path)
    return path, frame, features, skipped, dropped, task, y, class_names


def _refuse_infinite(frame, columns: list[str], path) -> None:
    """An ``inf`` cell (pandas reads "inf" as a number) would make every trial's loss NaN."""
    import pandas as pd  # lazy: importing it with the plugins costs every run 0.4 s

    for column in columns:
        if not pd.api.types.is_float_dtype(frame[column]):
            continue
        infinite = np.isinf(frame[column].to_numpy())
        if infinite.any():
            row = int(np.argmax(infinite))
            raise HarnessError(
                f"{path}: column {column!r} holds an infinite value (first on line {row + 2}: "
                f"{float(frame[column].iloc[row])}); replace it with a finite number or drop "
                "the row"
            )


def _split_rows(params: CsvTableParams, frame, task, y, class_names, seed: int, path):
    """``(train rows, validation rows, groups)`` of the checked table, groups None without
    ``group``."""
    rows = np.arange(len(y))
    if params.group is None:
        train, _, val, _ = carve_validation(
            rows, y, params.validation_split, seed, f"csv_table {path}",
            stratify=task != "regression",
        )
        return train, val, None
    groups = frame[params.group].astype(str).to_numpy()
    try:
        train, val = stratified_group_split(
            None if task == "regression" else y, groups, params.validation_split, seed,
            class_names,
        )
    except HarnessError as exc:
        raise HarnessError(f"{path}: group column {params.group!r}: {exc}") from None
    return train, val, groups


def check_csv_table(params: CsvTableParams) -> None:
    """Before a run: the CSV is readable, its columns are there and numeric, its labels
    make sense, and with ``group`` every class has groups on both sides (a small table is
    read whole; nothing is kept)."""
    path, frame, _, _, _, task, y, class_names = _checked_table(params)
    if params.group is not None:
        _split_rows(params, frame, task, y, class_names, 0, path)


def csv_table_splits(params: CsvTableParams, seed: int) -> SplitLabels:
    """The labels (and groups) of each split a trial with ``seed`` loads."""
    path, frame, _, _, _, task, y, class_names = _checked_table(params)
    train, val, groups = _split_rows(params, frame, task, y, class_names, seed, path)
    return SplitLabels(
        {"train": y[train], "validation": y[val]},
        class_names,
        {} if groups is None else {"train": groups[train], "validation": groups[val]},
    )


def load_csv_table(params: CsvTableParams, context: LoadContext) -> Dataset:
    """A CSV's numeric columns as features and one column as the label (class or value)."""
    path, frame, features, skipped, dropped, task, y, class_names = _checked_table(params)
    x = frame[features].to_numpy(dtype="float64")
    train, val, groups = _split_rows(params, frame, task, y, class_names, context.seed, path)
    x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
    how = ", stratified" if task != "regression" else ""
    if groups is not None:
        how += f", whole groups of column {params.group!r}"
    preprocessing: dict = {
        "source": str(path),
        "features": features,
        "label": params.label,
        "validation": f"{params.validation_split:g} of the rows{how} (seed {context.seed})",
        "validation_source": "train",
    }
    if skipped:
        preprocessing["skipped_columns"] = skipped
    if dropped:
        preprocessing["dropped_rows"] = dropped
    if params.standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_train = (x_train - mean) / std
        x_val = (x_val - mean) / std
        preprocessing["standardize"] = {"mean": mean.tolist(), "std": std.tolist()}
    info = DatasetInfo(
        name="csv_table",
        input_shape=(len(features),),
        task=task,
        num_classes=len(class_names) if class_names else None,
        class_names=class_names,
        preprocessing=preprocessing,
    )
    return from_arrays(
        info,
        x_train.astype("float32"),
        y_train,
        x_val.astype("float32"),
        y_val,
        groups_train=None if groups is None else groups[train],
        groups_val=None if groups is None else groups[val],
    )


@harness.hookimpl
def harness_register_datasets(register):
    """Register ``csv_table``."""
    register(
        "csv_table",
        load_csv_table,
        params=CsvTableParams,
        description="any CSV: numeric feature columns + one label column (class or value)",
        check=check_csv_table,
        splits=csv_table_splits,
    )
