"""Array datasets: mnist, fashion_mnist, sign_language_mnist, linear, csv_table.

Validation never comes from the test split unless a study says ``validation =
"test"``: by default it is a stratified, seeded hold-out of the training rows.

Fixtures are written in the real formats (gzipped IDX with big-endian headers,
keras-layout npz, Kaggle CSVs); the end-to-end checks read ../shared/data when
it exists and skip otherwise.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import shared_data
from harness_plugins.datasets.csv_table import CsvTableParams, load_csv_table
from harness_plugins.datasets.digits import DigitsParams, load_digits
from harness_plugins.datasets.linear import LinearParams, load_linear
from harness_plugins.datasets.mnist import (
    FASHION_CLASSES,
    MnistParams,
    load_fashion_mnist,
    load_mnist,
)
from harness_plugins.datasets.sign_language_mnist import (
    LETTERS,
    SignLanguageParams,
    load_sign_language_mnist,
)

from harness.data import LoadContext, stratified_split, stratified_split_arrays
from harness.download import DownloadUnavailable
from harness.errors import HarnessError

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


# ---------------------------------------------------------------------------- helpers


@pytest.fixture
def ctx(tmp_path):
    return LoadContext(cache_dir=tmp_path / "cache", seed=7)


def arrays(ds):
    """All (x, y) of an unbatched tf.data split as numpy arrays."""
    return next(iter(ds.batch(1 << 20).as_numpy_iterator()))


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file: 0x00 0x00 0x08 ndim, big-endian uint32 dims, then the uint8 data."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array, magic)))
    return path


def fake_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    x[:, 0, 0] = 255
    x[:, 0, 1] = 0
    y = (np.arange(n) % 10).astype(np.uint8)
    return x, y


def write_idx_folder(folder: Path, n_train=20, n_test=10, names=IDX_NAMES) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = fake_images(n_train, 1)
    x_test, y_test = fake_images(n_test, 2)
    write_idx(folder / names["train_images"], x_train)
    write_idx(folder / names["train_labels"], y_train)
    write_idx(folder / names["test_images"], x_test)
    write_idx(folder / names["test_labels"], y_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def row_positions(haystack: np.ndarray, needles: np.ndarray) -> list[int | None]:
    """For each row of ``needles``, its index in ``haystack`` (compared as bytes), else None."""
    index = {row.tobytes(): i for i, row in enumerate(np.ascontiguousarray(haystack))}
    return [index.get(row.tobytes()) for row in np.ascontiguousarray(needles)]


def assert_rows_of(rows: np.ndarray, labels: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[int]:
    """Every row of ``rows`` is a row of ``x`` (with the same label); returns their indices."""
    found = row_positions(x, rows)
    assert None not in found, "a row that is not in the expected split"
    np.testing.assert_array_equal(y[found], labels)
    return found


def as_uint8(x: np.ndarray) -> np.ndarray:
    """Scaled [0, 1] float images back to the uint8 (N, 28, 28) they were read from."""
    return np.rint(x[..., 0] * 255).astype(np.uint8)


def sign_frame(labels, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(len(labels), 784))
    frame = pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(1, 785)])
    frame.insert(0, "label", labels)
    return frame


# ---------------------------------------------------------------------------- the shared splitter


@pytest.mark.parametrize("split", [0.1, 0.2, 0.25, 0.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_split_shares_each_class_within_rounding(split, seed):
    labels = np.random.default_rng(seed).permutation(np.repeat([0, 1, 2, 3, 4], [53, 31, 16, 4, 1]))
    train, val = stratified_split(labels, split, seed)
    assert sorted([*train, *val]) == list(range(len(labels)))  # disjoint, nothing lost
    assert list(train) == sorted(train) and list(val) == sorted(val)
    for label, count in enumerate([53, 31, 16, 4]):
        held = int((labels[val] == label).sum())
        exact = count * split
        assert np.floor(exact) <= held <= np.ceil(exact) or held == 1, (label, held, exact)
        assert 1 <= held <= count - 1  # every class of 2+ rows is in both parts
    assert 4 not in labels[val]  # a class of one row stays in training
    assert abs(len(val) - len(labels) * split) <= 1


def test_stratified_split_is_seeded_and_keeps_rows_aligned():
    x = np.arange(100).reshape(50, 2)
    y = np.repeat([0, 1, 2], [25, 15, 10])
    x_train, y_train, x_val, y_val = stratified_split_arrays(x, y, 0.2, seed=3)
    assert np.bincount(y_val).tolist() == [5, 3, 2]
    np.testing.assert_array_equal(y[x_val[:, 0] // 2], y_val)  # rows moved with their labels
    np.testing.assert_array_equal(y[x_train[:, 0] // 2], y_train)
    again = stratified_split_arrays(x, y, 0.2, seed=3)[2]
    other = stratified_split_arrays(x, y, 0.2, seed=4)[2]
    np.testing.assert_array_equal(x_val, again)
    assert not np.array_equal(x_val, other)


def test_stratified_split_of_singletons_and_nothing():
    train, val = stratified_split(np.arange(5), 0.1, seed=0)  # no class can be shared out
    assert len(val) == 1 and len(train) == 4
    train, val = stratified_split(np.array([0, 0, 1]), 0.0, seed=0)
    assert list(train) == [0, 1, 2] and len(val) == 0
    with pytest.raises(ValueError):
        stratified_split_arrays(np.zeros((4, 1)), np.zeros(4), 1.0, seed=0)


# ---------------------------------------------------------------------------- mnist / fashion


def test_mnist_idx_folder_shapes_and_scaling(tmp_path, ctx):
    raw = write_idx_folder(tmp_path / "mnist")
    data = load_mnist(MnistParams(path=str(tmp_path / "mnist")), ctx)
    info = data.info
    assert info.input_shape == (28, 28, 1)
    assert (info.task, info.num_classes) == ("multiclass", 10)
    assert info.class_names == tuple("0123456789")
    assert info.preprocessing["image_size"] == [28, 28]
    assert info.preprocessing["color_mode"] == "grayscale"
    assert info.preprocessing["rescale"] == pytest.approx(1 / 255)
    x, y = arrays(data.train)
    x_val, y_val = arrays(data.validation)
    assert data.train_size == len(y) == 10 and len(y_val) == 10  # 2 per class: 1 + 1
    assert x.shape == (10, 28, 28, 1) and x.dtype == np.float32
    assert y.dtype == np.int32
    assert x.min() == 0.0 and x.max() == 1.0
    rows = assert_rows_of(as_uint8(x), y, raw["x_train"], raw["y_train"])
    np.testing.assert_allclose(x[..., 0], raw["x_train"][rows] / 255.0, rtol=1e-6)
    x_test, y_test = arrays(data.test)
    assert x_test.shape == (10, 28, 28, 1)
    np.testing.assert_array_equal(y_test, raw["y_test"])


def test_mnist_default_validation_is_a_stratified_seeded_holdout_of_train(tmp_path):
    raw = write_idx_folder(tmp_path / "m", n_train=200, n_test=30)  # 20 images per class
    params = MnistParams(path=str(tmp_path / "m"))
    data = load_mnist(params, LoadContext(tmp_path / "c", seed=7))
    info = data.info
    assert info.preprocessing["validation_source"] == "train"
    assert "0.1 of the training images" in info.preprocessing["validation"]
    x, y = arrays(data.train)
    x_val, y_val = arrays(data.validation)
    assert (len(y), len(y_val)) == (180, 20)
    # the validation images are training images, never test images
    val_rows = assert_rows_of(as_uint8(x_val), y_val, raw["x_train"], raw["y_train"])
    assert row_positions(raw["x_test"], as_uint8(x_val)) == [None] * 20
    train_rows = assert_rows_of(as_uint8(x), y, raw["x_train"], raw["y_train"])
    assert sorted(train_rows + val_rows) == list(range(200))  # disjoint, nothing lost
    # stratified: 10% of each class
    assert np.bincount(y_val, minlength=10).tolist() == [2] * 10
    # the test split is still the whole t10k set
    x_test, y_test = arrays(data.test)
    np.testing.assert_array_equal(as_uint8(x_test), raw["x_test"])
    np.testing.assert_array_equal(y_test, raw["y_test"])
    # seeded: the same seed draws the same rows, another seed others
    again = arrays(load_mnist(params, LoadContext(tmp_path / "c", seed=7)).validation)[0]
    np.testing.assert_array_equal(again, x_val)
    other = arrays(load_mnist(params, LoadContext(tmp_path / "c", seed=8)).validation)[0]
    assert sorted(row_positions(raw["x_train"], as_uint8(other))) != sorted(val_rows)


def test_mnist_validation_test_validates_on_the_test_split_and_keeps_it(tmp_path, ctx):
    raw = write_idx_folder(tmp_path / "m", n_train=20, n_test=10)
    data = load_mnist(MnistParams(path=str(tmp_path / "m"), validation="test"), ctx)
    assert data.info.preprocessing["validation_source"] == "test"
    assert data.train_size == 20  # nothing held out of training
    x_val, y_val = arrays(data.validation)
    np.testing.assert_array_equal(as_uint8(x_val), raw["x_test"])
    np.testing.assert_array_equal(y_val, raw["y_test"])
    x_test, y_test = arrays(data.test)  # still the test split: the harness can report it
    np.testing.assert_array_equal(x_test, x_val)
    np.testing.assert_array_equal(y_test, y_val)
    with pytest.raises(ValueError, match="validation_split is not used"):
        MnistParams(validation="test", validation_split=0.2)


def test_validation_split_carves_train_and_keeps_the_test_split(tmp_path, ctx):
    write_idx_folder(tmp_path / "m", n_train=60, n_test=10)
    params = MnistParams(path=str(tmp_path / "m"), validation_split=0.25, limit=40, test_limit=6)
    data = load_mnist(params, ctx)
    assert data.train_size == 30
    assert np.bincount(arrays(data.validation)[1]).tolist() == [1] * 10  # 4 per class: 1 held
    assert len(arrays(data.test)[1]) == 6
    again = load_mnist(params, ctx)
    np.testing.assert_array_equal(arrays(data.validation)[0], arrays(again.validation)[0])


def test_npz_file_or_folder_and_fashion_class_names(tmp_path, ctx):
    x_train, y_train = fake_images(12, 3)
    x_test, y_test = fake_images(5, 4)
    folder = tmp_path / "fashion"
    folder.mkdir()
    npz = folder / "fashion_mnist_subset.npz"
    np.savez(npz, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    for path in (npz, folder):
        data = load_fashion_mnist(MnistParams(path=str(path)), ctx)
        assert data.info.name == "fashion_mnist"
        assert data.info.class_names == FASHION_CLASSES
        assert data.info.class_names[9] == "Ankle boot"
        assert data.info.preprocessing["format"] == "npz"
        assert data.info.preprocessing["validation_source"] == "train"
        x, y = arrays(data.train)
        x_val, y_val = arrays(data.validation)
        assert x.shape[1:] == (28, 28, 1) and x.dtype == np.float32 and x.max() == 1.0
        assert len(y) + len(y_val) == 12
        assert_rows_of(as_uint8(x_val), y_val, x_train, y_train)
        np.testing.assert_array_equal(arrays(data.test)[1], y_test)
    with pytest.raises(HarnessError, match="no MNIST data found"):
        load_mnist(MnistParams(path=str(folder)), ctx)  # a fashion npz is not MNIST


def test_idx_files_with_other_names(tmp_path, ctx):
    names = {role: name.replace(".gz", ".first5.gz") for role, name in IDX_NAMES.items()}
    write_idx_folder(tmp_path / "sub", n_train=5, n_test=5, names=names)
    with pytest.raises(HarnessError, match="train-images-idx3-ubyte.gz"):
        load_fashion_mnist(MnistParams(path=str(tmp_path / "sub")), ctx)
    data = load_fashion_mnist(MnistParams(path=str(tmp_path / "sub"), **names), ctx)
    assert data.train_size == 4  # 5 images of 5 classes: one held out
    with pytest.raises(HarnessError, match=r"train_labels = 'nope.gz'"):
        load_fashion_mnist(
            MnistParams(path=str(tmp_path / "sub"), **{**names, "train_labels": "nope.gz"}), ctx
        )


def test_plain_uncompressed_idx_is_read(tmp_path, ctx):
    folder = tmp_path / "plain"
    write_idx_folder(folder)
    for name in IDX_NAMES.values():
        gz = folder / name
        (folder / name.removesuffix(".gz")).write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    data = load_mnist(MnistParams(path=str(folder)), ctx)
    assert data.train_size + len(arrays(data.validation)[1]) == 20


def test_wrong_magic_number(tmp_path, ctx):
    folder = tmp_path / "swapped"
    write_idx_folder(folder)
    labels = np.zeros(20, dtype=np.uint8)
    write_idx(folder / IDX_NAMES["train_images"], labels)  # a labels file named as images
    with pytest.raises(HarnessError, match=r"magic number 2049 .*expected 2051"):
        load_mnist(MnistParams(path=str(folder)), ctx)


def test_truncated_idx_and_truncated_gzip(tmp_path, ctx):
    folder = tmp_path / "cut"
    write_idx_folder(folder)
    images = folder / IDX_NAMES["train_images"]
    full = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(full[:-100]))
    with pytest.raises(HarnessError, match=r"truncated.*15680 bytes of data but 15580"):
        load_mnist(MnistParams(path=str(folder)), ctx)
    images.write_bytes(gzip.compress(full)[:-50])
    with pytest.raises(HarnessError, match="truncated or corrupt"):
        load_mnist(MnistParams(path=str(folder)), ctx)


def test_mismatched_counts_and_bad_labels(tmp_path, ctx):
    folder = tmp_path / "odd"
    write_idx_folder(folder)
    write_idx(folder / IDX_NAMES["train_labels"], np.zeros(19, dtype=np.uint8))
    with pytest.raises(HarnessError, match="20 images but 19 labels"):
        load_mnist(MnistParams(path=str(folder)), ctx)
    write_idx(folder / IDX_NAMES["train_labels"], np.full(20, 12, dtype=np.uint8))
    with pytest.raises(HarnessError, match=r"labels range 12\.\.12, expected 0\.\.9"):
        load_mnist(MnistParams(path=str(folder)), ctx)


def test_missing_data_names_the_files(tmp_path, ctx):
    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError) as info:
        load_mnist(MnistParams(path=str(tmp_path / "empty")), ctx)
    message = str(info.value)
    for name in IDX_NAMES.values():
        assert name in message
    assert "mnist*.npz" in message
    with pytest.raises(HarnessError, match="does not exist"):
        load_mnist(MnistParams(path=str(tmp_path / "absent")), ctx)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(HarnessError, match="missing array.*y_train"):
        load_mnist(MnistParams(path=str(bad)), ctx)


@pytest.mark.parametrize(
    ("loader", "names"),
    [
        (load_mnist, ["mnist.npz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
        (load_fashion_mnist, list(IDX_NAMES.values())),
    ],
)
def test_offline_message_says_which_files_go_where(tmp_path, ctx, monkeypatch, loader, names):
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(DownloadUnavailable) as info:
        loader(MnistParams(), ctx)
    message = str(info.value)
    for name in names:
        assert name in message
    assert "path =" in message and "[dataset]" in message


def test_download_cache_is_used_offline(tmp_path, ctx, monkeypatch):
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cache = tmp_path / "keras" / "datasets"
    cache.mkdir(parents=True)
    x, y = fake_images(8, 5)
    np.savez(cache / "mnist.npz", x_train=x, y_train=y, x_test=x[:3], y_test=y[:3])
    assert load_mnist(MnistParams(), ctx).train_size == 7  # one of 8 held out
    write_idx_folder(cache / "fashion-mnist", n_train=6, n_test=4)  # keras.datasets' layout
    assert load_fashion_mnist(MnistParams(), ctx).train_size == 5


# ---------------------------------------------------------------------------- sign language


def test_sign_language_label_mapping_and_scaling(tmp_path, ctx):
    labels = [0, 8, 10, 24, 3, 10, 11, 23]
    folder = tmp_path / "sign"
    folder.mkdir()
    sign_frame(labels).to_csv(folder / "sign_mnist_train.csv", index=False)
    sign_frame([10, 24, 0], seed=1).to_csv(folder / "sign_mnist_test.csv", index=False)
    data = load_sign_language_mnist(SignLanguageParams(path=str(folder), validation="test"), ctx)
    info = data.info
    assert info.num_classes == 24 and len(info.class_names) == 24
    assert info.class_names == LETTERS
    assert "J" not in info.class_names and "Z" not in info.class_names
    assert info.class_names[9] == "K" and info.class_names[23] == "Y"
    assert info.input_shape == (28, 28, 1)
    x, y = arrays(data.train)
    assert x.shape == (8, 28, 28, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert list(y) == [0, 8, 9, 23, 3, 9, 10, 22]
    assert [info.class_names[c] for c in y[:4]] == ["A", "I", "K", "Y"]
    assert list(arrays(data.validation)[1]) == [9, 23, 0]  # validation = "test": the test CSV
    assert list(arrays(data.test)[1]) == [9, 23, 0]  # ... which stays the test split
    assert info.preprocessing["validation_source"] == "test"


def test_sign_language_default_holds_out_the_train_csv(tmp_path):
    folder = tmp_path / "sign"
    folder.mkdir()
    train_labels = [k for k in range(25) if k != 9] * 10  # 10 rows per letter
    train = sign_frame(train_labels)
    train.to_csv(folder / "sign_mnist_train.csv", index=False)
    test = sign_frame([10, 24, 0, 5], seed=1)
    test.to_csv(folder / "sign_mnist_test.csv", index=False)
    pixels = train.iloc[:, 1:].to_numpy().astype(np.uint8).reshape(-1, 28, 28)
    classes = np.array([k if k < 9 else k - 1 for k in train_labels])
    params = SignLanguageParams(path=str(folder))
    data = load_sign_language_mnist(params, LoadContext(tmp_path / "c", seed=7))
    assert data.info.preprocessing["validation_source"] == "train"
    x, y = arrays(data.train)
    x_val, y_val = arrays(data.validation)
    assert (len(y), len(y_val)) == (216, 24)
    assert np.bincount(y_val, minlength=24).tolist() == [1] * 24  # stratified: 10% of each
    val_rows = assert_rows_of(as_uint8(x_val), y_val, pixels, classes)  # train-CSV rows
    train_rows = assert_rows_of(as_uint8(x), y, pixels, classes)
    assert sorted(train_rows + val_rows) == list(range(240))
    assert list(arrays(data.test)[1]) == [9, 23, 0, 5]  # the test CSV is the test split
    again = load_sign_language_mnist(params, LoadContext(tmp_path / "c", seed=7))
    np.testing.assert_array_equal(arrays(again.validation)[0], x_val)
    other = load_sign_language_mnist(params, LoadContext(tmp_path / "c", seed=8))
    assert not np.array_equal(arrays(other.validation)[0], x_val)


def test_sign_language_csv_with_only_a_header_or_a_nan_says_so(tmp_path):
    from harness_plugins.datasets.sign_language_mnist import read_sign_csv

    csv = tmp_path / "sign_mnist_train.csv"
    sign_frame([0, 1]).iloc[:0].to_csv(csv, index=False)
    with pytest.raises(HarnessError, match="no data rows, only the header"):
        read_sign_csv(csv)
    frame = sign_frame([0, 1]).astype("float64")
    frame.iloc[1, 5] = float("nan")
    frame.to_csv(csv, index=False)
    with pytest.raises(HarnessError, match=r"empty or NaN cells in column\(s\) pixel5"):
        read_sign_csv(csv)


def test_sign_language_validation_test_needs_a_test_csv(tmp_path, ctx):
    csv = tmp_path / "sign_mnist_train.csv"
    sign_frame([0, 1, 2, 3]).to_csv(csv, index=False)
    with pytest.raises(HarnessError, match="validation = 'test' but there is no test data"):
        load_sign_language_mnist(SignLanguageParams(path=str(csv), validation="test"), ctx)
    with pytest.raises(ValueError, match="validation_split is not used"):
        SignLanguageParams(validation="test", validation_split=0.3)


def test_sign_language_single_csv_and_kaggle_nested_layout(tmp_path, ctx):
    csv = tmp_path / "letters.csv"
    sign_frame(list(range(9)) + list(range(10, 21))).to_csv(csv, index=False)
    data = load_sign_language_mnist(SignLanguageParams(path=str(csv)), ctx)
    assert data.train_size == 18 and len(arrays(data.validation)[1]) == 2
    assert data.test is None and data.info.preprocessing["validation_source"] == "train"
    nested = tmp_path / "kaggle" / "sign_mnist_test"
    nested.mkdir(parents=True)
    sign_frame([1, 2, 3, 4, 5]).to_csv(nested / "sign_mnist_test.csv", index=False)
    data = load_sign_language_mnist(SignLanguageParams(path=str(tmp_path / "kaggle")), ctx)
    assert data.train_size == 4


def test_sign_language_bad_columns_and_labels(tmp_path, ctx):
    frame = sign_frame([1, 2, 3])
    missing = tmp_path / "missing.csv"
    frame.drop(columns=["pixel784"]).to_csv(missing, index=False)
    with pytest.raises(HarnessError, match=r"missing\.csv: missing column\(s\) pixel784"):
        load_sign_language_mnist(SignLanguageParams(path=str(missing)), ctx)
    extra = tmp_path / "extra.csv"
    frame.assign(source="x").to_csv(extra, index=False)
    with pytest.raises(HarnessError, match=r"extra\.csv: unexpected column\(s\) source"):
        load_sign_language_mnist(SignLanguageParams(path=str(extra)), ctx)
    for bad_label in (9, 25, -1):
        bad = tmp_path / f"label{bad_label}.csv"
        sign_frame([1, bad_label, 3]).to_csv(bad, index=False)
        with pytest.raises(HarnessError, match=rf"label{bad_label}\.csv: column 'label'.*0-24"):
            load_sign_language_mnist(SignLanguageParams(path=str(bad)), ctx)
    scaled = tmp_path / "scaled.csv"
    frame.assign(pixel5=0.5).to_csv(scaled, index=False)
    with pytest.raises(HarnessError, match="whole numbers 0..255"):
        load_sign_language_mnist(SignLanguageParams(path=str(scaled)), ctx)


def test_sign_language_without_path_says_where_to_get_the_csvs(tmp_path, ctx, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(HarnessError) as info:
        load_sign_language_mnist(SignLanguageParams(), ctx)
    message = str(info.value)
    assert "kaggle.com/datasets/datamunge/sign-language-mnist" in message
    assert "sign_mnist_train.csv" in message and "sign_mnist_test.csv" in message
    assert "path =" in message
    cache = tmp_path / "keras" / "datasets" / "sign-language-mnist"
    cache.mkdir(parents=True)
    sign_frame([0, 1, 2, 3, 4]).to_csv(cache / "sign_mnist_train.csv", index=False)
    assert load_sign_language_mnist(SignLanguageParams(), ctx).train_size == 4


# ---------------------------------------------------------------------------- linear


def test_linear_is_the_course_six_points(ctx):
    data = load_linear(LinearParams(), ctx)
    assert data.info.task == "regression" and data.info.input_shape == (1,)
    x, y = arrays(data.train)
    assert x.shape == (6, 1) and x.dtype == np.float32 and y.dtype == np.float32
    assert list(x[:, 0]) == [-1, 0, 1, 2, 3, 4]
    assert list(y) == [-3, -1, 1, 3, 5, 7]
    x_val, y_val = arrays(data.validation)  # nothing held out: validate on the same points
    np.testing.assert_array_equal(x_val, x)
    np.testing.assert_array_equal(y_val, y)


def test_linear_more_points_noise_and_held_out_validation(ctx):
    x, y = arrays(load_linear(LinearParams(points=10), ctx).train)
    assert list(x[:, 0]) == list(range(-1, 9))
    noisy = arrays(load_linear(LinearParams(noise=0.5), ctx).train)[1]
    assert not np.allclose(noisy, [-3, -1, 1, 3, 5, 7])
    np.testing.assert_array_equal(noisy, arrays(load_linear(LinearParams(noise=0.5), ctx).train)[1])
    held = load_linear(LinearParams(points=8, validation=True), ctx)
    assert held.train_size == 6 and len(arrays(held.validation)[1]) == 2
    assert held.info.preprocessing["validation_source"] == "train"


# ---------------------------------------------------------------------------- csv_table


def test_csv_table_binary_string_labels_and_standardize(tmp_path, ctx):
    csv = tmp_path / "t.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame(
        {
            "height": rng.normal(170, 10, 40),
            "weight": rng.normal(70, 5, 40),
            "city": ["a", "b"] * 20,
            "buys": ["yes", "no", "no", "yes"] * 10,
        }
    ).to_csv(csv, index=False)
    data = load_csv_table(CsvTableParams(path=str(csv), label="buys"), ctx)
    info = data.info
    assert info.task == "binary" and info.num_classes == 2
    assert info.class_names == ("no", "yes")
    assert info.input_shape == (2,)
    assert info.preprocessing["features"] == ["height", "weight"]
    assert info.preprocessing["skipped_columns"] == ["city"]
    x, y = arrays(data.train)
    assert x.dtype == np.float32 and set(y) <= {0, 1} and data.train_size == 32
    assert np.bincount(arrays(data.validation)[1]).tolist() == [4, 4]  # stratified
    assert info.preprocessing["validation_source"] == "train" and data.test is None
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1, atol=1e-4)
    stats = info.preprocessing["standardize"]
    assert stats["mean"][0] == pytest.approx(170, abs=6) and len(stats["std"]) == 2
    raw = arrays(
        load_csv_table(CsvTableParams(path=str(csv), label="buys", standardize=False), ctx).train
    )[0]
    assert raw[:, 0].mean() == pytest.approx(170, abs=6)


def test_csv_table_multiclass_regression_and_explicit_features(tmp_path, ctx):
    csv = tmp_path / "t.csv"
    pd.DataFrame(
        {
            "a": np.arange(30, dtype=float),
            "b": np.arange(30) % 4,
            "kind": [1, 2, 10] * 10,
            "price": np.linspace(0.5, 30.5, 30),
        }
    ).to_csv(csv, index=False)
    data = load_csv_table(CsvTableParams(path=str(csv), label="kind", features=["a"]), ctx)
    assert data.info.task == "multiclass" and data.info.class_names == ("1", "2", "10")
    assert data.info.input_shape == (1,)
    y = np.concatenate([arrays(data.train)[1], arrays(data.validation)[1]])
    assert sorted(set(y)) == [0, 1, 2]
    reg = load_csv_table(CsvTableParams(path=str(csv), label="price"), ctx)
    assert reg.info.task == "regression" and reg.info.num_classes is None
    assert reg.info.input_shape == (3,)
    assert arrays(reg.train)[1].dtype == np.float32
    forced = load_csv_table(CsvTableParams(path=str(csv), label="kind", task="regression"), ctx)
    assert forced.info.task == "regression"


def test_csv_table_errors(tmp_path, ctx):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, None], "note": list("abcd"), "y": [0, 1, 2, 1]}).to_csv(
        csv, index=False
    )
    with pytest.raises(HarnessError, match=r"no label column 'target'.*columns: x, note, y"):
        load_csv_table(CsvTableParams(path=str(csv), label="target"), ctx)
    with pytest.raises(HarnessError, match=r"feature column\(s\) note are not numeric"):
        load_csv_table(CsvTableParams(path=str(csv), label="y", features=["x", "note"]), ctx)
    with pytest.raises(HarnessError, match=r"unknown column\(s\) z"):
        load_csv_table(CsvTableParams(path=str(csv), label="y", features=["z"]), ctx)
    with pytest.raises(HarnessError, match=r"empty or NaN cells in column\(s\) x.*drop_missing"):
        load_csv_table(CsvTableParams(path=str(csv), label="y"), ctx)
    with pytest.raises(HarnessError, match='task = "binary" but .* 3 classes'):
        load_csv_table(
            CsvTableParams(path=str(csv), label="y", task="binary", drop_missing=True), ctx
        )
    data = load_csv_table(CsvTableParams(path=str(csv), label="y", drop_missing=True), ctx)
    assert data.info.preprocessing["dropped_rows"] == 1


def test_csv_table_refuses_an_infinite_cell_naming_its_line(tmp_path):
    """pandas reads "inf" as a number; left in, it makes every trial's loss NaN."""
    from harness_plugins.datasets.csv_table import check_csv_table

    csv = tmp_path / "t.csv"
    csv.write_text("a,b,label\n1,2,0\n3,4,1\n5,-inf,0\n7,inf,1\n")
    refused = r"column 'b' holds an infinite value \(first on line 4: -inf\)"
    with pytest.raises(HarnessError, match=refused):
        check_csv_table(CsvTableParams(path=str(csv), label="label"))
    csv.write_text("a,b,label\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    check_csv_table(CsvTableParams(path=str(csv), label="label"))


# ---------------------------------------------------------------------------- ../shared/data


def test_shared_mnist_idx_and_npz(ctx):
    folder = shared_data("mnist")
    idx = load_mnist(
        MnistParams(path=str(folder), limit=500, test_limit=300, validation="test"), ctx
    )
    npz = load_mnist(
        MnistParams(path=str(folder / "mnist.npz"), limit=500, test_limit=300, validation="test"),
        ctx,
    )
    x_idx, y_idx = arrays(idx.train)
    x_npz, y_npz = arrays(npz.train)
    assert x_idx.shape == (500, 28, 28, 1) and x_idx.max() == 1.0
    np.testing.assert_array_equal(x_idx, x_npz)
    np.testing.assert_array_equal(y_idx, y_npz)
    # limit is a stratified sample of the whole file, not its first 500 rows
    with np.load(folder / "mnist.npz") as whole:
        share = np.bincount(whole["y_train"], minlength=10) / len(whole["y_train"])
    assert np.abs(np.bincount(y_idx, minlength=10) - 500 * share).max() <= 1
    other = load_mnist(
        MnistParams(path=str(folder), limit=500, test_limit=300, validation="test"),
        LoadContext(ctx.cache_dir, seed=ctx.seed + 1),
    )
    assert not np.array_equal(arrays(other.train)[0], x_idx)  # another seed, another sample
    assert len(arrays(npz.validation)[1]) == len(arrays(npz.test)[1]) == 300
    held = load_mnist(MnistParams(path=str(folder), limit=500, test_limit=300), ctx)
    assert held.train_size == 450 and len(arrays(held.test)[1]) == 300


def test_shared_fashion_mnist_subset(ctx):
    folder = shared_data("fashion-mnist")
    data = load_fashion_mnist(MnistParams(path=str(folder)), ctx)  # picks the subset npz
    y_train, y_val = arrays(data.train)[1], arrays(data.validation)[1]
    assert len(y_train) + len(y_val) == 100 and len(y_val) >= 10
    assert set(y_val.tolist()) == set(range(10))  # stratified: every class validates
    y_test = arrays(data.test)[1]
    assert len(y_test) == 2000
    assert np.bincount(y_test).tolist() == [200, 203, 214, 190, 219, 195, 197, 200, 194, 188]
    subset = {
        "train_images": "train-images-idx3-ubyte.first100.gz",
        "train_labels": "train-labels-idx1-ubyte.first100.gz",
        "test_images": "t10k-images-idx3-ubyte.first2000.gz",
        "test_labels": "t10k-labels-idx1-ubyte.first2000.gz",
    }
    idx = load_fashion_mnist(MnistParams(path=str(folder), **subset), ctx)
    np.testing.assert_array_equal(arrays(idx.train)[0], arrays(data.train)[0])
    with pytest.raises(HarnessError, match="100 images but 60000 labels"):
        load_fashion_mnist(
            MnistParams(path=str(folder), **{**subset, "train_labels": IDX_NAMES["train_labels"]}),
            ctx,
        )


def test_shared_sign_language_csv(ctx):
    folder = shared_data("sign-language-mnist")
    data = load_sign_language_mnist(SignLanguageParams(path=str(folder)), ctx)
    x, y = arrays(data.train)
    x_val, y_val = arrays(data.validation)
    assert len(y) + len(y_val) == 7172  # the only CSV there is the training data
    assert len(y_val) == round(7172 * 0.1)
    assert data.test is None and data.info.preprocessing["validation_source"] == "train"
    share = np.bincount(y_val, minlength=24) / np.bincount(np.concatenate([y, y_val]))
    np.testing.assert_allclose(share, 0.1, atol=0.01)  # stratified
    assert x.shape[1:] == (28, 28, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    counts = np.bincount(np.concatenate([y, y_val]), minlength=24)
    assert (counts > 0).all() and len(counts) == 24
    assert counts[LETTERS.index("K")] == 331  # Kaggle label 10


# ---------------------------------------------------------------------------- a study


def test_linear_study_runs_end_to_end(write_study, run_study_in_process):
    study = write_study(
        """
        [study]
        name = "first-neuron"
        trials = 2
        seed = 1
        objective = "val_loss"

        [optuna]
        pruner = "none"

        [dataset]
        name = "linear"

        [model]
        name = "dense"
        dense_layers = 0

        [train]
        epochs = 30
        batch_size = 6
        optimizer = "sgd"
        learning_rate = {float = [0.01, 0.1], log = true}
        """
    )
    outcome = run_study_in_process(study)
    table = outcome.table
    assert len(table) == 2
    assert set(table["state"]) == {"complete"}
    assert table["val_loss"].notna().all()
    assert table["params"].eq(2).all()  # one Dense(1): a weight and a bias


# --------------------------------------------------------------------------- groups, samples


def test_stratified_group_split_keeps_groups_apart_stratified_and_seeded():
    from harness.data import stratified_group_split

    labels = np.repeat([0, 1, 2], 40)
    within = np.tile(np.arange(40), 3)
    groups = np.array([f"{c}-{i // 8}" for c, i in zip(labels, within, strict=True)])
    train, val = stratified_group_split(labels, groups, 0.2, seed=3)
    assert not set(groups[train]) & set(groups[val])
    assert np.bincount(labels[val]).tolist() == [8, 8, 8]  # one of each class's 5 groups
    order = np.random.default_rng(0).permutation(len(labels))  # rows' order does not matter
    _, shuffled = stratified_group_split(labels[order], groups[order], 0.2, seed=3)
    assert sorted(groups[order][shuffled]) == sorted(groups[val])
    assert set(groups[stratified_group_split(labels, groups, 0.2, seed=4)[1]]) != set(groups[val])
    # groups spanning classes (patients with both kinds of cells): one group-aware fold
    patients = np.array([f"p{i % 12}" for i in range(len(labels))])
    train, val = stratified_group_split(labels, patients, 0.25, seed=1)
    assert not set(patients[train]) & set(patients[val])
    assert set(labels[val]) == {0, 1, 2} and 0.15 < len(val) / len(labels) < 0.35


def test_stratified_group_split_refuses_a_class_with_a_single_group():
    from harness.data import stratified_group_split

    labels = np.repeat([0, 1], 6)
    groups = np.array(["a1"] * 6 + ["b1", "b2"] * 3)
    with pytest.raises(HarnessError, match="class 'cats' has a single group"):
        stratified_group_split(labels, groups, 0.3, 0, class_names=("cats", "dogs"))


def test_stratified_sample_keeps_class_shares_and_is_seeded():
    from harness.data import stratified_sample

    labels = np.repeat([0, 1, 2], [100, 50, 10])
    kept = stratified_sample(labels, 32, seed=5)
    assert np.bincount(labels[kept]).tolist() == [20, 10, 2]
    assert kept.tolist() == stratified_sample(labels, 32, seed=5).tolist()
    assert kept.tolist() != stratified_sample(labels, 32, seed=6).tolist()
    assert kept.max() >= 100  # not the first rows


def test_csv_group_column_holds_out_whole_groups(tmp_path, ctx):
    rng = np.random.default_rng(0)
    patient = np.repeat([f"p{i}" for i in range(10)], 6)
    frame = pd.DataFrame({"x": rng.normal(size=60), "patient": patient,
                          "y": np.tile([0, 1], 30)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    data = load_csv_table(CsvTableParams(path=str(tmp_path / "t.csv"), label="y",
                                         group="patient", validation_split=0.2), ctx)
    assert data.info.input_shape == (1,)  # the group column is not a feature
    assert len(data.train_groups) == data.train_size
    assert not set(data.train_groups) & set(data.validation_groups)
    assert len(set(data.validation_groups)) == 2
    with pytest.raises(HarnessError, match="no group column 'subject'"):
        load_csv_table(CsvTableParams(path=str(tmp_path / "t.csv"), label="y",
                                      group="subject"), ctx)


def test_digits_limit_is_a_stratified_sample(ctx):
    data = load_digits(DigitsParams(limit=100), ctx)
    y = np.concatenate([arrays(data.train)[1], arrays(data.validation)[1]])
    x = np.concatenate([arrays(data.train)[0], arrays(data.validation)[0]])
    from sklearn.datasets import load_digits as sklearn_digits

    first = (sklearn_digits().images[:100] / 16.0).astype("float32")[..., np.newaxis]
    assert np.bincount(y).min() >= 9  # 100 of 1,797 images: about 10 of each digit
    assert not {row.tobytes() for row in x} <= {row.tobytes() for row in first}
