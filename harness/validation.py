"""pydantic's errors for a table of a study file, as one line: the key path a user wrote,
what was wrong, and the closest valid key for a misspelt one."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.errors import StudyFileError


def did_you_mean(key: str, allowed: list[str]) -> str:
    """`` Did you mean 'x'?`` for the allowed name closest to ``key`` (empty when none is
    close), then the allowed names when there are few enough to list."""
    # A prefix (val_acc -> val_accuracy) beats a close spelling (val_acc -> val_auc).
    close = [a for a in allowed if a.startswith(key) and key] or difflib.get_close_matches(
        key, allowed, n=1
    )
    listing = f" Allowed: {', '.join(allowed)}." if len(allowed) <= 24 else ""
    return (f" Did you mean {close[0]!r}?" if close else "") + listing


def key_path(loc: tuple) -> str:
    """A pydantic error location without union branch names (``constrained-int``,
    ``tuple[int, int]``, ``function-after[...]``): only the keys a user wrote."""
    parts = []
    for part in loc:
        if isinstance(part, int) or (isinstance(part, str) and part.isidentifier()):
            parts.append(str(part))
        else:
            break
    return ".".join(parts)


def format_validation_error(where: str, exc: ValidationError, allowed: list[str]) -> str:
    """``exc`` as one line, one clause per key written wrong, each prefixed by ``where``
    (``[model].units: ...``); ``allowed``: the keys an unknown key is compared with."""
    lines: list[str] = []
    seen: set[str] = set()
    for error in exc.errors():
        loc = key_path(error["loc"])
        if loc in seen:  # the other members of a union: one line per key is enough
            continue
        seen.add(loc)
        path = f"{where}.{loc}" if loc else where
        got = error.get("input")
        branches = len([e for e in exc.errors() if key_path(e["loc"]) == loc])
        if error["type"] == "extra_forbidden":
            lines.append(f"{path}: unknown key.{did_you_mean(str(error['loc'][-1]), allowed)}")
        elif error["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        elif isinstance(got, bool) and _numeric_error(error["type"]):
            lines.append(f"{path}: expected a number, not {str(got).lower()}")
        elif branches > 1:
            lines.append(f"{path}: {got!r} is not an accepted value ({_field_hint(exc, loc)})")
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{path}: {message} (got {got!r})")
    return "; ".join(lines)


def _numeric_error(kind: str) -> bool:
    """A pydantic error about a number (``true`` given for ``dropout`` reads as 1.0)."""
    return kind.startswith(("greater_than", "less_than", "int_", "float_", "multiple_of"))


def _field_hint(exc: ValidationError, loc: str) -> str:
    """What each member of a union expected, briefly: ``an integer or a tuple``."""
    wanted = []
    for error in exc.errors():
        if key_path(error["loc"]) != loc:
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        if message not in wanted:
            wanted.append(message.removeprefix("Input should be ").rstrip("."))
    return "expected " + " or ".join(wanted[:3])


def validate_section(where: str, model: type[BaseModel], table: Any) -> BaseModel:
    """Validate a plain table against a pydantic model with key-path errors."""
    if not isinstance(table, dict):
        raise StudyFileError(f"{where}: must be a table, got {type(table).__name__}")
    try:
        return model.model_validate(table)
    except ValidationError as exc:
        raise StudyFileError(format_validation_error(where, exc, list(model.model_fields)))
