"""Helpers shared by the array-based dataset plugins: IDX and npz readers, splits, paths.

Nothing here imports TensorFlow; the loaders wrap the arrays with
:func:`harness.data.from_arrays` at the very end.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from harness.data import split_arrays, stratified_split_arrays
from harness.errors import HarnessError

#: IDX magic numbers: two zero bytes, type 0x08 (unsigned byte), number of dimensions.
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049
_IDX_KIND = {IDX_IMAGES_MAGIC: "images (idx3)", IDX_LABELS_MAGIC: "labels (idx1)"}
_GZIP_MAGIC = b"\x1f\x8b"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def one_validation_source(params):
    """A pydantic ``mode="after"`` check shared by the datasets that have a ``validation``
    choice: ``validation = "test"`` and an explicit ``validation_split`` contradict."""
    if params.validation == "test" and "validation_split" in params.model_fields_set:
        raise ValueError(
            "validation = 'test' validates on the test split, so validation_split is not "
            "used; remove one of them"
        )
    return params


def user_path(value: str, where: str) -> Path:
    """``value`` as an existing path (``~`` expanded), or a HarnessError naming ``where``."""
    path = Path(value).expanduser()
    if not path.exists():
        raise HarnessError(
            f"{where}: {path} does not exist (relative paths are resolved from the current "
            f"directory, {Path.cwd()}); fix [dataset] path in the study file"
        )
    return path


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (gzipped or not) whose magic number must be ``magic``.

    Returns a uint8 array shaped by the big-endian dimensions of the header.
    A wrong magic number, a truncated file or a corrupt gzip stream is a
    :class:`HarnessError` naming the file.
    """
    try:
        with open(path, "rb") as raw:
            head = raw.read(2)
        opener = gzip.open if head == _GZIP_MAGIC else open
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise HarnessError(
            f"{path}: not a readable IDX file ({type(exc).__name__}: {exc}); the file is "
            "truncated or corrupt, download it again"
        ) from None
    expected = _IDX_KIND[magic]
    if len(data) < 8:
        raise HarnessError(
            f"{path}: only {len(data)} bytes, too short for an IDX {expected} header; "
            "the file is truncated, download it again"
        )
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        what = _IDX_KIND.get(found, "not an IDX file of unsigned bytes")
        raise HarnessError(
            f"{path}: magic number {found} ({what}), expected {magic} for IDX {expected}; "
            "check that this is the right file (images files are *-images-idx3-ubyte.gz, "
            "labels files *-labels-idx1-ubyte.gz)"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise HarnessError(f"{path}: truncated IDX header; download the file again")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    needed = int(np.prod(dims))
    body = len(data) - header
    if body != needed:
        state = "truncated" if body < needed else "longer than its header says"
        raise HarnessError(
            f"{path}: {state}: the header announces {' x '.join(map(str, dims))} = {needed} "
            f"bytes of data but {body} follow; download the file again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Read a keras-layout ``.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``)."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            present = list(archive.files)
            missing = [key for key in NPZ_KEYS if key not in present]
            if missing:
                raise HarnessError(
                    f"{path}: missing array(s) {', '.join(missing)} (found: "
                    f"{', '.join(present) or 'none'}); a keras-layout .npz holds x_train, "
                    "y_train, x_test and y_test"
                )
            return {key: archive[key] for key in NPZ_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise HarnessError(
            f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc}); "
            "the file is truncated or corrupt"
        ) from None


def as_images(
    x: np.ndarray, y: np.ndarray, what: str, height: int, width: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check a uint8 image array and its labels; return ``(N, H, W, 1)`` uint8 and int32 labels.

    ``x`` may be ``(N, H, W)``, ``(N, H, W, 1)`` or flat ``(N, H*W)``.
    """
    y = np.asarray(y).reshape(-1)
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[1] == height * width:
        x = x.reshape(-1, height, width)
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 3 or x.shape[1:] != (height, width):
        raise HarnessError(
            f"{what}: images have shape {x.shape}, expected (N, {height}, {width}) grayscale images"
        )
    if len(x) != len(y):
        raise HarnessError(
            f"{what}: {len(x)} images but {len(y)} labels; the images and labels files "
            "must come from the same split (and the same subset, if any)"
        )
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise HarnessError(
            f"{what}: labels range {int(y.min())}..{int(y.max())}, expected 0..{num_classes - 1}"
        )
    return x[..., np.newaxis], y.astype("int32")


def scale_images(x: np.ndarray, what: str) -> np.ndarray:
    """Pixels 0..255 -> float32 in [0, 1]; anything outside 0..255 is a HarnessError."""
    if x.size and (x.min() < 0 or x.max() > 255):
        raise HarnessError(
            f"{what}: pixel values range {x.min()}..{x.max()}, expected 0..255 (8-bit grayscale)"
        )
    return x.astype("float32") / np.float32(255.0)


def carve_validation(
    x: np.ndarray,
    y: np.ndarray,
    validation_split: float,
    seed: int,
    what: str,
    *,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out ``validation_split`` of the rows with ``seed``, with a clear error on too few rows.

    With ``stratify`` (class labels) this is
    :func:`harness.data.stratified_split_arrays`: each class keeps its share in
    both parts. Regression targets pass ``stratify=False`` for
    :func:`harness.data.split_arrays`.
    """
    held_out = max(1, int(round(len(x) * validation_split)))
    if len(x) - held_out < 1:
        raise HarnessError(
            f"{what}: {len(x)} row(s) cannot be split into training and validation data "
            f"with validation_split = {validation_split}; use more rows (raise or remove "
            "`limit`) or a smaller validation_split"
        )
    if not stratify:
        return split_arrays(x, y, validation_split, seed)
    return stratified_split_arrays(x, y, validation_split, seed)
