"""The course's image datasets, on top of ``image_folder``: download or a local ``path``.

``horses_or_humans``, ``rock_paper_scissors``, ``cats_vs_dogs``, ``malaria`` and
``fruits``. Without ``path`` each is downloaded once into the Keras cache
(``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) from its published
URL and unzipped there; offline (or with ``HARNESS_OFFLINE=1``) the error says
which archive to fetch and how to lay it out for ``path``. Decoding and caching
are ``image_folder``'s (the decoder and layout finder :mod:`harness._images`'s):
once per (dataset, parameters), shared by every trial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness_plugins.datasets.image_folder import (
    ImageFolderParams,
    ImageSize,
    check_readable_classes,
    file_lock,
    load_image_layout,
    prepare_tree,
)
from pydantic import Field

import harness
from harness._images import decode_image, find_layout, merge_aliases, unwrap_folder
from harness.data import Dataset, LoadContext, SplitLabels
from harness.download import fetch, keras_cache_dir
from harness.errors import HarnessError

#: Written into an unzipped archive once its layout was found, so later loads skip get_file.
READY_MARKER = ".harness-ready"


@dataclass(frozen=True)
class Archive:
    """One published zip and what its unzipped folder is: a whole layout or one split."""

    url: str
    fname: str
    role: str = "root"  # "root": find train/validation or class folders inside; else a split


@dataclass(frozen=True)
class CourseImageSet:
    """A named dataset: where to download it, extra split-folder names, and offline help."""

    name: str
    description: str
    archives: tuple[Archive, ...]
    local_layout: str
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def offline_help(self) -> str:
        """What to download and where to put it when the download is impossible."""
        urls = " and ".join(a.url for a in self.archives)
        return (
            f"download {urls} on a machine with a network, unzip, and set [dataset] path "
            f"to {self.local_layout}"
        )


class CourseImageParams(ImageFolderParams):
    """Parameters shared by the named image datasets; ``path`` is optional (download)."""

    path: str | None = Field(
        None, description="local copy in the standard layout; unset: download into Keras's cache"
    )


class HorsesOrHumansParams(CourseImageParams):
    """Parameters of ``horses_or_humans`` (course default 300x300 RGB)."""

    image_size: ImageSize = Field(
        300, description="resize every image to this (int: square; or [height, width])"
    )


class RockPaperScissorsParams(CourseImageParams):
    """Parameters of ``rock_paper_scissors`` (course default 150x150 RGB)."""

    image_size: ImageSize = Field(
        150, description="resize every image to this (int: square; or [height, width])"
    )


class CatsVsDogsParams(CourseImageParams):
    """Parameters of ``cats_vs_dogs`` (course default 150x150 RGB)."""

    image_size: ImageSize = Field(
        150, description="resize every image to this (int: square; or [height, width])"
    )


class MalariaParams(CourseImageParams):
    """Parameters of ``malaria`` (50x50 RGB; the cells are about 100-200 px)."""

    image_size: ImageSize = Field(
        50, description="resize every image to this (int: square; or [height, width])"
    )


class FruitsParams(CourseImageParams):
    """Parameters of ``fruits`` (Fruits-360 images are 100x100 RGB)."""

    image_size: ImageSize = Field(
        100, description="resize every image to this (int: square; or [height, width])"
    )


SETS: dict[str, tuple[CourseImageSet, type[CourseImageParams]]] = {
    "horses_or_humans": (
        CourseImageSet(
            "horses_or_humans",
            "Horses or Humans: 1,027 + 256 CGI images, 2 classes (300x300)",
            (
                Archive("https://storage.googleapis.com/learning-datasets/horse-or-human.zip",
                        "horse-or-human.zip", "train"),
                Archive("https://storage.googleapis.com/learning-datasets/"
                        "validation-horse-or-human.zip",
                        "validation-horse-or-human.zip", "validation"),
            ),
            "a folder holding train/{horses,humans}/ and validation/{horses,humans}/ (or the "
            "unzipped horse-or-human/ and validation-horse-or-human/ side by side, or one flat "
            "folder of horses/ and humans/ split by validation_split)",
            {"train": ("horse-or-human",), "validation": ("validation-horse-or-human",)},
        ),
        HorsesOrHumansParams,
    ),
    "rock_paper_scissors": (
        CourseImageSet(
            "rock_paper_scissors",
            "Rock Paper Scissors: 2,520 + 372 CGI hands, 3 classes (300x300; 372 test images)",
            (
                Archive("https://storage.googleapis.com/learning-datasets/rps.zip",
                        "rps.zip", "train"),
                Archive("https://storage.googleapis.com/learning-datasets/rps-test-set.zip",
                        "rps-test-set.zip", "test"),
            ),
            "a folder holding train/{paper,rock,scissors}/ and test/{paper,rock,scissors}/ "
            "(or the unzipped rps/ and rps-test-set/ side by side); rps-test-set is the test "
            "split, and validation_split of rps/ validates unless validation = 'test'",
            {"train": ("rps",), "test": ("rps-test-set",)},
        ),
        RockPaperScissorsParams,
    ),
    "cats_vs_dogs": (
        CourseImageSet(
            "cats_vs_dogs",
            "Cats vs Dogs (filtered): 2,000 + 1,000 photos, 2 classes",
            (
                Archive("https://storage.googleapis.com/mledu-datasets/"
                        "cats_and_dogs_filtered.zip", "cats_and_dogs_filtered.zip"),
            ),
            "the unzipped cats_and_dogs_filtered/ folder, which holds train/{cats,dogs}/ and "
            "validation/{cats,dogs}/",
        ),
        CatsVsDogsParams,
    ),
    "malaria": (
        CourseImageSet(
            "malaria",
            "NIH malaria cell images: 27,558 cells, Parasitized vs Uninfected",
            (
                Archive("https://data.lhncbc.nlm.nih.gov/public/Malaria/cell_images.zip",
                        "cell_images.zip"),
            ),
            "the unzipped cell_images/ folder holding Parasitized/ and Uninfected/ (split by "
            "validation_split), or train/ and validation/ folders each holding those two",
        ),
        MalariaParams,
    ),
    "fruits": (
        CourseImageSet(
            "fruits",
            "Fruits-360 (100x100): one class per fruit variety; Test/ is the test split",
            (
                Archive("https://github.com/fruits-360/fruits-360-100x100/archive/refs/heads/"
                        "main.zip", "fruits-360-100x100.zip"),
            ),
            "a folder holding Training/<fruit>/ and Test/<fruit>/ (or train/ and test/); Test/ "
            "is the test split, and validation_split of Training/ validates unless "
            "validation = 'test'",
        ),
        FruitsParams,
    ),
}


def _extraction_dir(fname: str) -> Path:
    """Where ``keras.utils.get_file(fname, extract=True)`` unzips ``fname`` (Keras 3)."""
    stem = fname[: fname.find(".")] if "." in fname else fname
    return keras_cache_dir() / f"{stem}_extracted"


def download(archive: Archive, dataset: CourseImageSet) -> Path:
    """The unzipped folder of ``archive`` in the Keras cache, downloading it the first time.

    Worker processes that start together download and unzip it once, under a lock file.
    """
    ready = _extraction_dir(archive.fname)
    if (ready / READY_MARKER).exists():
        return ready
    keras_cache_dir().mkdir(parents=True, exist_ok=True)
    with file_lock(keras_cache_dir() / f".{archive.fname}.harness-lock"):
        if (ready / READY_MARKER).exists():
            return ready
        path = fetch(archive.fname, archive.url, extract=True, offline_help=dataset.offline_help())
        if not path.is_dir() or not any(path.iterdir()):
            raise HarnessError(
                f"dataset {dataset.name!r}: {archive.fname} from {archive.url} did not unzip "
                f"into {path}; delete it from {keras_cache_dir()} and retry, or "
                + dataset.offline_help()
            )
        (path / READY_MARKER).touch()
    return path


def resolve_layout(dataset: CourseImageSet, path: str | None) -> dict[str, Path]:
    """Map split names to class-folder roots, from ``path`` or from the downloaded archives."""
    where = f"dataset {dataset.name!r}"
    aliases = merge_aliases(dataset.aliases)
    if path:
        root = Path(path).expanduser()
        if not root.exists():
            raise HarnessError(
                f"{where}: path {root} does not exist; set it to {dataset.local_layout}, "
                "or remove path to download the dataset"
            )
        return find_layout(root, aliases, where)
    layout: dict[str, Path] = {}
    for archive in dataset.archives:
        folder = download(archive, dataset)
        if archive.role == "root":
            layout.update(find_layout(folder, aliases, where))
        else:
            layout[archive.role] = unwrap_folder(folder)
    return layout


def _make_loader(dataset: CourseImageSet):
    def load(params: CourseImageParams, context: LoadContext) -> Dataset:
        layout = resolve_layout(dataset, params.path)
        return load_image_layout(dataset.name, layout, params, context)

    load.__name__ = f"load_{dataset.name}"
    load.__doc__ = f"{dataset.description}; local layout: {dataset.local_layout}."
    return load


def _make_check(dataset: CourseImageSet):
    def check(params: CourseImageParams) -> None:
        """Cheap check before a run: the local layout, a group for every file and every
        class on both sides of the hold-out, and a readable image in every training class
        (nothing to check before a download)."""
        if params.path:
            where = f"dataset {dataset.name!r}"
            tree, _ = prepare_tree(resolve_layout(dataset, params.path), params, where, seed=0)
            check_readable_classes(tree, where)

    return check


def _make_splits(dataset: CourseImageSet):
    def splits(params: CourseImageParams, seed: int) -> SplitLabels | None:
        """The labels (and groups) of each split from the local file listing, for
        ``harness validate`` (None before a download)."""
        if not params.path:
            return None
        where = f"dataset {dataset.name!r}"
        tree, plan = prepare_tree(resolve_layout(dataset, params.path), params, where, seed)
        return plan.labels(tree)

    return splits


@harness.hookimpl
def harness_register_datasets(register):
    """Register the course's named image datasets."""
    for name, (dataset, params) in SETS.items():
        register(
            name,
            _make_loader(dataset),
            params=params,
            description=dataset.description,
            tasks=("binary", "multiclass"),
            check=_make_check(dataset),
            decoder=decode_image,
            splits=_make_splits(dataset),
        )
