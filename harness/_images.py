"""Image files: decoding them into uint8 arrays, and finding class-folder layouts.

Part of the core, not of a plugin, so that the built-in image datasets
(``image_folder``, ``course_images``) and ``harness predict`` share one decoder
and one layout finder without the core importing from plugins.

Layouts (labels are the sorted class-folder names, as Keras's
``flow_from_directory`` and ``image_dataset_from_directory`` number them):
``train/<class>/...`` + ``validation/<class>/...`` (+ ``test/<class>/...``; see
:data:`SPLIT_ALIASES` for the other names accepted, in any letter case), or a flat
``<class>/...`` tree. A lone wrapper folder is stepped into.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from harness.errors import HarnessError

#: Folder names (lower-cased) that mark a split rather than a class.
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training", "training_set", "train_set"),
    "validation": ("validation", "valid", "val", "validation_set"),
    "test": ("test", "testing", "test_set"),
}


@dataclass
class ImageTree:
    """The files to decode, per split, with their labels (indices into ``class_names``)."""

    root: Path
    class_names: list[str]
    #: split name ("train", "validation", "test", or "all" for a flat tree) -> files, labels
    files: dict[str, list[Path]] = field(default_factory=dict)
    labels: dict[str, list[int]] = field(default_factory=dict)
    #: split name -> the folder its class folders live in
    folders: dict[str, Path] = field(default_factory=dict)


#: Files that operating systems leave in image folders; ignored without a warning.
IGNORED_FILES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "__")) and path.name.lower() not in IGNORED_FILES


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p))


def unwrap_folder(folder: Path, levels: int = 3) -> Path:
    """Step into lone wrapper folders (``rps/`` inside the unzipped ``rps.zip``)."""
    for _ in range(levels):
        subdirs = _subdirs(folder)
        has_files = any(p.is_file() and _visible(p) for p in folder.iterdir())
        if len(subdirs) != 1 or has_files:
            break
        folder = subdirs[0]
    return folder


def _split_of(name: str, aliases: dict[str, tuple[str, ...]]) -> str | None:
    lowered = name.lower()
    for split, names in aliases.items():
        if lowered in (n.lower() for n in names):
            return split
    return None


def merge_aliases(extra: dict[str, tuple[str, ...]] | None) -> dict[str, tuple[str, ...]]:
    """``SPLIT_ALIASES`` plus a dataset's own folder names (e.g. ``rps-test-set`` for test)."""
    merged = dict(SPLIT_ALIASES)
    for split, names in (extra or {}).items():
        merged[split] = (*merged.get(split, ()), *names)
    return merged


def find_layout(
    root: Path, aliases: dict[str, tuple[str, ...]] | None = None, where: str = "image_folder"
) -> dict[str, Path]:
    """Map split names to folders (``train``/``validation``/``test``), or ``{"all": root}``.

    Steps into a lone wrapper folder (up to three levels) before deciding.
    """
    aliases = aliases or SPLIT_ALIASES
    root = Path(root).expanduser()
    if not root.exists():
        raise HarnessError(
            f"{where}: {root} does not exist; set [dataset] path to a folder of class folders "
            "(e.g. cats/ and dogs/) or of train/ and validation/ folders holding them"
        )
    if not root.is_dir():
        raise HarnessError(
            f"{where}: {root} is a file; set [dataset] path to the folder holding the images"
        )
    folder = root
    for _ in range(4):
        subdirs = _subdirs(folder)
        splits: dict[str, Path] = {}
        for sub in subdirs:
            split = _split_of(sub.name, aliases)
            if split is not None and split not in splits:
                splits[split] = sub
        if splits:
            if "train" not in splits:
                found = ", ".join(f"{p.name}/" for p in splits.values())
                raise HarnessError(
                    f"{where}: {folder} has {found} but no train/ folder; add train/<class>/ "
                    "folders, or point [dataset] path at a flat folder of class folders"
                )
            return splits
        has_files = any(p.is_file() and _visible(p) for p in folder.iterdir())
        if len(subdirs) == 1 and not has_files:
            folder = subdirs[0]
            continue
        break
    return {"all": folder}


def _class_files(folder: Path, limit: int | None, rng: np.random.Generator) -> list[Path]:
    """Every visible file under ``folder`` (none inside hidden folders), in path order;
    with ``limit``, a random sample of ``limit`` of them drawn with ``rng`` (in path order).

    ``os.scandir`` knows from the directory listing which entries are files, so a
    warm start of a study lists a thousand images in milliseconds.
    """
    found: list[str] = []
    pending = [str(folder)]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if not _visible(Path(entry.name)):
                    continue
                if entry.is_dir():
                    pending.append(entry.path)
                elif entry.is_file():
                    found.append(entry.path)
    found.sort(key=lambda path: path.split(os.sep))  # the order of sorted Path objects
    if limit and limit < len(found):
        found = [found[i] for i in np.sort(rng.choice(len(found), limit, replace=False))]
    return [Path(path) for path in found]


def scan_tree(
    layout: dict[str, Path],
    *,
    limit_per_class: int | None = None,
    where: str = "image_folder",
    seed: int = 0,
) -> ImageTree:
    """List the class folders and files of each split; labels follow the sorted train classes.

    ``limit_per_class`` keeps a random sample of that many files of each class folder,
    drawn with ``seed``: the same seed gives the same files.
    """
    first = layout.get("train", layout.get("all"))
    assert first is not None
    classes = [p.name for p in _subdirs(first)]
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise HarnessError(
            f"{where}: {first} needs at least 2 class folders (one per label, e.g. cats/ and "
            f"dogs/), found {found}; put each class's images in its own sub-folder"
        )
    if len(layout) > 1:
        root = Path(os.path.commonpath([str(p) for p in layout.values()]))
    else:
        root = first
    tree = ImageTree(root=root, class_names=classes)
    rng = np.random.default_rng(seed)
    for split, folder in layout.items():
        names = [p.name for p in _subdirs(folder)]
        unknown = [n for n in names if n not in classes]
        if unknown:
            raise HarnessError(
                f"{where}: {folder} has class folder(s) {', '.join(unknown)} that {first} lacks; "
                "every split must use the training split's class folders"
            )
        files: list[Path] = []
        labels: list[int] = []
        for name in names:
            found_files = _class_files(folder / name, limit_per_class, rng)
            if not found_files:
                raise HarnessError(
                    f"{where}: class folder {folder / name} has no images; add images to it "
                    "or remove the folder"
                )
            files.extend(found_files)
            labels.extend([classes.index(name)] * len(found_files))
        tree.files[split] = files
        tree.labels[split] = labels
        tree.folders[split] = folder
    return tree


def normalize_size(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``150`` -> ``(150, 150)``; ``[h, w]`` -> ``(h, w)``."""
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = image_size
    return (int(height), int(width))


def read_image(
    path: Path,
    image_size: tuple[int, int],
    color_mode: str = "rgb",
    *,
    interpolation: str = "bilinear",
    draft: bool = False,
) -> np.ndarray | None:
    """Decode one image file with Pillow into uint8 ``(height, width, channels)``, or ``None``
    for a corrupt or non-image file.

    ``color_mode`` is ``rgb`` (an alpha channel is dropped, as Keras's ``load_img``
    does), ``grayscale`` or ``rgba``; a GIF gives its first frame. The image is
    resized to ``image_size`` (height, width) with ``interpolation`` (a Pillow
    resampling filter's name; bilinear when Pillow has none of that name). With
    ``draft``, a large JPEG is first decoded at the smallest 1/2, 1/4 or 1/8 scale
    that is still at least ``image_size`` (Pillow's draft mode).
    """
    height, width = image_size
    resample = getattr(Image.Resampling, interpolation.upper(), Image.Resampling.BILINEAR)
    try:
        with Image.open(path) as img:
            img.seek(0)
            mode = {"grayscale": "L", "rgba": "RGBA"}.get(color_mode, "RGB")
            if draft and img.format == "JPEG":  # let libjpeg scale down by 1/2..1/8 while decoding
                img.draft(mode, (width, height))
            converted = img.convert(mode)
            if converted.size != (width, height):
                converted = converted.resize((width, height), resample)
            array = np.asarray(converted, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None
    if array.ndim == 2:
        array = array[..., np.newaxis]
    return array


def decode_image(path: Path, image_size: tuple[int, int], color_mode: str) -> np.ndarray | None:
    """The image datasets' decoder (registered as ``image_folder``'s): :func:`read_image`
    with JPEG draft mode, bilinear, ``rgb`` or else ``grayscale``; ``None`` for a corrupt
    or non-image file.

    JPEG, PNG (RGBA's alpha dropped, as Keras's ``load_img`` does), BMP, GIF
    (first frame) and whatever else Pillow reads. Use this same function to
    preprocess new images for a trained model.
    """
    return read_image(path, image_size, "rgb" if color_mode == "rgb" else "grayscale", draft=True)
