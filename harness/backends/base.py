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
import importlib.metadata
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from harness.errors import PluginError

ENTRY_POINT_GROUP = "harness.backends"
BUILT_IN = {"optuna": "harness.backends.optuna", "kerastuner": "harness.backends.kerastuner"}


@runtime_checkable
class SearchBackend(Protocol):
    """What the orchestrator, the workers and ``harness show`` call on a backend.

    Optional extras, used when present: ``check_spec(spec)`` (refuse a study the
    backend cannot run, raising StudyFileError), ``distributed_slots(spec, slots)``
    (rewrite the worker slots, e.g. KerasTuner's chief), ``search_over(spec, url)``
    (the search ended before the budget, e.g. a finished grid) and
    ``requeue_interrupted(spec, url)`` (re-enqueue interrupted trials now).
    """

    def prepare(
        self, spec: Any, run_dir: Path, storage_override: str | None = None, retry: bool = False
    ) -> str:
        """Create or open the study's storage before any worker starts; return its URL."""

    def run_worker(
        self,
        context: Any,
        plugins: Any,
        *,
        storage_url_: str,
        budget: int,
        deadline: float | None = None,
        max_trials: int | None = None,
        worker: str = "main",
        device: str = "cpu",
        memory_limit_mb: float | None = None,
        on_trial_done: Any = None,
    ) -> int:
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


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def backend_names() -> list[str]:
    """Every backend a study may name: the built-ins and the installed entry points."""
    return sorted(set(BUILT_IN) | set(_entry_points()))


def load_backend(name: str) -> ModuleType:
    """The backend called ``name``, checked against :class:`SearchBackend`."""
    if name in BUILT_IN:
        backend = importlib.import_module(BUILT_IN[name])
    else:
        entry = _entry_points().get(name)
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


def better(value: float, others: list[float], direction: str) -> bool:
    """Whether ``value`` beats every one of ``others`` (True when there are none)."""
    if not others:
        return True
    return value > max(others) if direction == "maximize" else value < min(others)
