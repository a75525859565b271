"""Command-line overrides of ``harness run`` and ``harness worker``, folded into a spec.

Workers and the evaluation process re-read the study file and apply the same
options, so that every process runs the same spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import HarnessError
from harness.smoke import smoke_spec
from harness.study import StudySpec


@dataclass
class RunOptions:
    """Command-line overrides of ``harness run``."""

    runs_dir: Path = Path("runs")
    trials: int | None = None
    timeout: float | None = None
    seed: int | None = None
    workers: int | None = None
    devices: str | None = None
    storage: str | None = None
    backend: str | None = None
    recycle_after: int | None = None
    retry_failed: bool = False
    extra_plugins: tuple[str, ...] = ()
    in_process: bool = False
    smoke: bool = False
    show_progress: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)
    profile: str | None = None


def apply_options(spec: StudySpec, options: RunOptions) -> StudySpec:
    """Fold ``--smoke``, ``--trials``, ``--timeout``, ``--seed``, ``--workers``, ``--backend``
    into the spec.

    Workers call this too, on the study file they re-read, so that every
    process runs the same spec.
    """
    if options.smoke:
        spec = smoke_spec(spec)
    update = {
        key: value
        for key, value in {
            "timeout": options.timeout,
            "seed": options.seed,
            "workers": options.workers,
            "recycle_after": options.recycle_after,
            "backend": options.backend,
            "trials": 1 if options.smoke else options.trials,
        }.items()
        if value is not None
    }
    if update:
        spec.study = validated_study_section(spec.study, update)
    return spec


def validated_study_section(study: Any, update: dict[str, Any]) -> Any:
    """``[study]`` with the command-line values, checked by the same model as the file, so a
    flag never bypasses the study's limits; an error names the flag."""
    try:
        return type(study).model_validate({**study.model_dump(exclude_unset=True), **update})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = str(error["loc"][0]) if error["loc"] else ""
        flag = "--" + key.replace("_", "-")
        message = str(error["msg"]).removeprefix("Value error, ")
        raise HarnessError(f"{flag} {update.get(key)!r}: {message}") from None
