"""TensorBoard tracker: per-trial epoch scalars and an HParams dashboard that tells trials apart.

Layout under ``runs/<study>/tb/``::

    (root)              the HParams experiment config: every searched parameter with
                        its domain, plus ``state``; the metrics this study's trials
                        produce
    .hparams-config     marker: the config was written (see "One config" below)
    trial-0007/         the trial's HParams session (its parameters, ``state``, start
                        and end status) and its final metrics (``final/<name>``,
                        ``final/test_<name>`` once the test split is measured), a
                        ``trial/status`` text ("pruned after epoch 3", "failed: ...")
                        and a ``trial/worker`` text ("worker w0 on device cpu")
    trial-0007/train    Keras's per-epoch training scalars (``epoch_loss``, ...)
    trial-0007/validation  Keras's per-epoch validation scalars

Status of a trial's session
    TensorBoard's HParams plugin knows four statuses (``tensorboard.plugins.hparams.
    api_pb2.Status``): ``STATUS_UNKNOWN``, ``STATUS_SUCCESS``, ``STATUS_FAILURE`` and
    ``STATUS_RUNNING``; the dashboard has a filter checkbox for each ("Unknown",
    "Success", "Failure", "Running") and the backend takes a session's status
    from its ``session_end_pb`` record alone (``list_session_groups._build_session``).
    There is no "pruned". A complete trial ends ``STATUS_SUCCESS``, a failed one
    ``STATUS_FAILURE`` and a pruned one ``STATUS_UNKNOWN``: ``STATUS_RUNNING`` would
    claim that a stopped trial is still training, and an invented number is not
    served (the enum has nothing else). ``UNKNOWN`` is unambiguous here because this
    tracker writes a trial's session only when the trial ends, always with its end
    status, so no session of a harness study is left without one; a trial still
    running (or whose worker was killed) has no session at all until it ends (its
    scalars are in the Scalars tab meanwhile). The ``state`` hparam (``complete``,
    ``pruned``, ``failed``, a Discrete domain) says it in words and filters the table.

    The session is written at the end, not the start, because TensorBoard keeps the
    first record of a tag and ignores later ones: a start record written before the
    trial's state is known could never be completed. Its start time is the real one.

Pruned, failed and interrupted trials
    keep the metrics of the last epoch they ran as ``final/<name>`` (``result.metrics``,
    nothing filtered out; a NaN loss that failed a trial is shown as NaN) and Keras's
    curves up to that epoch. These are the figures the backends record too (a trial
    Ctrl-C stopped included, ``harness.trial.INTERRUPTED_RESULT``), so ``trials.csv``
    and ``harness show`` list the same values, their objective column included.

Columns the HParams dashboard shows
    The dashboard ticks (shows in its table, parallel coordinates and scatter views) the
    first five hparams and the first five metrics of the experiment config; the others
    are one click away in its left-hand lists. The backend serves the hparams sorted
    with the ones marked ``differs`` first, then by name (``backend_context.
    _sort_and_reduce_to_hparams_limit``), and ``hp.HParam`` cannot mark one, so the
    config is written as a raw summary with every searched parameter marked ``differs``
    (its values do differ across trials): the searched parameters are ticked first,
    then ``state``. A study searching more than five parameters has the first five by
    name ticked. Metrics keep the config's order: objectives first.

    Where a trial ran (worker, device) is not a hyperparameter and is not in the config
    or the sessions: as an hparam it took a ticked column (``device``, always ``cpu`` on
    one machine, hid a searched parameter) and had no type. It is the run's
    ``trial/worker`` text (Text tab) and the ``worker`` and ``device`` columns of
    ``trials.csv``.

Domains
    A choice is a Discrete domain of its values (strings when the values mix types,
    since a Discrete domain holds one type). An ``int`` (stepped or log-scaled: the
    harness never combines step and log, so a log-scaled int can take every integer
    between its bounds) and a ``float`` with a ``step`` are Discrete domains listing
    every value the backends can suggest (``low + k * step``, written to 12
    significant digits in the domain and in every session so that both match), up
    to :data:`MAX_DISCRETE` values; a larger domain falls back to an interval
    (IntInterval / RealInterval), as does every unstepped float.

One config
    The metrics a study produces depend on its task (``val_accuracy`` for a
    classifier, ``val_mae`` for a regression), known only once a trial has run; so
    the experiment config is written by the worker at the end of the first trial
    that has metrics: objectives first, then that trial's metrics, the harness's own
    (``params``, ``train_seconds``, ``epochs_run``), ``final/test_<m>`` for each
    training metric ``m`` (written by ``harness_test_evaluated``), and the per-epoch
    curves (``epoch_<m>`` in ``train`` and ``validation``). Exactly one config is
    written per study, however often it is resumed and however many workers run:
    the writer first creates ``tb/.hparams-config`` with ``O_CREAT | O_EXCL``, and
    only the process that created it writes (a root written by an older version of
    this tracker is left as it is).
"""

from __future__ import annotations

import os
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import harness
from harness.context import TrialContext
from harness.space import ChoiceDistribution, FloatDistribution, IntDistribution
from harness.study import EXTRA_METRICS

#: A trial's state -> the name of its HParams session status (``api_pb2.Status``).
STATUS_OF_STATE = {
    "complete": "STATUS_SUCCESS",
    "failed": "STATUS_FAILURE",
    "pruned": "STATUS_UNKNOWN",
}
#: The values of the ``state`` hparam.
STATES = ("complete", "pruned", "failed")
#: The most values a Discrete domain lists; a larger int or stepped float is an interval.
MAX_DISCRETE = 1000
#: Created (atomically) by the one process that writes the experiment config.
CONFIG_MARKER = ".hparams-config"
#: Epoch-log entries that are not measurements of the model (no test value, no curve).
NOT_MEASURED = ("learning_rate",)
_STARTED = "tensorboard.started"


def _hparam_value(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) else str(value)


def _mixed_choice(distribution) -> bool:
    """A choice of values of different types (``[0, "block4_conv1"]``): TensorBoard's
    Discrete domain holds one type, so such values are shown as strings."""
    if not isinstance(distribution, ChoiceDistribution):
        return False
    return len({type(_hparam_value(c)) for c in distribution.choices}) > 1


def _stepped_float(distribution) -> bool:
    return isinstance(distribution, FloatDistribution) and bool(distribution.step)


def _rounded(value: float) -> float:
    """A stepped float to 12 significant digits (``0.30000000000000004`` -> ``0.3``)."""
    return float(f"{value:.12g}")


def domain_values(distribution) -> list[Any] | None:
    """Every value an int, a stepped float or a choice can take, or None when the domain
    is an interval (an unstepped float, or more than :data:`MAX_DISCRETE` values)."""
    if isinstance(distribution, ChoiceDistribution):
        if _mixed_choice(distribution):
            return [str(c) for c in distribution.choices]
        return [_hparam_value(c) for c in distribution.choices]
    if isinstance(distribution, IntDistribution):
        step = 1 if distribution.log else distribution.step
        if (distribution.high - distribution.low) // step + 1 > MAX_DISCRETE:
            return None
        return list(range(distribution.low, distribution.high + 1, step))
    if _stepped_float(distribution):
        low, step = distribution.low, distribution.step
        span = Decimal(str(distribution.high)) - Decimal(str(low))
        count = int(span // Decimal(str(step))) + 1
        if count > MAX_DISCRETE:
            return None
        return [_rounded(low + k * step) for k in range(count)]
    return None


def session_value(distribution, value: Any) -> Any:
    """A trial's value of a parameter as its HParams session holds it (matching the domain)."""
    if _mixed_choice(distribution):
        return str(value)
    if _stepped_float(distribution) and isinstance(value, int | float):
        return _rounded(value)
    return _hparam_value(value)


def _hparam(name: str, distribution) -> Any:
    from tensorboard.plugins.hparams import api as hp  # lazy: imports TensorFlow

    values = domain_values(distribution)
    if values is not None:
        return hp.HParam(name, hp.Discrete(values))
    if isinstance(distribution, IntDistribution):
        return hp.HParam(name, hp.IntInterval(distribution.low, distribution.high))
    if isinstance(distribution, FloatDistribution):
        return hp.HParam(name, hp.RealInterval(distribution.low, distribution.high))
    return hp.HParam(name)


def _training_metrics(result) -> list[str]:
    """Names of the metrics fit() reports on training data (``loss``, ``accuracy``, ...)."""
    names: list[str] = []
    for key in [*result.history, *result.metrics]:
        measured = not any(key == n or key.startswith(f"{n}_") for n in NOT_MEASURED)
        training = not key.startswith(("val_", "test_")) and key not in EXTRA_METRICS
        if measured and training and key not in names:
            names.append(key)
    return names


def experiment_metrics(study, result) -> list[tuple[str, str | None]]:
    """The metrics (tag, run group) the HParams config lists, from a trial's result.

    Objectives first, then the trial's final metrics, the harness's own, the test
    metrics the test evaluation will write, and the per-epoch curves.
    """
    finals: list[str] = [o.metric for o in study.spec.objectives]
    training = _training_metrics(result)
    for name in [*result.metrics, *EXTRA_METRICS, *(f"test_{m}" for m in training)]:
        if name not in finals:
            finals.append(name)
    metrics: list[tuple[str, str | None]] = [(f"final/{name}", None) for name in finals]
    keys = set(result.history) | set(result.metrics)
    for name in training:
        metrics.append((f"epoch_{name}", "train"))
        if f"val_{name}" in keys:
            metrics.append((f"epoch_{name}", "validation"))
    return metrics


def _claim_config(tensorboard_dir: Path) -> bool:
    """True for the one process that may write the experiment config (see the docstring)."""
    tensorboard_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(tensorboard_dir / CONFIG_MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, f"written by process {os.getpid()}\n".encode())
    os.close(fd)
    # A root that already holds events was written by an older version at study start.
    return not any(tensorboard_dir.glob("events.out.tfevents.*"))


def config_summary(hparams, metrics, differing: set[str]):
    """The experiment config as ``hp.hparams_config`` writes it, with the hparams named in
    ``differing`` marked ``differs`` (ticked first by the dashboard: see the docstring)."""
    from tensorboard.plugins.hparams import plugin_data_pb2, summary_v2  # lazy: imports TF

    summary = summary_v2.hparams_config_pb(hparams=hparams, metrics=metrics)
    plugin_data = summary.value[0].metadata.plugin_data
    content = plugin_data_pb2.HParamsPluginData.FromString(plugin_data.content)
    for info in content.experiment.hparam_infos:
        info.differs = info.name in differing
    plugin_data.content = content.SerializeToString()
    return summary


def write_experiment_config(study, result) -> bool:
    """Write the HParams experiment config for ``study`` from ``result``'s metrics, unless
    it was written already. Returns whether this call wrote it."""
    import tensorflow as tf  # lazy: imports TensorFlow
    from tensorboard.plugins.hparams import api as hp  # lazy: imports TensorFlow

    root = study.tensorboard_dir
    if not _claim_config(root):
        return False
    try:
        searched = [_hparam(p.name, p.distribution) for p in study.spec.space.params]
        hparams = [*searched, hp.HParam("state", hp.Discrete([*STATES, ENSEMBLE_RUN]))]
        directions = {o.metric: o.direction for o in study.spec.objectives}
        metrics = []
        for tag, group in experiment_metrics(study, result):
            name = tag.removeprefix("final/")
            if group is None:
                description = f"objective ({directions[name]})" if name in directions else ""
                metrics.append(hp.Metric(tag, display_name=name, description=description))
            else:
                label = f"{group} {tag.removeprefix('epoch_')} (curve)"
                metrics.append(hp.Metric(tag, group=group, display_name=label))
        config = config_summary(hparams, metrics, {h.name for h in searched})
        writer = tf.summary.create_file_writer(str(root))
        with writer.as_default():
            tf.summary.experimental.write_raw_pb(config.SerializeToString(), step=0)
        writer.close()
    except BaseException:
        (root / CONFIG_MARKER).unlink(missing_ok=True)  # let the next trial try again
        raise
    return True


def _epochs_run(result) -> int:
    if "epochs_run" in result.metrics:
        return int(result.metrics["epochs_run"])
    return len(next(iter(result.history.values()), []))


def status_text(result) -> str:
    """The trial's ``trial/status`` text: ``complete``, ``pruned after epoch 3``,
    ``failed after epoch 1: loss became nan ...``."""
    text = result.state
    epochs = _epochs_run(result)
    if result.state != "complete" and epochs:
        text += f" after epoch {epochs}"
    if result.fail_reason:
        text += f": {result.fail_reason}"
    return text


@harness.hookimpl
def harness_study_start(study):
    """Create ``tb/`` (``harness tensorboard`` serves it even before a trial ended).

    The experiment config is written by the first trial with metrics (see the module
    docstring), so this process needs no TensorFlow."""
    study.tensorboard_dir.mkdir(parents=True, exist_ok=True)


@harness.hookimpl
def harness_trial_start(trial):
    """Note when the trial started: its HParams session, written at its end, starts here.

    A trial that runs again under its own number (KerasTuner re-runs an interrupted or
    retried trial in place) starts from an empty run folder: TensorBoard keeps the first
    record of a tag, so the earlier attempt's session would stand for this one, and its
    curves would be drawn over this one's."""
    shutil.rmtree(trial.tensorboard_dir, ignore_errors=True)
    trial.extra[_STARTED] = time.time()


def epoch_tensorboard(log_dir: Path):
    """Keras's TensorBoard callback, writing epoch scalars only and doing nothing per batch.

    At ``update_freq="epoch"`` Keras's callback records nothing per batch, but its batch
    methods still call ``tf.summary.scalar`` for every metric of every batch; with no
    batch writer each call is a no-op that still costs time (up to a tenth of a small
    model's fit at one batch per call into TensorFlow).
    """
    import keras  # lazy: imports TensorFlow

    class EpochTensorBoard(keras.callbacks.TensorBoard):
        on_train_batch_begin = keras.callbacks.Callback.on_train_batch_begin
        on_train_batch_end = keras.callbacks.Callback.on_train_batch_end

    return EpochTensorBoard(
        log_dir=str(log_dir), write_graph=False, histogram_freq=0, profile_batch=0
    )


@harness.hookimpl
def harness_trial_callbacks(trial):
    """Keras's TensorBoard callback: epoch scalars for train and validation."""
    return [epoch_tensorboard(trial.tensorboard_dir)]


@harness.hookimpl
def harness_trial_end(trial, result):
    """Write the trial's HParams session (searched parameters and ``state``; ended with its
    status), its final metrics (``final/<name>``, also of a pruned, failed or interrupted
    trial), its status and worker texts; the first trial with metrics also writes the
    experiment config."""
    import tensorflow as tf  # lazy: imports TensorFlow
    from tensorboard.plugins.hparams import api as hp  # lazy: imports TensorFlow
    from tensorboard.plugins.hparams import api_pb2  # lazy: no tensorboard at plugin loading
    from tensorboard.plugins.hparams import summary as hp_summary  # lazy: imports TensorFlow

    domains = {p.name: p.distribution for p in trial.study.spec.space.params}
    values = {
        name: session_value(domains.get(name), value)
        for name, value in trial.searched_params().items()
    }
    values["state"] = result.state
    started = trial.extra.get(_STARTED) or time.time() - result.duration_s
    status = api_pb2.Status.Value(STATUS_OF_STATE.get(result.state, "STATUS_UNKNOWN"))
    writer = tf.summary.create_file_writer(str(trial.tensorboard_dir))
    with writer.as_default():
        for name, value in result.metrics.items():
            tf.summary.scalar(f"final/{name}", value, step=0)
        tf.summary.text("trial/status", status_text(result), step=0)
        tf.summary.text("trial/worker", f"worker {trial.worker} on device {trial.device}", step=0)
        hp.hparams(values, trial_id=trial.name, start_time_secs=started)
        end = hp_summary.session_end_pb(status, end_time_secs=time.time())
        tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()
    if result.metrics:
        write_experiment_config(trial.study, result)


@harness.hookimpl
def harness_test_evaluated(study, trial_number, metrics):
    """Write the trial's test-split metrics as ``final/<name>`` (``final/test_accuracy``)
    into its run, next to its other final metrics."""
    import tensorflow as tf  # lazy: imports TensorFlow

    run = TrialContext(study, trial_number, {}).tensorboard_dir
    writer = tf.summary.create_file_writer(str(run))
    with writer.as_default():
        for name, value in metrics.items():
            tf.summary.scalar(f"final/{name}", value, step=0)
    writer.close()


#: The run (``tb/ensemble``) and HParams session of the study's ensemble.
ENSEMBLE_RUN = "ensemble"


@harness.hookimpl
def harness_ensemble_built(study, ensemble):
    """Write the ensemble as a session of its own (run ``ensemble``, ``state`` ensemble):
    its validation figures as ``final/val_<name>`` and test figures as
    ``final/test_<name>``, beside the trials', and its members as a text."""
    import tensorflow as tf  # lazy: imports TensorFlow
    from tensorboard.plugins.hparams import api as hp  # lazy: imports TensorFlow
    from tensorboard.plugins.hparams import api_pb2  # lazy: no tensorboard at plugin loading
    from tensorboard.plugins.hparams import summary as hp_summary  # lazy: imports TensorFlow

    run = study.run_dir / "tb" / ENSEMBLE_RUN
    if run.exists():
        shutil.rmtree(run)  # TensorBoard keeps a tag's first record: a rebuilt one replaces it
    members = ", ".join(
        f"#{m['trial']} x{m['weight']:.2f}" for m in ensemble["members"] if m["weight"] > 0
    )
    writer = tf.summary.create_file_writer(str(run))
    with writer.as_default():
        for name, value in ensemble["validation"].items():
            tf.summary.scalar(f"final/val_{name}", value, step=0)
        for name, value in ((ensemble.get("test") or {}).get("ensemble") or {}).items():
            tf.summary.scalar(f"final/test_{name}", value, step=0)
        tf.summary.text("trial/status", f"ensemble ({ensemble['method']}): {members}", step=0)
        hp.hparams({"state": "ensemble"}, trial_id=ENSEMBLE_RUN, start_time_secs=time.time())
        end = hp_summary.session_end_pb(api_pb2.STATUS_SUCCESS, end_time_secs=time.time())
        tf.summary.experimental.write_raw_pb(end.SerializeToString(), step=0)
    writer.close()
