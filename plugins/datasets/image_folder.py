"""``image_folder``: any tree of class sub-folders, decoded once into cached uint8 arrays.

Layouts accepted (labels are the sorted class-folder names, as Keras's
``flow_from_directory`` and ``image_dataset_from_directory`` number them):

* ``train/<class>/...`` + ``validation/<class>/...`` (+ optional ``test/<class>/...``);
  ``training``, ``valid``, ``val``, ``testing``, ``training_set``, ``test_set`` are
  accepted too, in any letter case.
* a flat ``<class>/...`` tree, split per class by ``validation_split`` with the study's seed.

Validation (``preprocessing["validation_source"]`` records which): a real
``validation/`` folder validates ("validation"). Without one, ``validation_split``
of each class is held out of ``train/`` (or of the flat tree) with the study's
seed ("train"): 0.1 by default when there is a ``test/`` folder, 0.2 otherwise.
``test/`` is always the test split, measured once for the best trial; trials are
selected on it only with ``validation = "test"`` ("test"; the course validates
rock-paper-scissors and Fruits-360 that way), and the harness then warns that
the test figure is not unbiased.

A lone wrapper folder (``cats_and_dogs_filtered/`` inside an unzipped archive)
is stepped into. Finding the layout and decoding the images are
:mod:`harness._images`'s, shared with ``course_images`` and ``harness predict``.

Speed: every image is decoded and resized once per (dataset, parameters) into
uint8 ``.npy`` files under the study's cache folder (``runs/<study>/cache/<key>/``),
written atomically under a file lock so that concurrent worker processes decode
once between them; every later trial and worker memory-maps them. Then, with
``cache = "auto"``: images whose uint8 size fits in ``memory_limit_mb`` are held in
memory as uint8; else they stream from the memory-mapped files in shuffled chunks.
Either way they are scaled to float32 in [0, 1] once per *batch*, after shuffling
and batching (the dataset's ``batch_map``), never converted as a whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

import harness
from harness._images import ImageTree, decode_image, find_layout, normalize_size, scan_tree
from harness.data import Dataset, DatasetInfo, LoadContext, stratified_split
from harness.errors import HarnessError

log = logging.getLogger(__name__)

#: Bump when the decoded cache format or the decoding itself changes.
CACHE_VERSION = 1

ROLES = ("train", "validation", "test")

#: Default ``validation_split``: with a test/ folder, and for a flat tree or train/ alone.
SPLIT_WITH_TEST = 0.1
SPLIT_WITHOUT_TEST = 0.2

Side = Annotated[int, Field(ge=4, le=4096)]
ImageSize = Side | tuple[Side, Side]


class ImageFolderParams(BaseModel):
    """Parameters of ``image_folder`` (and, with ``path`` optional, of the named image sets)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="folder holding class folders, or train/ + validation/ trees")
    image_size: ImageSize = Field(
        150, description="resize every image to this (int: square; or [height, width])"
    )
    color_mode: Literal["rgb", "grayscale"] = Field(
        "rgb", description="rgb: 3 channels; grayscale: 1 channel"
    )
    validation_split: float | None = Field(
        None, ge=0.0, lt=1.0, description="share of each class held out of train/ (or of a "
        "flat tree) with the study's seed when there is no validation/ folder; default: "
        f"{SPLIT_WITH_TEST} with a test/ folder, else {SPLIT_WITHOUT_TEST} (0: no validation data)"
    )
    validation: Literal["split", "test"] = Field(
        "split", description="split: validate on validation/, else on a hold-out of train/, "
        "so trials are never selected on test/; test: validate on test/, as the course does "
        "for rock-paper-scissors (test/ stays the test set, but its figure is then biased)"
    )
    limit_per_class: int | None = Field(
        None, ge=1, description="use only the first N files of each class folder (quick runs)"
    )
    cache: Literal["auto", "memory", "disk"] = Field(
        "auto", description="auto: in memory up to memory_limit_mb, else streamed from disk; "
        "memory: always in memory; disk: always streamed"
    )
    memory_limit_mb: int = Field(
        2048, ge=1, description="memory for the decoded uint8 images: held in memory within "
        "it (cache = 'auto'), else streamed from the decoded files"
    )

    @model_validator(mode="after")
    def _one_validation_source(self):
        if self.validation == "test" and self.validation_split is not None:
            raise ValueError(
                "validation = 'test' validates on the test split, so validation_split is not "
                "used; remove one of them"
            )
        return self


# --------------------------------------------------------------------------- decoded cache


def _fingerprint(tree: ImageTree, image_size: tuple[int, int], color_mode: str) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([CACHE_VERSION, list(image_size), color_mode]).encode())
    for split in sorted(tree.files):
        for path, label in zip(tree.files[split], tree.labels[split], strict=True):
            stat = path.stat()
            digest.update(f"{split}\0{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[bool]:
    """An exclusive lock shared by the worker processes of one machine.

    Yields whether a lock is held: without ``fcntl`` (Windows) nothing is
    locked, and the atomic rename alone keeps the cache consistent.
    """
    try:
        import fcntl  # lazy: POSIX only
    except ImportError:  # pragma: no cover - Windows
        yield False
        return
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _decode_split(
    files: list[Path], labels: list[int], image_size: tuple[int, int], color_mode: str,
    target: Path, split: str,
) -> tuple[int, np.ndarray, list[tuple[Path, int]]]:
    """Decode ``files`` into ``target/<split>_x.npy`` (readable rows only); return count, labels."""
    height, width = image_size
    channels = 3 if color_mode == "rgb" else 1
    # A fixed shuffle of the rows, so that streaming reads and small shuffle buffers mix classes.
    order = np.random.default_rng(0).permutation(len(files))
    raw_path = target / f"{split}_x.raw.npy"
    rows = np.lib.format.open_memmap(
        raw_path, mode="w+", dtype=np.uint8, shape=(len(files), height, width, channels)
    )
    ok = np.zeros(len(files), dtype=bool)
    bad: list[tuple[Path, int]] = []
    workers = max(1, min(8, os.cpu_count() or 1))

    def work(position: int):
        return position, decode_image(files[order[position]], image_size, color_mode)

    with ThreadPoolExecutor(workers) as pool:
        for position, array in pool.map(work, range(len(files))):
            if array is None:
                bad.append((files[order[position]], labels[order[position]]))
                continue
            rows[position] = array
            ok[position] = True
    rows.flush()
    ordered_labels = np.asarray(labels, dtype=np.int32)[order]
    count = int(ok.sum())
    if count == len(files):
        del rows
        os.replace(raw_path, target / f"{split}_x.npy")
    else:
        final = np.lib.format.open_memmap(
            target / f"{split}_x.npy", mode="w+", dtype=np.uint8,
            shape=(count, height, width, channels),
        )
        kept = np.flatnonzero(ok)
        for start in range(0, count, 1024):
            final[start : start + 1024] = rows[kept[start : start + 1024]]
        final.flush()
        del final, rows
        raw_path.unlink()
        ordered_labels = ordered_labels[ok]
    np.save(target / f"{split}_y.npy", ordered_labels)
    return count, ordered_labels, bad


def _decode_tree(
    tree: ImageTree, image_size: tuple[int, int], color_mode: str, target: Path, where: str
) -> dict[str, Any]:
    """Decode every split into ``target``; fail clearly when too little is readable."""
    started = time.perf_counter()
    total = sum(len(f) for f in tree.files.values())
    log.info("decoding %d images from %s at %s (once; cached for later trials)",
             total, tree.root, image_size)
    splits: dict[str, int] = {}
    skipped: list[tuple[Path, int]] = []
    for split, files in tree.files.items():
        count, labels, bad = _decode_split(
            files, tree.labels[split], image_size, color_mode, target, split
        )
        skipped.extend(bad)
        splits[split] = count
        present = set(np.unique(labels).tolist()) if count else set()
        if count and split in ("train", "all"):
            for index, name in enumerate(tree.class_names):
                if index not in present:
                    raise HarnessError(
                        f"{where}: class folder {tree.folders[split] / name} has no readable "
                        "images (every file failed to decode); add JPEG/PNG/BMP/GIF images to "
                        "it or remove the folder"
                    )
        elif count:
            absent = [name for i, name in enumerate(tree.class_names) if i not in present]
            if absent:
                log.warning(
                    "%s: the %s split (%s) has no readable images of class(es) %s; its "
                    "figures cover the other %d class(es) only", where, split,
                    tree.folders[split], ", ".join(absent), len(tree.class_names) - len(absent),
                )
    if not sum(splits.values()):
        example = skipped[0][0] if skipped else tree.root
        raise HarnessError(
            f"{where}: none of the {total} files under {tree.root} is a readable image "
            f"(e.g. {example}); put JPEG, PNG, BMP or GIF images in the class folders"
        )
    return {
        "version": CACHE_VERSION,
        "image_size": list(image_size),
        "color_mode": color_mode,
        "class_names": tree.class_names,
        "splits": splits,
        "skipped": len(skipped),
        "skipped_examples": [str(p) for p, _ in skipped[:5]],
        "root": str(tree.root),
        "decode_seconds": round(time.perf_counter() - started, 3),
    }


def decoded_cache(
    tree: ImageTree, image_size: tuple[int, int], color_mode: str, cache_dir: Path,
    where: str = "image_folder",
) -> tuple[Path, dict[str, Any]]:
    """Return the folder of decoded arrays for ``tree``, decoding it first if no process has.

    Safe when several worker processes race: one decodes under a lock file into
    a temporary folder that is renamed into place when complete; the others
    wait on the lock and then read the result.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / f"decoded-{_fingerprint(tree, image_size, color_mode)}"
    manifest_path = final / "manifest.json"
    if not manifest_path.exists():
        with file_lock(cache_dir / ".decode.lock") as locked:
            if not manifest_path.exists():
                for stale in cache_dir.glob(".tmp-decoded-*") if locked else ():
                    shutil.rmtree(stale, ignore_errors=True)  # left by a killed process
                temp = cache_dir / f".tmp-decoded-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                temp.mkdir()
                try:
                    manifest = _decode_tree(tree, image_size, color_mode, temp, where)
                    (temp / "manifest.json").write_text(json.dumps(manifest, indent=1))
                    try:
                        os.replace(temp, final)
                    except OSError:  # another process won the race (no fcntl), or debris
                        if not manifest_path.exists():
                            shutil.rmtree(final, ignore_errors=True)
                            os.replace(temp, final)
                finally:
                    shutil.rmtree(temp, ignore_errors=True)
                for old in cache_dir.glob("decoded-*"):
                    if old != final:
                        shutil.rmtree(old, ignore_errors=True)
    manifest = json.loads(manifest_path.read_text())
    if manifest["skipped"]:
        shown = manifest["skipped_examples"][:3]
        examples = ", ".join(Path(p).name for p in shown)
        if manifest["skipped"] > len(shown):
            examples += f" and {manifest['skipped'] - len(shown)} more"
        log.warning(
            "skipped %d unreadable files in %s (not images, or corrupt: %s)",
            manifest["skipped"], manifest["root"], examples,
        )
    return final, manifest


# --------------------------------------------------------------------------- tf.data


def scale_batch(x, y):
    """The image datasets' ``batch_map``: a batch of uint8 images -> float32 in [0, 1]."""
    import tensorflow as tf  # lazy: imports TensorFlow

    return tf.cast(x, tf.float32) * (1.0 / 255.0), y


def _in_memory(mapped: np.ndarray, rows: np.ndarray, y: np.ndarray):
    """Rows of the decoded uint8 array held in memory (scaled per batch by ``scale_batch``:
    converting the whole set to float32 up front costs 4x the memory and, for the first
    epochs, more time than it saves)."""
    import tensorflow as tf  # lazy: imports TensorFlow

    x = tf.constant(np.ascontiguousarray(mapped if len(rows) == len(mapped) else mapped[rows]))
    return tf.data.Dataset.from_tensor_slices((x, y))


def _streamed(x_path: Path, rows: np.ndarray, y: np.ndarray, shuffle: bool, seed: int,
              chunk: int = 256):
    """Stream ``rows`` of the memory-mapped array in chunks (chunk order reshuffled per pass)."""
    import tensorflow as tf  # lazy: imports TensorFlow

    data = np.load(x_path, mmap_mode="r")  # kept open: survives the file's replacement
    shape = data.shape[1:]
    rng = np.random.default_rng(seed)

    def chunks():
        starts = np.arange(0, len(rows), chunk)
        if shuffle:
            rng.shuffle(starts)
        for start in starts:
            picked = rows[start : start + chunk]
            yield np.asarray(data[picked]), y[start : start + chunk]

    ds = tf.data.Dataset.from_generator(
        chunks,
        output_signature=(
            tf.TensorSpec((None, *shape), tf.uint8),
            tf.TensorSpec((None,), tf.int32),
        ),
    ).unbatch()
    return ds.apply(tf.data.experimental.assert_cardinality(len(rows)))


def arrays_to_datasets(
    folder: Path, manifest: dict[str, Any], *, validation_split: float | None,
    validation: str = "split", cache: str, memory_limit_mb: int, seed: int,
) -> tuple[Any, Any, Any, int, str | None]:
    """Build (train, validation, test, train_size, validation_source) from the decoded arrays.

    ``validation_source`` is "validation" (a validation/ folder), "train" (held
    out of the training images), "test" (``validation = "test"``) or None (no
    validation data).
    """
    arrays = {
        split: (folder / f"{split}_x.npy", np.load(folder / f"{split}_y.npy"))
        for split in manifest["splits"]
    }
    picks: dict[str, tuple[str, np.ndarray]] = {}  # role -> (split file, rows)
    for split, (_, labels) in arrays.items():
        picks["train" if split == "all" else split] = (split, np.arange(len(labels)))
    picks = {role: pick for role, pick in picks.items() if len(pick[1])}
    source: str | None = None
    if validation == "test":
        if "test" not in picks:
            raise HarnessError(
                "validation = 'test' but there is no test split with readable images; add "
                "test/<class>/ folders, or remove validation = 'test' to hold out "
                "validation_split of the training images"
            )
        picks["validation"] = picks["test"]  # still the test split too: reported as biased
        source = "test"
    elif "validation" in picks:
        source = "validation"
    elif "train" in picks:
        if validation_split is None:
            validation_split = SPLIT_WITH_TEST if "test" in picks else SPLIT_WITHOUT_TEST
        if validation_split > 0:
            split, _ = picks["train"]
            train_rows, val_rows = stratified_split(arrays[split][1], validation_split, seed)
            picks["train"] = (split, train_rows)
            picks["validation"] = (split, val_rows)
            source = "train"
    picks = {role: pick for role, pick in picks.items() if len(pick[1])}
    if "validation" not in picks:
        source = None
    shared = source == "test"  # one dataset serves as validation and test
    row_bytes = {
        split: int(np.prod(np.load(path, mmap_mode="r").shape[1:]))
        for split, (path, _) in arrays.items()
    }
    total = sum(
        row_bytes[split] * len(rows)
        for role, (split, rows) in picks.items()
        if not (shared and role == "validation")
    )
    limit = memory_limit_mb * 2**20
    if cache == "disk":
        mode = "streamed"
    elif cache == "memory" or total <= limit:
        mode = "uint8 in memory"
    else:
        mode = "streamed"
    out: dict[str, Any] = {}
    for role, (split, rows) in picks.items():
        if shared and role == "validation":
            continue
        path, labels = arrays[split]
        y = labels[rows].astype(np.int32)
        if mode == "streamed":
            out[role] = _streamed(path, rows, y, shuffle=role == "train", seed=seed)
        else:
            mapped = np.load(path, mmap_mode="r")
            out[role] = _in_memory(mapped, rows, y)
    log.info(
        "image data: %s (%s)",
        ", ".join(f"{role} {len(picks[role][1])}" for role in ROLES if role in picks),
        mode if mode != "streamed" else f"streamed from {folder}",
    )
    if shared:
        out["validation"] = out["test"]
    train_size = len(picks["train"][1]) if "train" in picks else 0
    return out.get("train"), out.get("validation"), out.get("test"), train_size, source


# --------------------------------------------------------------------------- loaders


def check_image_layout(
    layout: dict[str, Path], params: ImageFolderParams, where: str
) -> ImageTree:
    """List the class folders and files of ``layout`` without decoding anything: at least
    two classes, no empty class, a test folder when ``validation = 'test'``."""
    tree = scan_tree(layout, limit_per_class=params.limit_per_class, where=where)
    if params.validation == "test" and "test" not in layout:
        found = ", ".join(f"{split}/ ({folder})" for split, folder in layout.items())
        raise HarnessError(
            f"{where}: validation = 'test' but there is no test folder (found: {found}); add "
            "test/<class>/ folders, or remove validation = 'test' from the [dataset] table"
        )
    return tree


def check_image_folder(params: ImageFolderParams) -> None:
    """Cheap check before a run: the layout of ``path`` (see :func:`check_image_layout`)
    and a readable image in every training class (:func:`check_readable_classes`)."""
    layout = find_layout(Path(params.path), where="image_folder")
    check_readable_classes(check_image_layout(layout, params, "image_folder"), "image_folder")


#: The size a probed image is decoded at: whether it decodes does not depend on it.
_PROBE_SIZE = (8, 8)


def check_readable_classes(tree: ImageTree, where: str) -> None:
    """Decode images of each training class folder until one reads, so that a class whose
    every file is corrupt is refused before the run writes anything (decoding them all
    waits for the first trial); a healthy folder costs one small decode per class."""
    for split in ("train", "all"):
        if split not in tree.files:
            continue
        unread = set(range(len(tree.class_names)))
        for path, label in zip(tree.files[split], tree.labels[split], strict=True):
            if label in unread and decode_image(path, _PROBE_SIZE, "grayscale") is not None:
                unread.discard(label)
                if not unread:
                    break
        if unread:
            name = tree.class_names[min(unread)]
            raise HarnessError(
                f"{where}: class folder {tree.folders[split] / name} has no readable images "
                "(every file failed to decode); add JPEG/PNG/BMP/GIF images to it or remove "
                "the folder"
            )


def load_image_layout(
    name: str, layout: dict[str, Path], params: ImageFolderParams, context: LoadContext,
    where: str | None = None,
) -> Dataset:
    """Decode (once, cached) and wrap the class-folder splits in ``layout`` as a Dataset."""
    where = where or f"dataset {name!r}"
    size = normalize_size(params.image_size)
    tree = check_image_layout(layout, params, where)
    split = params.validation_split
    if split is None:
        split = SPLIT_WITH_TEST if "test" in layout else SPLIT_WITHOUT_TEST
    folder, manifest = decoded_cache(tree, size, params.color_mode, Path(context.cache_dir), where)
    try:
        train, validation, test, train_size, source = arrays_to_datasets(
            folder, manifest, validation_split=split,
            validation=params.validation, cache=params.cache,
            memory_limit_mb=params.memory_limit_mb, seed=context.seed,
        )
    except HarnessError as exc:
        raise HarnessError(f"{where}: {exc}") from None
    if train is None:
        raise HarnessError(
            f"{where}: no training images left after the validation split; "
            "lower validation_split or add images"
        )
    classes = tuple(manifest["class_names"])
    channels = 3 if params.color_mode == "rgb" else 1
    info = DatasetInfo(
        name=name,
        input_shape=(*size, channels),
        task="binary" if len(classes) == 2 else "multiclass",
        num_classes=len(classes),
        class_names=classes,
        preprocessing={
            "image_size": list(size),
            "color_mode": params.color_mode,
            "rescale": 1 / 255,
            "interpolation": "bilinear",
            "jpeg_draft": True,
            "decoder": name,  # this dataset's registered decoder (see harness.card)
            "validation": _validation_text(source, split, layout, context.seed),
            "validation_source": source,
        },
    )
    return Dataset(info, train, validation, test, train_size=train_size, batch_map=scale_batch)


def _validation_text(source: str | None, split: float, layout: dict[str, Path], seed: int) -> str:
    """The human-readable ``preprocessing["validation"]``."""
    if source == "validation":
        return f"the {layout['validation'].name}/ folder"
    if source == "test":
        return f"the {layout['test'].name}/ folder, also the test split (validation = 'test')"
    if source == "train":
        of = f"the {layout['train'].name}/ folder" if "train" in layout else "the class folders"
        return f"{split:g} of each class of {of}, stratified (seed {seed})"
    return "none"


def load_image_folder(params: ImageFolderParams, context: LoadContext) -> Dataset:
    """Class folders under ``path`` -> images scaled to [0, 1], labels = sorted folder names."""
    layout = find_layout(Path(params.path), where="image_folder")
    return load_image_layout("image_folder", layout, params, context, where="image_folder")


@harness.hookimpl
def harness_register_datasets(register):
    """Register ``image_folder``."""
    register(
        "image_folder", load_image_folder, params=ImageFolderParams,
        description="any tree of class folders (train/validation/test or split), cached decode",
        tasks=("binary", "multiclass"), check=check_image_folder, decoder=decode_image,
    )
