"""The search space: one declaration read by every backend.

In a study file any parameter may be a literal or a distribution::

    filters = {int = [16, 128], step = 16}
    dropout = {float = [0.0, 0.5]}
    learning_rate = {float = [1e-5, 1e-2], log = true}
    image_size = {choice = [150, 300]}
    units_2 = {int = [16, 128], when = "dense_layers >= 2"}   # conditional

A backend samples the space through a :class:`Suggester` (an Optuna trial or
KerasTuner ``HyperParameters`` adapter), so the declaration is written once.
Conditions are parsed, never evaluated as code.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.errors import StudyFileError

DISTRIBUTION_KINDS = ("int", "float", "choice")
DISTRIBUTION_OPTIONS = ("step", "log", "when")
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|>=|<=|>|<|in|not in)\s*(.+?)\s*$")
_OPERATORS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


class Suggester(Protocol):
    """What a backend offers to sample one parameter (Optuna's trial has this shape)."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False): ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ): ...

    def suggest_categorical(self, name: str, choices: list[Any]): ...


@dataclass(frozen=True)
class IntDistribution:
    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, name: str, suggester: Suggester) -> int:
        return suggester.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def representatives(self) -> list[int]:
        return [self.low, self.high]

    def why_not(self, value: Any) -> str | None:
        """Why ``value`` cannot be drawn from this distribution (None: it can)."""
        if not _is_number(value) or not float(value).is_integer():
            return f"{value!r} is not an integer"
        if not self.low <= value <= self.high:
            return f"{value!r} is outside [{self.low}, {self.high}]"
        if (int(value) - self.low) % self.step:
            return f"{value!r} is not on the grid {self.low}, {self.low + self.step}, ... (step)"
        return None

    def describe(self) -> str:
        extra = f", step {self.step}" if self.step != 1 else ""
        return f"int [{self.low}, {self.high}]{extra}{', log' if self.log else ''}"


@dataclass(frozen=True)
class FloatDistribution:
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def suggest(self, name: str, suggester: Suggester) -> float:
        return suggester.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def representatives(self) -> list[float]:
        return [self.low, self.high]

    def why_not(self, value: Any) -> str | None:
        """Why ``value`` cannot be drawn from this distribution (None: it can)."""
        if not _is_number(value) or not math.isfinite(value):
            return f"{value!r} is not a number"
        if not self.low <= value <= self.high:
            return f"{value!r} is outside [{self.low}, {self.high}]"
        if self.step:
            steps = (value - self.low) / self.step
            if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
                return (
                    f"{value!r} is not on the grid {self.low:g}, {self.low + self.step:g}, ... "
                    "(step)"
                )
        return None

    def describe(self) -> str:
        extra = f", step {self.step}" if self.step else ""
        return f"float [{self.low}, {self.high}]{extra}{', log' if self.log else ''}"


@dataclass(frozen=True)
class ChoiceDistribution:
    choices: tuple[Any, ...]

    def suggest(self, name: str, suggester: Suggester) -> Any:
        return suggester.suggest_categorical(name, list(self.choices))

    def representatives(self) -> list[Any]:
        return list(self.choices)

    def why_not(self, value: Any) -> str | None:
        """Why ``value`` is not one of the choices (None: it is); ``true`` is not ``1``."""
        if any(same_value(value, choice) for choice in self.choices):
            return None
        return f"{value!r} is not one of {list(self.choices)}"

    def describe(self) -> str:
        return "choice " + ", ".join(repr(c) for c in self.choices)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same kind: numbers with numbers, booleans with booleans, strings
    with strings (Python's ``True == 1`` does not count)."""
    if _is_number(a) and _is_number(b):
        return a == b
    return type(a) is type(b) and a == b


def value_kind(value: Any) -> str:
    """``number``, ``boolean``, ``string`` or ``list``: what a condition may compare."""
    if isinstance(value, bool):
        return "boolean"
    if _is_number(value):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else type(value).__name__


def distribution_kinds(distribution: Any) -> set[str]:
    """The kinds of value a distribution draws."""
    if isinstance(distribution, ChoiceDistribution):
        return {value_kind(c) for c in distribution.choices}
    return {"number"}


Distribution = IntDistribution | FloatDistribution | ChoiceDistribution


@dataclass(frozen=True)
class Condition:
    """``<param> <op> <literal>``: the parameter is sampled only when this holds."""

    param: str
    op: str
    value: Any

    def holds(self, values: dict[str, Any]) -> bool:
        if self.param not in values:
            return False
        try:
            return bool(_OPERATORS[self.op](values[self.param], self.value))
        except TypeError:
            return False

    def describe(self) -> str:
        return f"{self.param} {self.op} {self.value!r}"


@dataclass(frozen=True)
class SearchParam:
    """A searched parameter: qualified name (``model.filters``), domain, optional condition."""

    name: str
    distribution: Distribution
    condition: Condition | None = None


@dataclass
class SearchSpace:
    """Every searched parameter (in dependency order) and every literal, by qualified name."""

    params: list[SearchParam] = field(default_factory=list)
    literals: dict[str, Any] = field(default_factory=dict)

    def sample(self, suggester: Suggester) -> dict[str, Any]:
        """Draw one assignment: literals plus every searched parameter whose condition holds."""
        values: dict[str, Any] = dict(self.literals)
        for param in self.params:
            if param.condition is None or param.condition.holds(values):
                values[param.name] = param.distribution.suggest(param.name, suggester)
        return values

    def searched_names(self) -> list[str]:
        return [param.name for param in self.params]

    def get(self, name: str) -> SearchParam | None:
        return next((p for p in self.params if p.name == name), None)


def distribution_to_json(distribution: Distribution) -> dict[str, Any]:
    """A distribution as the study file writes it (``{"int": [8, 64], "step": 8}``), so that
    ``study.json`` carries it as data and :func:`distribution_from_json` reads it back."""
    if isinstance(distribution, ChoiceDistribution):
        return {"choice": list(distribution.choices)}
    kind = "int" if isinstance(distribution, IntDistribution) else "float"
    data: dict[str, Any] = {kind: [distribution.low, distribution.high]}
    if distribution.step not in (None, 1) or (kind == "float" and distribution.step):
        data["step"] = distribution.step
    if distribution.log:
        data["log"] = True
    return data


def distribution_from_json(data: Any, where: str = "study.json") -> Distribution:
    """The inverse of :func:`distribution_to_json`, validated as a study file's table is."""
    if not isinstance(data, dict) or "when" in data:
        raise StudyFileError(f"{where}: not a distribution table")
    distribution, _ = parse_distribution(where, data)
    return distribution


def is_distribution(value: Any) -> bool:
    """True for a table such as ``{int = [1, 4]}`` declaring a distribution."""
    return isinstance(value, dict) and any(kind in value for kind in DISTRIBUTION_KINDS)


def parse_distribution(where: str, table: dict[str, Any]) -> tuple[Distribution, str | None]:
    """Turn ``{int = [lo, hi], step = s}`` into a distribution (and its raw ``when``)."""
    kinds = [k for k in DISTRIBUTION_KINDS if k in table]
    if len(kinds) != 1:
        raise StudyFileError(f"{where}: give exactly one of int, float or choice, not {kinds}")
    kind = kinds[0]
    for key in table:
        if key not in DISTRIBUTION_KINDS and key not in DISTRIBUTION_OPTIONS:
            close = difflib.get_close_matches(key, DISTRIBUTION_OPTIONS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise StudyFileError(
                f"{where}.{key}: unknown distribution option{hint} "
                f"Allowed: {', '.join(DISTRIBUTION_OPTIONS)}."
            )
    when = table.get("when")
    if when is not None and not isinstance(when, str):
        raise StudyFileError(f'{where}.when: write the condition as a string, e.g. "layers >= 2"')
    raw = table[kind]
    log = table.get("log", False)
    if not isinstance(log, bool):
        raise StudyFileError(f"{where}.log: must be true or false, got {log!r}")
    if kind == "choice":
        if "step" in table or "log" in table:
            raise StudyFileError(f"{where}: step and log apply to int and float, not choice")
        if not isinstance(raw, list) or not raw:
            raise StudyFileError(f"{where}.choice: give a non-empty list, e.g. choice = [32, 64]")
        for item in raw:
            if not isinstance(item, str | int | float | bool):
                raise StudyFileError(
                    f"{where}.choice: choices must be strings, numbers or booleans, got {item!r}"
                )
        return ChoiceDistribution(tuple(raw)), when
    number = int if kind == "int" else (int, float)
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not all(isinstance(v, number) and not isinstance(v, bool) for v in raw)
    ):
        raise StudyFileError(f"{where}.{kind}: give [low, high] as two {kind}s, got {raw!r}")
    low, high = raw
    if kind == "float" and not all(math.isfinite(v) for v in raw):
        raise StudyFileError(f"{where}.float: bounds must be finite numbers, got {raw!r}")
    if low > high:
        raise StudyFileError(f"{where}.{kind}: low {low} is above high {high}; swap them")
    if log and low <= 0:
        raise StudyFileError(f"{where}: log = true needs a low bound above 0, got {low}")
    step = table.get("step")
    if step is not None:
        if not isinstance(step, number) or isinstance(step, bool) or step <= 0:
            raise StudyFileError(f"{where}.step: must be a positive {kind}, got {step!r}")
        if log:
            raise StudyFileError(f"{where}: use either step or log = true, not both")
    if kind == "int":
        return IntDistribution(low, high, step or 1, log), when
    return FloatDistribution(float(low), float(high), float(step) if step else None, log), when


def parse_condition(where: str, text: str, scope: str) -> Condition:
    """Parse ``"dense_layers >= 2"``; an unqualified name refers to the same table (``scope``)."""
    match = _CONDITION.match(text)
    if not match:
        raise StudyFileError(
            f'{where}.when: cannot read {text!r}; write "<parameter> <op> <value>" with op one of '
            f"{', '.join(_OPERATORS)}"
        )
    name, op, raw_value = match.groups()
    try:
        value = tomllib.loads(f"v = {raw_value}")["v"]
    except tomllib.TOMLDecodeError:
        raise StudyFileError(
            f"{where}.when: cannot read {text!r}: {raw_value!r} is not a value; write "
            f'"<parameter> <op> <value>" and quote strings, e.g. "activation == \'relu\'"'
        )
    if op in ("in", "not in") and not isinstance(value, list):
        raise StudyFileError(f"{where}.when: '{op}' needs a list, e.g. \"x in [1, 2]\"")
    qualified = name if "." in name else f"{scope}.{name}"
    return Condition(qualified, op, value)


def _check_comparable(
    param: SearchParam, by_name: dict[str, SearchParam], literals: dict[str, Any]
) -> None:
    """Refuse a condition that can never hold because it compares different kinds of value
    (an int parameter with a string)."""
    condition = param.condition
    assert condition is not None
    parent = condition.param
    if parent in by_name:
        kinds = distribution_kinds(by_name[parent].distribution)
    elif parent in literals:
        kinds = {value_kind(literals[parent])}
    else:
        return
    compared = condition.value if condition.op in ("in", "not in") else [condition.value]
    for value in compared:
        if value_kind(value) not in kinds:
            raise StudyFileError(
                f"{param.name}.when: {condition.describe()} compares {parent} (a "
                f"{' or '.join(sorted(kinds))}) with a {value_kind(value)}, so it is never "
                f"true; write the value as a {sorted(kinds)[0]}"
            )


def order_by_dependency(params: list[SearchParam], literals: dict[str, Any]) -> list[SearchParam]:
    """Order parameters so that each condition's parameter is sampled before it."""
    by_name = {param.name: param for param in params}
    ordered: list[SearchParam] = []
    visiting: set[str] = set()

    def visit(param: SearchParam) -> None:
        if param in ordered:
            return
        if param.name in visiting:
            raise StudyFileError(f"{param.name}.when: conditions form a cycle through {param.name}")
        visiting.add(param.name)
        if param.condition is not None:
            parent = param.condition.param
            _check_comparable(param, by_name, literals)
            if parent in by_name:
                visit(by_name[parent])
            elif parent not in literals:
                known = sorted(set(by_name) | set(literals))
                close = difflib.get_close_matches(parent, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise StudyFileError(
                    f"{param.name}.when: refers to unknown parameter {parent!r}.{hint}"
                )
        visiting.discard(param.name)
        ordered.append(param)

    for param in params:
        visit(param)
    return ordered
