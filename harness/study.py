"""Study file (TOML) -> validated, typed :class:`StudySpec`.

Every error names the file, the key path and the fix; unknown keys get the
closest valid key; unknown plugins list the available ones.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import HarnessError, StudyFileError
from harness.plugins import HarnessPlugins
from harness.registry import Component, Registry
from harness.space import (
    SearchParam,
    SearchSpace,
    is_distribution,
    order_by_dependency,
    parse_condition,
    parse_distribution,
)

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_LEVEL_KEYS = (
    "study",
    "optuna",
    "dataset",
    "model",
    "train",
    "augment",
    "callbacks",
    "enqueue",
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

    name: str
    description: str = ""
    backend: Literal["optuna"] = "optuna"
    trials: int = Field(20, ge=1, le=100_000)
    timeout: float | None = Field(None, gt=0)
    seed: int | None = None
    objective: str | list[str] = "val_accuracy"
    direction: Literal["maximize", "minimize"] | list[Literal["maximize", "minimize"]] | None = None
    workers: int = Field(1, ge=1, le=256)
    recycle_after: int | None = Field(
        None, ge=1, description="restart a worker process after this many trials"
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not STUDY_NAME.match(value) or ".." in value:
            raise ValueError(
                "use letters, digits, '-', '_' and '.', starting with a letter or digit "
                "(no path separators or '..')"
            )
        return value


class OptunaSection(_Strict):
    """The ``[optuna]`` table."""

    sampler: Literal["tpe", "random", "cmaes", "gp", "nsga2"] = "tpe"
    pruner: Literal["median", "hyperband", "successive_halving", "none"] = "median"
    storage: str | None = None
    startup_trials: int = Field(3, ge=0, description="trials before the pruner and TPE act")
    warmup_epochs: int = Field(1, ge=0, description="epochs before a trial may be pruned")


class TrainParams(_Strict):
    """The ``[train]`` table: how every trial compiles and fits."""

    epochs: int = Field(5, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    optimizer: Literal["adam", "sgd", "rmsprop", "adamw", "nadam", "adagrad"] = "adam"
    learning_rate: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1)
    shuffle_buffer: int = Field(10_000, ge=0)
    steps_per_epoch: int | None = Field(
        None, ge=1, description="cap batches per epoch (smoke runs)"
    )
    validation_steps: int | None = Field(None, ge=1)
    verbose: int = Field(0, ge=0, le=2)


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
    optuna: OptunaSection
    dataset: ComponentSpec
    model: ComponentSpec
    augmentations: list[ComponentSpec]
    callbacks: list[ComponentSpec]
    objectives: list[Objective]
    space: SearchSpace
    enqueue: list[dict[str, Any]] = field(default_factory=list)

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


def _suggest(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1)
    listing = f" Allowed: {', '.join(allowed)}." if len(allowed) <= 24 else ""
    return (f" Did you mean {close[0]!r}?" if close else "") + listing


def _format_validation_error(where: str, exc: ValidationError, allowed: list[str]) -> str:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        path = f"{where}.{loc}" if loc else where
        if error["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key.{_suggest(str(error['loc'][-1]), allowed)}")
        elif error["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        else:
            got = error.get("input")
            lines.append(f"{path}: {error['msg']} (got {got!r})")
    return "; ".join(lines)


def validate_section(where: str, model: type[BaseModel], table: Any) -> BaseModel:
    """Validate a plain table against a pydantic model with key-path errors."""
    if not isinstance(table, dict):
        raise StudyFileError(f"{where}: must be a table, got {type(table).__name__}")
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        raise StudyFileError(_format_validation_error(where, exc, list(model.model_fields)))


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
            raise StudyFileError(f"{where}.{key}: unknown key.{_suggest(key, allowed)}")
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
        raise StudyFileError(_format_validation_error(where, exc, allowed))
    for param in searched:
        key = param.name.removeprefix(prefix + ".")
        for value in param.distribution.representatives():
            try:
                params_model.model_validate({**base, key: value})
            except ValidationError as exc:
                message = _format_validation_error(where, exc, allowed)
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
                + _suggest(metric, list(KNOWN_METRICS))
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


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into one line with the position."""
    if not path.is_file():
        raise StudyFileError(f"{path}: no such study file")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{path}: not valid TOML: {exc}")
    except UnicodeDecodeError:
        raise StudyFileError(f"{path}: not a UTF-8 text file")


def load_study(path: str | Path, plugins: HarnessPlugins) -> StudySpec:
    """Read and validate a study file; raise :class:`StudyFileError` naming file and key path."""
    path = Path(path)
    raw = read_toml(path)
    try:
        return parse_study(raw, plugins, path)
    except HarnessError as exc:
        raise StudyFileError(f"{path}: {exc}") from None


def parse_study(raw: dict[str, Any], plugins: HarnessPlugins, path: Path) -> StudySpec:
    """Validate an already-parsed study table (see :func:`load_study`)."""
    for key in raw:
        if key not in TOP_LEVEL_KEYS:
            raise StudyFileError(f"[{key}]: unknown table.{_suggest(key, list(TOP_LEVEL_KEYS))}")
    for required in ("study", "dataset", "model"):
        if required not in raw:
            raise StudyFileError(f"[{required}]: required table is missing")
    study = validate_section("[study]", StudySection, raw["study"])
    optuna = validate_section("[optuna]", OptunaSection, raw.get("optuna", {}))
    objectives = _objectives(study, "[study]")

    literals: dict[str, Any] = {}
    searched: list[SearchParam] = []

    def collect(result):
        spec, lits, params = result
        literals.update(lits)
        searched.extend(params)
        return spec

    dataset = collect(_component("[dataset]", plugins.datasets, raw["dataset"], "dataset", True))
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
    space = SearchSpace(order_by_dependency(searched, literals), literals)
    enqueue = _enqueue(raw.get("enqueue", []), space)
    return StudySpec(
        path=path,
        raw=raw,
        study=study,
        optuna=optuna,
        dataset=dataset,
        model=model,
        augmentations=augmentations,
        callbacks=callbacks,
        objectives=objectives,
        space=space,
        enqueue=enqueue,
    )


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
                    + _suggest(key, names)
                )
            dist = param.distribution
            choices = getattr(dist, "choices", None)
            if choices is not None and value not in choices:
                raise StudyFileError(
                    f"[[enqueue]] #{index + 1}.{key}: {value!r} is not one of {list(choices)}"
                )
            if choices is None and not _within(value, dist.low, dist.high):
                raise StudyFileError(
                    f"[[enqueue]] #{index + 1}.{key}: {value!r} is outside "
                    f"[{dist.low}, {dist.high}]"
                )
        trials.append(flat)
    return trials


def _within(value: Any, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
