"""A plugin for tests/test_plugin_hooks.py (loaded with ``--plugin``): it implements every
hook of :mod:`harness.hookspecs` and appends one JSON line per call to the file named by
``$HOOK_RECORDER_EVENTS`` (nothing is written when it is unset), so that the order of the
calls can be read back across the orchestrating process and its workers.

Each line is ``{"hook": ..., "pid": ..., "trial": ... (where there is one),
"tensorflow_imported": ..., ...details}``.
Besides the hooks themselves it records when the components it registers are used
(``component:*`` lines): the dataset ``hook_points`` is loaded, the model ``hook_dense`` is
built, the augmentation ``hook_count`` is made, the callback ``hook_stop`` is made and sees
an epoch end, and the callback returned by ``harness_trial_callbacks`` sees an epoch end.

Its ``harness_register_commands`` records a call too, but is never called: a ``--plugin``
is loaded after the command line is parsed (test_plugin_hooks checks that; its COMMANDS
plugin, installed as an entry point, is the one that adds a command).

Like every register hook, this module does not import TensorFlow at import time.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

import harness
from harness.data import DatasetInfo, from_arrays

EVENTS_ENV = "HOOK_RECORDER_EVENTS"
CLASS_NAMES = ("red", "green", "blue")
FEATURES = 4
MODEL_LAYER = "hook_recorder_hidden"

#: The trial this process is running (set by harness_trial_start), for the augmentation.
_current_trial: list[int] = [-1]
#: Trial number -> samples the augmentation saw, and the ``training`` flags it was called
#: with (the augmentation runs in tf.data's threads).
_augmented: dict[int, int] = {}
_training_flags: dict[int, list[Any]] = {}
_lock = threading.Lock()


def record(hook: str, **details: Any) -> None:
    """Append one event line (one ``write`` in append mode: lines never interleave)."""
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    details.setdefault("tensorflow_imported", "tensorflow" in sys.modules)
    line = json.dumps({"hook": hook, "pid": os.getpid(), **details}, default=str)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


# --- the dataset -------------------------------------------------------------------------


class PointsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = 60


def load_points(params: PointsParams, context):
    """``size`` points in 4-d, three well separated classes; 60/20/20 train/val/test."""
    rng = np.random.default_rng(0)
    y = (np.arange(params.size) % len(CLASS_NAMES)).astype("int32")
    x = (rng.normal(size=(params.size, FEATURES)) * 0.3 + y[:, None]).astype("float32")
    cut_val, cut_test = params.size * 3 // 5, params.size * 4 // 5
    record(
        "component:load_dataset",
        params_type=type(params).__name__,
        params=params.model_dump(),
        cache_dir=str(context.cache_dir),
        cache_dir_exists=context.cache_dir.is_dir(),
        seed=context.seed,
        sizes=[cut_val, cut_test - cut_val, params.size - cut_test],
    )
    info = DatasetInfo(
        name="hook_points",
        input_shape=(FEATURES,),
        task="multiclass",
        num_classes=len(CLASS_NAMES),
        class_names=CLASS_NAMES,
    )
    return from_arrays(
        info,
        x[:cut_val], y[:cut_val],
        x[cut_val:cut_test], y[cut_val:cut_test],
        x[cut_test:], y[cut_test:],
    )


@harness.hookimpl
def harness_register_datasets(register):
    record("harness_register_datasets")
    register(
        "hook_points",
        load_points,
        params=PointsParams,
        description="hook recorder points (three classes)",
        tasks=("multiclass",),
    )


# --- the model ---------------------------------------------------------------------------


class DenseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    units: int = 4
    refuse_units: int | None = None


def build_dense(params: DenseParams, info):
    """One hidden Dense layer named MODEL_LAYER; refuses ``refuse_units`` (a failing trial)."""
    import keras

    from harness.models import output_layer

    record(
        "component:build_model",
        trial=_current_trial[0],
        params_type=type(params).__name__,
        params=params.model_dump(),
        info_name=info.name,
        input_shape=list(info.input_shape),
        num_classes=info.num_classes,
    )
    if params.units == params.refuse_units:
        raise RuntimeError(f"hook_dense refuses {params.units} units")
    inputs = keras.Input(info.input_shape)
    hidden = keras.layers.Dense(params.units, activation="relu", name=MODEL_LAYER)(inputs)
    return keras.Model(inputs, output_layer(info)(hidden), name="hook_dense")


@harness.hookimpl
def harness_register_models(register):
    record("harness_register_models")
    register("hook_dense", build_dense, params=DenseParams, description="hook recorder model")


# --- the augmentation --------------------------------------------------------------------


class CountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _count(batch_size) -> int:
    with _lock:
        trial = _current_trial[0]
        _augmented[trial] = _augmented.get(trial, 0) + int(batch_size)
    return 0


def make_count(params: CountParams):
    """An identity layer that counts, per trial, the samples it augments."""
    import keras
    import tensorflow as tf

    class CountSamples(keras.layers.Layer):
        def call(self, inputs, training=None):
            _training_flags.setdefault(_current_trial[0], []).append(training)
            done = tf.py_function(_count, [tf.shape(inputs)[0]], Tout=tf.int32)
            with tf.control_dependencies([done]):
                return tf.identity(inputs)

        def compute_output_shape(self, input_shape):
            return input_shape

    record("component:make_augmentation", trial=_current_trial[0])
    return [CountSamples(name="hook_count")]


@harness.hookimpl
def harness_register_augmentations(register):
    record("harness_register_augmentations")
    register("hook_count", make_count, params=CountParams, description="counts samples")


# --- the registered callback -------------------------------------------------------------


class StopParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stop_after: int = 1


def make_stop(params: StopParams, trial):
    """Stop fit after ``stop_after`` epochs."""
    import keras

    number = trial.number
    record(
        "component:make_callback",
        trial=trial.number,
        params=params.model_dump(),
        trial_type=type(trial).__name__,
    )

    class StopAfter(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            record("component:stop_callback_epoch_end", trial=number, epoch=epoch)
            if epoch + 1 >= params.stop_after:
                self.model.stop_training = True

    return StopAfter()


@harness.hookimpl
def harness_register_callbacks(register):
    record("harness_register_callbacks")
    register("hook_stop", make_stop, params=StopParams, description="stops after N epochs")


# --- the command hook --------------------------------------------------------------------


@harness.hookimpl
def harness_register_commands(subparsers, add_common):
    record("harness_register_commands", plugin="--plugin")


# --- lifecycle hooks ---------------------------------------------------------------------


@harness.hookimpl
def harness_study_start(study):
    spec = study.spec
    record(
        "harness_study_start",
        context_type=type(study).__name__,
        name=study.name,
        run_dir=str(study.run_dir),
        run_dir_exists=study.run_dir.is_dir(),
        study_json_written=(study.run_dir / "study.json").is_file(),
        dataset=spec.dataset.name,
        model=spec.model.name,
        trials=spec.study.trials,
        searched={p.name: p.distribution.describe() for p in spec.space.params},
    )


@harness.hookimpl
def harness_trial_start(trial):
    _current_trial[0] = trial.number
    extra_before = sorted(trial.extra)
    trial.extra["hook_recorder.started"] = trial.number  # read back in harness_trial_end
    record(
        "harness_trial_start",
        extra_before=extra_before,
        trial=trial.number,
        context_type=type(trial).__name__,
        study=trial.study.name,
        run_dir=str(trial.study.run_dir),
        params=trial.params,
        searched=trial.searched_params(),
        worker=trial.worker,
        device=trial.device,
    )


@harness.hookimpl
def harness_trial_callbacks(trial):
    import keras

    number = trial.number
    record(
        "harness_trial_callbacks",
        trial=number,
        dataset_info_in_extra="dataset_info" in trial.extra,
    )

    class EpochRecorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = {key: float(value) for key, value in (logs or {}).items()}
            record("component:trial_callback_epoch_end", trial=number, epoch=epoch, logs=logs)

    return [EpochRecorder()]


@harness.hookimpl
def harness_trial_end(trial, result):
    model = result.model
    record(
        "harness_trial_end",
        trial=trial.number,
        state=result.state,
        metrics=result.metrics,
        history=result.history,
        duration_s=result.duration_s,
        fail_reason=result.fail_reason,
        extra_kept=trial.extra.get("hook_recorder.started") == trial.number,
        model_layers=[layer.name for layer in model.layers] if model is not None else None,
        model_params=model.count_params() if model is not None else None,
        augmented_samples=_augmented.get(trial.number, 0),
        augment_training_flags=_training_flags.get(trial.number, []),
    )


@harness.hookimpl
def harness_test_evaluated(study, trial_number, metrics):
    record(
        "harness_test_evaluated",
        trial=trial_number,
        context_type=type(study).__name__,
        name=study.name,
        run_dir=str(study.run_dir),
        metrics=metrics,
    )


@harness.hookimpl
def harness_ensemble_built(study, ensemble):
    record(
        "harness_ensemble_built",
        context_type=type(study).__name__,
        name=study.name,
        run_dir=str(study.run_dir),
        ensemble=ensemble,
    )


@harness.hookimpl
def harness_study_end(study, table):
    record(
        "harness_study_end",
        name=study.name,
        run_dir=str(study.run_dir),
        table_type=type(table).__name__,
        columns=[str(c) for c in table.columns],
        numbers=[int(n) for n in table["number"]],
        states=list(table["state"]),
        val_accuracy=[None if v != v else float(v) for v in table["val_accuracy"]],
    )
