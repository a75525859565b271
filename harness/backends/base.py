"""The contract of a search backend, and where backends are found.

A backend is a module (or any object) providing the functions of
:class:`SearchBackend`; the harness calls nothing else. Built-in backends are
``optuna`` and ``kerastuner``; a third-party package adds one with an entry
point in the ``harness.backends`` group::

    [project.entry-points."harness.backends"]
    mine = "mypkg.backend"

and a study selects it with ``[study].backend = "mine"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from harness.errors import PluginError
from harness.registry import BUILT_IN_BACKENDS, backend_entry_points, backend_names
from harness.study import StudySpec
from harness.validation import validate_section

__all__ = [
    "REQUIRED", "SearchBackend", "WorkerTask", "backend_config", "backend_names",
    "load_backend",
]
Config = TypeVar("Config", bound=BaseModel)


@dataclass(frozen=True)
class WorkerTask:
    """What one call of a backend's ``run_worker`` is asked to do.

    ``storage_url``: the study's storage (what ``prepare`` returned); ``budget``: trials
    the whole study counts toward (``--trials``); ``deadline``: a ``time.time()`` after
    which no trial starts; ``max_trials``: return after this many (a worker is recycled);
    ``memory_limit_mb``: return between trials once this process holds more;
    ``worker``/``device``: this worker's id and device, recorded with each trial;
    ``on_trial_done()``: called after each trial (an in-process run's results writer).
    """

    storage_url: str
    budget: int
    deadline: float | None = None
    max_trials: int | None = None
    worker: str = "main"
    device: str = "cpu"
    memory_limit_mb: float | None = None
    on_trial_done: Callable[[], None] | None = None


@runtime_checkable
class SearchBackend(Protocol):
    """What the orchestrator, the workers and ``harness show`` call on a backend.

    Optional extras, used when present: ``Config`` (the pydantic model of the
    backend's own table in a study file, named after the backend, e.g. ``[optuna]``;
    ``harness.backends.check_backend`` validates it before anything runs, and the
    backend reads it with :func:`backend_config`), ``check_spec(spec)`` (refuse a
    study the backend cannot run, raising StudyFileError), ``distributed_slots(spec, slots)``
    (rewrite the worker slots, e.g. KerasTuner's chief), ``search_over(spec, url)``
    (the search ended before the budget, e.g. a finished grid) and
    ``requeue_interrupted(spec, url)`` (re-enqueue interrupted trials now),
    ``fail_stale(spec, url)`` (mark interrupted, and enqueue again, the running trials of
    machines that stopped sending heartbeats; with it, a machine whose workers have
    nothing left to run waits while trials run elsewhere) and
    ``join_storage(spec, storage, oracle)`` (what ``harness worker`` joins, from its
    ``--storage`` and ``--oracle``), ``stored_definition(spec, run_dir, storage_override)``
    (what the study trains, as ``prepare`` recorded it in the storage, so that every
    machine that joins is checked against the same record; without it, the run
    directory's ``study.json`` is the record), and
    ``RERUNS_INTERRUPTED = True`` (a trial cut short runs again by itself when the study
    resumes, as ``requeue_interrupted`` also says: Ctrl-C's notice promises it).
    """

    def prepare(
        self, spec: Any, run_dir: Path, storage_override: str | None = None, retry: bool = False
    ) -> str:
        """Create or open the study's storage before any worker starts; return its URL."""

    def run_worker(self, context: Any, plugins: Any, task: WorkerTask) -> int:
        """Pull and run trials (each through ``harness.trial.run_trial``) until the budget,
        the deadline or ``max_trials``; return how many this call ran."""

    def records(self, spec: Any, url: str) -> list:
        """Every stored trial as a :class:`harness.results.TrialRecord`."""

    def progress(self, spec: Any, url: str) -> tuple[int, float | None]:
        """(trials counted toward the budget, best value of the first objective so far)."""

    def fail_orphans(self, spec: Any, url: str, reason_by_pid: dict[int, str]) -> int:
        """Mark the running trials of these dead worker processes (this host) as
        interrupted, with the reason; return how many."""

    def orphaned_pids(self, spec: Any, url: str) -> dict[int, str]:
        """Pids on this host that own running trials but no longer exist."""


REQUIRED = ("prepare", "run_worker", "records", "progress", "fail_orphans", "orphaned_pids")


def load_backend(name: str) -> ModuleType:
    """The backend called ``name``, checked against :class:`SearchBackend`."""
    if name in BUILT_IN_BACKENDS:
        backend = importlib.import_module(BUILT_IN_BACKENDS[name])
    else:
        entry = backend_entry_points().get(name)
        if entry is None:
            raise PluginError(
                f"unknown backend {name!r}; installed: {', '.join(backend_names())}"
            )
        try:
            backend = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken third-party backend is one line
            raise PluginError(
                f"backend {name!r} ({entry.value}) failed to import: {type(exc).__name__}: {exc}"
            ) from None
    missing = [f for f in REQUIRED if not callable(getattr(backend, f, None))]
    if missing:
        raise PluginError(
            f"backend {name!r} lacks {', '.join(missing)} (see harness.backends.base."
            "SearchBackend)"
        )
    return backend


def backend_config(spec: StudySpec, name: str, model: type[Config]) -> Config:
    """The study's ``[name]`` table validated by the backend's ``model`` (defaults for
    what the table leaves out; every default when there is no table)."""
    return validate_section(f"[{name}]", model, spec.backend_tables.get(name, {}))
