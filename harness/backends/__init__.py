"""Search backends. A backend proposes parameters, prunes, persists and resumes; every
trial it proposes runs through :func:`harness.trial.run_trial`.

A backend module provides ``prepare``, ``run_worker``, ``progress``, ``records``,
``fail_orphans`` and ``orphaned_pids``; optionally ``distributed_slots`` (rewrite the
worker slots, e.g. KerasTuner's chief + workers) and ``search_over`` (the search ended
before the budget, e.g. a finished grid).
"""

from __future__ import annotations

from types import ModuleType

from harness.study import StudySpec


def get_backend(spec: StudySpec) -> ModuleType:
    """The backend module named by ``[study].backend``."""
    import importlib

    return importlib.import_module(f"harness.backends.{spec.study.backend}")
