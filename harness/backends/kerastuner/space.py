"""The study's search space as KerasTuner sees it: checked, then declared as
``keras_tuner.HyperParameters``.

The space is declared once (``harness.space``) and translated: ``int`` ->
``hp.Int`` (step, or ``sampling="log"``), ``float`` -> ``hp.Float``, ``choice`` ->
``hp.Choice``; a ``when`` condition becomes ``hp.conditional_scope(parent, values)``,
where ``values`` are the parent's values for which the condition holds (``==`` and
``in`` directly; other operators enumerate the parent's choice or int domain).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from harness.backends.kerastuner.config import config
from harness.errors import HarnessError, StudyFileError
from harness.space import (
    ChoiceDistribution,
    Condition,
    FloatDistribution,
    IntDistribution,
    SearchParam,
    SearchSpace,
)
from harness.study import TrainParams

EPOCHS = "train.epochs"
#: Largest int domain enumerated to express a condition such as ``layers >= 2``.
MAX_ENUMERATED = 10_000


@dataclass(frozen=True)
class KerasTunerSpace:
    """The study's space as KerasTuner sees it.

    ``space`` is what KerasTuner samples (under Hyperband without ``train.epochs``,
    which Hyperband controls); ``scopes`` maps every parameter that can be active to
    its conditional scopes, outermost first, as ``(parent, allowed parent values)``.
    """

    space: SearchSpace
    scopes: dict[str, tuple[tuple[str, tuple[Any, ...]], ...]]
    searched: tuple[str, ...]
    max_epochs: int | None = None


def _where(name: str) -> str:
    table, _, key = name.rpartition(".")
    return f"[{table}].{key}" if table else name


def check_spec(spec) -> None:
    """Raise :class:`StudyFileError` if KerasTuner cannot run this study as written."""
    if spec.multi_objective:
        raise StudyFileError(
            "[study].objective: the kerastuner backend optimizes one objective, got "
            f"{[o.metric for o in spec.objectives]}; name one metric or use backend = 'optuna'"
        )
    translate(spec)


def translate(spec) -> KerasTunerSpace:
    """Check and translate the study's search space for KerasTuner (see the module doc)."""
    tuner = config(spec).tuner
    params = list(spec.space.params)
    literals = dict(spec.space.literals)
    max_epochs = None
    if tuner == "hyperband":
        max_epochs = _max_epochs(spec)
        for param in params:
            if param.condition is not None and param.condition.param == EPOCHS:
                raise StudyFileError(
                    f"{_where(param.name)}.when: under tuner = 'hyperband' KerasTuner sets "
                    f"{EPOCHS} itself, so no parameter can depend on it"
                )
        params = [p for p in params if p.name != EPOCHS]
        literals[EPOCHS] = max_epochs
    by_name = {param.name: param for param in params}
    scopes: dict[str, tuple[tuple[str, tuple[Any, ...]], ...]] = {}
    for param in params:
        _check_choice(param)
        chain = _scope_chain(param, by_name, literals, scopes)
        if chain is not None:
            scopes[param.name] = chain
    if tuner == "grid":
        _check_grid([p for p in params if p.name in scopes])
    return KerasTunerSpace(
        SearchSpace(params, literals), scopes, tuple(spec.space.searched_names()), max_epochs
    )


def _max_epochs(spec) -> int:
    """Hyperband's ``max_epochs``: the upper bound of ``train.epochs`` (or its value)."""
    param = spec.space.get(EPOCHS)
    if param is None:
        return int(spec.space.literals.get(EPOCHS, TrainParams().epochs))
    dist = param.distribution
    if isinstance(dist, ChoiceDistribution):
        return int(max(dist.choices))
    return int(dist.high)


def _check_choice(param: SearchParam) -> None:
    dist = param.distribution
    if isinstance(dist, ChoiceDistribution) and len({type(c) for c in dist.choices}) > 1:
        raise StudyFileError(
            f"{_where(param.name)}.choice: KerasTuner's hp.Choice needs values of one type, "
            f"got {list(dist.choices)}; write them all as strings, ints or floats"
        )


def _check_grid(params: list[SearchParam]) -> None:
    for param in params:
        dist = param.distribution
        if isinstance(dist, ChoiceDistribution):
            continue
        if isinstance(dist, IntDistribution) and not dist.log:
            continue
        raise StudyFileError(
            f"{_where(param.name)}: tuner = 'grid' needs every searched parameter to be a choice "
            f"or an int with a step (not log); {param.name} is {dist.describe()}. Make it a "
            f"choice, e.g. {{choice = [{dist.low}, {dist.high}]}}, or use tuner = 'random'"
        )


def _scope_chain(param, by_name, literals, scopes):
    """Conditional scopes of ``param``, or None when it can never be active."""
    condition = param.condition
    if condition is None:
        return ()
    if condition.param not in by_name:  # a literal: the condition is fixed
        return () if condition.holds(literals) else None
    parent = by_name[condition.param]
    if parent.name not in scopes:  # the parent itself is never active
        return None
    allowed = _allowed_values(param, condition, parent)
    if not allowed:
        return None
    return (*scopes[parent.name], (parent.name, tuple(allowed)))


def _allowed_values(param: SearchParam, condition: Condition, parent: SearchParam) -> list[Any]:
    """The parent's values for which ``condition`` holds (KerasTuner's conditions are lists)."""
    dist = parent.distribution
    wanted = [condition.value] if condition.op == "==" else condition.value
    if isinstance(dist, ChoiceDistribution):
        domain = list(dist.choices)
    elif isinstance(dist, IntDistribution):
        step = 1 if dist.log else dist.step
        if (dist.high - dist.low) // step + 1 <= MAX_ENUMERATED:
            domain = list(range(dist.low, dist.high + 1, step))
        elif condition.op in ("==", "in"):
            domain = [v for v in wanted if isinstance(v, int) and dist.low <= v <= dist.high]
        else:
            raise StudyFileError(
                f"{_where(param.name)}.when: {parent.name} has too many values to express "
                f"'{condition.describe()}' for KerasTuner; use == or in, or give it a step"
            )
    elif isinstance(dist, FloatDistribution) and condition.op in ("==", "in"):
        numbers = [v for v in wanted if isinstance(v, int | float) and not isinstance(v, bool)]
        domain = [float(v) for v in numbers]
    else:
        raise StudyFileError(
            f"{_where(param.name)}.when: KerasTuner can make a parameter depend on a float "
            f"parameter only with == or in, not '{condition.describe()}'; make "
            f"{parent.name} a choice or an int"
        )
    return [value for value in domain if condition.holds({condition.param: value})]


class HyperParametersSuggester:
    """Adapts ``keras_tuner.HyperParameters`` to :class:`harness.space.Suggester`.

    Each parameter is declared inside the conditional scopes that mirror its
    ``when``, so KerasTuner knows which parameters are active in which trial.
    """

    def __init__(self, hp: Any, scopes: dict[str, tuple[tuple[str, tuple[Any, ...]], ...]]):
        self.hp = hp
        self.scopes = scopes

    def _get(self, name: str, declare):
        if name not in self.scopes:
            raise HarnessError(f"{name}: asked for a parameter KerasTuner never activates")
        with contextlib.ExitStack() as stack:
            for parent, values in self.scopes[name]:
                stack.enter_context(self.hp.conditional_scope(parent, list(values)))
            return declare()

    def suggest_int(self, name, low, high, *, step=1, log=False):
        return self._get(
            name,
            lambda: self.hp.Int(
                name, low, high, step=None if log else step, sampling="log" if log else "linear"
            ),
        )

    def suggest_float(self, name, low, high, *, step=None, log=False):
        return self._get(
            name,
            lambda: self.hp.Float(name, low, high, step=step, sampling="log" if log else "linear"),
        )

    def suggest_categorical(self, name, choices):
        return self._get(name, lambda: self.hp.Choice(name, list(choices)))


def declare_space(kt_space: KerasTunerSpace, hp: Any = None) -> Any:
    """A ``keras_tuner.HyperParameters`` holding every parameter that can be active."""
    if hp is None:
        import keras_tuner  # imports TensorFlow: only when the search runs

        hp = keras_tuner.HyperParameters()
    suggester = HyperParametersSuggester(hp, kt_space.scopes)
    for param in kt_space.space.params:
        if param.name in kt_space.scopes:
            param.distribution.suggest(param.name, suggester)
    return hp


def sample_params(kt_space: KerasTunerSpace, hp: Any) -> dict[str, Any]:
    """A trial's resolved parameters (literals included) from its KerasTuner values."""
    params = kt_space.space.sample(HyperParametersSuggester(hp, kt_space.scopes))
    missing = [k for k, v in params.items() if v is None and k in kt_space.scopes]
    if missing:
        raise HarnessError(f"KerasTuner gave no value for {', '.join(missing)}")
    if "tuner/epochs" in hp.values:  # Hyperband decides how long this trial trains
        params[EPOCHS] = int(hp.values["tuner/epochs"])
    return params
