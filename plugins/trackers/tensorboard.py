"""TensorBoard tracker: per-trial epoch scalars and the HParams dashboard.

Layout under ``runs/<study>/tb/``::

    (root)              the HParams experiment config: every searched parameter
                        with its domain, every metric
    trial-0007/         the trial's hparams and its final metrics (final/<name>)
    trial-0007/train    Keras's per-epoch training scalars
    trial-0007/validation  Keras's per-epoch validation scalars
"""

from __future__ import annotations

import logging
from typing import Any

import harness
from harness.space import ChoiceDistribution, FloatDistribution, IntDistribution

log = logging.getLogger(__name__)

#: Metrics listed in the dashboard besides the objectives (missing ones are left blank).
REPORTED = ("val_loss", "val_accuracy", "loss", "accuracy", "val_mae", "train_seconds", "params")
EPOCH_METRICS = (
    ("epoch_loss", "train"),
    ("epoch_loss", "validation"),
    ("epoch_accuracy", "train"),
    ("epoch_accuracy", "validation"),
)


def _hparam_value(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else str(value)


def _mixed_choice(distribution) -> bool:
    """A choice of values of different types (``[0, "block4_conv1"]``): TensorBoard's
    Discrete domain holds one type, so such values are shown as strings."""
    if not isinstance(distribution, ChoiceDistribution):
        return False
    return len({type(_hparam_value(c)) for c in distribution.choices}) > 1


def _hparam(name: str, distribution) -> Any:
    from tensorboard.plugins.hparams import api as hp

    if isinstance(distribution, IntDistribution):
        return hp.HParam(name, hp.IntInterval(distribution.low, distribution.high))
    if isinstance(distribution, FloatDistribution):
        return hp.HParam(name, hp.RealInterval(distribution.low, distribution.high))
    if _mixed_choice(distribution):
        return hp.HParam(name, hp.Discrete([str(c) for c in distribution.choices]))
    if isinstance(distribution, ChoiceDistribution):
        return hp.HParam(name, hp.Discrete([_hparam_value(c) for c in distribution.choices]))
    return hp.HParam(name)


def metric_names(study) -> list[str]:
    """The final metrics a study's trials write, objectives first."""
    names = [o.metric for o in study.spec.objectives]
    return names + [m for m in REPORTED if m not in names]


@harness.hookimpl
def harness_study_start(study):
    """Write the HParams experiment config (domains and metrics) at the TensorBoard root."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    hparams = [_hparam(p.name, p.distribution) for p in study.spec.space.params]
    hparams += [hp.HParam("worker"), hp.HParam("device")]
    metrics = [hp.Metric(f"final/{name}", display_name=name) for name in metric_names(study)]
    metrics += [
        hp.Metric(tag, group=group, display_name=f"{group} {tag.removeprefix('epoch_')} (curve)")
        for tag, group in EPOCH_METRICS
    ]
    study.tensorboard_dir.mkdir(parents=True, exist_ok=True)
    with tf.summary.create_file_writer(str(study.tensorboard_dir)).as_default():
        hp.hparams_config(hparams=hparams, metrics=metrics)


@harness.hookimpl
def harness_trial_start(trial):
    """Record the trial's searched parameters (and worker, device) as its hparams."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    mixed = {p.name for p in trial.study.spec.space.params if _mixed_choice(p.distribution)}
    values = {
        name: str(v) if name in mixed else _hparam_value(v)
        for name, v in trial.searched_params().items()
    }
    values.update(worker=trial.worker, device=trial.device)
    writer = tf.summary.create_file_writer(str(trial.tensorboard_dir))
    with writer.as_default():
        hp.hparams(values, trial_id=trial.name)
    writer.close()


@harness.hookimpl
def harness_trial_callbacks(trial):
    """Keras's TensorBoard callback: epoch scalars for train and validation."""
    import keras

    return [
        keras.callbacks.TensorBoard(
            log_dir=str(trial.tensorboard_dir),
            write_graph=False,
            histogram_freq=0,
            profile_batch=0,
        )
    ]


@harness.hookimpl
def harness_trial_end(trial, result):
    """Write the trial's final metrics (``final/<name>``) and its state as a text summary."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(trial.tensorboard_dir))
    with writer.as_default():
        for name, value in result.metrics.items():
            tf.summary.scalar(f"final/{name}", value, step=0)
        status = result.state + (f": {result.fail_reason}" if result.fail_reason else "")
        tf.summary.text("trial/status", status, step=0)
    writer.close()
