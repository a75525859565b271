"""Search backends. A backend proposes parameters, prunes, persists and resumes; every
trial it proposes runs through :func:`harness.trial.run_trial`. Its contract is
:class:`harness.backends.base.SearchBackend`; built-ins and entry-point backends are
found by :func:`harness.backends.base.load_backend`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from harness.backends.base import backend_config, load_backend
from harness.errors import HarnessError, StudyFileError
from harness.registry import BUILT_IN_BACKENDS
from harness.study import StudySpec, blamed_on_set


def check_backend(spec: StudySpec, assignments: dict[str, Any] | None = None) -> StudySpec:
    """Validate the backends' own tables (``[optuna]``, ``[kerastuner]``: each with its
    backend's ``Config`` model) and run the chosen backend's ``check_spec`` (what it cannot
    run as written, e.g. a multi-objective KerasTuner study), raising StudyFileError naming
    the file, or the ``--set`` among ``assignments`` that changed the failing table; returns
    the spec. ``harness validate``, ``run`` and ``worker`` call it after loading a study."""
    chosen = spec.study.backend
    for name in spec.backend_tables:
        if name != chosen and name not in BUILT_IN_BACKENDS:
            continue  # another installed backend's table: checked when a study selects it
        model = getattr(load_backend(name), "Config", None)
        if model is None:
            raise StudyFileError(f"{spec.path}: [{name}]: backend {name!r} takes no table")
        try:
            backend_config(spec, name, model)
        except HarnessError as exc:
            raise _blamed(spec, name, exc, assignments or {}) from None
    check = getattr(get_backend(spec), "check_spec", None)
    if check is not None:
        try:
            check(spec)
        except HarnessError as exc:
            raise StudyFileError(f"{spec.path}: {exc}") from None
    return spec


def _blamed(spec: StudySpec, table: str, exc: HarnessError, assignments: dict) -> StudyFileError:
    """The error, attributed to the ``--set`` of the key it names, if there is one."""
    culprits = [
        key for key in assignments
        if key.split(".", 1)[0] == table and key.split(".", 1)[-1].split(".")[0] in str(exc)
    ]
    if culprits:
        return blamed_on_set(culprits[-1], assignments[culprits[-1]], exc)
    return StudyFileError(f"{spec.path}: {exc}")


def get_backend(spec: StudySpec) -> ModuleType:
    """The backend module named by ``[study].backend`` (see :mod:`harness.backends.base`)."""
    return load_backend(spec.study.backend)
