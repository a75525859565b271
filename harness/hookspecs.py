"""Every hook of harness: the public contract for plugin authors.

A plugin is any module or object with functions marked ``@harness.hookimpl``
whose names match the specifications below. Built-in plugins (the
``harness_plugins`` package) use exactly the same marker as third parties.

Third-party packages are found through the ``harness`` entry-point group::

    [project.entry-points.harness]
    mine = "mypkg.harness_plugin"

The hooks come in three families:

* **register hooks** (``harness_register_datasets``, ``_models``,
  ``_augmentations``, ``_callbacks``) are called once when the plugin
  manager starts. Each receives a ``register`` callable; calling
  ``register(name, function, params=Model, description="...")`` contributes a
  named component that study files can refer to. ``params`` is a pydantic
  model describing the component's parameters: study files are validated
  against it (unknown keys get a "did you mean" hint) and the component is
  called with an instance of it. Register hooks must not import TensorFlow:
  import it inside the registered function, so that ``harness --help``,
  ``harness plugins`` and study validation stay fast.
* **the command hook** (``harness_register_commands``) adds ``harness``
  subcommands; every built-in command is added through it too. It is called
  before the command line is parsed, so only built-in and entry-point plugins
  can add a command (a ``--plugin`` module is loaded too late).
* **lifecycle hooks** (``harness_study_*``, ``harness_trial_*``,
  ``harness_test_evaluated``) are called while a study runs.

The lifecycle hooks run in this order::

    harness_study_start
      harness_trial_start -> harness_trial_callbacks -> (fit) -> harness_trial_end
      ... once per trial, in the worker process that runs it; a trial that fails
          before fitting (its data or model cannot be built) goes straight from
          harness_trial_start to harness_trial_end ...
    harness_test_evaluated   (the best trial(s) measured once on the test split)
    harness_study_end

TensorBoard logging and the results table are ordinary plugins on these
hooks, so a third party adds another tracker the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover - types only
    import argparse
    from collections.abc import Callable

    from harness.context import StudyContext, TrialContext, TrialResult
    from harness.registry import Register

PROJECT = "harness"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def harness_register_datasets(register: Register) -> None:
    """Contribute named dataset loaders.

    When it is called:

    Once for each plugin while the plugin manager starts: in every ``harness``
    command that loads plugins (``run``, ``worker``, ``validate``, ``plugins``,
    ``evaluate``, ``predict``, ``export``) and again in each worker process.
    Keep it fast and do not import TensorFlow here: import it inside the loader.

    Parameters:

    * ``register``: the callable that adds one dataset. Call
      ``register(name, load, params=ParamsModel, description="...", tasks=(...),
      check=check_fn, decoder=decode_fn, splits=splits_fn)`` once per dataset; only ``name`` and
      ``load`` are required.

    What ``register`` takes:

    * ``name``: an identifier (``my_data``) that no other plugin registers; a
      study selects the dataset with ``[dataset] name = "my_data"``. Two plugins
      registering one name is an error naming both.
    * ``load``: the loader, ``load(params, context)``, described below.
    * ``params``: a pydantic model of the ``[dataset]`` table. Every literal and
      both ends of every searched range are validated against it before any
      trial runs; with ``model_config = ConfigDict(extra="forbid")`` an unknown
      key gets a "did you mean". Without ``params`` the dataset takes none.
    * ``description``: the line ``harness plugins`` shows (default: the first
      line of ``load``'s docstring).
    * ``tasks``: the tasks the loader can produce (``binary``, ``multiclass``,
      ``regression``, ``next_token``), so that ``harness validate`` refuses an
      objective they never report (``val_mae`` for a classifier) before any trial.
    * ``check``: ``check(params)``, a cheap look at the data without loading it
      (files where ``path`` says, a CSV header). It runs in ``harness validate``
      and before a run writes anything, and raises
      :class:`harness.errors.HarnessError` with the fix.
    * ``decoder``: ``decoder(path, image_size, color_mode)`` returns one image
      file as a uint8 array (``None`` for an unreadable file). A model card names
      it (``preprocessing.decoder = "<dataset name>"``) so that ``harness
      predict`` prepares new images exactly as in training.
    * ``splits``: ``splits(params, seed)`` returns a
      :class:`harness.data.SplitLabels`: the labels (and groups) of each split as
      a trial with that seed loads them, computed without TensorFlow.
      ``harness validate`` prints from it how many examples of each class (and
      how many groups) each split gets.

    The loader:

    ``load(params, context)`` runs in the worker process (TensorFlow may be
    imported there), once per process for each set of resolved parameters:
    later trials in the same worker reuse the result. ``params`` is an instance
    of the ``params`` model with every value resolved (no distributions left).
    ``context`` is a :class:`harness.data.LoadContext`: ``cache_dir``, a folder
    of its own under ``runs/<study>/cache/`` for these parameters (created
    before the call), and ``seed``, the study's ``[study].seed`` (0 when unset).
    ``load`` returns a :class:`harness.data.Dataset`: unbatched ``tf.data``
    ``train``, ``validation`` and optional ``test`` splits of
    ``(features, label)`` pairs, and a :class:`harness.data.DatasetInfo`
    (``input_shape``, ``task``, ``num_classes``, ``class_names``,
    ``preprocessing``). :func:`harness.data.from_arrays` builds one from NumPy
    arrays. The trial runner batches, shuffles and prefetches.

    A data problem (a missing file, a malformed CSV) is a
    :class:`harness.errors.HarnessError` whose message says which file to put
    where. Any exception the loader raises stops the study at its first trial
    with exit code 2, since every trial would fail the same way.

    Example::

        from pydantic import BaseModel, ConfigDict, Field

        import harness
        from harness.data import DatasetInfo, from_arrays, split_arrays


        class NoiseParams(BaseModel):
            model_config = ConfigDict(extra="forbid")
            rows: int = Field(200, ge=10, description="number of rows")


        def load_noise(params, context):
            import numpy as np

            rng = np.random.default_rng(context.seed)
            x = rng.normal(size=(params.rows, 4)).astype("float32")
            y = rng.integers(0, 2, params.rows).astype("int32")
            info = DatasetInfo(name="noise", input_shape=(4,), task="binary", num_classes=2,
                               preprocessing={"validation_source": "train"})
            return from_arrays(info, *split_arrays(x, y, 0.2, context.seed))


        @harness.hookimpl
        def harness_register_datasets(register):
            register("noise", load_noise, params=NoiseParams, tasks=("binary",),
                     description="random features and labels, for smoke tests")
    """


@hookspec
def harness_register_models(register: Register) -> None:
    """Contribute named model builders.

    When it is called:

    Like :func:`harness_register_datasets`: once for each plugin while the
    plugin manager starts, in every process that loads plugins. Do not import
    TensorFlow here: import it inside the builder.

    Parameters:

    * ``register``: the callable that adds one builder. Call
      ``register(name, build, params=ParamsModel, description="...")`` once per
      builder. ``name``, ``params`` and ``description`` work as for datasets; a
      study selects the builder with ``[model] name = "<name>"`` and its
      ``[model]`` table is validated against ``params``.

    The builder:

    ``build(params, info)`` runs in the worker at the start of every trial,
    after the data is loaded, with the trial's resolved ``[model]`` parameters
    and the dataset's :class:`harness.data.DatasetInfo` (``input_shape``,
    ``task``, ``num_classes``, ``class_names``, ``vocabulary``). It returns an
    uncompiled ``keras.Model`` whose output fits the task:
    :func:`harness.models.output_layer` gives the only layer that does
    (sigmoid(1) for ``binary``, softmax(classes) for ``multiclass`` and
    ``next_token``, linear(1) for ``regression``), and a model whose output
    cannot express the task fails the trial with that reason. The harness
    compiles the model with the ``[train]`` optimizer and learning rate and the
    task's loss and metrics. To choose the loss or metrics, or to declare a
    fine-tuning phase, return a :class:`harness.models.BuiltModel` instead
    (``model``, ``loss``, ``metrics``, ``fine_tune``).

    An exception in a builder fails that trial only: it is recorded as
    ``failed`` with its reason and the study goes on. Raise
    :class:`harness.errors.HarnessError` for a problem no trial can avoid (a
    weights file that is missing): it stops the study with exit code 2.

    Example::

        from pydantic import BaseModel, ConfigDict, Field

        import harness


        class MlpParams(BaseModel):
            model_config = ConfigDict(extra="forbid")
            units: int = Field(64, ge=1, le=4096, description="neurons of the hidden layer")


        def build_mlp(params, info):
            import keras

            from harness.models import output_layer

            return keras.Sequential([
                keras.Input(info.input_shape),
                keras.layers.Flatten(),
                keras.layers.Dense(params.units, activation="relu"),
                output_layer(info),
            ])


        @harness.hookimpl
        def harness_register_models(register):
            register("mlp", build_mlp, params=MlpParams,
                     description="Flatten + one hidden Dense layer")
    """


@hookspec
def harness_register_augmentations(register: Register) -> None:
    """Contribute named training-data augmentations.

    When it is called:

    Like :func:`harness_register_datasets`: once for each plugin while the
    plugin manager starts, in every process that loads plugins.

    Parameters:

    * ``register``: the callable that adds one augmentation. Call
      ``register(name, make_layers, params=ParamsModel, description="...")``
      once per augmentation; ``name``, ``params`` and ``description`` work as
      for datasets. A study enables it with an ``[augment.<name>]`` table
      (empty when it takes no parameters), validated against ``params``.

    The factory:

    ``make_layers(params)`` runs in the worker for every trial whose model was
    built (not for one that failed before), with the
    resolved ``[augment.<name>]`` parameters and returns one Keras
    preprocessing layer or a list of them (``RandomFlip``, ``RandomRotation``,
    ...). The layers of every augmentation a study enables, in the study
    file's order, form one ``keras.Sequential`` that the trial runner applies
    to training batches only, in the ``tf.data`` pipeline after batching.
    Validation data, the test split and the saved model never see them.

    Example::

        from pydantic import BaseModel, ConfigDict, Field

        import harness


        class GaussianNoiseParams(BaseModel):
            model_config = ConfigDict(extra="forbid")
            stddev: float = Field(0.05, ge=0, description="standard deviation of the noise")


        def make_gaussian_noise(params):
            import keras

            return [keras.layers.GaussianNoise(params.stddev)]


        @harness.hookimpl
        def harness_register_augmentations(register):
            register("gaussian_noise", make_gaussian_noise, params=GaussianNoiseParams,
                     description="GaussianNoise on training batches")

    and in a study file, searched like any other parameter::

        [augment.gaussian_noise]
        stddev = {float = [0.0, 0.1]}
    """


@hookspec
def harness_register_callbacks(register: Register) -> None:
    """Contribute named stopping callbacks.

    When it is called:

    Like :func:`harness_register_datasets`: once for each plugin while the
    plugin manager starts, in every process that loads plugins.

    Parameters:

    * ``register``: the callable that adds one callback. Call
      ``register(name, make_callback, params=ParamsModel, description="...")``
      once per callback; ``name``, ``params`` and ``description`` work as for
      datasets. A study enables it with a ``[callbacks.<name>]`` table (empty
      when it takes no parameters), validated against ``params``.

    The factory:

    ``make_callback(params, trial)`` runs in the worker for every trial whose
    model was built, after it is built, with the resolved ``[callbacks.<name>]`` parameters and
    the trial's :class:`harness.context.TrialContext`. It returns a
    ``keras.callbacks.Callback`` that is added to the trial's ``fit`` (and to
    its fine-tuning phase). A callback that sets
    ``self.model.stop_training = True`` ends the trial's training early; the
    trial still completes, with the epochs it ran (``epochs_run``). Keras calls
    batch-level methods (``on_train_batch_end``) once per call into TensorFlow,
    that is every ``[train].steps_per_execution`` batches (32 by default).

    Name a parameter that holds a metric ``metric`` or ``monitor``: the harness
    then checks it like the objective (``harness validate`` refuses a metric the
    dataset's tasks never report, and a metric missing from the first epoch's
    logs stops the study at its first trial). Pruning is not a callback plugin:
    it comes from the search backend (``[optuna].pruner``).

    Example::

        from pydantic import BaseModel, ConfigDict, Field

        import harness


        class PlateauParams(BaseModel):
            model_config = ConfigDict(extra="forbid")
            monitor: str = Field("val_loss", description="a metric in the epoch logs")
            patience: int = Field(2, ge=1, description="epochs without improvement")


        def make_plateau(params, trial):
            import keras

            return keras.callbacks.ReduceLROnPlateau(
                monitor=params.monitor, patience=params.patience, factor=0.5
            )


        @harness.hookimpl
        def harness_register_callbacks(register):
            register("plateau", make_plateau, params=PlateauParams,
                     description="halve the learning rate when a metric stops improving")
    """


@hookspec
def harness_register_commands(
    subparsers: argparse._SubParsersAction,
    add_common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``harness`` subcommands (``harness best STUDY``, say).

    When it is called:

    Once per ``harness`` command line, before it is parsed (``harness --help``
    included), for the built-in plugins first and then for the entry-point
    plugins, one plugin after the other: ``harness --help`` lists the commands in
    that order. Every built-in command (``run``, ``show``, ``predict``, ...) is
    added through this hook too, by a built-in plugin. A ``--plugin`` module cannot
    add a command: it is loaded after the command line was parsed, so its
    implementation of this hook is never called; install the plugin (the
    ``harness`` entry-point group) instead. Keep the hook and the module's imports
    fast, and do not import TensorFlow in either: import what the command needs
    inside its handler.

    Parameters:

    * ``subparsers``: the sub-parsers action of the ``harness`` argument parser
      (what ``argparse.ArgumentParser.add_subparsers`` returns). Call
      ``subparsers.add_parser(name, help="...", description="...")`` once per
      command; ``help`` is the command's line in ``harness --help``, and every
      argument needs a ``help`` too (the command-line reference is generated from
      them). A name (or alias) that another plugin's command has is an error naming
      both plugins.
    * ``add_common``: ``add_common(parser)`` adds the options every built-in
      command takes: ``--runs-dir`` (where studies live, default ``runs``) and
      ``--plugin``.

    The handler:

    Set it with ``parser.set_defaults(handler=handle)``. ``handle(args)`` gets the
    parsed ``argparse.Namespace`` and returns the exit code (0: it worked). A
    :class:`harness.errors.HarnessError` it raises is printed as one ``error:``
    line and exits with code 2, Ctrl-C exits with code 130, as for the built-in
    commands.

    A third-party plugin whose hook raises adds no command: one warning names it,
    and the other commands still work.

    Example::

        import json

        import harness
        from harness.errors import HarnessError
        from harness.results import BEST_FILE, resolve_run_dir


        def print_best(args):
            run_dir = resolve_run_dir(args.target, args.runs_dir)
            if not (run_dir / BEST_FILE).is_file():
                raise HarnessError(f"{run_dir}: no complete trial yet")
            best = json.loads((run_dir / BEST_FILE).read_text(encoding="utf-8"))
            for name, value in best["params"].items():
                print(f"{name} = {json.dumps(value)}")
            return 0


        @harness.hookimpl
        def harness_register_commands(subparsers, add_common):
            parser = subparsers.add_parser(
                "best", help="print the best trial's parameters, one per line"
            )
            parser.add_argument("target", help="study name (under --runs-dir) or run directory")
            add_common(parser)
            parser.set_defaults(handler=print_best)
    """


@hookspec
def harness_study_start(study: StudyContext) -> None:
    """Called once in the orchestrating process before any trial runs.

    When it is called:

    By ``harness run`` and ``harness worker``, in the process you started,
    after the study's storage is prepared and ``study.json`` written, before
    the first worker starts. It is called again each time a study is resumed,
    and on every machine that joins a shared study.

    Parameters:

    * ``study``: a :class:`harness.context.StudyContext`. ``study.spec`` is
      the validated study (``spec.name``, ``spec.study`` for the ``[study]``
      table, ``spec.objectives``, ``spec.space.params`` for the searched
      parameters with their domains); ``study.run_dir`` is ``runs/<study>/``
      and ``study.tensorboard_dir`` its ``tb/`` folder.

    Use it to write study-level metadata (the TensorBoard tracker creates
    ``tb/`` here). The orchestrating process does not import TensorFlow: a
    hook that needs it imports it itself (and then holds GPU memory in this
    process), so prefer writing TensorFlow summaries from
    :func:`harness_trial_end`, which runs in the worker.

    Example::

        import json

        import harness


        @harness.hookimpl
        def harness_study_start(study):
            space = {p.name: p.distribution.describe() for p in study.spec.space.params}
            (study.run_dir / "space.json").write_text(json.dumps(space, indent=2))
    """


@hookspec
def harness_trial_start(trial: TrialContext) -> None:
    """Called in the worker process when a trial's parameters are known,
    before its data is loaded and its model built.

    When it is called:

    Once per trial, in the worker process that runs it (the ``harness``
    process itself with ``--in-process``), right after the search backend has
    chosen the trial's parameters and before the seed is set. It is called for
    every trial, including those that are later pruned or fail.

    Parameters:

    * ``trial``: a :class:`harness.context.TrialContext`: ``number``,
      ``name`` (``trial-0007``), ``params`` (every resolved parameter by its
      study name, such as ``model.filters``), ``searched_params()`` (only
      those the backend chose), ``worker``, ``device``, ``study`` (the
      :class:`harness.context.StudyContext`), ``tensorboard_dir``, and
      ``extra``, a dict in which plugins pass values between one trial's hooks
      (the TensorBoard tracker keeps the start time there; the harness adds
      ``dataset_info`` once the data is loaded).

    Example::

        import logging
        import time

        import harness


        @harness.hookimpl
        def harness_trial_start(trial):
            trial.extra["my_plugin.started"] = time.time()
            logging.getLogger("my_plugin").info(
                "%s on %s: %s", trial.name, trial.device, trial.searched_params()
            )
    """


@hookspec
def harness_trial_callbacks(trial: TrialContext) -> list[Any]:
    """Return Keras callbacks to add to this trial's ``fit`` (trackers use it
    to log per-epoch values). Return an empty list or ``None`` for none.

    When it is called:

    Once per trial, in the worker, after the data is loaded and the model
    built, just before training. Every plugin's callbacks are collected into
    one list and come before the study's stopping callbacks; they also see the
    fine-tuning phase. When a trial stops early (pruned or failed) the harness
    calls their ``on_train_end`` so that writers are flushed and closed.

    Parameters:

    * ``trial``: the :class:`harness.context.TrialContext`, as in
      :func:`harness_trial_start`.

    Returns:

    A list of ``keras.callbacks.Callback``, or ``None`` for none.

    Example::

        import harness


        @harness.hookimpl
        def harness_trial_callbacks(trial):
            import keras

            path = trial.study.run_dir / "epochs" / f"{trial.name}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            return [keras.callbacks.CSVLogger(str(path))]
    """


@hookspec
def harness_trial_end(trial: TrialContext, result: TrialResult) -> None:
    """Called in the worker process when a trial ends, whether it completed,
    was pruned or failed (``result.state`` says which and
    ``result.fail_reason`` why). An exception raised here is logged and does
    not change the trial's outcome.

    When it is called:

    Once per trial, in the worker that ran it, before the search backend
    records the result: after a complete, pruned or failed trial, after a
    failure that stops the study, and after Ctrl-C. A worker process that is
    killed outright calls nothing. An exception raised by one implementation
    is logged (``harness.log``) and the other plugins' implementations still
    run.

    Parameters:

    * ``trial``: the :class:`harness.context.TrialContext`, as in
      :func:`harness_trial_start`.
    * ``result``: a :class:`harness.context.TrialResult`: ``state``
      (``complete``, ``pruned`` or ``failed``), ``metrics`` (the final
      validation metrics plus ``params``, ``train_seconds`` and ``epochs_run``;
      for a trial stopped early, its last epoch's values), ``history`` (the
      per-epoch Keras logs, metric name to list of values), ``duration_s``,
      ``fail_reason`` (why it failed, or why it was pruned other than by the pruner,
      as by ``[study].stop_at_chance``; else ``None``) and ``model`` (the trained Keras
      model of a complete trial, else ``None``).

    Example::

        import json

        import harness


        @harness.hookimpl
        def harness_trial_end(trial, result):
            folder = trial.study.run_dir / "my_plugin"
            folder.mkdir(exist_ok=True)
            record = {"state": result.state, "reason": result.fail_reason, **result.metrics}
            (folder / f"{trial.name}.json").write_text(json.dumps(record))
    """


@hookspec
def harness_test_evaluated(
    study: StudyContext, trial_number: int, metrics: dict[str, float]
) -> None:
    """Called once per evaluated trial after the test split was measured.

    When it is called:

    When a study ends (and on ``harness evaluate STUDY``), the best trial's
    saved model (every Pareto-optimal trial's in a multi-objective study, the
    top K with ``--top K``) is evaluated once on the dataset's test split, in
    a process that has TensorFlow; the hook is called once for each trial so
    measured. Nothing is measured, and the hook is not called, when the
    dataset has no test split or the study was interrupted. An exception
    raised here is logged and does not change the results; the other plugins'
    implementations still run.

    Parameters:

    * ``study``: the :class:`harness.context.StudyContext`, as in
      :func:`harness_study_start`.
    * ``trial_number``: the number of the measured trial.
    * ``metrics``: ``test_<name>`` (``test_accuracy``, ``test_loss``, ...) to
      its value.

    Trackers record it (the TensorBoard tracker writes ``final/test_<name>``
    into the trial's run).

    Example::

        import logging

        import harness


        @harness.hookimpl
        def harness_test_evaluated(study, trial_number, metrics):
            figures = ", ".join(f"{k}={v:.4f}" for k, v in sorted(metrics.items()))
            logging.getLogger("my_plugin").info("trial #%d: %s", trial_number, figures)
    """


@hookspec
def harness_ensemble_built(study: StudyContext, ensemble: dict[str, Any]) -> None:
    """Called once after an ensemble of the study's kept models was built and measured.

    When it is called:

    By ``harness ensemble STUDY``, and at the end of ``harness run`` when the
    study sets ``[study].ensemble = K``, in the process that built it (it has
    TensorFlow), after ``ensemble.keras`` and ``ensemble.json`` were written.
    An exception raised here is logged and does not change the ensemble; the
    other plugins' implementations still run.

    Parameters:

    * ``study``: the :class:`harness.context.StudyContext`, as in
      :func:`harness_study_start`.
    * ``ensemble``: the record ``ensemble.json`` keeps under ``ensemble``:
      ``method`` (``greedy`` or ``average``), ``members`` (a list of
      ``{"trial": number, "weight": w}``, weights summing to 1),
      ``best_single`` (the best member's trial number), ``validation`` and
      ``best_single_validation`` (figures by name without ``val_``, such as
      ``accuracy`` and ``loss``), ``test`` (None without a test split, else
      ``size``, ``ensemble`` and ``best_single`` figures), and
      ``disagreement``.

    Trackers record it (the TensorBoard tracker writes it as a session of its
    own, run ``ensemble``).

    Example::

        import harness


        @harness.hookimpl
        def harness_ensemble_built(study, ensemble):
            members = [m["trial"] for m in ensemble["members"] if m["weight"] > 0]
            print(f"{study.spec.name}: ensemble of trials {members}")
    """


@hookspec
def harness_study_end(study: StudyContext, table: Any) -> None:
    """Called once in the orchestrating process after the last trial, with the
    results table (a pandas DataFrame, one row per trial, best first).

    When it is called:

    By ``harness run`` and ``harness worker``, in the process you started,
    after the last trial and after the test split was measured; also after
    Ctrl-C, with the trials finished so far. It is not called when the study
    stops with an error (exit code 2).

    Parameters:

    * ``study``: the :class:`harness.context.StudyContext`, as in
      :func:`harness_study_start`.
    * ``table``: the rows of ``trials.csv``, best first: ``number``,
      ``state``, the objective value(s), every parameter by its study name,
      the metrics, ``duration_s``, ``worker``, ``device``, ``retry_of``,
      ``counted``, ``fail_reason`` and ``test_<metric>`` for the measured
      trial(s).

    Example::

        import harness


        @harness.hookimpl
        def harness_study_end(study, table):
            complete = table[table["state"] == "complete"]
            complete.head(5).to_csv(study.run_dir / "top5.csv", index=False)
    """
