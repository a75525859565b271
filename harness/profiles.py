"""Named variants of a study file: ``[profiles.NAME]`` tables selected with ``--profile NAME``.

A profile is a bundle of ``--set`` values kept in the study file, for example a
CPU-sized variant of a course study::

    [profiles.cpu]
    dataset.limit_per_class = 150
    train.epochs = 5

``harness run study.toml --profile cpu`` applies it before the command line's
``--set`` values (which still win), and runs it as its own study,
``<name>-<profile>``, so that its trials never mix with the full study's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import StudyFileError

#: Tables whose entries are named components: a value sits one level deeper.
_NAMED_TABLES = ("augment", "callbacks")


def profile_names(raw: dict[str, Any]) -> list[str]:
    """The profiles a parsed study file declares, in file order."""
    profiles = raw.get("profiles")
    return list(profiles) if isinstance(profiles, dict) else []


def profile_assignments(raw: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    """``[profiles.NAME]`` of a parsed study file as dotted ``--set`` keys, plus
    ``study.name = "<name>-<profile>"`` unless the profile names the study itself."""
    profiles = raw.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(t, dict) for t in profiles.values()):
        raise StudyFileError(
            f"{path}: [profiles]: each profile must be a table, e.g. [profiles.cpu]"
        )
    if name not in profiles:
        declared = ", ".join(profiles) if profiles else "none"
        raise StudyFileError(
            f"--profile {name}: {path} has no [profiles.{name}] table (profiles declared: "
            f"{declared}); add one or drop --profile"
        )
    assignments = dict(_flatten(profiles[name], [], f"[profiles.{name}]"))
    study_name = (raw.get("study") or {}).get("name")
    if "study.name" not in assignments and isinstance(study_name, str):
        assignments["study.name"] = f"{study_name}-{name}"
    return assignments


def _flatten(table: dict[str, Any], prefix: list[str], where: str):
    """Yield (dotted key, value): values sit at ``table.key`` or, under ``augment`` and
    ``callbacks``, at ``table.component.key``; a value there may itself be a table (a
    search domain such as ``{int = [1, 3]}``)."""
    depth = 3 if prefix[:1] and prefix[0] in _NAMED_TABLES else 2
    for key, value in table.items():
        parts = [*prefix, key]
        if len(parts) < depth:
            if not isinstance(value, dict):
                raise StudyFileError(
                    f"{where}: {'.'.join(parts)} = {value!r} would replace a whole table; "
                    f"set keys inside it instead, e.g. train.epochs = 3"
                )
            yield from _flatten(value, parts, where)
        else:
            yield ".".join(parts), value
