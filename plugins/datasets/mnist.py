"""``mnist`` and ``fashion_mnist``: 28x28 grey images, 10 classes, from IDX .gz files or a .npz.

Local formats (``[dataset] path``):

* a folder holding the four IDX files ``train-images-idx3-ubyte.gz``,
  ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
  ``t10k-labels-idx1-ubyte.gz`` (gzipped or not); other file names (a subset
  such as ``t10k-images-idx3-ubyte.first2000.gz``) are set with the
  ``train_images`` / ``train_labels`` / ``test_images`` / ``test_labels``
  parameters;
* a keras-layout ``.npz`` file (``x_train``, ``y_train``, ``x_test``, ``y_test``);
* a folder holding one such ``.npz`` (``mnist*.npz`` / ``fashion*mnist*.npz``)
  and not the four standard IDX files.

Without ``path`` the files are downloaded into the Keras cache from the
URLs ``keras.datasets`` uses.

Validation: by default ``validation_split`` (0.1) of the training images,
stratified by class and chosen with the study's seed; the t10k images are the
test split, which the harness measures once for the best trial.
``validation = "test"`` validates on the t10k images instead (as the course
notebooks do); they then stay the test split as well, and the harness warns
that the test figure is not unbiased. ``preprocessing["validation_source"]``
records which ("train" or "test").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
from harness.download import fetch, keras_cache_dir
from harness.errors import HarnessError

from ._arrays import (
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    as_images,
    carve_validation,
    one_validation_source,
    read_idx,
    read_npz,
    scale_images,
    user_path,
)

#: Share of the training images held out for validation by default.
DEFAULT_SPLIT = 0.1
KERAS_BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
#: The official Fashion-MNIST MD5 checksums (github.com/zalandoresearch/fashion-mnist).
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
#: Parameter name -> (standard IDX file name, magic number).
IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", IDX_IMAGES_MAGIC),
    "train_labels": ("train-labels-idx1-ubyte.gz", IDX_LABELS_MAGIC),
    "test_images": ("t10k-images-idx3-ubyte.gz", IDX_IMAGES_MAGIC),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", IDX_LABELS_MAGIC),
}
STANDARD_NAMES = ", ".join(name for name, _ in IDX_FILES.values())


class MnistParams(BaseModel):
    """Parameters of ``mnist`` and ``fashion_mnist``."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        None,
        description="folder with the 4 IDX .gz files, a keras-layout .npz, or a folder "
        "holding one; default: download into the Keras cache",
    )
    validation_split: float = Field(
        DEFAULT_SPLIT,
        gt=0,
        lt=1,
        description="share of the training images held out for validation, stratified by "
        "class and chosen with the study's seed (validation = 'split')",
    )
    validation: Literal["split", "test"] = Field(
        "split",
        description="split: validate on a hold-out of the training images, so trials are "
        "never selected on the test split; test: validate on the test split, as the course "
        "does (the test split stays the test set, but its figure is then biased)",
    )
    limit: int | None = Field(
        None,
        ge=1,
        description="use a random sample of N training images, stratified by "
        "class and drawn with the study's seed",
    )
    test_limit: int | None = Field(
        None,
        ge=1,
        description="use a random sample of N test images, stratified by class "
        "and drawn with the study's seed",
    )
    train_images: str | None = Field(None, description="IDX file name inside `path`")
    train_labels: str | None = Field(None, description="IDX file name inside `path`")
    test_images: str | None = Field(None, description="IDX file name inside `path`")
    test_labels: str | None = Field(None, description="IDX file name inside `path`")

    _one_validation_source = model_validator(mode="after")(one_validation_source)


@dataclass(frozen=True)
class _Flavour:
    """What differs between MNIST and Fashion-MNIST."""

    name: str
    title: str
    class_names: tuple[str, ...]
    npz_patterns: tuple[str, ...]
    folder: str


MNIST = _Flavour("mnist", "MNIST", tuple(str(d) for d in range(10)), ("mnist*.npz",), "mnist")
FASHION = _Flavour(
    "fashion_mnist",
    "Fashion-MNIST",
    FASHION_CLASSES,
    ("fashion*mnist*.npz",),
    "fashion-mnist",
)


def _offline_help(flavour: _Flavour) -> str:
    """The end of every "data not found" message: which files to put where."""
    if flavour is MNIST:
        where = (
            f"put mnist.npz (keras layout, from {KERAS_BASE_URL}mnist.npz) or the four IDX "
            f"files {STANDARD_NAMES}"
        )
    else:
        where = (
            f"put the four Fashion-MNIST IDX files {STANDARD_NAMES} (from {KERAS_BASE_URL}"
            "<name> or https://github.com/zalandoresearch/fashion-mnist) or a keras-layout "
            "fashion_mnist.npz"
        )
    return (
        f"{where} in a folder such as data/{flavour.folder}/ and set "
        f'path = "data/{flavour.folder}" in the [dataset] table of the study file '
        "(path may also name the .npz file itself)"
    )


def _find_idx(folder: Path, standard: str) -> Path | None:
    """The standard IDX file in ``folder``: gzipped, plain, or LeCun's ``name.idx3-ubyte``."""
    plain = standard.removesuffix(".gz")
    for candidate in (standard, plain, plain.replace("-idx", ".idx")):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _idx_from_folder(folder: Path, params: MnistParams) -> dict[str, Path] | None:
    """The four IDX paths in ``folder`` (None when the standard names are not all there)."""
    overrides = {role: getattr(params, role) for role in IDX_FILES}
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, (standard, _) in IDX_FILES.items():
        if overrides[role]:
            path = folder / overrides[role]
            if path.is_file():
                found[role] = path
            else:
                missing.append(f"{role} = {overrides[role]!r} ({path} does not exist)")
        else:
            path = _find_idx(folder, standard)
            if path is None:
                missing.append(standard)
            else:
                found[role] = path
    if not missing:
        return found
    if any(overrides.values()):
        raise HarnessError(
            f"{folder}: missing IDX file(s): {'; '.join(missing)}. Fix train_images, "
            "train_labels, test_images or test_labels in the [dataset] table (file names "
            f"inside path; unset ones default to {STANDARD_NAMES})"
        )
    return None


def _resolve(params: MnistParams, flavour: _Flavour) -> tuple[str, Path | dict[str, Path]]:
    """Decide where the data comes from: ``("npz", file)`` or ``("idx", {role: file})``."""
    overrides = [role for role in IDX_FILES if getattr(params, role)]
    if params.path is None:
        if overrides:
            raise HarnessError(
                f"[dataset] {', '.join(overrides)} name files inside `path`; set path to the "
                "folder that holds them"
            )
        return _download(flavour)
    path = user_path(params.path, f"{flavour.name} [dataset] path")
    if path.is_file():
        if overrides:
            raise HarnessError(
                f"[dataset] {', '.join(overrides)} name IDX files inside a folder, but path "
                f"is the file {path}; set path to the folder holding the IDX files"
            )
        if path.suffix != ".npz":
            raise HarnessError(
                f"{path}: path names a single file; set path to the folder holding the four "
                f"IDX files ({STANDARD_NAMES}) or to a keras-layout .npz file"
            )
        return "npz", path
    idx = _idx_from_folder(path, params)
    if idx is not None:
        return "idx", idx
    npz = sorted({p for pattern in flavour.npz_patterns for p in path.glob(pattern)})
    if len(npz) == 1:
        return "npz", npz[0]
    if len(npz) > 1:
        names = ", ".join(p.name for p in npz)
        raise HarnessError(
            f"{path}: several .npz files ({names}) and not the four IDX files; set path to "
            "the .npz file to use"
        )
    present = sorted(p.name for p in path.iterdir())[:12]
    raise HarnessError(
        f"{path}: no {flavour.title} data found (it holds: {', '.join(present) or 'nothing'}). "
        f"The folder needs the four IDX files {STANDARD_NAMES} or one "
        f"{' / '.join(flavour.npz_patterns)} file; for other IDX file names set "
        "train_images, train_labels, test_images and test_labels in the [dataset] table"
    )


def _download(flavour: _Flavour) -> tuple[str, Path | dict[str, Path]]:
    """Fetch the official files into the Keras cache (or find them there)."""
    help_text = _offline_help(flavour)
    if flavour is MNIST:
        path = fetch(
            "mnist.npz",
            KERAS_BASE_URL + "mnist.npz",
            file_hash=MNIST_NPZ_SHA256,
            offline_help=help_text,
        )
        return "npz", path
    keras_layout = keras_cache_dir() / "fashion-mnist"  # where keras.datasets puts them
    files: dict[str, Path] = {}
    for role, (name, _) in IDX_FILES.items():
        if (keras_layout / name).is_file():
            files[role] = keras_layout / name
        else:
            files[role] = fetch(
                f"fashion-mnist-{name}",
                KERAS_BASE_URL + name,
                file_hash=FASHION_MD5[name],
                offline_help=help_text,
            )
    return "idx", files


def _read(kind: str, source: Path | dict[str, Path], flavour: _Flavour):
    """The raw train and test arrays, checked: (x_train, y_train, x_test, y_test)."""
    if kind == "npz":
        assert isinstance(source, Path)
        arrays = read_npz(source)
        x_train, y_train = as_images(
            arrays["x_train"], arrays["y_train"], f"{source} (x_train, y_train)", 28, 28, 10
        )
        x_test, y_test = as_images(
            arrays["x_test"], arrays["y_test"], f"{source} (x_test, y_test)", 28, 28, 10
        )
        return x_train, y_train, x_test, y_test
    assert isinstance(source, dict)
    raw = {role: read_idx(source[role], IDX_FILES[role][1]) for role in IDX_FILES}
    x_train, y_train = as_images(
        raw["train_images"],
        raw["train_labels"],
        f"{source['train_images']} + {source['train_labels'].name}",
        28,
        28,
        10,
    )
    x_test, y_test = as_images(
        raw["test_images"],
        raw["test_labels"],
        f"{source['test_images']} + {source['test_labels'].name}",
        28,
        28,
        10,
    )
    return x_train, y_train, x_test, y_test


def _sample(x, y, limit: int | None, seed: int):
    if not limit:
        return x, y
    kept = stratified_sample(y, limit, seed)
    return x[kept], y[kept]


def _arrays(params: MnistParams, seed: int, flavour: _Flavour):
    """The uint8 arrays a trial with ``seed`` uses: ``(where, kind, x_train, y_train,
    x_test, y_test)``, ``limit`` and ``test_limit`` sampled."""
    kind, source = _resolve(params, flavour)
    x_train, y_train, x_test, y_test = _read(kind, source, flavour)
    x_train, y_train = _sample(x_train, y_train, params.limit, seed)
    x_test, y_test = _sample(x_test, y_test, params.test_limit, seed)
    where = str(source) if isinstance(source, Path) else str(source["train_images"].parent)
    return where, kind, x_train, y_train, x_test, y_test


def _splits(params: MnistParams, seed: int, flavour: _Flavour) -> SplitLabels | None:
    """The labels of each split a trial with ``seed`` loads (None before a download)."""
    if params.path is None:
        return None
    _, _, x_train, y_train, _, y_test = _arrays(params, seed, flavour)
    if params.validation == "test":
        labels = {"train": y_train, "validation": y_test}
    else:
        _, y_train, _, y_val = carve_validation(
            x_train, y_train, params.validation_split, seed, flavour.name
        )
        labels = {"train": y_train, "validation": y_val}
    if len(y_test):
        labels["test"] = y_test
    return SplitLabels(labels, flavour.class_names)


def _load(params: MnistParams, context: LoadContext, flavour: _Flavour) -> Dataset:
    where, kind, x_train, y_train, x_test, y_test = _arrays(params, context.seed, flavour)
    x_train = scale_images(x_train, where)
    x_test = scale_images(x_test, where)
    test = (x_test, y_test) if len(x_test) else (None, None)
    if params.validation == "test":
        if not len(x_test):
            raise HarnessError(
                f"{where}: the test split is empty, so there is nothing to validate on; "
                'remove validation = "test" from the [dataset] table to hold out '
                "validation_split of the training images instead"
            )
        x_val, y_val = x_test, y_test  # still the test split too: the harness says it is biased
        validation = "the test split (validation = 'test')"
        source = "test"
    else:
        x_train, y_train, x_val, y_val = carve_validation(
            x_train, y_train, params.validation_split, context.seed, f"{flavour.name} {where}"
        )
        validation = (
            f"{params.validation_split:g} of the training images, stratified (seed {context.seed})"
        )
        source = "train"
    info = DatasetInfo(
        name=flavour.name,
        input_shape=(28, 28, 1),
        task="multiclass",
        num_classes=10,
        class_names=flavour.class_names,
        preprocessing={
            "image_size": [28, 28],
            "color_mode": "grayscale",
            "rescale": 1 / 255,
            "source": where,
            "format": kind,
            "validation": validation,
            "validation_source": source,
        },
    )
    return from_arrays(info, x_train, y_train, x_val, y_val, *test)


def load_mnist(params: MnistParams, context: LoadContext) -> Dataset:
    """MNIST digits: 60,000 + 10,000 grey 28x28 images, shape (28, 28, 1) in [0, 1], 10 classes."""
    return _load(params, context, MNIST)


def load_fashion_mnist(params: MnistParams, context: LoadContext) -> Dataset:
    """Fashion-MNIST: 60,000 + 10,000 grey 28x28 clothing images, (28, 28, 1), 10 classes."""
    return _load(params, context, FASHION)


def _check(params: MnistParams, flavour: _Flavour) -> None:
    """Before a run: the local files are where ``path`` says and read as the right IDX or
    npz arrays (a truncated, swapped or corrupt file is found here; about a second for
    the full dataset). Without ``path`` the files are downloaded by the first trial."""
    if params.path is not None:
        _read(*_resolve(params, flavour), flavour)


def mnist_splits(params: MnistParams, seed: int) -> SplitLabels | None:
    """:func:`_splits` for ``mnist``."""
    return _splits(params, seed, MNIST)


def fashion_mnist_splits(params: MnistParams, seed: int) -> SplitLabels | None:
    """:func:`_splits` for ``fashion_mnist``."""
    return _splits(params, seed, FASHION)


def check_mnist(params: MnistParams) -> None:
    """:func:`_check` for ``mnist``."""
    _check(params, MNIST)


def check_fashion_mnist(params: MnistParams) -> None:
    """:func:`_check` for ``fashion_mnist``."""
    _check(params, FASHION)


@harness.hookimpl
def harness_register_datasets(register):
    """Register ``mnist`` and ``fashion_mnist``."""
    register(
        "mnist",
        load_mnist,
        params=MnistParams,
        description="MNIST digits, 28x28 grey, 10 classes (IDX .gz / .npz / download)",
        tasks=("multiclass",),
        check=check_mnist,
        splits=mnist_splits,
    )
    register(
        "fashion_mnist",
        load_fashion_mnist,
        params=MnistParams,
        description="Fashion-MNIST clothing, 28x28 grey, 10 classes (IDX .gz / .npz / download)",
        tasks=("multiclass",),
        check=check_fashion_mnist,
        splits=fashion_mnist_splits,
    )
