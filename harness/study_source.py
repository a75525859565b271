"""Where a study's plain table comes from: the TOML file, read with every problem as
one line, and the command line's ``--set KEY=VALUE`` values applied to it."""

from __future__ import annotations

import datetime
import tomllib
from pathlib import Path
from typing import Any

from harness.errors import StudyFileError

#: A study file is a few KB; anything far larger is not one (or is /dev/zero).
MAX_STUDY_FILE_BYTES = 1_000_000


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every problem into one line naming the file."""
    if path.is_dir():
        raise StudyFileError(f"{path}: is a directory; give the study's .toml file")
    if not path.exists():
        raise StudyFileError(f"{path}: no such study file")
    if not path.is_file():
        raise StudyFileError(f"{path}: not a regular file; give the study's .toml file")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_STUDY_FILE_BYTES + 1)
    except OSError as exc:
        raise StudyFileError(f"{path}: cannot read it ({exc.strerror or exc})")
    if len(data) > MAX_STUDY_FILE_BYTES:
        raise StudyFileError(f"{path}: larger than 1 MB; a study file is a short TOML text")
    try:
        # utf-8-sig: a byte-order mark (Windows Notepad writes one) is not TOML, and unseen
        return tomllib.loads(data.decode("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{path}: not valid TOML: {exc}")
    except UnicodeDecodeError:
        raise StudyFileError(f"{path}: not a UTF-8 text file")
    except RecursionError:
        raise StudyFileError(f"{path}: tables or arrays nested too deeply to be a study file")


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"dataset.path=data/x"`` -> ``("dataset.path", "data/x")``.

    The value is read as a TOML value (``3``, ``0.5``, ``true``, ``[150, 300]``,
    ``{int = [1, 3]}``); anything that is not valid TOML is taken as a string.
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise StudyFileError(
            f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. "
            "--set dataset.path=data/mnist or --set train.epochs=3"
        )
    try:
        parsed = tomllib.loads(f"value = {value.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    except RecursionError:
        raise StudyFileError(f"--set {key}: the value is nested too deeply")
    if isinstance(parsed, (datetime.date, datetime.time)):  # no study value is a TOML date
        parsed = value.strip()
    return key, parsed


def apply_assignments(raw: dict[str, Any], assignments: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (``model.units``, ``callbacks.threshold.value``) in a parsed study.

    A key set this way is also dropped from the ``[[enqueue]]`` trials: the
    command line decides its value for every trial.
    """
    enqueued = raw.get("enqueue")
    for key in assignments:
        for trial in enqueued if isinstance(enqueued, list) else []:
            _drop_key(trial, key.split("."))
    for key, value in assignments.items():
        *tables, last = key.split(".")
        node = raw
        for index, table in enumerate(tables):
            node = node.setdefault(table, {})
            if not isinstance(node, dict):
                where = ".".join(tables[: index + 1])
                raise StudyFileError(f"--set {key}: {where} is a value, not a table")
        node[last] = value
    return raw


def _drop_key(table: Any, parts: list[str]) -> None:
    if not isinstance(table, dict):
        return
    table.pop(".".join(parts), None)  # a quoted dotted key: "model.units" = 16
    if len(parts) == 1:
        table.pop(parts[0], None)
        return
    _drop_key(table.get(parts[0]), parts[1:])
