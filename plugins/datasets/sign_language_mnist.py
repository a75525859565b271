"""``sign_language_mnist``: Kaggle's Sign Language MNIST CSVs, 28x28 grey hands, 24 letters.

Each CSV row is ``label, pixel1 .. pixel784``. Kaggle numbers the letters
0-25 by alphabet position but J (9) and Z (25) need motion and are absent, so
the 24 labels present are mapped to contiguous class ids 0-23 whose class
names are the letters A-I, K-Y (Kaggle label 10, 'K', is class 9).

The CSVs need a Kaggle account to download, so this loader never downloads:
without ``path`` it looks in ``<Keras cache>/sign-language-mnist/`` and
otherwise says where to get the files and where to put them.

Validation: by default ``validation_split`` (0.1) of the train CSV, stratified by
letter and chosen with the study's seed; ``sign_mnist_test.csv`` is the test
split, which the harness measures once for the best trial. ``validation =
"test"`` validates on the test CSV instead (as the course does); it then stays
the test split as well, and the harness warns that the test figure is not
unbiased. A lone CSV (``path`` naming one file, or a folder holding only one of
the two) is the training data, with no test split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

import harness
from harness.data import (
    Dataset,
    DatasetInfo,
    LoadContext,
    SplitLabels,
    from_arrays,
    stratified_sample,
)
from harness.download import keras_cache_dir
from harness.errors import HarnessError

from ._arrays import carve_validation, one_validation_source, scale_images, user_path

KAGGLE_URL = "https://www.kaggle.com/datasets/datamunge/sign-language-mnist"
TRAIN_CSV = "sign_mnist_train.csv"
TEST_CSV = "sign_mnist_test.csv"
LETTERS = tuple("ABCDEFGHIKLMNOPQRSTUVWXY")  # no J (9) and no Z (25): they need motion
COLUMNS = ("label", *(f"pixel{i}" for i in range(1, 785)))
DEFAULT_SPLIT = 0.1


class SignLanguageParams(BaseModel):
    """Parameters of ``sign_language_mnist``."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None,
        description=f"a Kaggle CSV, or a folder with {TRAIN_CSV} and/or {TEST_CSV}; "
        "default: <Keras cache>/sign-language-mnist/",
    )
    validation_split: float = Field(
        DEFAULT_SPLIT,
        gt=0,
        lt=1,
        description="share of the train CSV held out for validation, stratified by letter "
        "and chosen with the study's seed (validation = 'split')",
    )
    validation: Literal["split", "test"] = Field(
        "split",
        description=f"split: validate on a hold-out of the train CSV, so trials are never "
        f"selected on the test split; test: validate on {TEST_CSV}, as the course does (it "
        "stays the test set, but its figure is then biased)",
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="use a random sample of N rows of the train CSV, stratified "
        "by letter and drawn with the study's seed",
    )
    test_limit: int | None = Field(
        None,
        ge=1,
        description="use a random sample of N rows of the test CSV, stratified "
        "by letter and drawn with the study's seed",
    )

    _one_validation_source = model_validator(mode="after")(one_validation_source)


def kaggle_to_class(labels: np.ndarray) -> np.ndarray:
    """Kaggle labels (0-24 without 9) -> contiguous class ids 0-23."""
    labels = np.asarray(labels, dtype="int64")
    return np.where(labels > 9, labels - 1, labels).astype("int32")


def _listing(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _not_found_message(where: str) -> str:
    folder = keras_cache_dir() / "sign-language-mnist"
    return (
        f"{where}. The Sign Language MNIST CSVs need a Kaggle account, so they are never "
        f"downloaded: get {TRAIN_CSV} and {TEST_CSV} from {KAGGLE_URL} (or run "
        "`kaggle datasets download datamunge/sign-language-mnist` and unzip it), put them "
        "in a folder such as data/sign-language-mnist/ and set "
        'path = "data/sign-language-mnist" in the [dataset] table of the study file '
        f"(path may also name one CSV), or put them in {folder}/ and leave path unset"
    )


def read_sign_csv(path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one Kaggle CSV: uint8 images ``(N, 28, 28, 1)`` and class ids 0-23.

    Missing or extra columns, non-numeric or empty cells, labels outside 0-24
    or equal to 9 (J), and pixels outside 0-255 are a HarnessError naming the
    file and the columns.
    """
    import pandas as pd  # lazy: importing it with the plugins costs every run 0.4 s

    try:
        frame = pd.read_csv(path, nrows=limit)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise HarnessError(
            f"{path}: not a readable CSV ({type(exc).__name__}: {str(exc).strip()[:200]}); "
            "expected Kaggle's layout: a header label,pixel1,...,pixel784 then one image a row"
        ) from None
    columns = [str(c) for c in frame.columns]
    missing = [c for c in COLUMNS if c not in columns]
    extra = [c for c in columns if c not in COLUMNS]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing column(s) {_listing(missing)}")
        if extra:
            problems.append(f"unexpected column(s) {_listing(extra)}")
        raise HarnessError(
            f"{path}: {'; '.join(problems)}. A Sign Language MNIST CSV has exactly the columns "
            "label, pixel1, ..., pixel784 (Kaggle's layout)"
        )
    frame = frame[list(COLUMNS)]
    if frame.empty:
        raise HarnessError(f"{path}: no data rows, only the header; one image a row is expected")
    bad = [c for c in COLUMNS if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise HarnessError(f"{path}: non-numeric values in column(s) {_listing(bad)}")
    empty = [c for c in COLUMNS if frame[c].isna().any()]
    if empty:
        raise HarnessError(f"{path}: empty or NaN cells in column(s) {_listing(empty)}")
    values = frame.to_numpy()
    labels = values[:, 0]
    invalid = (labels != np.round(labels)) | (labels < 0) | (labels > 24) | (labels == 9)
    if invalid.any():
        shown = sorted({float(v) if v != int(v) else int(v) for v in labels[invalid]})[:6]
        raise HarnessError(
            f"{path}: column 'label' holds {shown} at {int(invalid.sum())} row(s) (first: data "
            f"row {int(np.argmax(invalid)) + 1}); Kaggle labels are 0-24 without 9 (J needs "
            "motion and is not in the dataset)"
        )
    pixels = values[:, 1:]
    if pixels.size and (
        pixels.min() < 0 or pixels.max() > 255 or (pixels != np.round(pixels)).any()
    ):
        raise HarnessError(
            f"{path}: pixel columns hold values {pixels.min()}..{pixels.max()}, expected "
            "whole numbers 0..255 (unscaled 8-bit grey levels)"
        )
    x = pixels.astype("uint8").reshape(-1, 28, 28, 1)
    return x, kaggle_to_class(labels)


def _csv_files(params: SignLanguageParams) -> tuple[Path | None, Path | None, str]:
    """(train CSV, test CSV, where) from ``path``; a single CSV counts as the train CSV."""
    if params.path is None:
        folder = keras_cache_dir() / "sign-language-mnist"
        if not folder.is_dir():
            raise HarnessError(_not_found_message("sign_language_mnist: [dataset] path is not set"))
    else:
        folder = user_path(params.path, "sign_language_mnist [dataset] path")
        if folder.is_file():
            return folder, None, str(folder)

    def find(name: str) -> Path | None:
        # Kaggle's zip holds both sign_mnist_train.csv and sign_mnist_train/sign_mnist_train.csv.
        for candidate in (folder / name, folder / name.removesuffix(".csv") / name):
            if candidate.is_file():
                return candidate
        return None

    train, test = find(TRAIN_CSV), find(TEST_CSV)
    if train is None and test is None:
        present = sorted(p.name for p in folder.iterdir())
        raise HarnessError(
            _not_found_message(
                f"{folder}: neither {TRAIN_CSV} nor {TEST_CSV} is there "
                f"(it holds: {_listing(present) or 'nothing'})"
            )
        )
    if train is None:
        return test, None, str(folder)
    return train, test, str(folder)


def _sampled_csv(path: Path, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_sign_csv` of the whole file, then ``limit`` rows drawn with
    :func:`harness.data.stratified_sample`."""
    x, y = read_sign_csv(path)
    if limit:
        kept = stratified_sample(y, limit, seed)
        x, y = x[kept], y[kept]
    return x, y


def sign_language_splits(params: SignLanguageParams, seed: int) -> SplitLabels:
    """The labels of each split a trial with ``seed`` loads (for ``harness validate``)."""
    train_csv, test_csv, _ = _csv_files(params)
    x_train, y_train = _sampled_csv(train_csv, params.limit, seed)
    labels: dict[str, np.ndarray] = {}
    if test_csv is not None:
        labels["test"] = _sampled_csv(test_csv, params.test_limit, seed)[1]
    if params.validation == "test":
        labels["validation"] = labels.get("test", np.zeros(0, dtype="int32"))
    else:
        _, y_train, _, labels["validation"] = carve_validation(
            x_train, y_train, params.validation_split, seed, f"sign_language_mnist {train_csv}"
        )
    labels["train"] = y_train
    return SplitLabels(labels, LETTERS)


def load_sign_language_mnist(params: SignLanguageParams, context: LoadContext) -> Dataset:
    """Sign Language MNIST: grey 28x28 hand signs, (28, 28, 1) in [0, 1], 24 letter classes."""
    train_csv, test_csv, where = _csv_files(params)
    x_train, y_train = _sampled_csv(train_csv, params.limit, context.seed)
    x_test = y_test = None
    if test_csv is not None:
        x_test, y_test = _sampled_csv(test_csv, params.test_limit, context.seed)
        x_test = scale_images(x_test, str(test_csv))
    x_train = scale_images(x_train, str(train_csv))
    if params.validation == "test":
        if test_csv is None or not len(y_test):
            _no_test_data(train_csv, where)
        x_val, y_val = x_test, y_test  # still the test split too: the harness says it is biased
        validation = f"{test_csv.name} (validation = 'test')"
        source = "test"
    else:
        x_train, y_train, x_val, y_val = carve_validation(
            x_train,
            y_train,
            params.validation_split,
            context.seed,
            f"sign_language_mnist {train_csv}",
        )
        validation = (
            f"{params.validation_split:g} of {train_csv.name}, stratified (seed {context.seed})"
        )
        source = "train"
    info = DatasetInfo(
        name="sign_language_mnist",
        input_shape=(28, 28, 1),
        task="multiclass",
        num_classes=len(LETTERS),
        class_names=LETTERS,
        preprocessing={
            "image_size": [28, 28],
            "color_mode": "grayscale",
            "rescale": 1 / 255,
            "source": where,
            "label_map": "Kaggle label k -> class k (k < 9), k - 1 (k > 9)",
            "validation": validation,
            "validation_source": source,
        },
    )
    return from_arrays(info, x_train, y_train, x_val, y_val, x_test, y_test)


def _no_test_data(train_csv: Path, where: str):
    raise HarnessError(
        f"sign_language_mnist {where}: validation = 'test' but there is no test data (only "
        f"{train_csv.name} has rows, and a lone CSV is the training data); put {TEST_CSV} next "
        f"to {TRAIN_CSV}, or remove validation = 'test' to hold out validation_split of the "
        "training rows"
    )


def check_sign_language_mnist(params: SignLanguageParams) -> None:
    """Before a run: the CSVs are where ``path`` says, with Kaggle's columns, numeric
    cells, labels 0-24 without 9 and pixels 0-255 (each CSV is read once, whole, since
    ``limit`` samples from every row; a few seconds for the full dataset)."""
    train_csv, test_csv, where = _csv_files(params)
    if params.validation == "test" and test_csv is None:
        _no_test_data(train_csv, where)
    read_sign_csv(train_csv)
    if test_csv is not None:
        read_sign_csv(test_csv)


@harness.hookimpl
def harness_register_datasets(register):
    """Register ``sign_language_mnist``."""
    register(
        "sign_language_mnist",
        load_sign_language_mnist,
        params=SignLanguageParams,
        description="Kaggle Sign Language MNIST CSVs, 28x28 grey, 24 letters (local files)",
        tasks=("multiclass",),
        check=check_sign_language_mnist,
        splits=sign_language_splits,
    )
