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
from harness.cross_validation import FoldReport, cross_validate, refit_on_all
from harness.errors import (
    HarnessError,
    StudyAborted,
    TrialFailed,
    TrialPruned,
    describe_exception,
)
from harness.fit_inputs import component_params
from harness.pipeline import TrialPipeline
from harness.plugins import HarnessPlugins
from harness.results import forget_saved_model
from harness.study import EXTRA_METRICS

log = logging.getLogger(__name__)

__all__ = [
    "INTERRUPTED_RESULT",
    "NullReporter",
    "Reporter",
    "StudyAborted",
    "release_trial_memory",
    "run_trial",
]

#: ``TrialContext.extra`` key of the result of a trial that Ctrl-C stopped: ``run_trial``
#: raises KeyboardInterrupt then, so the backend finds here the last epoch's metrics that
#: the trackers were given, and records the same figures.
INTERRUPTED_RESULT = "harness.interrupted_result"


class Reporter(Protocol):
    """How a backend hears about each epoch; ``report`` raises TrialPruned to stop the trial.

    ``last`` is true for the trial's last epoch: the trial has then trained fully, so
    stopping it saves nothing and would only throw a finished result away.
    """

    def report(self, epoch: int, metrics: dict[str, float], *, last: bool = False) -> None: ...


class NullReporter:
    """A reporter that never prunes."""

    def report(self, epoch: int, metrics: dict[str, float], *, last: bool = False) -> None:
        return None


class _EpochGuard:
    """Keras callback: record and report each epoch, fail on a NaN loss, stop the study
    when its objective is not among the first epoch's metrics, and prune a trial whose
    first epoch learned nothing (``classes``: see :func:`chance_classes`).

    It runs after every other callback, so trackers have logged an epoch before the
    backend prunes the trial at it; ``history`` keeps every epoch's logs, also of a
    trial that was pruned or failed mid-fit. ``phases`` is how many ``fit`` calls the
    trial makes (2 with a fine-tuning phase): the last epoch of the last one, or the epoch
    at which a stopping callback ended it, is reported as the trial's last.
    """

    def __new__(
        cls,
        reporter: Reporter,
        history: dict[str, list[float]],
        required=(),
        phases: int = 1,
        classes: int | None = None,
    ):
        import keras  # lazy: imports TensorFlow

        class EpochGuard(keras.callbacks.Callback):
            fits = 0

            def on_train_begin(self, logs=None):
                self.fits += 1

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
                # A stopping callback (run before this one) may have ended the fit here.
                ended = epoch + 1 >= self.params.get("epochs", math.inf) or getattr(
                    self.model, "stop_training", False
                )
                last = self.fits >= phases and bool(ended)
                reporter.report(epoch, logs, last=last)
                first = epoch == 0 and self.fits == 1 and not last
                if classes and first and (self.params.get("steps") or 0) >= CHANCE_MIN_STEPS:
                    _stop_at_chance(logs, classes)

        return EpochGuard()


#: ``[study].stop_at_chance`` judges a first epoch of at least this many batches: a few
#: updates are no test of a model (the iris example's 4 batches leave it at chance).
CHANCE_MIN_STEPS = 20


def chance_classes(spec, info) -> int | None:
    """The class count C when ``[study].stop_at_chance`` applies to a trial on ``info``: a
    multiclass dataset of 3 or more classes. Binary tasks are left alone: a binary model
    often sits at 50% for an epoch before it learns."""
    if spec.study.stop_at_chance and info.task == "multiclass" and (info.num_classes or 0) >= 3:
        return info.num_classes
    return None


def _stop_at_chance(logs: dict[str, float], classes: int) -> None:
    """Prune the trial when its first epoch (of at least ``CHANCE_MIN_STEPS`` batches) learned
    nothing: a mean training loss no better than a uniform guess over ``classes`` (ln C,
    within 5%) and a validation accuracy within 2 points of 1/C."""
    if "loss" not in logs or "val_accuracy" not in logs:
        return
    loss, accuracy = logs["loss"], logs["val_accuracy"]
    ceiling = 1 / classes + 0.02
    if loss >= 0.95 * math.log(classes) and accuracy <= ceiling:
        raise TrialPruned(
            reason=f"stopped after epoch 1: no better than chance (val_accuracy {accuracy:.4f} "
            f"<= {ceiling:.4g}, loss {loss:.4f} >= 0.95 ln {classes}); "
            "[study].stop_at_chance = false keeps such trials"
        )


def required_metrics(spec) -> list[str]:
    """Epoch metrics the study names (objectives, stopping callbacks' ``metric`` or
    ``monitor``): a trial whose first epoch lacks one stops the study."""
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
    (``history``) and its last epoch's values (``metrics``); so does the result of a
    trial Ctrl-C stopped, left in ``trial.extra[INTERRUPTED_RESULT]``.
    """
    reporter = reporter or NullReporter()
    spec = trial.study.spec
    started = time.perf_counter()
    result: TrialResult
    model = None
    history: dict[str, list[float]] = {}
    tracker_callbacks: list[Any] = []
    forget_saved_model()
    plugins.trial_start(trial)
    try:
        folds = spec.study.folds
        # Folds fit their own data: no strategy keyed on the whole dataset (a feature cache).
        pipeline = TrialPipeline(trial, strategies=()) if folds else TrialPipeline(trial)
        built = pipeline.prepare()
        model = built.model
        trial.extra["dataset_info"] = pipeline.dataset.info
        trial.extra["has_test_split"] = pipeline.dataset.test is not None
        if folds:
            tracker_callbacks = plugins.trial_callbacks(trial)
            result = _cross_validated(trial, pipeline, reporter, history, tracker_callbacks)
            _finish(trial, plugins, result, started, tracker_callbacks)
            return result
        # A strategy may fit something cheaper than the whole model on the images every
        # epoch (harness.features: a frozen base's head on features computed once; `model`,
        # base + head, is still the one saved). Computing the features counts as training.
        fit_started = time.perf_counter()
        inputs = pipeline.fit_inputs()
        tracker_callbacks = plugins.trial_callbacks(trial)
        callbacks = [
            *tracker_callbacks,
            *(
                cb.component.function(component_params(cb, trial.params), trial)
                for cb in spec.callbacks
            ),
            _EpochGuard(
                reporter, history, required_metrics(spec), pipeline.fit_phases(),
                chance_classes(spec, pipeline.dataset.info),
            ),
        ]
        pipeline.fit(inputs, callbacks)
        train_seconds = time.perf_counter() - fit_started
        metrics = _final_metrics(inputs.model, inputs.validation, history)
        metrics.update(
            params=float(model.count_params()),
            train_seconds=train_seconds,
            epochs_run=float(len(next(iter(history.values()), []))),
        )
        metrics.update(_validation_examples(pipeline.dataset))
        _check_objectives(spec, metrics)
        result = TrialResult("complete", metrics, history, model=model)
    except TrialPruned as pruned:
        result = getattr(pruned, "result", None) or _stopped("pruned", history, pruned.reason)
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
        trial.extra[INTERRUPTED_RESULT] = result
        raise
    except Exception as exc:  # noqa: BLE001 - a failing trial is recorded, the study goes on
        log.debug("trial %s failed", trial.number, exc_info=True)
        result = _stopped("failed", history, describe_exception(exc))
    _finish(trial, plugins, result, started, tracker_callbacks)
    return result


def _cross_validated(trial, pipeline, reporter, history, tracker_callbacks) -> TrialResult:
    """One trial as K fits (:mod:`harness.cross_validation`): its figures are the folds'
    means with each objective's spread; its model is refitted on all folds on demand."""
    spec = trial.study.spec
    phases = pipeline.fit_phases()
    classes = chance_classes(spec, pipeline.dataset.info)
    fold_histories: list[dict[str, list[float]]] = []

    def guard(fold_history):
        fold_histories.append(fold_history)
        first = len(fold_histories) == 1  # a stop at chance ends the trial in its first fold
        return _EpochGuard(
            NullReporter(), fold_history, required_metrics(spec), phases,
            classes if first else None,
        )

    started = time.perf_counter()
    report = FoldReport([o.metric for o in spec.objectives])
    try:
        out_of_fold, fold_models = cross_validate(
            trial, pipeline, reporter, guard, _final_metrics, tracker_callbacks, report
        )
    except TrialPruned as exc:
        if not report.folds:  # stopped within the first fold: run_trial records its epochs
            history.update(fold_histories[0])
            raise
        history.update(report.history())
        exc.result = TrialResult("pruned", report.metrics(), history, fail_reason=exc.reason)
        raise
    history.update(report.history())
    metrics = report.metrics()
    metrics.update(
        params=float(pipeline.built.model.count_params()),
        train_seconds=time.perf_counter() - started,
    )
    _check_objectives(spec, metrics)
    return TrialResult(
        "complete", metrics, history,
        refit=refit_on_all(pipeline, metrics.get("epochs_run", 0.0)),
        out_of_fold=out_of_fold,
        fold_models=fold_models,
    )


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
    import keras  # lazy: imports TensorFlow

    keras.backend.clear_session(free_memory=True)


def _final_metrics(model, val_ds, history) -> dict[str, float]:
    metrics = {k: v[-1] for k, v in history.items() if v and not k.startswith("val_")}
    if val_ds is not None:
        evaluated = model.evaluate(val_ds, verbose=0, return_dict=True)
        metrics.update({f"val_{k}": float(v) for k, v in evaluated.items()})
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise TrialFailed(f"{key} is {value}; lower the learning rate or add normalization")
    return metrics


def _validation_examples(dataset) -> dict[str, float]:
    """``{"val_examples": n}``, the validation split's size when tf.data knows it: the
    binomial standard error of the trial's accuracy (:mod:`harness.noise`) needs it."""
    split = dataset.validation
    known = int(split.cardinality()) if hasattr(split, "cardinality") else -1
    return {"val_examples": float(known)} if known > 0 else {}


def _check_objectives(spec, metrics: dict[str, float]) -> None:
    for objective in spec.objectives:
        if objective.metric not in metrics:
            raise StudyAborted(
                f"objective {objective.metric!r} is not among this study's metrics "
                f"({', '.join(sorted(metrics))}); change [study].objective"
            )
