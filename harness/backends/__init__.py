"""Search backends. A backend proposes parameters, prunes, persists and resumes; every
trial it proposes runs through :func:`harness.trial.run_trial`.

A backend module provides ``prepare``, ``run_worker``, ``progress`` and ``records``.
"""

from __future__ import annotations

from types import ModuleType

from harness.study import StudySpec


def get_backend(spec: StudySpec) -> ModuleType:
    """The backend module named by ``[study].backend``."""
    from harness.backends import optuna as optuna_backend

    return {"optuna": optuna_backend}[spec.study.backend]
