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
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

import harness
from harness._images import ImageTree, decode_image, find_layout, normalize_size, scan_tree
from harness.data import (
    Dataset,
    DatasetInfo,
    LoadContext,
    SplitLabels,
    stratified_group_split,
)
from harness.devices import usable_cpus
from harness.errors import HarnessError

log = logging.getLogger(__name__)

#: Bump when the decoded cache format or the decoding itself changes.
CACHE_VERSION = 2  # 2: <split>_rows.npy maps each decoded row to its file

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
        None, ge=1, description="use a random sample of N files of each class folder, drawn "
        "with the study's seed (quick runs)"
    )
    group: str | None = Field(
        None, description="which images belong together (frames of one hand, cells of one "
        "patient), kept on one side of every split: a regular expression searched in each "
        "file name whose first capture group names the group (e.g. '^([a-z]+\\d+)' for "
        "rock01-000.png), or 'subfolder' for the folder inside the class folder"
    )
    cache: Literal["auto", "memory", "disk"] = Field(
        "auto", description="auto: in memory up to memory_limit_mb, else streamed from disk; "
        "memory: always in memory; disk: always streamed"
    )
    memory_limit_mb: int = Field(
        2048, ge=1, description="memory for the decoded uint8 images: held in memory within "
        "it (cache = 'auto'), else streamed from the decoded files"
    )

    @field_validator("group")
    @classmethod
    def _group_pattern(cls, value: str | None) -> str | None:
        if value is None or value == "subfolder":
            return value
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(
                f"group {value!r} is not a regular expression ({exc}); write one whose first "
                "capture group names the group, e.g. '^([a-z]+\\d+)', or 'subfolder'"
            ) from None
        if pattern.groups < 1:
            raise ValueError(
                f"group {value!r} has no capture group; put the part of the file name that "
                f"names the group in parentheses, e.g. '^([a-z]+\\d+)', or use 'subfolder'"
            )
        return value

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
    """Decode ``files`` into ``target/<split>_x.npy`` (readable rows only), their labels into
    ``<split>_y.npy`` and each row's index in ``files`` into ``<split>_rows.npy``; return
    count, labels, unreadable files."""
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
    workers = min(8, usable_cpus())

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
    np.save(target / f"{split}_rows.npy", order[ok].astype(np.int64))
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


@dataclass
class SplitPlan:
    """Which files of the scanned tree each role uses, decided before decoding, so that
    ``harness validate`` counts exactly what a trial loads (but unreadable files)."""

    #: role ("train", "validation", "test") -> (tree split, indices into its files)
    picks: dict[str, tuple[str, np.ndarray]]
    #: "validation" (a validation/ folder), "train" (held out of the training images),
    #: "test" (``validation = "test"``) or None (no validation data)
    source: str | None
    #: the share held out when ``source`` is "train"
    validation_split: float
    #: tree split -> the group of each file, or None without ``group``
    groups: dict[str, np.ndarray] | None = None
    #: what was done to keep groups apart (validation/ pooled with train/), if anything
    note: str | None = None

    def labels(self, tree: ImageTree) -> SplitLabels:
        """The labels and groups of each role, for ``harness validate``."""
        labels = {role: np.asarray(tree.labels[split])[rows] for role, (split, rows) in
                  self.picks.items()}
        groups = {role: self.groups[split][rows] for role, (split, rows) in
                  self.picks.items()} if self.groups else {}
        return SplitLabels(labels, tuple(tree.class_names), groups,
                           (self.note,) if self.note else ())


def file_groups(tree: ImageTree, group: str, where: str) -> dict[str, np.ndarray]:
    """The group of each file of each split of ``tree``: the first capture group of the
    regular expression ``group`` searched in the file name, or (``"subfolder"``) the folder
    inside the class folder. A file without a group is a HarnessError naming one."""
    pattern = None if group == "subfolder" else re.compile(group)
    found: dict[str, np.ndarray] = {}
    missed: list[Path] = []
    total = 0
    for split, files in tree.files.items():
        names: list[str] = []
        for path, label in zip(files, tree.labels[split], strict=True):
            name = ""
            if pattern is None:
                inside = path.relative_to(tree.folders[split] / tree.class_names[label]).parts
                name = inside[0] if len(inside) > 1 else ""
            else:
                match = pattern.search(path.name)
                name = (match.group(1) or "") if match else ""
            if not name:
                missed.append(path)
            names.append(name)
        found[split] = np.asarray(names, dtype=str)
        total += len(files)
    if missed:
        example = missed[0].relative_to(tree.root) if missed[0].is_relative_to(tree.root) \
            else missed[0]
        if pattern is None:
            raise HarnessError(
                f"{where}: group = 'subfolder' but {len(missed):,} of {total:,} files are not in "
                f"a sub-folder of their class folder (e.g. {example}); put each group's images "
                "in class/<group>/, or set [dataset] group to a pattern on the file names"
            )
        which = "matches no file" if len(missed) == total else \
            f"does not match {len(missed):,} of {total:,} files"
        raise HarnessError(
            f"{where}: group pattern '{group}' {which} (e.g. {example.as_posix()}); every "
            "file needs a group: fix [dataset] group so that its first capture group finds one "
            "in every file name"
        )
    return found


def _pool_shared_groups(tree: ImageTree, groups: dict[str, np.ndarray]) -> str | None:
    """When the validation/ folder holds groups that train/ holds too, merge it into train/
    (in ``tree`` and ``groups``), so that the hold-out keeps each group on one side."""
    if "validation" not in tree.files or "train" not in tree.files:
        return None
    shared = np.intersect1d(groups["train"], groups["validation"])
    if not len(shared):
        return None
    folders = f"{tree.folders['train'].name}/ and {tree.folders['validation'].name}/"
    tree.files["train"] = tree.files["train"] + tree.files.pop("validation")
    tree.labels["train"] = tree.labels["train"] + tree.labels.pop("validation")
    groups["train"] = np.concatenate([groups["train"], groups.pop("validation")])
    tree.folders.pop("validation")
    return (
        f"{folders} share {len(shared):,} groups (e.g. {shared[0]}): pooled, and "
        "validation_split held out by group"
    )


def prepare_tree(
    layout: dict[str, Path], params: ImageFolderParams, where: str, seed: int
) -> tuple[ImageTree, SplitPlan]:
    """List the files (:func:`check_image_layout`), find their groups, and decide each role's
    files: the seeded, stratified hold-out of :func:`harness.data.stratified_group_split`
    (keeping each group on one side) when there is no validation/ folder."""
    tree = check_image_layout(layout, params, where, seed=seed)
    groups = file_groups(tree, params.group, where) if params.group else None
    note = None
    if groups is not None and params.validation != "test":
        note = _pool_shared_groups(tree, groups)
    picks: dict[str, tuple[str, np.ndarray]] = {}
    for split, files in tree.files.items():
        if files:
            picks["train" if split == "all" else split] = (split, np.arange(len(files)))
    share = params.validation_split
    if share is None:
        share = SPLIT_WITH_TEST if "test" in picks else SPLIT_WITHOUT_TEST
    source: str | None = None
    if params.validation == "test":
        picks["validation"] = picks["test"]  # still the test split too: reported as biased
        source = "test"
    elif "validation" in picks:
        source = "validation"
    elif "train" in picks and share > 0:
        split, _ = picks["train"]
        try:
            train_rows, val_rows = stratified_group_split(
                np.asarray(tree.labels[split]), None if groups is None else groups[split],
                share, seed, tree.class_names,
            )
        except HarnessError as exc:
            raise HarnessError(f"{where}: {exc} ([dataset] group = '{params.group}')") from None
        picks["train"] = (split, train_rows)
        picks["validation"] = (split, val_rows)
        source = "train"
    picks = {role: pick for role, pick in picks.items() if len(pick[1])}
    if "validation" not in picks:
        source = None
    return tree, SplitPlan(picks, source, share, groups, note)


def arrays_to_datasets(
    folder: Path, manifest: dict[str, Any], plan: SplitPlan, *, cache: str,
    memory_limit_mb: int, seed: int,
) -> tuple[dict[str, Any], dict[str, np.ndarray], int]:
    """Build the roles' ``tf.data`` splits from the decoded arrays, following ``plan``.

    Returns ``(splits, groups, train_size)``: role -> dataset, role -> the group of each
    of its examples in their order (when ``plan`` has groups), and the training size.
    Unreadable files were left out by the decoding, so a role may have fewer examples
    than ``plan`` lists.
    """
    arrays = {
        split: (folder / f"{split}_x.npy", np.load(folder / f"{split}_y.npy"),
                np.load(folder / f"{split}_rows.npy"))
        for split in manifest["splits"]
    }
    picks: dict[str, tuple[str, np.ndarray]] = {}  # role -> (split file, decoded rows)
    for role, (split, files) in plan.picks.items():
        if split in arrays:
            rows = np.flatnonzero(np.isin(arrays[split][2], files))
            if len(rows):
                picks[role] = (split, rows)
    if plan.source == "test" and "test" not in picks:
        raise HarnessError(
            "validation = 'test' but there is no test split with readable images; add "
            "test/<class>/ folders, or remove validation = 'test' to hold out "
            "validation_split of the training images"
        )
    shared = plan.source == "test"  # one dataset serves as validation and test
    row_bytes = {
        split: int(np.prod(np.load(path, mmap_mode="r").shape[1:]))
        for split, (path, _, _) in arrays.items()
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
    groups: dict[str, np.ndarray] = {}
    for role, (split, rows) in picks.items():
        path, labels, files = arrays[split]
        if plan.groups is not None:
            groups[role] = plan.groups[split][files[rows]]
        if shared and role == "validation":
            continue
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
    return out, groups, train_size


# --------------------------------------------------------------------------- loaders


def check_image_layout(
    layout: dict[str, Path], params: ImageFolderParams, where: str, seed: int = 0
) -> ImageTree:
    """List the class folders and files of ``layout`` without decoding anything (with
    ``limit_per_class``, a sample drawn with ``seed``): at least two classes, no empty
    class, a test folder when ``validation = 'test'``."""
    tree = scan_tree(layout, limit_per_class=params.limit_per_class, where=where, seed=seed)
    if params.validation == "test" and "test" not in layout:
        found = ", ".join(f"{split}/ ({folder})" for split, folder in layout.items())
        raise HarnessError(
            f"{where}: validation = 'test' but there is no test folder (found: {found}); add "
            "test/<class>/ folders, or remove validation = 'test' from the [dataset] table"
        )
    return tree


def check_image_folder(params: ImageFolderParams) -> None:
    """Cheap check before a run: the layout of ``path`` (see :func:`check_image_layout`),
    a group for every file and every class on both sides of the hold-out
    (:func:`prepare_tree`), and a readable image in every training class
    (:func:`check_readable_classes`)."""
    layout = find_layout(Path(params.path), where="image_folder")
    tree, _ = prepare_tree(layout, params, "image_folder", seed=0)
    check_readable_classes(tree, "image_folder")


def image_folder_splits(params: ImageFolderParams, seed: int) -> SplitLabels:
    """The labels (and groups) of each split a trial with ``seed`` loads, from the file
    listing (nothing decoded): what ``harness validate`` prints."""
    layout = find_layout(Path(params.path), where="image_folder")
    tree, plan = prepare_tree(layout, params, "image_folder", seed)
    return plan.labels(tree)


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
    tree, plan = prepare_tree(layout, params, where, context.seed)
    folder, manifest = decoded_cache(tree, size, params.color_mode, Path(context.cache_dir), where)
    try:
        splits, groups, train_size = arrays_to_datasets(
            folder, manifest, plan, cache=params.cache,
            memory_limit_mb=params.memory_limit_mb, seed=context.seed,
        )
    except HarnessError as exc:
        raise HarnessError(f"{where}: {exc}") from None
    train, validation, test = (splits.get(role) for role in ROLES)
    source = plan.source if validation is not None else None
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
            "validation": _validation_text(source, plan, layout, params, context.seed),
            "validation_source": source,
        },
    )
    if params.group:
        info.preprocessing["group"] = params.group
    return Dataset(
        info, train, validation, test, train_size=train_size, batch_map=scale_batch,
        train_groups=groups.get("train"),
        validation_groups=groups.get("validation") if validation is not None else None,
    )


def _validation_text(
    source: str | None, plan: SplitPlan, layout: dict[str, Path], params: ImageFolderParams,
    seed: int,
) -> str:
    """The human-readable ``preprocessing["validation"]``."""
    if source == "validation":
        return f"the {layout['validation'].name}/ folder"
    if source == "test":
        return f"the {layout['test'].name}/ folder, also the test split (validation = 'test')"
    if source == "train":
        of = f"the {layout['train'].name}/ folder" if "train" in layout else "the class folders"
        if plan.note:
            of = f"the {layout['train'].name}/ and {layout['validation'].name}/ folders pooled"
        by = f", whole groups (group = '{params.group}')" if params.group else ""
        return f"{plan.validation_split:g} of each class of {of}, stratified{by} (seed {seed})"
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
        splits=image_folder_splits,
    )
