"""Image datasets: image_folder and the course's named sets (horses, rps, cats, malaria, fruits).

Fixtures are class folders of real image files written with Pillow (PNG with
alpha, JPEG, BMP, two-frame GIF, mixed sizes) plus a corrupt JPEG and a text file; each
class is one solid colour, so the label of every decoded image can be checked
against its pixels. End-to-end checks read ../shared/data and skip without it.

Validation never comes from test/ unless ``validation = "test"``: a real
validation/ folder validates, else a stratified, seeded hold-out of train/.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import shared_data
from harness_plugins.datasets import course_images, image_folder
from harness_plugins.datasets.course_images import SETS
from harness_plugins.datasets.image_folder import ImageFolderParams, load_image_folder
from PIL import Image

from harness.data import LoadContext, stratified_group_split, stratified_split
from harness.download import DownloadUnavailable
from harness.errors import HarnessError

COLOURS = {"a_red": (220, 20, 20), "b_green": (20, 220, 20), "c_blue": (20, 20, 220)}
#: Dimmer colours of the same classes, for test/ folders: a test image is told by its pixels.
TEST_COLOURS = {name: tuple(v // 2 for v in rgb) for name, rgb in COLOURS.items()}
FORMATS = [("png", (40, 30), "RGBA"), ("jpg", (64, 64), "RGB"), ("bmp", (20, 50), "RGB"),
           ("gif", (33, 33), "P")]


def write_class(folder: Path, colour: tuple[int, int, int], count: int = 4) -> None:
    """``count`` solid-colour images cycling through PNG (RGBA), JPEG, BMP, GIF and sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        ext, size, mode = FORMATS[index % len(FORMATS)]
        image = Image.new("RGB", size, colour)
        if mode == "RGBA":
            image = image.convert("RGBA")
        if mode == "P":  # an animated GIF: only the first frame has the class colour
            other = Image.new("RGB", size, (colour[2], colour[0], colour[1])).convert("P")
            image.convert("P").save(
                folder / f"img{index}.{ext}", save_all=True, append_images=[other], duration=100
            )
            continue
        image.save(folder / f"img{index}.{ext}")


def write_tree(root: Path, classes=("a_red", "b_green", "c_blue"), count: int = 4,
               junk: bool = True, colours=COLOURS) -> Path:
    """A flat tree of class folders; with ``junk`` a corrupt .jpg and a .txt in the first."""
    for name in classes:
        write_class(root / name, colours[name], count)
    if junk:
        first = root / classes[0]
        (first / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
        (first / "notes.txt").write_text("not an image")
    return root


def collect(ds) -> tuple[np.ndarray, np.ndarray]:
    """All (x, y) of an unbatched dataset as arrays."""
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds], strict=True)
    return np.stack(xs), np.array(ys)


def params(path: Path, **values) -> ImageFolderParams:
    return ImageFolderParams(path=str(path), **values)


def brightness(x: np.ndarray) -> np.ndarray:
    """Each image's brightest channel mean: about 0.86 for COLOURS, 0.43 for TEST_COLOURS."""
    return x.mean(axis=(1, 2)).max(axis=1)


def test_flat_tree_shapes_labels_and_skipped_files(tmp_path, caplog):
    root = write_tree(tmp_path / "data")
    caplog.set_level(logging.WARNING)
    ds = load_image_folder(
        params(root, image_size=32, validation_split=0.25), LoadContext(tmp_path / "c", seed=3)
    )
    info = ds.info
    assert info.input_shape == (32, 32, 3)
    assert info.task == "multiclass" and info.num_classes == 3
    assert info.class_names == ("a_red", "b_green", "c_blue")
    assert info.preprocessing["image_size"] == [32, 32]
    assert info.preprocessing["color_mode"] == "rgb"
    assert info.preprocessing["rescale"] == pytest.approx(1 / 255)
    assert "skipped 2 unreadable files" in caplog.text
    x_train, y_train = collect(ds.model_split("train"))
    x_val, y_val = collect(ds.model_split("validation"))
    assert ds.train_size == len(y_train) == 9 and len(y_val) == 3
    assert sorted(y_val.tolist()) == [0, 1, 2]  # stratified: one per class
    assert info.preprocessing["validation_source"] == "train" and ds.test is None
    x = np.concatenate([x_train, x_val])
    y = np.concatenate([y_train, y_val])
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    # each image's dominant channel is its class colour: labels follow sorted folder names
    assert (x.mean(axis=(1, 2)).argmax(axis=1) == y).all()


def test_the_skipped_files_warning_counts_the_ones_it_does_not_name(tmp_path, caplog):
    root = write_tree(tmp_path / "data", classes=("a_red", "b_green"), junk=False)
    for index in range(5):
        (root / "a_red" / f"bad{index}.jpg").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        load_image_folder(params(root, image_size=8), LoadContext(tmp_path / "c"))
    assert "skipped 5 unreadable files" in caplog.text and "and 2 more)" in caplog.text


def test_grayscale_binary_and_rectangular_size(tmp_path):
    root = write_tree(tmp_path / "data", classes=("a_red", "b_green"), junk=False)
    ds = load_image_folder(
        params(root, image_size=[24, 40], color_mode="grayscale"), LoadContext(tmp_path / "c")
    )
    assert ds.info.input_shape == (24, 40, 1)
    assert ds.info.task == "binary" and ds.info.num_classes == 2
    x, y = collect(ds.model_split("train"))
    assert x.shape[1:] == (24, 40, 1) and set(y.tolist()) <= {0, 1}
    validation = collect(ds.model_split("validation"))
    assert (len(y), len(validation[1])) == (6, 2)  # a flat tree: 0.2 by default
    assert "0.2 of each class" in ds.info.preprocessing["validation"]
    rgb = load_image_folder(params(root, image_size=[24, 40]), LoadContext(tmp_path / "c2"))
    assert collect(rgb.model_split("train"))[0].shape[1:] == (24, 40, 3)


def test_train_validation_test_tree(tmp_path):
    root = tmp_path / "wrapper" / "cats_and_dogs"  # a lone wrapper folder is stepped into
    write_tree(root / "train", classes=("a_red", "b_green"), count=5, junk=False)
    write_tree(root / "validation", classes=("a_red", "b_green"), count=2, junk=False)
    write_tree(root / "test", classes=("a_red", "b_green"), count=3, junk=False)
    ds = load_image_folder(params(tmp_path / "wrapper", image_size=16), LoadContext(tmp_path / "c"))
    assert ds.train_size == 10
    assert len(collect(ds.model_split("validation"))[1]) == 4
    assert len(collect(ds.model_split("test"))[1]) == 6
    assert ds.info.preprocessing["validation_source"] == "validation"  # a real validation/


@pytest.mark.parametrize("unreadable", [False, True], ids=["missing", "unreadable"])
def test_a_test_split_without_a_class_says_its_figures_cover_the_others(
    tmp_path, caplog, unreadable
):
    """A test/ folder lacking a class (absent, or every file corrupt) still loads, but says
    that its figure is not over every class."""
    root = tmp_path / "data"
    write_tree(root / "train", count=5, junk=False)
    write_tree(root / "test", classes=("a_red", "b_green"), count=3, junk=False)
    if unreadable:
        (root / "test" / "c_blue").mkdir()
        (root / "test" / "c_blue" / "x.jpg").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        ds = load_image_folder(params(root, image_size=16), LoadContext(tmp_path / "c"))
    assert set(collect(ds.model_split("test"))[1].tolist()) == {0, 1}
    assert "the test split" in caplog.text
    assert "no readable images of class(es) c_blue" in caplog.text
    assert "cover the other 2 class(es) only" in caplog.text


def test_train_and_test_holds_out_validation_from_train(tmp_path):
    root = tmp_path / "rps"
    write_tree(root / "Training", count=10, junk=False)
    write_tree(root / "Test", count=2, junk=False, colours=TEST_COLOURS)
    ds = load_image_folder(params(root, image_size=16), LoadContext(tmp_path / "c", seed=4))
    assert ds.info.preprocessing["validation_source"] == "train"
    assert "0.1 of each class of the Training/ folder" in ds.info.preprocessing["validation"]
    x_val, y_val = collect(ds.model_split("validation"))
    x_train, y_train = collect(ds.model_split("train"))
    assert ds.train_size == 27 and sorted(y_val.tolist()) == [0, 1, 2]  # 10% of each class
    assert (brightness(x_val) > 0.65).all(), "validation images must come from Training/"
    assert (brightness(x_train) > 0.65).all()
    x_test, y_test = collect(ds.model_split("test"))  # Test/ is the test split, whole
    assert sorted(y_test.tolist()) == [0, 0, 1, 1, 2, 2] and (brightness(x_test) < 0.65).all()
    # seeded: the same seed holds out the same images, another seed others
    def held_out(seed: int) -> np.ndarray:
        context = LoadContext(tmp_path / "c", seed=seed)
        loaded = load_image_folder(params(root, image_size=16), context)
        return collect(loaded.model_split("validation"))[0]

    np.testing.assert_array_equal(held_out(4), x_val)
    assert not np.array_equal(held_out(5), x_val)


def test_validation_test_validates_on_test_and_keeps_it(tmp_path):
    root = tmp_path / "rps"
    write_tree(root / "Training", count=4, junk=False)
    write_tree(root / "Test", count=2, junk=False, colours=TEST_COLOURS)
    ds = load_image_folder(params(root, image_size=16, validation="test"),
                           LoadContext(tmp_path / "c"))
    assert ds.info.preprocessing["validation_source"] == "test"
    assert ds.train_size == 12  # nothing held out of Training/
    x_val, y_val = collect(ds.model_split("validation"))
    x_test, y_test = collect(ds.model_split("test"))
    assert len(y_val) == 6 and (brightness(x_val) < 0.65).all()  # the Test/ images
    np.testing.assert_array_equal(x_val, x_test)
    np.testing.assert_array_equal(y_val, y_test)
    with pytest.raises(HarnessError, match="validation = 'test' but there is no test folder"):
        load_image_folder(params(root / "Training", image_size=16, validation="test"),
                          LoadContext(tmp_path / "c2"))
    with pytest.raises(ValueError, match="validation_split is not used"):
        params(root, validation="test", validation_split=0.2)


def test_validation_split_zero_means_no_validation(tmp_path):
    root = tmp_path / "data"
    write_tree(root / "train", count=3, junk=False)
    write_tree(root / "test", count=1, junk=False)
    ds = load_image_folder(params(root, image_size=16, validation_split=0),
                           LoadContext(tmp_path / "c"))
    assert ds.validation is None and ds.train_size == 9
    assert len(collect(ds.model_split("test"))[1]) == 3
    assert ds.info.preprocessing["validation_source"] is None


def test_nothing_usable_is_a_clear_error(tmp_path):
    root = tmp_path / "data"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        (root / name / "a.jpg").write_bytes(b"garbage")
        (root / name / "b.txt").write_text("text")
    with pytest.raises(HarnessError, match="none of the 4 files .* is a readable image"):
        load_image_folder(params(root, image_size=16), LoadContext(tmp_path / "c"))


def test_class_with_only_unreadable_files_is_named(tmp_path):
    root = write_tree(tmp_path / "data", classes=("a_red", "b_green"), junk=False)
    (root / "c_blue").mkdir()
    (root / "c_blue" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(HarnessError, match="c_blue has no readable images"):
        load_image_folder(params(root, image_size=16), LoadContext(tmp_path / "c"))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: None, "does not exist"),
        (lambda root: write_tree(root, classes=("a_red",), junk=False), "at least 2 class folders"),
        (lambda root: (write_tree(root, classes=("a_red", "b_green"), junk=False),
                       (root / "c_empty").mkdir()), "c_empty has no images"),
        (lambda root: write_tree(root / "validation", junk=False), "no train/ folder"),
    ],
    ids=["missing", "one-class", "empty-class", "no-train"],
)
def test_layout_errors(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(HarnessError, match=message):
        load_image_folder(params(root, image_size=16), LoadContext(tmp_path / "c"))


def test_decoded_cache_is_reused(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "data")
    calls = []
    real = image_folder.decode_image

    def counting(path, size, mode):
        calls.append(path)
        return real(path, size, mode)

    monkeypatch.setattr(image_folder, "decode_image", counting)
    context = LoadContext(tmp_path / "cache")
    first = collect(load_image_folder(params(root, image_size=16), context).model_split("train"))
    assert len(calls) == 14  # 12 images + 2 unreadable files, each tried once
    second = collect(load_image_folder(params(root, image_size=16), context).model_split("train"))
    assert len(calls) == 14  # nothing decoded again
    np.testing.assert_array_equal(first[0], second[0])
    assert len(list((tmp_path / "cache").glob("decoded-*/train_x.npy"))) == 0
    assert len(list((tmp_path / "cache").glob("decoded-*/all_x.npy"))) == 1
    # a changed file invalidates the cache
    write_class(root / "a_red", COLOURS["a_red"], count=5)
    load_image_folder(params(root, image_size=16), context)
    assert len(calls) == 14 + 15
    assert len(list((tmp_path / "cache").glob("decoded-*"))) == 1  # the stale one is gone


def _race_worker(root: str, cache: str, log_file: str, barrier) -> None:
    """Child process: decode through the shared cache, logging each decode call to a file."""
    import time

    from harness_plugins.datasets import image_folder as module

    real = module.decode_image

    def slow_counting(path, size, mode):
        with open(log_file, "a") as handle:
            handle.write(f"{path}\n")
        time.sleep(0.02)  # widen the window in which the other process arrives
        return real(path, size, mode)

    module.decode_image = slow_counting
    tree = module.scan_tree(module.find_layout(Path(root)))
    barrier.wait(30)
    module.decoded_cache(tree, (16, 16), "rgb", Path(cache))


def test_two_processes_decode_once(tmp_path):
    root = write_tree(tmp_path / "data", count=8)
    log_file = tmp_path / "decodes.log"
    context = mp.get_context("spawn")
    barrier = context.Barrier(2)
    args = (str(root), str(tmp_path / "c"), str(log_file), barrier)
    workers = [context.Process(target=_race_worker, args=args) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(log_file.read_text().splitlines()) == 3 * 8 + 2  # one process decoded
    assert len(list((tmp_path / "c").glob("decoded-*/manifest.json"))) == 1
    assert not list((tmp_path / "c").glob(".tmp-*"))


@pytest.mark.parametrize(
    "options, mode",
    [
        ({"cache": "memory", "memory_limit_mb": 1}, "uint8 in memory"),  # 18 x 108 KiB > 1 MiB
        ({"memory_limit_mb": 1}, "streamed from"),
        ({"cache": "disk"}, "streamed from"),
    ],
)
def test_every_cache_mode_yields_the_same_data(tmp_path, caplog, options, mode):
    root = write_tree(tmp_path / "data", count=6, junk=False)
    caplog.set_level(logging.INFO, logger="harness_plugins.datasets.image_folder")
    reference = load_image_folder(params(root, image_size=192), LoadContext(tmp_path))
    assert "uint8 in memory" in caplog.text
    caplog.clear()
    other = load_image_folder(params(root, image_size=192, **options), LoadContext(tmp_path))
    assert mode in caplog.text
    assert other.train.cardinality().numpy() == reference.train_size == other.train_size
    for split in ("train", "validation"):
        x_ref, y_ref = collect(reference.model_split(split))
        x_other, y_other = collect(other.model_split(split))
        order_ref = np.lexsort((x_ref.sum(axis=(1, 2, 3)), y_ref))
        order_other = np.lexsort((x_other.sum(axis=(1, 2, 3)), y_other))
        np.testing.assert_array_equal(y_ref[order_ref], y_other[order_other])
        np.testing.assert_array_equal(x_ref[order_ref], x_other[order_other])


def test_stratified_split_is_seeded_and_per_class():
    # one shared splitter: without groups, stratified_group_split is stratified_split
    assert image_folder.stratified_group_split is stratified_group_split
    labels = np.repeat([0, 1, 2], [10, 20, 1])
    train, val = stratified_split(labels, 0.2, seed=5)
    assert sorted(np.bincount(labels[val], minlength=3).tolist()) == [0, 2, 4]
    assert len(train) + len(val) == len(labels) and not set(train) & set(val)
    assert 2 in labels[train]  # a class of one image stays in training
    again = stratified_split(labels, 0.2, seed=5)[1]
    other = stratified_split(labels, 0.2, seed=6)[1]
    np.testing.assert_array_equal(val, again)
    assert not np.array_equal(val, other)


@pytest.mark.parametrize("name", sorted(SETS))
def test_named_dataset_offline_says_what_to_put_where(tmp_path, monkeypatch, name):
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    dataset, params_model = SETS[name]
    loader = course_images._make_loader(dataset)
    with pytest.raises(DownloadUnavailable) as caught:
        loader(params_model(), LoadContext(tmp_path / "c"))
    message = str(caught.value)
    assert dataset.archives[0].url in message
    assert "set [dataset] path to" in message
    assert "HARNESS_OFFLINE" in message


def test_named_dataset_download_layout_and_reuse(tmp_path, monkeypatch):
    """rps.zip unzips to rps/<class>/, rps-test-set.zip to rps-test-set/<class>/ (simulated)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    fetched = []

    def fake_fetch(fname, url, *, extract, offline_help, **_):
        assert extract and "rps" in url
        fetched.append(fname)
        stem = fname.split(".")[0]
        folder = tmp_path / "keras" / "datasets" / f"{stem}_extracted"
        write_tree(folder / stem, count=3 if stem == "rps" else 1, junk=False)
        return folder

    monkeypatch.setattr(course_images, "fetch", fake_fetch)
    dataset, params_model = SETS["rock_paper_scissors"]
    loader = course_images._make_loader(dataset)
    ds = loader(params_model(image_size=16), LoadContext(tmp_path / "c"))
    assert ds.info.num_classes == 3 and ds.info.input_shape == (16, 16, 3)
    # rps/ holds out one image per class; rps-test-set/ is the test split
    assert ds.train_size == 6 and len(collect(ds.model_split("validation"))[1]) == 3
    assert len(collect(ds.model_split("test"))[1]) == 3
    assert ds.info.preprocessing["validation_source"] == "train"
    assert fetched == ["rps.zip", "rps-test-set.zip"]
    loader(params_model(image_size=16), LoadContext(tmp_path / "c"))
    assert fetched == ["rps.zip", "rps-test-set.zip"]  # unzipped folders reused, no get_file


def test_named_dataset_accepts_unzipped_folders_side_by_side(tmp_path):
    write_tree(tmp_path / "horse-or-human", classes=("a_red", "b_green"), junk=False)
    write_tree(tmp_path / "validation-horse-or-human", classes=("a_red", "b_green"), count=2,
               junk=False)
    dataset, params_model = SETS["horses_or_humans"]
    ds = course_images._make_loader(dataset)(
        params_model(path=str(tmp_path), image_size=16), LoadContext(tmp_path / "c")
    )
    assert ds.train_size == 8 and len(collect(ds.model_split("validation"))[1]) == 4


def test_named_dataset_missing_path(tmp_path):
    dataset, params_model = SETS["cats_vs_dogs"]
    with pytest.raises(HarnessError, match="cats_and_dogs_filtered"):
        course_images._make_loader(dataset)(
            params_model(path=str(tmp_path / "nope")), LoadContext(tmp_path / "c")
        )


SHARED = {
    # name: (folder in ../shared/data, classes, limit_per_class, expected train, validation,
    #        validation_source, test)
    "horses_or_humans": ("horse-or-human", 2, 10, 16, 4, "train", 0),  # flat: 0.2 held out
    "rock_paper_scissors": ("rock-paper-scissors", 3, 6, 15, 3, "train", 18),
    "cats_vs_dogs": ("cats-vs-dogs", 2, 6, 12, 12, "validation", 0),
    "malaria": ("malaria", 2, 6, 12, 12, "validation", 0),
    "fruits": ("fruits", 33, 2, 33, 33, "train", 66),
}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_named_datasets_on_shared_data(tmp_path, name):
    folder, classes, limit, n_train, n_val, source, n_test = SHARED[name]
    path = shared_data(folder)
    dataset, params_model = SETS[name]
    size = params_model().image_size
    ds = course_images._make_loader(dataset)(
        params_model(path=str(path), limit_per_class=limit), LoadContext(tmp_path, seed=1)
    )
    assert ds.info.num_classes == classes
    assert ds.info.task == ("binary" if classes == 2 else "multiclass")
    assert ds.info.input_shape == (size, size, 3)
    assert ds.train_size == n_train
    x, y = collect(ds.model_split("validation"))
    assert len(y) == n_val and x.shape[1:] == (size, size, 3)
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.1
    assert ds.info.preprocessing["validation_source"] == source
    assert (len(collect(ds.model_split("test"))[1]) if ds.test is not None else 0) == n_test


def test_image_folder_on_shared_cats_vs_dogs(tmp_path):
    path = shared_data("cats-vs-dogs")
    ds = load_image_folder(
        params(path, image_size=[64, 48], color_mode="grayscale", limit_per_class=4),
        LoadContext(tmp_path),
    )
    assert ds.info.class_names == ("cats", "dogs") and ds.info.input_shape == (64, 48, 1)
    assert ds.train_size == 8 and len(collect(ds.model_split("validation"))[1]) == 8


def test_tiny_study_on_image_folder(tmp_path, write_study, run_study_in_process):
    root = write_tree(tmp_path / "images", count=6)
    study = write_study(
        f"""
        [study]
        name = "tiny-images"
        trials = 2
        seed = 1
        objective = "val_accuracy"

        [dataset]
        name = "image_folder"
        path = "{root.as_posix()}"
        image_size = {{choice = [16, 24]}}
        validation_split = 0.34

        [model]
        name = "cnn"
        conv_layers = 1
        filters = 4
        units = 8

        [train]
        epochs = 2
        batch_size = 4
        """
    )
    outcome = run_study_in_process(study)
    table = outcome.table
    assert len(table) == 2
    assert (table["state"] == "complete").all(), table.get("fail_reason")
    assert table["val_accuracy"].notna().all()
    assert list((outcome.run_dir / "cache").glob("*/decoded-*/manifest.json"))


def test_images_are_held_as_uint8_and_scaled_per_batch(tmp_path):
    """The splits stay uint8 in memory (4x smaller than float32); the trial runner's batches
    are float32 in [0, 1], exactly the uint8 values / 255, augmentation or not."""
    from harness.fit_inputs import training_pipelines
    from harness.study import TrainParams

    root = write_tree(tmp_path / "data", count=6, junk=False)
    ds = load_image_folder(params(root, image_size=16), LoadContext(tmp_path / "c"))
    raw_x, _ = collect(ds.train)
    assert raw_x.dtype == np.uint8
    train_ds, val_ds = training_pipelines(ds, TrainParams(batch_size=4, shuffle_buffer=0), None, 0)
    batch_x = np.concatenate([x.numpy() for x, _ in train_ds])
    assert batch_x.dtype == np.float32 and 0.0 <= batch_x.min() and batch_x.max() <= 1.0
    np.testing.assert_allclose(batch_x, raw_x / 255.0, rtol=1e-6)
    val_x = np.concatenate([x.numpy() for x, _ in val_ds])
    np.testing.assert_allclose(val_x, collect(ds.validation)[0] / 255.0, rtol=1e-6)


# --------------------------------------------------------------------------- groups, samples


def write_grouped(root: Path, classes=("a", "b"), groups: int = 5, per_group: int = 3) -> Path:
    """Class folders of PNGs named ``<class><NN>-<i>.png`` (group ``<class><NN>``), each
    group's images one shade of its class's channel, so a decoded image tells its group."""
    for channel, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for group in range(groups):
            colour = [0, 0, 0]
            colour[channel] = 60 + 40 * group
            for index in range(per_group):
                Image.new("RGB", (8, 8), tuple(colour)).save(
                    root / name / f"{name}{group:02d}-{index}.png"
                )
    return root


def groups_of(x: np.ndarray, classes=("a", "b")) -> list[str]:
    """The group each decoded ``write_grouped`` image shows."""
    means = x.mean(axis=(1, 2)) * 255
    channel = means.argmax(axis=1)
    shade = np.rint((means.max(axis=1) - 60) / 40).astype(int)
    return [f"{classes[c]}{g:02d}" for c, g in zip(channel, shade, strict=True)]


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_group_pattern_holds_out_whole_groups_aligned_with_the_examples(tmp_path, cache):
    root = write_grouped(tmp_path / "data")
    ds = load_image_folder(
        params(root, image_size=8, validation_split=0.4, group=r"^([a-z]+\d+)-", cache=cache),
        LoadContext(tmp_path / "c", seed=4),
    )
    x_train, y_train = collect(ds.model_split("train"))
    x_val, y_val = collect(ds.model_split("validation"))
    # one group name per example, in the order of each split
    assert list(ds.train_groups) == groups_of(x_train)
    assert list(ds.validation_groups) == groups_of(x_val)
    assert not set(ds.train_groups) & set(ds.validation_groups)
    assert np.bincount(y_val).tolist() == [6, 6]  # 2 of each class's 5 groups
    assert "whole groups" in ds.info.preprocessing["validation"]


def test_a_validation_folder_sharing_groups_is_pooled_and_split_by_group(tmp_path):
    write_grouped(tmp_path / "data" / "train", groups=4)
    write_grouped(tmp_path / "data" / "validation", groups=4, per_group=1)  # same groups
    ds = load_image_folder(
        params(tmp_path / "data", image_size=8, group=r"^([a-z]+\d+)-"),
        LoadContext(tmp_path / "c"),
    )
    assert not set(ds.train_groups) & set(ds.validation_groups)
    assert len(ds.train_groups) + len(ds.validation_groups) == 2 * 4 * 4
    assert ds.info.preprocessing["validation_source"] == "train"
    assert "pooled" in ds.info.preprocessing["validation"]


def test_group_subfolder_names_the_group(tmp_path):
    for name in ("a", "b"):
        for group in ("g1", "g2", "g3"):
            write_class(tmp_path / "data" / name / f"{name}-{group}", COLOURS["a_red"], count=2)
    ds = load_image_folder(
        params(tmp_path / "data", image_size=8, group="subfolder", validation_split=0.3),
        LoadContext(tmp_path / "c"),
    )
    assert set(ds.validation_groups) | set(ds.train_groups) == {
        f"{n}-{g}" for n in "ab" for g in ("g1", "g2", "g3")
    }
    assert not set(ds.train_groups) & set(ds.validation_groups)


def test_limit_per_class_is_a_seeded_sample_not_the_first_files(tmp_path):
    from harness._images import find_layout, scan_tree

    layout = find_layout(write_grouped(tmp_path / "data", groups=10, per_group=2))

    def picked(seed):
        return [p.name for p in scan_tree(layout, limit_per_class=5, seed=seed).files["all"]]

    first = [f"a{g:02d}-{i}.png" for g in range(3) for i in range(2)][:5]
    assert picked(3) == picked(3) and picked(3) != picked(4)
    assert picked(3)[:5] != first and len(picked(3)) == 10
    assert len({name.split("-")[0] for name in picked(3)}) > 3  # more than the first groups


def _harness(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "harness", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _grouped_study(tmp_path: Path, group: str, **trees) -> Path:
    root = write_grouped(tmp_path / "data", **trees)
    study = tmp_path / "study.toml"
    study.write_text(
        f'[study]\nname = "grouped"\ntrials = 1\nseed = 2\n\n'
        f'[dataset]\nname = "image_folder"\npath = "{root.as_posix()}"\nimage_size = 8\n'
        f"validation_split = 0.4\ngroup = '{group}'\n\n"
        '[model]\nname = "dense"\n'
    )
    return study


def test_validate_prints_examples_per_class_and_groups_of_each_split(tmp_path):
    study = _grouped_study(tmp_path, r"^([a-z]+\d+)-")
    done = _harness("validate", str(study))
    assert done.returncode == 0, done.stderr
    assert "  train: 18 examples (a 9, b 9), 6 groups" in done.stdout
    assert "  validation: 12 examples (a 6, b 6), 4 groups" in done.stdout
    assert "tensorflow" not in done.stderr.lower()


@pytest.mark.parametrize(
    ("group", "trees", "says"),
    [
        ("^[a-z]+", {}, "has no capture group"),
        (r"^x(\d+)", {}, "matches no file (e.g. a/a00-0.png)"),
        (r"^([a-z])\d+-", {}, "class 'a' has a single group ('a')"),
        (r"^([a-z]+0[0-3])-", {}, "does not match 6 of 30 files"),
    ],
)
def test_validate_refuses_a_bad_group_in_one_line(tmp_path, group, trees, says):
    study = _grouped_study(tmp_path, group, **trees)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    done = _harness("validate", str(study))
    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
