"""Image augmentations: registered with searchable parameters, applied to training batches only."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from harness.data import DatasetInfo, from_arrays
from harness.errors import StudyFileError

FIXTURES = Path(__file__).parent / "plugin_fixtures.py"
NAMES = ("rotation", "shift", "shear", "zoom", "flip", "brightness", "contrast", "rescale",
         "centering")


@pytest.fixture(scope="module")
def aug_plugins():
    import os

    from harness.plugins import load_plugins

    os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    try:
        return load_plugins([str(FIXTURES)])
    finally:
        os.environ.pop("HARNESS_DISABLE_PLUGIN_AUTOLOAD", None)


def augmentation(plugins, name: str, **params):
    """The Sequential of layers that augmentation ``name`` makes with ``params``."""
    import keras

    component = plugins.augmentations.get(name)
    return keras.Sequential(component.function(component.params(**params)))


def study(augment: dict) -> dict:
    return {
        "study": {"name": "aug", "objective": "val_accuracy"},
        "dataset": {"name": "fx_images", "size": 8, "count": 8},
        "model": {"name": "dense", "units": 4},
        "train": {"epochs": 1, "batch_size": 4},
        "augment": augment,
    }


def test_every_augmentation_is_registered(aug_plugins):
    assert set(NAMES) <= set(aug_plugins.augmentations.names())


@pytest.mark.parametrize("name", NAMES)
def test_augmentation_runs_on_batches_in_the_data_pipeline(aug_plugins, name):
    import tensorflow as tf

    layers = augmentation(aug_plugins, name)
    images = np.random.default_rng(0).uniform(size=(6, 16, 16, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(images).batch(3)
    out = np.concatenate(list(ds.map(lambda x: layers(x, training=True)).as_numpy_iterator()))
    assert out.shape == images.shape and np.isfinite(out).all()


def test_searched_factor_is_in_the_study_space(aug_plugins, tmp_path):
    from harness.study import parse_study

    spec = parse_study(
        study({"rotation": {"factor": {"float": [0.0, 0.2]}, "fill_mode": "nearest"}}),
        aug_plugins, tmp_path / "s.toml",
    )
    param = spec.space.get("augment.rotation.factor")
    assert param is not None and param.distribution.describe().startswith("float")
    assert spec.space.literals["augment.rotation.fill_mode"] == "nearest"


@pytest.mark.parametrize(
    ("augment", "where"),
    [
        ({"rotation": {"fill_mode": "mirror"}}, "[augment.rotation].fill_mode"),
        ({"flip": {"mode": "diagonal"}}, "[augment.flip].mode"),
        ({"zoom": {"factor": {"float": [0.0, 1.5]}}}, "[augment.zoom].factor"),
        ({"brightness": {"value_range": [1.0, 0.0]}}, "[augment.brightness]"),
        ({"shift": {"widht": 0.1}}, "Did you mean 'width'"),
    ],
)
def test_bad_augmentation_parameters_are_caught_before_any_trial(
    aug_plugins, tmp_path, augment, where
):
    from harness.study import parse_study

    with pytest.raises(StudyFileError, match=re.escape(where)):
        parse_study(study(augment), aug_plugins, tmp_path / "s.toml")


def test_flip_touches_training_batches_only():
    """The runner's pipelines: train batches are flipped (some), validation never."""
    import keras

    from harness.fit_inputs import training_pipelines
    from harness.study import TrainParams

    x = np.zeros((16, 4, 4, 1), "float32")
    x[:, :, 0, :] = 1.0  # a bright left column: a horizontal flip moves it right
    y = np.zeros(16, "int32")
    data = from_arrays(DatasetInfo("d", (4, 4, 1), "binary", num_classes=2), x, y, x, y)
    flip = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=1)])
    settings = TrainParams(batch_size=8, shuffle_buffer=0)
    train_ds, val_ds = training_pipelines(data, settings, flip, 0)
    train = np.concatenate([b for b, _ in train_ds.as_numpy_iterator()])
    val = np.concatenate([b for b, _ in val_ds.as_numpy_iterator()])
    np.testing.assert_array_equal(val, x)
    flipped = train[:, :, -1, 0].mean(axis=1) == 1.0
    unflipped = train[:, :, 0, 0].mean(axis=1) == 1.0
    assert (flipped | unflipped).all() and flipped.any() and unflipped.any()


def test_trial_with_augmentations_completes(aug_plugins, tmp_path):
    from harness.context import StudyContext, TrialContext
    from harness.study import parse_study
    from harness.trial import run_trial

    spec = parse_study(
        study({"flip": {"mode": "horizontal"}, "rotation": {"factor": 0.05},
               "zoom": {"factor": 0.1}, "shear": {"x_factor": 0.1}}),
        aug_plugins, tmp_path / "s.toml",
    )
    trial = TrialContext(StudyContext(spec, tmp_path), 0, dict(spec.space.literals))
    result = run_trial(trial, aug_plugins)
    assert result.state == "complete", result.fail_reason


def test_centering_subtracts_each_images_mean_and_survives_saving(aug_plugins, tmp_path):
    import keras

    centering = augmentation(aug_plugins, "centering")
    images = np.random.default_rng(1).uniform(size=(3, 5, 5, 3)).astype("float32")
    out = np.asarray(centering(images))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.0, atol=1e-6)
    np.testing.assert_allclose(out, images - images.mean(axis=(1, 2, 3), keepdims=True),
                               atol=1e-6)
    model = keras.Sequential([keras.Input((5, 5, 3)), *centering.layers])
    model.save(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras")  # safe mode
    np.testing.assert_allclose(np.asarray(loaded(images)), out, atol=1e-6)


def test_rotation_factor_and_fill_mode_reach_the_keras_layer(aug_plugins):
    layer = augmentation(aug_plugins, "rotation", factor=0.11, fill_mode="constant").layers[0]
    assert type(layer).__name__ == "RandomRotation"
    assert layer.fill_mode == "constant" and layer.factor == pytest.approx((-0.11, 0.11))
