"""``harness predict``: saved image, text and numeric models; ImageNet models; clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

TESTS = Path(__file__).parent
FIXTURES = TESTS / "plugin_fixtures.py"


@pytest.fixture(scope="module")
def fx_plugins():
    from harness.plugins import load_plugins

    saved = {k: os.environ.get(k) for k in ("HARNESS_DISABLE_PLUGIN_AUTOLOAD",
                                            "HARNESS_DISABLE_PLUGINS")}
    os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    os.environ["HARNESS_DISABLE_PLUGINS"] = "tensorboard"
    try:
        return load_plugins([str(FIXTURES)])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_study(plugins, runs_dir: Path, name: str, dataset, model, train) -> Path:
    """Run a one-trial study in this process; return its run directory (best.keras, card)."""
    from harness.orchestrator import RunOptions
    from harness.orchestrator import run_study as run
    from harness.study import parse_study

    raw = {
        "study": {"name": name, "trials": 1, "objective": "val_loss"},
        "dataset": dataset,
        "model": model,
        "train": train,
    }
    spec = parse_study(raw, plugins, runs_dir / f"{name}.toml")
    outcome = run(spec, plugins, RunOptions(runs_dir=runs_dir, in_process=True,
                                            show_progress=False))
    assert (outcome.run_dir / "best.keras").is_file(), outcome.table.to_dict("records")
    return outcome.run_dir


def write_png(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    pixels = np.round(image * 255).astype("uint8")
    Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(path)
    return path


def fixture_images(size: int, channels: int, classes: int):
    sys.path.insert(0, str(TESTS))
    try:
        from plugin_fixtures import images
    finally:
        sys.path.remove(str(TESTS))
    return images(size, channels, 8, classes)


@pytest.fixture(scope="module")
def binary_run(fx_plugins, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return run_study(
        fx_plugins, runs, "pets", {"name": "fx_images", "size": 12, "count": 16},
        {"name": "dense", "units": 8}, {"epochs": 2, "batch_size": 4},
    )


def test_image_model_prints_both_classes_with_probabilities(binary_run, tmp_path, capsys):
    import keras

    x, _ = fixture_images(12, 3, 2)
    paths = [write_png(tmp_path / f"img{i}.png", x[i]) for i in range(2)]
    assert main(["predict", str(binary_run / "best.keras"), *map(str, paths)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(paths[0]) and lines[3] == str(paths[1])
    model = keras.models.load_model(binary_run / "best.keras")
    for block, image in ((lines[1:3], x[0]), (lines[4:6], x[1])):
        probabilities = {name: float(p) for name, p in (line.split() for line in block)}
        assert set(probabilities) == {"cats", "dogs"}  # class names from best_model.json
        assert sum(probabilities.values()) == pytest.approx(1.0, abs=2e-4)
        # preprocessed as in training: 8-bit PNG -> rescale 1/255
        expected = float(model.predict(np.round(image * 255)[None] / 255, verbose=0)[0, 0])
        assert probabilities["dogs"] == pytest.approx(expected, abs=2e-4)


def test_transfer_model_loads_in_safe_mode_and_prints_top_k(fx_plugins, tmp_path, capsys):
    run_dir = run_study(
        fx_plugins, tmp_path, "shapes",
        {"name": "fx_images", "task": "multiclass", "classes": 4, "size": 32, "count": 8},
        {"name": "transfer", "backbone": "mobilenet_v2", "weights": "none", "units": 4,
         "pooling": "avg"},
        {"epochs": 1, "batch_size": 4},
    )
    x, _ = fixture_images(32, 3, 4)
    image = write_png(tmp_path / "shape.png", x[3])
    capsys.readouterr()  # the run's own lines
    assert main(["predict", str(run_dir / "best.keras"), str(image), "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert all(line.split()[0].startswith("class_") for line in lines[1:])


def test_exported_card_next_to_a_copied_model_is_found(binary_run, tmp_path, capsys):
    import shutil

    model = shutil.copy(binary_run / "best.keras", tmp_path / "pets.keras")
    card = json.loads((binary_run / "best_model.json").read_text())["dataset"]
    (tmp_path / "pets.json").write_text(json.dumps({"dataset": "pets", **{
        k: card[k] for k in ("task", "class_names", "preprocessing", "input_shape")}}))
    x, _ = fixture_images(12, 3, 2)
    image = write_png(tmp_path / "a.png", x[0])
    assert main(["predict", str(model), str(image)]) == 0
    assert "dogs" in capsys.readouterr().out


def test_digits_png_files_are_mapped_onto_the_range_the_model_trained_on(
    fx_plugins, tmp_path, capsys
):
    """The digits card records its pixel range (scikit-learn's grey levels 0..16): an 8-bit
    PNG of a digit (0..255) reaches the model in the training range and is read right."""
    import keras
    from sklearn.datasets import load_digits

    from harness.predict import load_image, read_card

    run_dir = run_study(
        fx_plugins, tmp_path, "digits", {"name": "digits"}, {"name": "dense", "units": 32},
        {"epochs": 8, "batch_size": 32, "learning_rate": 0.01},
    )
    model = keras.models.load_model(run_dir / "best.keras")
    digits = load_digits()
    trained_on = digits.images[:40, :, :, None] / 16.0  # what the digits loader feeds
    right = model.predict(trained_on, verbose=0).argmax(-1) == digits.target[:40]
    picks = [int(i) for i in np.flatnonzero(right)[:4]]
    paths = [write_png(tmp_path / f"digit{i}.png", trained_on[i]) for i in picks]  # 0..255

    card = read_card(run_dir / "best.keras")
    assert tuple(card["preprocessing"]["pixel_range"]) == (0, 16)
    for path, i in zip(paths, picks, strict=True):
        given = load_image(path, card, model.input_shape)
        assert 0.0 <= given.min() and given.max() <= 1.0, "inside the training range"
        np.testing.assert_allclose(given, trained_on[i], atol=0.01)
    capsys.readouterr()  # the run's own lines
    assert main(["predict", str(run_dir / "best.keras"), *map(str, paths), "--top", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1::2]] == [str(digits.target[i]) for i in picks]


def test_headline_is_generated_from_the_saved_file_alone(fx_plugins, tmp_path, capsys):
    run_dir = run_study(
        fx_plugins, tmp_path, "news", {"name": "fx_text"},
        {"name": "lstm_text", "embedding_dim": 8, "lstm_units": 16},
        {"epochs": 2, "batch_size": 16},
    )
    lonely = tmp_path / "alone"
    lonely.mkdir()
    model = lonely / "headlines.keras"  # no card, nothing but the model file
    model.write_bytes((run_dir / "best.keras").read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "harness", "predict", str(model),
         "--prompt", "washington dc is", "--words", "2"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert done.returncode == 0, done.stderr
    headline = done.stdout.strip().splitlines()[-1]
    assert headline.startswith("Washington Dc Is ") and len(headline.split()) == 5

    # An image passed to a next-word model is a mistake, not a prompt.
    from PIL import Image

    Image.new("RGB", (8, 8)).save(lonely / "horse.png")
    assert main(["predict", str(model), str(lonely / "horse.png")]) == 2
    assert "is a file, but" in capsys.readouterr().err


def test_numeric_model_predicts_numbers(tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="output")])
    model.layers[-1].set_weights([np.array([[2.0]]), np.array([-1.0])])
    model.save(tmp_path / "line.keras")
    assert main(["predict", str(tmp_path / "line.keras"), "10", "0"]) == 0
    out = capsys.readouterr().out.split()
    assert out == ["10", "19.0000", "0", "-1.0000"]
    for bad in ("nan", "inf", "1,nan"):
        assert main(["predict", str(tmp_path / "line.keras"), bad]) == 2
        assert "give finite numbers" in capsys.readouterr().err


def test_numeric_inputs_are_standardized_as_the_card_says(tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="output")])
    model.layers[-1].set_weights([np.array([[2.0]]), np.array([-1.0])])
    model.save(tmp_path / "scaled.keras")
    card = {"task": "regression",
            "preprocessing": {"standardize": {"mean": [1.0], "std": [2.0]}}}
    (tmp_path / "scaled.json").write_text(json.dumps(card))
    assert main(["predict", str(tmp_path / "scaled.keras"), "11"]) == 0
    assert capsys.readouterr().out.split() == ["11", "9.0000"]  # 2 * (11 - 1) / 2 - 1


def test_pretrained_offline_says_which_file_to_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    x, _ = fixture_images(12, 3, 2)
    image = write_png(tmp_path / "dog.png", x[0])
    assert main(["predict", "--pretrained", "vgg16", str(image)]) == 2
    err = capsys.readouterr().err
    assert "vgg16_weights_tf_dim_ordering_tf_kernels.h5" in err and "--weights" in err


def test_pretrained_with_a_local_weights_file_gives_classes_and_a_door_verdict(
    tmp_path, monkeypatch, capsys
):
    import keras

    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    weights = tmp_path / "mobilenet_v2.weights.h5"
    keras.applications.MobileNetV2(weights=None).save_weights(weights)
    x, _ = fixture_images(12, 3, 2)
    image = write_png(tmp_path / "pet.png", x[1])
    args = ["predict", "--pretrained", "mobilenet_v2", "--weights", str(weights), str(image)]
    assert main([*args, "--top", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == str(image) and len(lines) == 4
    assert lines[1].strip().startswith("class ")  # no class index offline: ids instead
    assert lines[3].startswith("  doggy door: ")
    assert "imagenet_class_index.json" in captured.err


@pytest.mark.parametrize(
    ("class_id", "verdict"),
    [(151, "dog: door opens"), (268, "dog: door opens"), (281, "cat: door stays closed"),
     (285, "cat: door stays closed"), (150, "neither"), (294, "neither")],
)
def test_doggy_door_follows_the_course_class_ranges(class_id, verdict):
    from harness.predict import doggy_door

    assert doggy_door(class_id).startswith(verdict)


def test_lambda_model_needs_unsafe(tmp_path, capsys):
    import keras

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    path = tmp_path / "lambda.keras"
    model.save(path)
    assert main(["predict", str(path), "1,2"]) == 2
    assert "--unsafe" in capsys.readouterr().err
    assert main(["predict", "--unsafe", str(path), "1,2"]) == 0
    assert "2.0000, 4.0000" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.keras", "no such model file"),
        (lambda d: _write(d / "notes.txt", "hi"), "not a Keras model file"),
        (lambda d: _write(d / "broken.keras", "not a zip"), "not a Keras model file: "),
    ],
)
def test_bad_model_files_are_one_clear_error(tmp_path, capsys, make, message):
    assert main(["predict", str(make(tmp_path)), "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_unreadable_image_is_one_clear_error(binary_run, tmp_path, capsys):
    bad = _write(tmp_path / "bad.png", "not an image")
    assert main(["predict", str(binary_run / "best.keras"), str(bad)]) == 2
    assert "cannot read it as an image" in capsys.readouterr().err
    assert main(["predict", str(binary_run / "best.keras"), str(tmp_path)]) == 2
    assert f"{tmp_path}: is a folder; give the image files in it" in capsys.readouterr().err
    assert main(["predict", str(binary_run / "best.keras"), "/dev/null"]) == 2
    assert "/dev/null: not a regular file" in capsys.readouterr().err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize(
    "decoder", ["numpy.load", "os.system", "pickle.loads", "image_folder.decode_image", "nope"]
)
def test_a_model_card_never_names_code_to_call(binary_run, tmp_path, capsys, decoder):
    """A card is data: a decoder naming any import path is refused, and reading the card
    creates nothing (the pickle "image" would write a file if it were ever loaded)."""
    import pickle

    model = tmp_path / "model.keras"
    model.write_bytes((binary_run / "best.keras").read_bytes())
    card = json.loads((binary_run / "best_model.json").read_text())
    card["dataset"]["preprocessing"]["decoder"] = decoder
    (tmp_path / "model.json").write_text(json.dumps(card["dataset"]))

    class Payload:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned.txt"), "w"))

    image = tmp_path / "image.png"
    image.write_bytes(pickle.dumps(Payload()))
    before = _tree(tmp_path)
    assert main(["predict", str(model), str(image)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "decoder" in errors[0] and "Traceback" not in err
    assert _tree(tmp_path) == before, "loading the card created a file"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image_size", [0, 12], "image_size"),
        ("image_size", "big", "image_size"),
        ("color_mode", "cmyk", "color_mode"),
        ("rescale", "1/255", "rescale"),
        ("interpolation", "__import__", "interpolation"),
        ("source", {"a": {"b": {"c": {"d": [1]}}}}, "source"),
    ],
)
def test_every_card_field_is_validated(binary_run, tmp_path, capsys, field, value, message):
    model = tmp_path / "model.keras"
    model.write_bytes((binary_run / "best.keras").read_bytes())
    card = json.loads((binary_run / "best_model.json").read_text())["dataset"]
    card["preprocessing"][field] = value
    (tmp_path / "model.json").write_text(json.dumps(card))
    x, _ = fixture_images(12, 3, 2)
    image = write_png(tmp_path / "img.png", x[0])
    assert main(["predict", str(model), str(image)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_a_card_with_a_wrong_class_list_is_refused(binary_run, tmp_path, capsys):
    model = tmp_path / "model.keras"
    model.write_bytes((binary_run / "best.keras").read_bytes())
    card = json.loads((binary_run / "best_model.json").read_text())["dataset"]
    card["class_names"] = "cats"
    (tmp_path / "model.json").write_text(json.dumps(card))
    assert main(["predict", str(model), str(tmp_path / "x.png")]) == 2
    assert "class_names" in capsys.readouterr().err
