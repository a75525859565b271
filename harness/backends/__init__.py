"""Search backends. A backend proposes parameters, prunes, persists and resumes; every
trial it proposes runs through :func:`harness.trial.run_trial`. Its contract is
:class:`harness.backends.base.SearchBackend`; built-ins and entry-point backends are
found by :func:`harness.backends.base.load_backend`.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - types only
    from harness.study import StudySpec


def check_backend(spec: StudySpec) -> StudySpec:
    """Run the backend's own ``check_spec`` (what it cannot run as written, e.g. a
    multi-objective KerasTuner study), raising StudyFileError naming the file; returns
    the spec. ``harness validate``, ``run`` and ``worker`` call it after loading a study."""
    from harness.errors import HarnessError, StudyFileError

    check = getattr(get_backend(spec), "check_spec", None)
    if check is not None:
        try:
            check(spec)
        except HarnessError as exc:
            raise StudyFileError(f"{spec.path}: {exc}") from None
    return spec


def get_backend(spec: StudySpec) -> ModuleType:
    """The backend module named by ``[study].backend`` (see :mod:`harness.backends.base`)."""
    from harness.backends.base import load_backend

    return load_backend(spec.study.backend)
