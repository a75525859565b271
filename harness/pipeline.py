"""One trial's training path, shared by the trial runner, the best-model retrain and bench/.

seed -> the resolved ``[train]`` values -> the dataset (loaded once per process) ->
the model (built and compiled for the task) -> what ``fit`` runs on (a
:class:`~harness.fit_inputs.FitStrategy` such as the frozen-base feature cache may
offer a cheaper way) -> fit -> the builder's optional fine-tuning phase.

:class:`TrialPipeline` holds those steps; :func:`harness.trial.run_trial` adds
what makes a run a trial (hooks, reporting to the backend, the outcome), and
``harness export --retrain`` fits the same pipeline on train + validation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.context import TrialContext
from harness.data import Dataset, LoadContext, cache_key
from harness.errors import HarnessError, StudyAborted, TrialFailed, describe_exception
from harness.features import FrozenBaseFeatures
from harness.fit_inputs import (
    FitInputs,
    FitStrategy,
    component_params,
    train_params,
    training_pipelines,
)
from harness.models import BuiltModel, check_output, loss_and_metrics, make_optimizer
from harness.study import StudySpec, TrainParams

log = logging.getLogger(__name__)

#: The strategies a pipeline consults, in order, before fitting on the dataset's pipelines.
DEFAULT_STRATEGIES: tuple[FitStrategy, ...] = (FrozenBaseFeatures(),)

_DATASETS: dict[str, Dataset] = {}


@dataclass
class TrialPipeline:
    """Seed, load, build and fit one parameter set of a study.

    Call :meth:`prepare`, then :meth:`fit_inputs`, then :meth:`fit`; the attributes
    ``train``, ``dataset`` and ``built`` are set by :meth:`prepare`.
    """

    trial: TrialContext
    strategies: Sequence[FitStrategy] = DEFAULT_STRATEGIES
    train: TrainParams | None = field(default=None, init=False)
    dataset: Dataset | None = field(default=None, init=False)
    built: BuiltModel | None = field(default=None, init=False)

    @property
    def spec(self) -> StudySpec:
        """The study the trial belongs to."""
        return self.trial.study.spec

    @property
    def seed(self) -> int:
        """The study's seed (data splits and shuffling); Keras gets ``seed + trial number``."""
        return self.spec.study.seed or 0

    def prepare(self) -> BuiltModel:
        """Seed Keras for this trial, resolve ``[train]``, load the dataset, set the compute
        precision, build the model."""
        import keras  # lazy: imports TensorFlow

        keras.utils.set_random_seed(self.seed + self.trial.number)
        self.train = train_params(self.trial.params)
        self.dataset = load_dataset(self.trial)
        set_precision(self.train)
        self.built = build_model(self.spec, self.trial.params, self.dataset.info, self.train)
        return self.built

    def fit_inputs(self, *, merge_validation: bool = False) -> FitInputs:
        """What to fit: the first strategy that applies, else the dataset's own pipelines
        (training data shuffled and augmented).

        ``merge_validation`` trains on train + validation with no validation data (the
        best-model retrain); strategies are not consulted then.
        """
        dataset = self.dataset
        if merge_validation:
            if dataset.validation is not None:
                merged = dataset.train.concatenate(dataset.validation)
                dataset = replace(dataset, train=merged, validation=None)
        else:
            for strategy in self.strategies:
                inputs = strategy.inputs(self.built, dataset, self.trial, self.train)
                if inputs is not None:
                    return inputs
        train_ds, val_ds = training_pipelines(
            dataset, self.train, augmentation_model(self.trial), self.seed
        )
        return FitInputs(self.built.model, train_ds, val_ds)

    def fit_phases(self) -> int:
        """How many ``model.fit`` calls :meth:`fit` makes: 2 with a fine-tuning phase."""
        fine = self.built.fine_tune
        return 2 if fine is not None and fine.epochs > 0 else 1

    def fit(
        self, inputs: FitInputs, callbacks: list[Any], epochs: int | None = None
    ) -> dict[str, list[float]]:
        """Fit the first phase for ``epochs`` (default ``[train].epochs``), then the builder's
        fine-tuning phase if it declares one; return both phases' per-epoch history."""
        epochs = self.train.epochs if epochs is None else epochs
        fitted = fit_epochs(
            inputs.model, inputs.train, inputs.validation, self.train, epochs, callbacks
        )
        history = {key: [float(v) for v in values] for key, values in fitted.history.items()}
        if self.built.fine_tune is not None:
            ran = len(next(iter(history.values()), []))
            tuned = fine_tune(
                self.built.model, self.built, self.train, inputs.train, inputs.validation,
                callbacks, initial_epoch=ran,
            )
            for key, values in tuned.history.items():
                history.setdefault(key, []).extend(float(v) for v in values)
        return history


def load_dataset(trial: TrialContext) -> Dataset:
    """Load (or reuse from this process's cache) the trial's dataset.

    A loader's failure stops the study (:class:`StudyAborted`): every trial would
    fail the same way.
    """
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
                f"dataset plugin {spec.dataset.name!r} failed while loading: "
                f"{describe_exception(exc)}; fix the [dataset] table or the data "
                "(every trial would fail the same way)"
            ) from exc
        if not isinstance(dataset, Dataset):
            raise StudyAborted(
                f"dataset plugin {spec.dataset.name!r} returned {type(dataset).__name__}, "
                "not a harness.data.Dataset"
            )
        _DATASETS[key] = dataset
    return _DATASETS[key]


def build_model(spec: StudySpec, params: dict[str, Any], info, train: TrainParams) -> BuiltModel:
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
        **compile_options(train),
    )
    return built


def compile_options(train: TrainParams) -> dict[str, Any]:
    """The ``compile`` options every compile of a trial's model shares (the first phase's
    and the fine-tuning phase's): steps per execution, and XLA where it applies."""
    options: dict[str, Any] = {"steps_per_execution": train.execution_steps()}
    if train.jit_compile and _on_gpu("train.jit_compile"):
        options["jit_compile"] = True
    return options


def set_precision(train: TrainParams) -> None:
    """Keras's global dtype policy for the model about to be built: ``mixed_float16`` when
    ``train.mixed_precision`` is set and a GPU is visible, else ``float32`` (a worker runs
    trials with and without it one after another)."""
    import keras  # lazy: imports TensorFlow

    mixed = train.mixed_precision and _on_gpu("train.mixed_precision")
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")


_NOTICED: set[str] = set()


def _on_gpu(option: str) -> bool:
    """Whether TensorFlow sees a GPU; if not, say once per process that ``option`` is ignored."""
    import tensorflow as tf  # lazy: imports TensorFlow

    if tf.config.list_physical_devices("GPU"):
        return True
    if option not in _NOTICED:
        _NOTICED.add(option)
        log.warning("%s = true is ignored: no GPU is visible to this worker", option)
    return False


def augmentation_model(trial: TrialContext):
    """The study's augmentation layers for this trial as one Sequential (None if none)."""
    import keras  # lazy: imports TensorFlow

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
        **compile_options(train),
    )
    return fit_epochs(
        model, train_ds, val_ds, train, fine.epochs, callbacks, initial_epoch=initial_epoch
    )
