"""Study file (TOML) -> validated, typed :class:`StudySpec`.

Every error names the file, the key path and the fix; unknown keys get the
closest valid key; unknown plugins list the available ones.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import HarnessError, StudyFileError
from harness.profiles import profile_assignments
from harness.registry import Component, Registry, backend_names
from harness.space import (
    SearchParam,
    SearchSpace,
    is_distribution,
    order_by_dependency,
    parse_condition,
    parse_distribution,
)
from harness.study_source import apply_assignments, read_toml
from harness.validation import did_you_mean, format_validation_error, validate_section

if TYPE_CHECKING:  # pragma: no cover - types only: the plugin manager is a layer above
    from harness.plugins import HarnessPlugins

STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: Longer names would make run directories and database keys unwieldy (and some
#: file systems refuse names over 255 bytes).
MAX_NAME_LENGTH = 100
TOP_LEVEL_KEYS = (
    "study",
    "dataset",
    "model",
    "train",
    "augment",
    "callbacks",
    "enqueue",
    "profiles",
)
#: Metrics a trial reports besides Keras's own (loss, accuracy, val_*, ...).
EXTRA_METRICS = ("params", "train_seconds", "epochs_run")
_MINIMIZED = ("loss", "mae", "mse", "mean_absolute_error", "mean_squared_error", "perplexity")
KNOWN_METRICS = (
    tuple(
        prefix + name
        for name in ("loss", "accuracy", "mae", "mse", "auc", "top_k_accuracy", "perplexity")
        for prefix in ("", "val_")
    )
    + EXTRA_METRICS
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Objective(_Strict):
    """One metric to optimize and its direction."""

    metric: str
    direction: Literal["maximize", "minimize"]


class StudySection(_Strict):
    """The ``[study]`` table."""

    name: str = Field(
        description="the study's name: its run directory runs/<name>/ and its storage key"
    )
    description: str = Field("", description="free text, shown by harness show and report")
    backend: str = Field(
        "optuna", description="optuna, kerastuner, or an installed harness.backends entry point"
    )
    trials: int = Field(
        20, ge=1, le=100_000,
        description="finished trials to run (complete, pruned or failed; interrupted ones "
        "are re-run)",
    )
    timeout: float | None = Field(
        None, gt=0, description="seconds after which no new trial starts"
    )
    seed: int | None = Field(
        None, ge=0, le=2**32 - 1,
        description="seeds the sampler, the data splits and trial N's Keras seed (seed + N)",
    )
    objective: str | list[str] = Field(
        "val_accuracy",
        description="the metric to optimize, or a list of metrics for a multi-objective study",
    )
    direction: Literal["maximize", "minimize"] | list[Literal["maximize", "minimize"]] | None = (
        Field(
            None,
            description="default: minimize losses, errors, params and train_seconds; "
            "maximize the rest",
        )
    )
    workers: int = Field(
        1, ge=1, le=256, description="worker processes on this machine, one per device"
    )
    keep_models: int = Field(
        3,
        ge=0,
        le=1000,
        description="keep the models of this many best trials (harness evaluate --top K), "
        "and the best hand-picked ([[enqueue]]) one's; a multi-objective study keeps its "
        "Pareto front's",
    )
    folds: int = Field(
        0,
        ge=0,
        le=50,
        description="k-fold cross-validation: each trial trains this many models on "
        "stratified, group-aware folds of the training data (training and validation "
        "splits pooled) and reports their mean and spread; 0: one validation split",
    )
    ensemble: int = Field(
        0,
        ge=0,
        le=1000,
        description="after the run, combine this many of the kept models into one "
        "(runs/<study>/ensemble.keras; as harness ensemble --size K); 0: no ensemble",
    )
    stop_at_chance: bool = Field(
        True,
        description="prune a trial whose first epoch (of 20 batches or more) learned "
        "nothing: a classifier of 3 or more classes whose training loss is no better than a "
        "uniform guess and whose val_accuracy is within 2 points of 1/classes (binary tasks "
        "are left alone)",
    )
    max_retries: int = Field(
        1,
        ge=0,
        le=100,
        description="re-run an interrupted trial's parameters up to this many times",
    )
    # Keras leaks ~10 MB per build-and-fit; a fresh process every 20 trials keeps a worker's
    # growth near 100 MB for the price of one TensorFlow import (~5 s) per 20 trials.
    recycle_after: int | None = Field(
        20, ge=0, description="restart a worker process after this many trials; 0: never"
    )
    max_worker_memory_mb: float | None = Field(
        None, gt=0, description="restart a worker process once its memory exceeds this"
    )

    @model_validator(mode="after")
    def _folds_are_two_or_more(self):
        if self.folds == 1:
            raise ValueError("folds: 1 fold validates on nothing; give 2 or more, or 0")
        return self

    @model_validator(mode="after")
    def _ensemble_of_kept_models(self):
        if self.ensemble == 1:
            raise ValueError("ensemble: 1 model is the best model itself; give 2 or more, or 0")
        if self.ensemble > self.keep_models:
            raise ValueError(
                f"ensemble: {self.ensemble} models, but keep_models = {self.keep_models} keeps "
                f"only that many; raise keep_models to at least {self.ensemble}"
            )
        return self

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        names = backend_names()
        if value not in names:
            close = [n for n in names if n.startswith(value[:2])]
            hint = f" Did you mean {close[0]!r}?" if close and value else ""
            raise ValueError(f"unknown backend {value!r}.{hint} Installed: {', '.join(names)}")
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(f"at most {MAX_NAME_LENGTH} characters (got {len(value)})")
        if not STUDY_NAME.fullmatch(value) or ".." in value:
            raise ValueError(
                "use letters, digits, '-', '_' and '.', starting with a letter or digit "
                "(no path separators or '..')"
            )
        return value


class TrainParams(_Strict):
    """The ``[train]`` table: how every trial compiles and fits."""

    epochs: int = Field(5, ge=1, le=10_000, description="epochs of the first training phase")
    batch_size: int = Field(32, ge=1, le=1_000_000, description="examples per training step")
    optimizer: Literal["adam", "sgd", "rmsprop", "adamw", "nadam", "adagrad"] = Field(
        "adam", description="the Keras optimizer"
    )
    learning_rate: float = Field(1e-3, gt=0, le=10, description="the optimizer's learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="momentum, for sgd and rmsprop")
    shuffle_buffer: int = Field(
        10_000, ge=0, description="examples in tf.data's shuffle buffer; 0: no shuffling"
    )
    steps_per_epoch: int | None = Field(
        None, ge=1, description="cap batches per epoch (smoke runs)"
    )
    validation_steps: int | None = Field(
        None, ge=1, description="cap validation batches per epoch (smoke runs)"
    )
    steps_per_execution: int = Field(
        32,
        ge=1,
        le=10_000,
        description="batches run per call into TensorFlow (Keras's compile option): the same "
        "training, less per-batch Python overhead; batch-level callbacks see every Nth batch",
    )
    verbose: int = Field(0, ge=0, le=2, description="Keras's fit verbosity (0, 1 or 2)")
    mixed_precision: bool = Field(
        False,
        description="compute in float16 with float32 weights on a GPU (Keras's mixed_float16 "
        "policy, with loss scaling); ignored with a notice on a CPU, where it is slower",
    )
    jit_compile: bool = Field(
        False,
        description="compile each training step with XLA on a GPU; ignored with a notice on "
        "a CPU",
    )

    def execution_steps(self) -> int:
        """``steps_per_execution`` as ``compile`` gets it: with ``steps_per_epoch`` set (the
        data then repeats), the largest divisor of it that is not above the option, so that
        an epoch never runs past its cap."""
        if not self.steps_per_epoch:
            return self.steps_per_execution
        return max(
            d for d in range(1, min(self.steps_per_execution, self.steps_per_epoch) + 1)
            if self.steps_per_epoch % d == 0
        )


@dataclass
class ComponentSpec:
    """A study's use of one plugin component: which, and its raw parameter table."""

    component: Component
    table: dict[str, Any]
    prefix: str

    @property
    def name(self) -> str:
        return self.component.name


@dataclass
class StudySpec:
    """A validated study file, ready for a backend."""

    path: Path
    raw: dict[str, Any]
    study: StudySection
    dataset: ComponentSpec
    model: ComponentSpec
    augmentations: list[ComponentSpec]
    callbacks: list[ComponentSpec]
    objectives: list[Objective]
    space: SearchSpace
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    #: The search backends' own tables (``[optuna]``, ``[kerastuner]``), as written: each
    #: backend validates its table with its own model (harness.backends.check_backend).
    backend_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The ``[profiles.NAME]`` applied (``--profile``), if any.
    profile: str | None = None
    #: A ``--smoke`` run (:mod:`harness.smoke`): every split it touches is a few examples.
    smoke: bool = False

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


def default_direction(metric: str) -> Literal["maximize", "minimize"]:
    """Losses, errors, sizes and times are minimized; anything else is maximized."""
    bare = metric.removeprefix("val_")
    return "minimize" if bare in _MINIMIZED or metric in EXTRA_METRICS else "maximize"


def split_table(
    where: str, prefix: str, table: dict[str, Any], params_model: type[BaseModel]
) -> tuple[dict[str, Any], list[SearchParam]]:
    """Split a parameter table into literals and searched parameters, checked against the model.

    Every literal, and both bounds (or every choice) of every distribution, is
    validated against ``params_model`` so that a type or range mistake is found
    before any trial runs.
    """
    allowed = list(params_model.model_fields)
    forbid_extra = params_model.model_config.get("extra") == "forbid"
    literals: dict[str, Any] = {}
    searched: list[SearchParam] = []
    for key, value in table.items():
        if forbid_extra and key not in allowed:
            raise StudyFileError(f"{where}.{key}: unknown key.{did_you_mean(key, allowed)}")
        if is_distribution(value):
            distribution, when = parse_distribution(f"{where}.{key}", value)
            condition = parse_condition(f"{where}.{key}", when, prefix) if when else None
            searched.append(SearchParam(f"{prefix}.{key}", distribution, condition))
        else:
            if isinstance(value, dict) and "when" in value:
                raise StudyFileError(
                    f"{where}.{key}: 'when' needs a distribution (int, float or choice)"
                )
            literals[key] = value
    _check_values(where, params_model, literals, searched, prefix)
    return {f"{prefix}.{k}": v for k, v in literals.items()}, searched


def _check_values(
    where: str,
    params_model: type[BaseModel],
    literals: dict[str, Any],
    searched: list[SearchParam],
    prefix: str,
) -> None:
    allowed = list(params_model.model_fields)
    base = dict(literals)
    for param in searched:  # a representative value so required fields are present
        base[param.name.removeprefix(prefix + ".")] = param.distribution.representatives()[0]
    try:
        params_model.model_validate(base)
    except ValidationError as exc:
        raise StudyFileError(format_validation_error(where, exc, allowed))
    for param in searched:
        key = param.name.removeprefix(prefix + ".")
        for value in param.distribution.representatives():
            try:
                params_model.model_validate({**base, key: value})
            except ValidationError as exc:
                message = format_validation_error(where, exc, allowed)
                raise StudyFileError(f"{message} [from the range of {where}.{key}]")


def _component(
    where: str, registry: Registry, table: Any, prefix: str, named: bool
) -> tuple[ComponentSpec, dict[str, Any], list[SearchParam]]:
    if not isinstance(table, dict):
        raise StudyFileError(f"{where}: must be a table, got {type(table).__name__}")
    table = dict(table)
    if named:
        name = table.pop("name", None)
        if not isinstance(name, str):
            raise StudyFileError(
                f"{where}.name: required; one of: {', '.join(registry.names()) or '(none)'}"
            )
        component = registry.get(name, where=f"{where}.name")
    else:
        component = registry.get(prefix.split(".")[-1], where=where)
    literals, searched = split_table(where, prefix, table, component.params)
    return ComponentSpec(component, table, prefix), literals, searched


def _flatten(prefix: str, table: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(name, value))
        else:
            flat[name] = value
    return flat


def _objectives(section: StudySection, where: str) -> list[Objective]:
    metrics = [section.objective] if isinstance(section.objective, str) else section.objective
    if not metrics:
        raise StudyFileError(f"{where}.objective: name at least one metric, e.g. 'val_accuracy'")
    for metric in metrics:
        if metric not in KNOWN_METRICS:
            raise StudyFileError(
                f"{where}.objective: unknown metric {metric!r}."
                + did_you_mean(metric, list(KNOWN_METRICS))
            )
    directions = section.direction
    if directions is None:
        directions = [default_direction(m) for m in metrics]
    elif isinstance(directions, str):
        directions = [directions] * len(metrics)
    if len(directions) != len(metrics):
        raise StudyFileError(
            f"{where}.direction: give one direction per objective ({len(metrics)}), "
            f"got {len(directions)}"
        )
    return [Objective(metric=m, direction=d) for m, d in zip(metrics, directions, strict=True)]


def load_study(
    path: str | Path,
    plugins: HarnessPlugins,
    assignments: dict[str, Any] | None = None,
    profile: str | None = None,
) -> StudySpec:
    """Read and validate a study file; raise :class:`StudyFileError` naming file and key path.

    ``profile`` applies the file's ``[profiles.NAME]`` table (see :mod:`harness.profiles`),
    then ``assignments`` (``harness run --set KEY=VALUE``) replace or add values, before
    the result is validated.
    """
    path = Path(path)
    from_file = read_toml(path)
    base = from_file if profile is None else _profiled(from_file, profile, plugins, path)
    assignments = assignments or {}
    try:
        spec = parse_study(apply_assignments(copy.deepcopy(base), assignments), plugins, path)
    except HarnessError as exc:
        culprit = _blamed_assignment(base, assignments, plugins, path)
        if culprit is not None:
            raise blamed_on_set(culprit, assignments[culprit], exc) from None
        if profile is not None and _valid(from_file, plugins, path):
            raise StudyFileError(f"{path}: [profiles.{profile}]: {exc}") from None
        raise StudyFileError(f"{path}: {exc}") from None
    spec.profile = profile
    return spec


def _profiled(
    from_file: dict[str, Any], profile: str, plugins: HarnessPlugins, path: Path
) -> dict[str, Any]:
    """The file with ``[profiles.<profile>]`` applied.

    A key the profile sets is dropped from ``[[enqueue]]`` like a ``--set`` value,
    except when the profile gives it a new search domain that can still draw the
    enqueued value: then trial #0 keeps the course's value wherever the profile allows.
    """
    values = profile_assignments(from_file, profile, path)
    profiled = apply_assignments(copy.deepcopy(from_file), values)
    domains = [key for key, value in values.items() if isinstance(value, dict)]
    enqueued = from_file.get("enqueue")
    if not domains or not isinstance(enqueued, list):
        return profiled
    try:
        space = parse_study(copy.deepcopy(profiled), plugins, path).space
    except HarnessError:
        return profiled  # the caller reports the error
    for original, kept in zip(enqueued, profiled.get("enqueue") or [], strict=False):
        flat = _flatten("", original) if isinstance(original, dict) else {}
        for key in domains:
            param = space.get(key)
            if key in flat and param is not None and not param.distribution.why_not(flat[key]):
                *tables, last = key.split(".")
                node = kept
                for table in tables:
                    node = node.setdefault(table, {})
                node[last] = flat[key]
    return profiled


def _valid(raw: dict[str, Any], plugins: HarnessPlugins, path: Path) -> bool:
    try:
        parse_study(copy.deepcopy(raw), plugins, path)
    except HarnessError:
        return False
    return True


def blamed_on_set(key: str, value: Any, exc: Exception) -> StudyFileError:
    """The error ``exc``, attributed to the ``--set KEY=VALUE`` that caused it. A number or
    boolean refused where text is expected gets the way to pass it as text."""
    hint = ""
    if isinstance(value, (int, float, bool)) and "valid string" in str(exc):
        kind = "true/false" if isinstance(value, bool) else "a number"
        hint = f"; the value was read as {kind}: to pass text, quote it: --set '{key}=\"...\"'"
    return StudyFileError(f"--set {key}={json.dumps(value, default=str)}: {exc}{hint}")


def _blamed_assignment(
    from_file: dict[str, Any], assignments: dict[str, Any], plugins: HarnessPlugins, path: Path
) -> str | None:
    """The first ``--set`` that turns a valid study file into an invalid one (None when the
    file is invalid by itself)."""
    if not assignments or not _valid(from_file, plugins, path):
        return None
    applied: dict[str, Any] = {}
    for key, value in assignments.items():
        applied[key] = value
        try:
            parse_study(apply_assignments(copy.deepcopy(from_file), applied), plugins, path)
        except HarnessError:
            return key
    return None


def parse_study(raw: dict[str, Any], plugins: HarnessPlugins, path: Path) -> StudySpec:
    """Validate an already-parsed study table (see :func:`load_study`)."""
    backends = backend_names()
    backend_tables: dict[str, dict[str, Any]] = {}
    for key in raw:
        if key in backends:
            if not isinstance(raw[key], dict):
                raise StudyFileError(f"[{key}]: must be a table, got {type(raw[key]).__name__}")
            backend_tables[key] = raw[key]
        elif key not in TOP_LEVEL_KEYS:
            known = [*TOP_LEVEL_KEYS, *backends]
            raise StudyFileError(f"[{key}]: unknown table.{did_you_mean(key, known)}")
    for required in ("study", "dataset", "model"):
        if required not in raw:
            raise StudyFileError(f"[{required}]: required table is missing")
    study = validate_section("[study]", StudySection, raw["study"])
    objectives = _objectives(study, "[study]")

    literals: dict[str, Any] = {}
    searched: list[SearchParam] = []

    def collect(result):
        spec, lits, params = result
        literals.update(lits)
        searched.extend(params)
        return spec

    dataset = collect(_component("[dataset]", plugins.datasets, raw["dataset"], "dataset", True))
    _check_data_path(literals.get("dataset.path"))
    model = collect(_component("[model]", plugins.models, raw["model"], "model", True))
    train_lits, train_params = split_table("[train]", "train", _table(raw, "train"), TrainParams)
    literals.update(train_lits)
    searched.extend(train_params)
    augmentations = [
        collect(_component(f"[augment.{n}]", plugins.augmentations, t, f"augment.{n}", False))
        for n, t in _table(raw, "augment").items()
    ]
    callbacks = [
        collect(_component(f"[callbacks.{n}]", plugins.callbacks, t, f"callbacks.{n}", False))
        for n, t in _table(raw, "callbacks").items()
    ]
    _check_metrics_against_tasks(dataset.component, objectives, callbacks)
    if study.ensemble and len(objectives) > 1:
        raise StudyFileError(
            f"[study].ensemble = {study.ensemble}: an ensemble needs one objective to weigh its "
            f"models on, and this study has {len(objectives)}; set ensemble = 0"
        )
    space = SearchSpace(order_by_dependency(searched, literals), literals)
    enqueue = _enqueue(raw.get("enqueue", []), space)
    spec = StudySpec(
        path=path,
        raw=raw,
        study=study,
        dataset=dataset,
        model=model,
        augmentations=augmentations,
        callbacks=callbacks,
        objectives=objectives,
        space=space,
        enqueue=enqueue,
        backend_tables=backend_tables,
    )
    return spec


#: What a task's default compile reports (besides ``loss``), and metrics only it reports.
_TASK_METRICS = {
    "binary": "accuracy",
    "multiclass": "accuracy",
    "next_token": "accuracy",
    "regression": "mae",
}
_TASK_ONLY = {"accuracy": ("binary", "multiclass", "next_token"), "mae": ("regression",),
              "mse": ("regression",)}


def _check_metrics_against_tasks(
    dataset: Component, objectives: list[Objective], callbacks: list[ComponentSpec]
) -> None:
    """Refuse an objective or a stopping callback's metric that the dataset's declared
    tasks never report (``val_mae`` for a classifier), before any trial runs."""
    named = [("[study].objective", o.metric) for o in objectives]
    epoch_metrics = [m for m in KNOWN_METRICS if m not in EXTRA_METRICS]
    for callback in callbacks:
        for key in ("metric", "monitor"):
            value = callback.table.get(key)
            if isinstance(value, str):
                where = f"[callbacks.{callback.name}].{key}"
                if value not in epoch_metrics:  # as the objective is checked
                    raise StudyFileError(
                        f"{where}: unknown metric {value!r}." + did_you_mean(value, epoch_metrics)
                    )
                named.append((where, value))
    if not dataset.tasks:
        return
    for where, metric in named:
        bare = metric.removeprefix("val_")
        tasks = _TASK_ONLY.get(bare)
        if tasks is None or any(task in tasks for task in dataset.tasks):
            continue
        reported = sorted({_TASK_METRICS[t] for t in dataset.tasks})
        fix = metric.replace(bare, reported[0])
        raise StudyFileError(
            f"{where}: {metric!r} is not reported for dataset {dataset.name!r} (a "
            f"{'/'.join(dataset.tasks)} task reports loss and {', '.join(reported)}); "
            f"use {fix!r}"
        )


def check_data(spec: StudySpec, assignments: dict[str, Any] | None = None) -> None:
    """Run the dataset plugin's optional cheap ``check`` on the study's dataset values
    (each searched value's first representative), before anything is written. A problem
    with a value given by ``--set dataset.KEY=...`` blames that ``--set``."""
    check = spec.dataset.component.check
    if check is None:
        return
    given = [f"--set {k}={json.dumps(v, default=str)}" for k, v in (assignments or {}).items()
             if k.startswith("dataset.")]
    where = ", ".join(given) if given else str(spec.path)
    call_dataset_plugin(spec, f"{where}: [dataset]", "data check", check)


def dataset_values(spec: StudySpec) -> dict[str, Any]:
    """The study's ``[dataset]`` values, each searched one at its first representative."""
    prefix = spec.dataset.prefix + "."
    values = {
        k.removeprefix(prefix): v for k, v in spec.space.literals.items() if k.startswith(prefix)
    }
    for param in spec.space.params:
        if param.name.startswith(prefix):
            values[param.name.removeprefix(prefix)] = param.distribution.representatives()[0]
    return values


def call_dataset_plugin(spec: StudySpec, where: str, what: str, function: Any) -> Any:
    """``function(params)`` on the study's validated dataset values (see
    :func:`dataset_values`); any problem, a plugin's bug included, is one StudyFileError
    line starting with ``where``."""
    try:
        params = spec.dataset.component.params.model_validate(dataset_values(spec))
        return function(params)
    except HarnessError as exc:
        raise StudyFileError(f"{where}: {exc}") from None
    except ValidationError as exc:
        raise StudyFileError(f"{where}: {exc.errors()[0]['msg']}") from None
    except Exception as exc:  # noqa: BLE001 - a plugin bug is one line too
        raise StudyFileError(
            f"{where}: the {spec.dataset.name!r} plugin's {what} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from None


def _table(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise StudyFileError(f"[{key}]: must be a table, got {type(value).__name__}")
    return value


def _enqueue(raw: Any, space: SearchSpace) -> list[dict[str, Any]]:
    """``[[enqueue]]`` tables: hand-picked values (e.g. the course's) run first."""
    if not isinstance(raw, list):
        raise StudyFileError("[[enqueue]]: write each hand-picked trial as an [[enqueue]] table")
    names = space.searched_names()
    trials = []
    for index, table in enumerate(raw):
        if not isinstance(table, dict):
            raise StudyFileError(f"[[enqueue]] #{index + 1}: must be a table")
        flat = _flatten("", table)
        for key, value in flat.items():
            param = space.get(key)
            if param is None:
                raise StudyFileError(
                    f"[[enqueue]] #{index + 1}.{key}: not a searched parameter."
                    + did_you_mean(key, names)
                )
            problem = param.distribution.why_not(value)
            if problem:
                raise StudyFileError(
                    f"[[enqueue]] #{index + 1}.{key}: {problem}; use a value the search "
                    f"space can draw ({param.distribution.describe()})"
                )
        _check_enqueued_conditions(index, flat, space)
        trials.append(flat)
    return trials


def _check_enqueued_conditions(index: int, flat: dict[str, Any], space: SearchSpace) -> None:
    """A hand-picked value for a conditional parameter whose condition is false (given the
    trial's other values) would never be used: refuse it."""
    known = {**space.literals, **flat}
    for key in flat:
        param = space.get(key)
        condition = param.condition if param is not None else None
        if condition is None or condition.param not in known:
            continue
        if not condition.holds(known):
            raise StudyFileError(
                f"[[enqueue]] #{index + 1}.{key}: is only sampled when "
                f"{condition.describe()}, but this trial has {condition.param} = "
                f"{known[condition.param]!r}; drop {key} or change {condition.param}"
            )


def _check_data_path(path: Any) -> None:
    """Fail before anything runs (or is written) when ``[dataset].path`` does not exist."""
    if isinstance(path, str) and not path.strip():
        raise StudyFileError(
            "[dataset].path: is empty; give the folder or file of the data (or leave path out "
            "where the dataset can download itself)"
        )
    if isinstance(path, str) and path and not Path(path).expanduser().exists():
        raise StudyFileError(
            f"[dataset].path: {path} does not exist (relative paths are read from the "
            f"current directory, {Path.cwd()}); put the data there, fix the path, or "
            "point to it for one run with --set dataset.path=/where/it/is"
        )
