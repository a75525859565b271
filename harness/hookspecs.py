"""Every hook of harness: the public contract for plugin authors.

A plugin is any module or object with functions marked ``@harness.hookimpl``
whose names match the specifications below. Built-in plugins (the
``harness_plugins`` package) use exactly the same marker as third parties.

Third-party packages are found through the ``harness`` entry-point group::

    [project.entry-points.harness]
    mine = "mypkg.harness_plugin"

Two hook families exist:

* **register hooks** (``harness_register_*``) are called once when the plugin
  manager starts. Each receives a ``register`` callable; calling
  ``register(name, function, params=Model, description="...")`` contributes a
  named component that study files can refer to. ``params`` is a pydantic
  model describing the component's parameters: study files are validated
  against it (unknown keys get a "did you mean" hint) and the component is
  called with an instance of it. Register hooks must not import TensorFlow:
  import it inside the registered function, so that ``harness --help``,
  ``harness plugins`` and study validation stay fast.
* **lifecycle hooks** (``harness_study_*``, ``harness_trial_*``) are called
  while a study runs, in this order::

      harness_study_start
        harness_trial_start -> harness_trial_callbacks -> (fit) -> harness_trial_end
        ... once per trial, in the worker process that runs it ...
      harness_test_evaluated   (the best trial(s) measured once on the test split)
      harness_study_end

  TensorBoard logging and the results table are ordinary plugins on these
  hooks, so a third party adds another tracker the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - types only
    from harness.context import StudyContext, TrialContext, TrialResult
    from harness.registry import Register

PROJECT = "harness"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def harness_register_datasets(register: Register) -> None:
    """Contribute named dataset loaders.

    Call ``register(name, load, params=ParamsModel, description=...)`` once per
    dataset. ``load(params, context)`` receives an instance of ``ParamsModel``
    (every value already resolved: no distributions left) and a
    :class:`harness.data.LoadContext` (cache directory, seed), and returns a
    :class:`harness.data.Dataset`: unbatched ``tf.data`` train / validation /
    optional test splits plus ``input_shape``, ``task`` (``binary``,
    ``multiclass``, ``regression`` or ``next_token``), ``num_classes`` and
    ``class_names``. The trial runner batches, shuffles and prefetches.

    A loader that cannot find its data raises :class:`harness.errors.HarnessError`
    with a message that says which files to put where.
    """


@hookspec
def harness_register_models(register: Register) -> None:
    """Contribute named model builders.

    Call ``register(name, build, params=ParamsModel, description=...)``.
    ``build(params, info)`` receives the resolved parameters and a
    :class:`harness.data.DatasetInfo` and returns either an uncompiled
    ``keras.Model`` whose output matches the task (use
    :func:`harness.models.output_layer` to get it right), or a
    :class:`harness.models.BuiltModel` that also overrides the loss, the
    metrics, or declares a fine-tuning phase. The harness compiles the model
    and checks that its output fits the task (a multi-class dataset never
    trains a one-unit softmax).
    """


@hookspec
def harness_register_augmentations(register: Register) -> None:
    """Contribute named training-data augmentations.

    Call ``register(name, make_layers, params=ParamsModel, description=...)``.
    ``make_layers(params)`` returns a list of Keras preprocessing layers
    (``RandomFlip``, ``RandomRotation``, ...). A study enables one with a
    ``[augment.<name>]`` table. The layers are applied to training batches
    only, never to validation or test data.
    """


@hookspec
def harness_register_callbacks(register: Register) -> None:
    """Contribute named stopping callbacks.

    Call ``register(name, make_callback, params=ParamsModel, description=...)``.
    ``make_callback(params, trial)`` returns a ``keras.callbacks.Callback``
    (metric threshold, early stopping, time budget, ...). A study enables one
    with a ``[callbacks.<name>]`` table. Pruning is not a callback plugin: it
    comes from the search backend.
    """


@hookspec
def harness_study_start(study: StudyContext) -> None:
    """Called once in the orchestrating process before any trial runs.

    ``study`` carries the validated spec, the run directory and the searched
    parameters with their domains. Use it to write study-level metadata
    (the TensorBoard tracker creates ``tb/`` here). Called again when a study
    is resumed. The orchestrating process does not import TensorFlow: a hook
    that needs it imports it itself (and then holds GPU memory in this process),
    so prefer writing TensorFlow summaries from ``harness_trial_end``, which
    runs in the worker.
    """


@hookspec
def harness_trial_start(trial: TrialContext) -> None:
    """Called in the worker process when a trial's parameters are known,
    before its data is loaded and its model built."""


@hookspec
def harness_trial_callbacks(trial: TrialContext) -> list[Any]:
    """Return Keras callbacks to add to this trial's ``fit`` (trackers use it
    to log per-epoch values). Return an empty list or ``None`` for none."""


@hookspec
def harness_trial_end(trial: TrialContext, result: TrialResult) -> None:
    """Called in the worker process when a trial ends, whether it completed,
    was pruned or failed (``result.state`` says which and
    ``result.fail_reason`` why). An exception raised here is logged and does
    not change the trial's outcome."""


@hookspec
def harness_test_evaluated(
    study: StudyContext, trial_number: int, metrics: dict[str, float]
) -> None:
    """Called once per evaluated trial after the test split was measured.

    When a study ends (and on ``harness evaluate STUDY``), the best trial's
    saved model (every Pareto-optimal trial's in a multi-objective study, the
    top K with ``--top K``) is evaluated once on the dataset's test split, in
    a process that has TensorFlow. ``metrics`` maps ``test_<name>`` (e.g.
    ``test_accuracy``, ``test_loss``) to its value. Trackers record it (the
    TensorBoard tracker writes ``final/test_<name>`` into the trial's run).
    An exception raised here is logged and does not change the results.
    """


@hookspec
def harness_study_end(study: StudyContext, table: Any) -> None:
    """Called once in the orchestrating process after the last trial, with the
    results table (a pandas DataFrame, one row per trial, best first)."""
