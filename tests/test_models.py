"""Model builders: linear, transfer (backbones, fine-tuning, feature caching), lstm_text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.context import StudyContext, TrialContext
from harness.data import DatasetInfo, LoadContext
from harness.errors import TrialFailed

FIXTURES = Path(__file__).parent / "plugin_fixtures.py"


@pytest.fixture
def fx_plugins(monkeypatch):
    """Built-in plugins plus the tiny fixture datasets of plugin_fixtures.py."""
    from harness.plugins import load_plugins

    monkeypatch.setenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("HARNESS_DISABLE_PLUGINS", "tensorboard")  # no event files per epoch
    return load_plugins([str(FIXTURES)])


def run_one(
    plugins, run_dir: Path, dataset, model, train, augment=None, number=0, reporter=None,
    callbacks=None, **study
):
    """Run one trial of a study given as tables (no searched parameters); return its context
    and result."""
    from harness.study import parse_study
    from harness.trial import run_trial

    raw = {
        "study": {"name": "t", "objective": "val_loss", **study},
        "dataset": dataset,
        "model": model,
        "train": {"verbose": 0, **train},
    }
    if augment:
        raw["augment"] = augment
    if callbacks:
        raw["callbacks"] = callbacks
    spec = parse_study(raw, plugins, run_dir / "study.toml")
    trial = TrialContext(StudyContext(spec, run_dir), number, dict(spec.space.literals))
    return trial, run_trial(trial, plugins, reporter)


def info(task: str, shape=(32, 32, 3), classes: int | None = None) -> DatasetInfo:
    names = {"binary": 2, "multiclass": classes or 3}.get(task)
    return DatasetInfo("x", shape, task, num_classes=names)


def head_of(model) -> tuple[int, str]:
    last = model.layers[-1]
    return last.units, last.activation.__name__


# --- linear -------------------------------------------------------------------------------


def test_linear_learns_y_equals_2x_minus_1(fx_plugins, tmp_path):
    """The course's first model: SGD, 500 epochs on six points, predict(10) is about 19."""
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_points", "with_validation": False}, {"name": "linear"},
        # one step per epoch lets Keras keep its data iterator: 500 epochs in seconds
        {"optimizer": "sgd", "learning_rate": 0.01, "epochs": 500, "batch_size": 6,
         "steps_per_epoch": 1, "shuffle_buffer": 0},
        objective="loss",
    )
    assert result.state == "complete", result.fail_reason
    prediction = float(result.model.predict(np.array([[10.0]]), verbose=0)[0, 0])
    assert prediction == pytest.approx(19.0, abs=0.1)
    assert len(result.model.layers) == 2  # Input + one Dense


@pytest.mark.parametrize(
    ("task", "units", "activation"),
    [("regression", 1, "linear"), ("binary", 1, "sigmoid"), ("multiclass", 5, "softmax")],
)
def test_linear_output_follows_the_task(task, units, activation):
    from harness_plugins.models.linear import LinearParams, build_linear

    model = build_linear(LinearParams(), info(task, shape=(4, 4, 1), classes=5))
    assert head_of(model) == (units, activation)


def test_linear_refuses_next_token():
    from harness_plugins.models.linear import LinearParams, build_linear

    vocab = ("", "a", "b")
    text = DatasetInfo("t", (3,), "next_token", num_classes=3, vocabulary=vocab)
    with pytest.raises(TrialFailed, match="lstm_text"):
        build_linear(LinearParams(), text)


# --- cnn ----------------------------------------------------------------------------------


def test_cnn_stacks_convs_per_block_before_each_pool():
    """VGG-style blocks: two Conv2D (each with its BatchNorm) before every MaxPool."""
    from harness_plugins.models.cnn import CnnParams, build_cnn

    params = CnnParams(conv_layers=2, convs_per_block=2, filters=8, filters_growth="double",
                       padding="same", batch_norm=True)
    model = build_cnn(params, info("multiclass", shape=(28, 28, 1), classes=10))
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 4 and kinds.count("MaxPooling2D") == 2
    assert sum(layer.name.startswith("conv_bn_") for layer in model.layers) == 4
    names = ("conv_1", "conv_1_2", "conv_2", "conv_2_2")
    assert [model.get_layer(name).filters for name in names] == [8, 8, 16, 16]
    assert model.get_layer("pool_2").output.shape[1:3] == (7, 7)


def test_cnn_with_valid_padding_counts_every_stacked_conv_when_checking_the_size():
    """Each valid 3x3 conv trims 2 pixels: 10 -> 8 -> 6 -> pool 3 fits; a second block does not."""
    from harness_plugins.models.cnn import CnnParams, build_cnn

    image = info("binary", shape=(10, 10, 1))
    model = build_cnn(CnnParams(conv_layers=1, convs_per_block=2, units=4), image)
    assert model.get_layer("pool_1").output.shape[1:3] == (3, 3)
    with pytest.raises(TrialFailed, match="shrink"):
        build_cnn(CnnParams(conv_layers=2, convs_per_block=2, units=4), image)


# --- transfer -----------------------------------------------------------------------------

BACKBONE_CASES = [
    ("vgg16", 32, "binary", (1, "sigmoid")),  # grey images: repeated to RGB
    ("mobilenet_v2", 32, "multiclass", (3, "softmax")),
    ("resnet50", 32, "regression", (1, "linear")),
    ("efficientnet_b0", 32, "binary", (1, "sigmoid")),
    ("inception_v3", 75, "multiclass", (3, "softmax")),
]


@pytest.mark.parametrize(("backbone", "size", "task", "head"), BACKBONE_CASES)
def test_transfer_backbone_builds_and_trains(fx_plugins, tmp_path, backbone, size, task, head):
    channels = 1 if backbone == "vgg16" else 3
    _, result = run_one(
        fx_plugins, tmp_path,
        {"name": "fx_images", "task": task, "size": size, "count": 8, "channels": channels},
        {"name": "transfer", "backbone": backbone, "weights": "none", "units": 8},
        {"epochs": 1, "batch_size": 4},
    )
    assert result.state == "complete", result.fail_reason
    model = result.model
    assert head_of(model) == head
    assert model.get_layer("preprocess").backbone == backbone
    base = model.get_layer(f"{backbone}_base")
    assert not base.trainable_weights
    if backbone == "inception_v3":
        assert base.layers[-1].name == "mixed7"  # the course's cut
    images = np.zeros((1, size, size, channels), "float32")
    assert model.predict(images, verbose=0).shape == (1, head[0])


def test_transfer_too_small_image_fails_the_trial_with_the_minimum(fx_plugins, tmp_path):
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "size": 32, "count": 8},
        {"name": "transfer", "backbone": "inception_v3", "weights": "none"}, {"epochs": 1},
    )
    assert result.state == "failed"
    assert "at least 75x75" in result.fail_reason


def test_transfer_offline_imagenet_says_to_pass_a_file_or_none(
    fx_plugins, tmp_path, monkeypatch
):
    from harness.trial import StudyAborted

    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(StudyAborted) as caught:
        run_one(
            fx_plugins, tmp_path, {"name": "fx_images", "count": 8},
            {"name": "transfer", "backbone": "vgg16"}, {"epochs": 1},
        )
    message = str(caught.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert 'weights = "none"' in message


def test_transfer_missing_weights_file_is_one_clear_error(tmp_path):
    from harness_plugins.models.transfer import TransferParams, build_transfer

    from harness.errors import HarnessError

    params = TransferParams(backbone="vgg16", weights=str(tmp_path / "nope.h5"))
    with pytest.raises(HarnessError, match="no such file"):
        build_transfer(params, info("binary"))


def test_transfer_weights_must_be_imagenet_none_or_h5():
    from harness_plugins.models.transfer import TransferParams
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="weights"):
        TransferParams(weights="imagenet21k")


def test_fine_tune_unfreezes_from_the_layer_and_recompiles_at_its_rate(fx_plugins, tmp_path):
    """The runner's second phase: layers from fine_tune_at on train (BatchNorm stays frozen),
    the optimizer is rebuilt at fine_tune_learning_rate, the epochs add up."""
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "size": 8, "count": 8},
        {"name": "fx_frozen", "fine_tune_at": "bn", "fine_tune_learning_rate": 0.0003,
         "fine_tune_epochs": 2},
        {"epochs": 1, "batch_size": 4, "learning_rate": 0.01},
    )
    assert result.state == "complete", result.fail_reason
    model = result.model
    base = model.get_layer("base")
    trainable = {layer.name for layer in base.layers if layer.trainable and layer.weights}
    assert trainable == {"conv_b"}  # conv_a is before "bn"; BatchNormalization stays frozen
    assert len(model.trainable_weights) == 4  # conv_b + output, was 2 (output only)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0003)
    assert len(result.history["loss"]) == 3  # 1 frozen epoch + 2 fine-tuning epochs


class EpochRecorder:
    """A reporter that records each epoch it hears of and whether it was called the last."""

    def __init__(self):
        self.heard: list[tuple[int, bool]] = []

    def report(self, epoch, metrics, *, last=False):
        self.heard.append((epoch, last))


STOP_AT_ONCE = {"threshold": {"metric": "loss", "mode": "min", "value": 1e9}}


@pytest.mark.parametrize(
    ("model", "train", "callbacks", "heard"),
    [
        ({"name": "fx_frozen"}, {"epochs": 3}, None, [(0, False), (1, False), (2, True)]),
        # the first phase's end is not the trial's: only the fine-tuning phase's last epoch
        (
            {"name": "fx_frozen", "fine_tune_epochs": 2}, {"epochs": 1}, None,
            [(0, False), (1, False), (2, True)],
        ),
        # a stopping callback ending the fit makes that epoch the last
        ({"name": "fx_frozen"}, {"epochs": 3}, STOP_AT_ONCE, [(0, True)]),
        # ... but not when it ends the first phase of a fine-tuning trial
        (
            {"name": "fx_frozen", "fine_tune_epochs": 1}, {"epochs": 3}, STOP_AT_ONCE,
            [(0, False), (1, True)],
        ),
    ],
)
def test_only_the_trials_very_last_epoch_is_reported_as_last(
    fx_plugins, tmp_path, model, train, callbacks, heard
):
    """Backends must not prune at the last epoch (the trial has finished training), so the
    runner tells them which epoch that is, across a fine-tuning phase too."""
    recorder = EpochRecorder()
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "size": 8, "count": 8}, model,
        {**train, "batch_size": 4}, reporter=recorder, callbacks=callbacks,
    )
    assert result.state == "complete", result.fail_reason
    assert recorder.heard == heard


@pytest.mark.parametrize(("at", "trainable"), [(-1, {"conv_b"}), (0, {"conv_a", "conv_b"})])
def test_fine_tune_at_an_index_counts_like_python(fx_plugins, tmp_path, at, trainable):
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "size": 8, "count": 8},
        {"name": "fx_frozen", "fine_tune_at": at, "fine_tune_epochs": 1}, {"epochs": 1},
    )
    assert result.state == "complete", result.fail_reason
    base = result.model.get_layer("base")
    assert {layer.name for layer in base.layers if layer.trainable and layer.weights} == trainable


def test_fine_tune_keeps_the_task_metrics(fx_plugins, tmp_path):
    """A regression model is still measured with mae after fine-tuning (val_mae objective)."""
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "task": "regression", "size": 8, "count": 8},
        {"name": "fx_frozen", "fine_tune_epochs": 1}, {"epochs": 1}, objective="val_mae",
    )
    assert result.state == "complete", result.fail_reason
    assert "val_mae" in result.metrics and len(result.history["val_mae"]) == 2


@pytest.mark.parametrize(("at", "reason"), [(10_000, "outside the base"), ("nope", "no layer")])
def test_fine_tune_at_a_missing_layer_fails_the_trial(fx_plugins, tmp_path, at, reason):
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "size": 8, "count": 8},
        {"name": "fx_frozen", "fine_tune_at": at, "fine_tune_epochs": 1}, {"epochs": 1},
    )
    assert result.state == "failed" and reason in result.fail_reason


def test_transfer_declares_fine_tuning_of_its_base(fx_plugins, tmp_path):
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "count": 8},
        {"name": "transfer", "backbone": "vgg16", "weights": "none", "units": 4,
         "pooling": "avg", "fine_tune_at": "block5_conv1", "fine_tune_learning_rate": 0.0002,
         "fine_tune_epochs": 1},
        {"epochs": 1, "batch_size": 4},
    )
    assert result.state == "complete", result.fail_reason
    base = result.model.get_layer("vgg16_base")
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    assert trainable == ["block5_conv1", "block5_conv2", "block5_conv3"]
    assert float(result.model.optimizer.learning_rate) == pytest.approx(0.0002)


# --- feature caching ----------------------------------------------------------------------


@pytest.fixture
def count_feature_runs(monkeypatch, tmp_path):
    """Count how often a frozen base runs over a split (features stored under tmp_path/cache)."""
    import harness.features as features

    monkeypatch.setenv("HARNESS_FEATURE_CACHE_DIR", str(tmp_path / "cache"))

    calls = []
    original = features.compute_features

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(features, "compute_features", counting)
    features._MEMORY.clear()
    yield calls
    features._MEMORY.clear()


def _vgg16_weights(tmp_path: Path) -> Path:
    """A local 'notop' weights file, as a user without network would pass (random here)."""
    import keras

    path = tmp_path / "vgg16_notop.weights.h5"
    keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    ).save_weights(path)
    return path


def test_features_are_computed_once_and_shared_between_trials(
    fx_plugins, tmp_path, count_feature_runs
):
    """Same backbone, weights file and data: the base runs once; trials train on its
    features from memory or from disk, and the saved model is base + head on images."""
    import keras

    import harness.features as features

    weights = _vgg16_weights(tmp_path)
    model_table = {"name": "transfer", "backbone": "vgg16", "weights": str(weights),
                   "units": 8, "pooling": "avg"}
    dataset = {"name": "fx_images", "count": 12}
    train = {"epochs": 3, "batch_size": 4, "learning_rate": 0.01}
    _, first = run_one(fx_plugins, tmp_path, dataset, model_table, train, number=0)
    assert first.state == "complete", first.fail_reason
    assert len(count_feature_runs) == 2  # train and validation, once each
    folders = list((tmp_path / "cache").glob("features-*"))
    assert len(folders) == 1
    stored = {p.name for p in folders[0].iterdir()}
    assert stored >= {"train_x.npy", "train_y.npy", "validation_x.npy", "meta.json"}

    _, second = run_one(fx_plugins, tmp_path, dataset, model_table, train, number=1)
    assert second.state == "complete" and len(count_feature_runs) == 2  # from memory
    features._MEMORY.clear()
    _, third = run_one(fx_plugins, tmp_path, dataset, model_table, train, number=2)
    assert third.state == "complete" and len(count_feature_runs) == 2  # from disk

    saved = tmp_path / "model.keras"
    first.model.save(saved)
    loaded = keras.models.load_model(saved)
    assert int(loaded.optimizer.iterations) == 3 * 3  # 9 images / batch 4, 3 epochs
    component = fx_plugins.datasets.get("fx_images")
    data = component.function(component.params(count=12), LoadContext(tmp_path, seed=0))
    x_val, y_val = (np.stack(a) for a in zip(*data.validation.as_numpy_iterator(), strict=True))
    loaded.compile(loss="binary_crossentropy")
    val_loss = loaded.evaluate(x_val, y_val, verbose=0, return_dict=True)["loss"]
    assert val_loss == pytest.approx(first.metrics["val_loss"], rel=1e-4, abs=1e-5)


def test_stored_features_serve_later_studies_under_the_same_runs_dir(
    fx_plugins, tmp_path, count_feature_runs, monkeypatch
):
    """By default features go to <runs-dir>/.cache/: a second study on the same data and
    base (another run directory beside the first) computes none; other data computes anew."""
    import harness.features as features

    monkeypatch.delenv("HARNESS_FEATURE_CACHE_DIR")
    weights = _vgg16_weights(tmp_path)
    model_table = {"name": "transfer", "backbone": "vgg16", "weights": str(weights),
                   "units": 8, "pooling": "avg"}
    train = {"epochs": 1, "batch_size": 4}
    runs = tmp_path / "runs"
    for study, count, expected in (("first", 12, 2), ("second", 12, 2), ("other", 16, 4)):
        features._MEMORY.clear()
        _, result = run_one(fx_plugins, runs / study, {"name": "fx_images", "count": count},
                            model_table, train)
        assert result.state == "complete", result.fail_reason
        assert len(count_feature_runs) == expected, study
    assert len(list((runs / ".cache").glob("features-*"))) == 2
    assert not list(runs.glob("*/cache/features-*"))


def test_random_base_features_are_per_trial_and_not_stored(
    fx_plugins, tmp_path, count_feature_runs
):
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "size": 8, "count": 8},
        {"name": "fx_frozen"}, {"epochs": 2, "batch_size": 4},
    )
    assert result.state == "complete", result.fail_reason
    assert len(count_feature_runs) == 2
    assert not list((tmp_path / "cache").glob("features-*"))


@pytest.mark.parametrize("switch", ["augmentation", "fine_tune", "env", "few_steps"])
def test_features_are_not_used_when_the_base_sees_new_inputs_or_trains(
    fx_plugins, tmp_path, count_feature_runs, monkeypatch, switch
):
    model_table = {"name": "fx_frozen", "feature_key": "k"}
    augment = None
    if switch == "augmentation":
        augment = {"flip": {"mode": "horizontal"}}
    elif switch == "fine_tune":
        model_table["fine_tune_epochs"] = 1
    elif switch == "env":
        monkeypatch.setenv("HARNESS_FEATURE_CACHE", "0")
    train = {"epochs": 1, "batch_size": 4}
    if switch == "few_steps":  # 1 batch of 4 < 6 training images: cheaper than every image
        train["steps_per_epoch"] = 1
    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_images", "size": 8, "count": 8}, model_table,
        train, augment=augment,
    )
    assert result.state == "complete", result.fail_reason
    assert count_feature_runs == []


# --- lstm_text ----------------------------------------------------------------------------


def test_lstm_text_stacked_bidirectional_trains_a_step():
    from harness_plugins.models.lstm_text import LstmTextParams, build_lstm_text

    vocabulary = ("", "[UNK]", "a", "b", "c")
    text = DatasetInfo("t", (4,), "next_token", num_classes=5, vocabulary=vocabulary)
    params = LstmTextParams(
        embedding_dim=4, lstm_units=4, lstm_layers=2, bidirectional=True, mask_padding=True
    )
    model = build_lstm_text(params, text)
    assert [type(layer).__name__ for layer in model.layers].count("Bidirectional") == 2
    assert head_of(model) == (5, "softmax")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    loss = model.train_on_batch(np.array([[0, 0, 2, 3], [0, 2, 3, 4]]), np.array([4, 2]))
    assert np.isfinite(loss)


def test_lstm_text_refuses_a_dataset_without_vocabulary():
    from harness_plugins.models.lstm_text import LstmTextParams, build_lstm_text

    with pytest.raises(TrialFailed, match="next_token"):
        build_lstm_text(LstmTextParams(), info("multiclass"))


def test_generation_works_from_the_saved_file_in_safe_mode(fx_plugins, tmp_path):
    import keras

    from harness.textgen import generate

    _, result = run_one(
        fx_plugins, tmp_path, {"name": "fx_text", "with_validation": False},
        {"name": "lstm_text", "embedding_dim": 16, "lstm_units": 32, "dropout": 0.0},
        {"epochs": 150, "batch_size": 32, "learning_rate": 0.02, "steps_per_epoch": 1},
        objective="loss",
    )
    assert result.state == "complete", result.fail_reason
    path = tmp_path / "text.keras"
    result.model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    text = generate(loaded, "Washington DC is", words=2)
    assert text.startswith("Washington Dc Is ") and len(text.split()) == 5
    assert generate(loaded, "the school district", words=2) == "The School District Has New"


# --- GPU-only train options -----------------------------------------------------------------


def test_gpu_train_options_are_ignored_with_one_notice_on_cpu(fx_plugins, tmp_path, caplog):
    """train.mixed_precision and train.jit_compile need a GPU: on a CPU each is ignored with
    one warning per process, the model computes in float32, and the trial completes."""
    import keras

    import harness.pipeline as pipeline

    pipeline._NOTICED.clear()
    options = {"mixed_precision": True, "jit_compile": True, "epochs": 1, "batch_size": 6,
               "optimizer": "sgd", "learning_rate": 0.01}
    for number in (0, 1):
        _, result = run_one(
            fx_plugins, tmp_path, {"name": "fx_points", "with_validation": False},
            {"name": "linear"}, options, number=number, objective="loss",
        )
        assert result.state == "complete", result.fail_reason
        assert result.model.dtype_policy.name == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    notices = [r.getMessage() for r in caplog.records if "is ignored: no GPU" in r.getMessage()]
    assert notices == [
        "train.mixed_precision = true is ignored: no GPU is visible to this worker",
        "train.jit_compile = true is ignored: no GPU is visible to this worker",
    ]


# --- steps per execution --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "steps_per_epoch", "expected"),
    [(32, None, 32), (1, None, 1), (32, 10, 10), (32, 50, 25), (4, 7, 1), (8, 2, 2)],
)
def test_execution_steps_never_run_an_epoch_past_its_cap(option, steps_per_epoch, expected):
    """With ``steps_per_epoch`` set the data repeats, and Keras runs whole executions: only a
    divisor of the cap keeps each epoch at exactly the cap."""
    from harness.study import TrainParams

    train = TrainParams(steps_per_execution=option, steps_per_epoch=steps_per_epoch)
    assert train.execution_steps() == expected


def test_steps_per_execution_trains_exactly_as_one_step_per_call(fx_plugins, tmp_path):
    """Several batches per call into TensorFlow is the same training: the same updates (12
    batches per epoch, not a multiple of 5), the same weights, the same curve; a capped epoch
    still runs exactly its cap."""
    runs = {}
    for steps, cap in ((1, None), (5, None), (32, 3)):
        _, result = run_one(
            fx_plugins, tmp_path / f"{steps}-{cap}",
            {"name": "fx_images", "size": 8, "count": 64, "channels": 1},
            {"name": "cnn", "conv_layers": 1, "filters": 4, "units": 8},
            {"epochs": 2, "batch_size": 4, "steps_per_execution": steps, "steps_per_epoch": cap},
        )
        assert result.state == "complete", result.fail_reason
        runs[steps] = result
    assert runs[1].model.steps_per_execution == 1
    assert runs[5].model.steps_per_execution == 5
    assert runs[32].model.steps_per_execution == 3
    assert int(runs[1].model.optimizer.iterations) == int(runs[5].model.optimizer.iterations) == 24
    assert int(runs[32].model.optimizer.iterations) == 6
    assert runs[1].history == runs[5].history
    for one, five in zip(runs[1].model.get_weights(), runs[5].model.get_weights(), strict=True):
        np.testing.assert_allclose(one, five, rtol=1e-5, atol=1e-6)


def test_an_augmented_trial_trains_the_same_on_every_run(fx_plugins, tmp_path):
    """Seeded random augmentation must reproduce: the same study and trial number give the
    same curve (in a parallel map, batches drew their random numbers in thread order)."""
    def one_run(folder: str):
        _, result = run_one(
            fx_plugins, tmp_path / folder, {"name": "fx_images", "size": 12, "count": 96},
            {"name": "cnn", "filters": 4, "units": 8},
            {"epochs": 2, "batch_size": 4, "shuffle_buffer": 96},
            augment={"rotation": {"factor": 0.2}, "zoom": {"factor": 0.2}, "flip": {}},
        )
        assert result.state == "complete", result.fail_reason
        return result.history

    assert one_run("a") == one_run("b")
