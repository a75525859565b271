"""The one backend-agnostic trial runner: data -> model -> compile -> fit -> evaluate -> report.

Backends only propose parameters and pass a :class:`Reporter`; whatever
happens inside a trial comes back as a :class:`~harness.context.TrialResult`
(``complete``, ``pruned`` or ``failed`` with a reason), never as an exception,
except for :class:`StudyAborted` (input the user must fix before any trial can
work) and ``KeyboardInterrupt``.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Protocol

from harness.context import TrialContext, TrialResult
from harness.data import Dataset, LoadContext, cache_key
from harness.errors import HarnessError, TrialFailed, TrialPruned
from harness.features import maybe_cached_features
from harness.fit_inputs import (  # noqa: F401 - also part of the runner's API
    component_params,
    train_params,
    training_pipelines,
)
from harness.models import BuiltModel, check_output, loss_and_metrics, make_optimizer
from harness.plugins import HarnessPlugins
from harness.study import TrainParams

log = logging.getLogger(__name__)

_DATASETS: dict[str, Dataset] = {}


class StudyAborted(HarnessError):
    """A trial hit a problem no other trial can avoid (missing data, broken plugin config)."""


class Reporter(Protocol):
    """How a backend hears about each epoch; ``report`` raises TrialPruned to stop the trial."""

    def report(self, epoch: int, metrics: dict[str, float]) -> None: ...


class NullReporter:
    """A reporter that never prunes."""

    def report(self, epoch: int, metrics: dict[str, float]) -> None:
        return None


def load_dataset(trial: TrialContext) -> Dataset:
    """Load (or reuse from this process's cache) the trial's dataset."""
    spec = trial.study.spec
    params = component_params(spec.dataset, trial.params)
    key = cache_key(spec.dataset.name, params.model_dump(mode="json"))
    if key not in _DATASETS:
        context = LoadContext(
            cache_dir=trial.study.run_dir / "cache" / key, seed=spec.study.seed or 0
        )
        context.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            dataset = spec.dataset.component.function(params, context)
        except HarnessError as exc:
            raise StudyAborted(str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - every trial would fail the same way
            log.debug("dataset %r failed to load", spec.dataset.name, exc_info=True)
            raise StudyAborted(
                f"dataset plugin {spec.dataset.name!r} failed while loading: {_describe(exc)}; "
                "fix the [dataset] table or the data (every trial would fail the same way)"
            ) from exc
        if not isinstance(dataset, Dataset):
            raise StudyAborted(
                f"dataset plugin {spec.dataset.name!r} returned {type(dataset).__name__}, "
                "not a harness.data.Dataset"
            )
        _DATASETS[key] = dataset
    return _DATASETS[key]


class _EpochGuard:
    """Keras callback: record and report each epoch, fail on a NaN loss, and stop the study
    when its objective is not among the first epoch's metrics.

    It runs after every other callback, so trackers have logged an epoch before the
    backend prunes the trial at it; ``history`` keeps every epoch's logs, also of a
    trial that was pruned or failed mid-fit.
    """

    def __new__(cls, reporter: Reporter, history: dict[str, list[float]], required=()):
        import keras

        class EpochGuard(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = {k: float(v) for k, v in (logs or {}).items()}
                for key, value in logs.items():
                    history.setdefault(key, []).append(value)
                missing = [m for m in required if m not in logs]
                if missing:
                    raise StudyAborted(
                        f"metric {missing[0]!r} (named by the study) is not among what this "
                        f"study's model reports ({', '.join(sorted(logs))}); change "
                        "[study].objective or the callback's metric"
                    )
                for key in ("loss", "val_loss"):
                    if key in logs and not math.isfinite(logs[key]):
                        raise TrialFailed(
                            f"{key} became {logs[key]} at epoch {epoch + 1}; "
                            "lower the learning rate or add normalization"
                        )
                reporter.report(epoch, logs)

        return EpochGuard()


def build_model(spec, params: dict[str, Any], info, train: TrainParams) -> BuiltModel:
    """Build the study's model for ``params`` and compile it for the dataset's task.

    The model builder's own loss and metrics win over the task's defaults; an
    output layer that cannot express the task is refused (:func:`check_output`).
    """
    built = spec.model.component.function(component_params(spec.model, params), info)
    built = built if isinstance(built, BuiltModel) else BuiltModel(built)
    check_output(built.model, info)
    default_loss, default_metrics = loss_and_metrics(info)
    built.model.compile(
        optimizer=make_optimizer(train.optimizer, train.learning_rate, train.momentum),
        loss=built.loss or default_loss,
        metrics=built.metrics if built.metrics is not None else default_metrics,
    )
    return built


def augmentation_model(trial: TrialContext):
    """The study's augmentation layers for this trial as one Sequential (None if none)."""
    import keras

    layers: list[Any] = []
    for spec in trial.study.spec.augmentations:
        made = spec.component.function(component_params(spec, trial.params))
        layers.extend(made if isinstance(made, list | tuple) else [made])
    return keras.Sequential(layers, name="augmentation") if layers else None


def fit_epochs(
    model, train_ds, val_ds, train: TrainParams, epochs: int, callbacks, initial_epoch: int = 0
):
    """``model.fit`` with the study's steps per epoch and verbosity; epochs count on from
    ``initial_epoch`` (the fine-tuning phase continues the first phase's curve)."""
    return model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=initial_epoch + epochs,
        initial_epoch=initial_epoch,
        steps_per_epoch=train.steps_per_epoch,
        callbacks=callbacks,
        verbose=train.verbose,
    )


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "ResourceExhaustedError":
        return "out of memory (ResourceExhausted): lower batch_size, image_size or model size"
    if isinstance(exc, TrialFailed):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0] if text else ''}"[:500]


def required_metrics(spec) -> list[str]:
    """Epoch metrics the study names (objectives, stopping callbacks' ``metric`` or
    ``monitor``): a trial whose first epoch lacks one stops the study."""
    from harness.study import EXTRA_METRICS

    names = [o.metric for o in spec.objectives if o.metric not in EXTRA_METRICS]
    for callback in spec.callbacks:
        for key in ("metric", "monitor"):
            value = callback.table.get(key)
            if isinstance(value, str) and value not in names:
                names.append(value)
    return names


def run_trial(
    trial: TrialContext, plugins: HarnessPlugins, reporter: Reporter | None = None
) -> TrialResult:
    """Run one trial end to end and return how it ended (see the module docstring).

    A pruned or failed trial's result still carries every epoch it ran
    (``history``) and its last epoch's values (``metrics``).
    """
    import keras

    reporter = reporter or NullReporter()
    spec = trial.study.spec
    started = time.perf_counter()
    result: TrialResult
    model = None
    history: dict[str, list[float]] = {}
    tracker_callbacks: list[Any] = []
    plugins.trial_start(trial)
    try:
        keras.utils.set_random_seed((spec.study.seed or 0) + trial.number)
        train = train_params(trial.params)
        dataset = load_dataset(trial)
        trial.extra["dataset_info"] = dataset.info
        trial.extra["has_test_split"] = dataset.test is not None
        built = build_model(spec, trial.params, dataset.info, train)
        model = built.model
        # A frozen base without augmentation or fine-tuning: train only its head, on features
        # computed once (harness.features). `model` (base + head) is still the one saved.
        # Computing the features counts as training time.
        fit_started = time.perf_counter()
        cached = maybe_cached_features(built, dataset, trial, train)
        if cached is not None:
            trained, train_ds, val_ds = cached
        else:
            trained = model
            train_ds, val_ds = training_pipelines(
                dataset, train, augmentation_model(trial), spec.study.seed or 0
            )
        tracker_callbacks = plugins.trial_callbacks(trial)
        callbacks = [
            *tracker_callbacks,
            *(
                cb.component.function(component_params(cb, trial.params), trial)
                for cb in spec.callbacks
            ),
            _EpochGuard(reporter, history, required_metrics(spec)),
        ]
        fit_epochs(trained, train_ds, val_ds, train, train.epochs, callbacks)
        if built.fine_tune is not None:
            ran = len(next(iter(history.values()), []))
            fine_tune(model, built, train, train_ds, val_ds, callbacks, initial_epoch=ran)
        train_seconds = time.perf_counter() - fit_started
        metrics = _final_metrics(trained, val_ds, history, train)
        metrics.update(
            params=float(model.count_params()),
            train_seconds=train_seconds,
            epochs_run=float(len(next(iter(history.values()), []))),
        )
        _check_objectives(spec, metrics)
        result = TrialResult("complete", metrics, history, model=model)
    except TrialPruned:
        result = _stopped("pruned", history)
    except StudyAborted as exc:
        result = _stopped("failed", history, str(exc))
        _finish(trial, plugins, result, started, tracker_callbacks)
        raise
    except HarnessError as exc:
        result = _stopped("failed", history, str(exc))
        _finish(trial, plugins, result, started, tracker_callbacks)
        raise StudyAborted(str(exc)) from exc
    except KeyboardInterrupt:
        result = _stopped("failed", history, "interrupted by the user")
        _finish(trial, plugins, result, started, tracker_callbacks)
        raise
    except Exception as exc:  # noqa: BLE001 - a failing trial is recorded, the study goes on
        log.debug("trial %s failed", trial.number, exc_info=True)
        result = _stopped("failed", history, _describe(exc))
    _finish(trial, plugins, result, started, tracker_callbacks)
    return result


def _stopped(state: str, history: dict[str, list[float]], reason: str | None = None):
    """The result of a trial stopped mid-way: its epochs so far and its last epoch's values."""
    last = {key: values[-1] for key, values in history.items() if values}
    if last:
        last["epochs_run"] = float(len(next(iter(history.values()))))
    return TrialResult(state, last, history, fail_reason=reason)


def _finish(
    trial: TrialContext,
    plugins: HarnessPlugins,
    result: TrialResult,
    started: float,
    tracker_callbacks: list[Any] = (),
):
    if result.state != "complete":
        # fit() stopped by an exception skips on_train_end, which is where Keras's
        # TensorBoard callback flushes and closes its writers.
        for callback in tracker_callbacks:
            try:
                callback.on_train_end({})
            except Exception:  # noqa: BLE001 - a tracker must not change the outcome
                log.debug("on_train_end of %r failed", callback, exc_info=True)
    result.duration_s = time.perf_counter() - started
    plugins.trial_end(trial, result)


def release_trial_memory() -> None:
    """Drop Keras's global state between trials (the backend calls this after saving).

    ``clear_session`` runs the garbage collector itself; a second full collection
    per trial costs a quarter of a small trial's time and frees nothing more.
    """
    import keras

    keras.backend.clear_session(free_memory=True)


def fine_tune(model, built, train, train_ds, val_ds, callbacks, initial_epoch: int):
    """Unfreeze the base from ``unfreeze_from``, recompile at the low rate, train on from
    ``initial_epoch`` (the epochs the first phase ran); returns Keras's History."""
    fine = built.fine_tune
    base = fine.base
    base.trainable = True
    layers = base.layers
    start = 0
    if isinstance(fine.unfreeze_from, int):
        start = fine.unfreeze_from + (len(layers) if fine.unfreeze_from < 0 else 0)
        if not 0 <= start < len(layers):
            raise TrialFailed(
                f"fine_tune_at: index {fine.unfreeze_from} is outside the base model's "
                f"{len(layers)} layers"
            )
    elif isinstance(fine.unfreeze_from, str):
        names = [layer.name for layer in layers]
        if fine.unfreeze_from not in names:
            raise TrialFailed(f"fine_tune_at: no layer {fine.unfreeze_from!r} in the base model")
        start = names.index(fine.unfreeze_from)
    for index, layer in enumerate(layers):
        is_norm = type(layer).__name__ == "BatchNormalization"
        layer.trainable = index >= start and not is_norm
    model.compile(
        optimizer=make_optimizer(train.optimizer, fine.learning_rate, train.momentum),
        loss=model.loss,
        # The first phase's metrics (the task's defaults), so that objectives such as
        # val_mae are still measured after fine-tuning.
        metrics=(
            built.metrics if built.metrics is not None else model.get_compile_config()["metrics"]
        ),
    )
    return fit_epochs(
        model, train_ds, val_ds, train, fine.epochs, callbacks, initial_epoch=initial_epoch
    )


def _final_metrics(model, val_ds, history, train: TrainParams) -> dict[str, float]:
    metrics = {k: v[-1] for k, v in history.items() if v and not k.startswith("val_")}
    if val_ds is not None:
        evaluated = model.evaluate(val_ds, verbose=0, return_dict=True)
        metrics.update({f"val_{k}": float(v) for k, v in evaluated.items()})
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise TrialFailed(f"{key} is {value}; lower the learning rate or add normalization")
    return metrics


def _check_objectives(spec, metrics: dict[str, float]) -> None:
    for objective in spec.objectives:
        if objective.metric not in metrics:
            raise StudyAborted(
                f"objective {objective.metric!r} is not among this study's metrics "
                f"({', '.join(sorted(metrics))}); change [study].objective"
            )
