"""The KerasTuner project directory and the harness's trial records in it.

The project (``runs/<study>/kerastuner/<study>`` unless ``--storage`` names another
directory) is KerasTuner's own (``oracle.json``, ``tuner0.json``,
``trial_<id>/trial.json``), with the harness's per-trial record next to each trial
(``trial_<id>/harness.json``), the tuner the project was created with
(``harness_project.json``) and, when the oracle ended the search before the budget,
``harness_stopped.json``. Results are read from these files alone.
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import Any

from harness.backends.kerastuner.config import config
from harness.backends.kerastuner.space import EPOCHS
from harness.devices import process_alive
from harness.errors import HarnessError
from harness.files import write_text_atomic
from harness.results import TrialRecord
from harness.resume import study_definition

HOST = socket.gethostname()
PROJECTS_DIR = "kerastuner"
RECORD_FILE = "harness.json"
PROJECT_FILE = "harness_project.json"
STOPPED_FILE = "harness_stopped.json"
CHIEF_DONE_FILE = "harness_chief_done.json"
#: What every trial of the study trains (``harness.resume.study_definition``).
DEFINITION_FILE = "harness_definition.json"
BEST_LOCK = ".harness_best.lock"
FINISHED = ("complete", "pruned", "failed")
_STATES = {"COMPLETED": "complete", "FAILED": "failed", "INVALID": "failed", "RUNNING": "running"}
#: Record flag: the trial's run was cut short from outside (worker killed, Ctrl-C).
#: KerasTuner hands a trial left running out again when the search resumes; the runner
#: re-runs it in place up to ``[study].max_retries`` times (counted in ``RETRIES``).
ORPHANED = "orphaned"
RETRIES = "retries"
#: Record flag: the trial stopped the study (input no trial can get past). It never
#: trained: ``prepare`` hands it back to KerasTuner's retry, with no limit.
STOPPED_STUDY = "stopped_study"
#: Backend capability read by ``harness run``'s Ctrl-C notice: interrupted trials re-run.
RERUNS_INTERRUPTED = True


def runs_again(record: dict[str, Any], max_retries: int) -> bool:
    """Whether this failed trial will run again by itself (interrupted with re-runs left,
    or it stopped the study), so that it does not count toward the budget yet."""
    if record.get("state") != "failed":
        return False
    if record.get(STOPPED_STUDY):
        return True
    return bool(record.get(ORPHANED)) and int(record.get(RETRIES) or 0) < max_retries


def finished_count(records: list[dict[str, Any]], max_retries: int) -> int:
    """Trials that count toward the budget: finished, and not about to run again."""
    return sum(
        1 for r in records if r.get("state") in FINISHED and not runs_again(r, max_retries)
    )


def project_path(spec, run_dir: Path, override: str | None = None) -> Path:
    """The KerasTuner project directory: ``--storage`` or ``runs/<study>/kerastuner/<study>``."""
    if override:
        if "://" in override:
            raise HarnessError(
                f"--storage {override}: the kerastuner backend keeps its project in a "
                "directory; give a path (a shared filesystem for several machines)"
            )
        return Path(override)
    return run_dir / PROJECTS_DIR / spec.name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, default=str) + "\n")


def _record_path(project: Path, trial_id: str) -> Path:
    return project / f"trial_{trial_id}" / RECORD_FILE


def _stored_records(project: Path, spec=None) -> list[dict[str, Any]]:
    """Every trial's record: ours (``harness.json``), else one read from ``trial.json``."""
    found = []
    for trial_dir in sorted(project.glob("trial_*")):
        record = _read_json(trial_dir / RECORD_FILE)
        if not record and spec is not None:
            record = _record_from_kerastuner(trial_dir / "trial.json", spec)
        if record:
            found.append(record)
    return sorted(found, key=lambda r: r["number"])


def _record_from_kerastuner(path: Path, spec) -> dict[str, Any]:
    """A trial that never reached the harness's runner (or whose record is missing)."""
    trial = _read_json(path)
    state = _STATES.get(trial.get("status"))
    if state is None or not str(trial.get("trial_id", "")).isdigit():
        return {}
    values = trial.get("hyperparameters", {}).get("values", {})
    searched = spec.space.searched_names()
    params = {k: v for k, v in values.items() if k in searched}
    if "tuner/epochs" in values and EPOCHS in searched:
        params[EPOCHS] = values["tuner/epochs"]
    metric = spec.objectives[0].metric
    return {
        "number": int(trial["trial_id"]),
        "trial_id": trial["trial_id"],
        "state": state,
        "values": {metric: trial.get("score") if state == "complete" else None},
        "params": params,
        "fail_reason": _last_line(trial.get("message")) if state == "failed" else None,
    }


def _last_line(message: str | None) -> str | None:
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    return last.split(": ", 1)[1] if "Error: " in last else last


def _check_project(spec, project: Path) -> None:
    """The project must have been created with the same tuner and objective."""
    objective = spec.objectives[0]
    wanted = {
        "tuner": config(spec).tuner,
        "objective": objective.metric,
        "direction": objective.direction,
    }
    stored = _read_json(project / PROJECT_FILE)
    if stored:
        changed = {k: stored.get(k) for k, v in wanted.items() if stored.get(k) != v}
        if changed:
            now = {k: wanted[k] for k in changed}
            raise HarnessError(
                f"the KerasTuner project {project} was created with {changed}, the study now "
                f"says {now}; rename the study or use another --runs-dir"
            )
        return
    _write_json(project / PROJECT_FILE, wanted)


def progress(spec, url: str) -> tuple[int, float | None]:
    """(finished trials, best value of the objective so far)."""
    stored = _stored_records(Path(url), spec)
    done = finished_count(stored, spec.study.max_retries)
    metric = spec.objectives[0].metric
    values = [
        r["values"].get(metric)
        for r in stored
        if r.get("state") == "complete" and r.get("values", {}).get(metric) is not None
    ]
    if not values:
        return done, None
    pick = max if spec.objectives[0].direction == "maximize" else min
    return done, pick(values)


def records(spec, url: str) -> list:
    """Every KerasTuner trial as a backend-agnostic :class:`harness.results.TrialRecord`."""
    metric_names = [o.metric for o in spec.objectives]
    out = []
    for record in _stored_records(Path(url), spec):
        values = record.get("values", {})
        again = runs_again(record, spec.study.max_retries)
        out.append(
            TrialRecord(
                number=record["number"],
                state=record.get("state", "running"),
                values={m: values.get(m) for m in metric_names},
                params=dict(record.get("params", {})),
                metrics=dict(record.get("metrics", {})),
                duration_s=record.get("duration_s"),
                worker=record.get("worker"),
                device=record.get("device"),
                fail_reason=_reason(record, again),
                history=dict(record.get("history", {})),
                counted=not again,
            )
        )
    return out


def _reason(record: dict[str, Any], again: bool) -> str | None:
    reason = record.get("fail_reason")
    if not reason or record.get("state") != "failed":
        return reason
    if record.get(STOPPED_STUDY):
        return f"{reason} (stopped the study; not counted, runs again once it is fixed)"
    if again:
        return f"{reason} (not counted; runs again in place when the study resumes)"
    if record.get(ORPHANED):
        return f"{reason} (re-runs exhausted: [study].max_retries)"
    return reason


def fail_orphans(spec, url: str, reason_by_pid: dict[int, str]) -> int:
    """Mark running trials of dead worker processes (by pid, this host) as failed.

    KerasTuner hands such a trial out again when the search resumes (its oracle retries
    a trial left running); the runner then re-runs it in place while ``[study].max_retries``
    allows, else ends it as failed. Returns how many trials were marked.
    """
    marked = 0
    for path in Path(url).glob(f"trial_*/{RECORD_FILE}"):
        record = _read_json(path)
        pid = record.get("pid")
        if record.get("state") == "running" and record.get("host") == HOST and pid in reason_by_pid:
            record.update(state="failed", fail_reason=reason_by_pid[pid], **{ORPHANED: True})
            _write_json(path, record)
            marked += 1
    return marked


def orphaned_pids(spec, url: str) -> dict[int, str]:
    """Pids on this host that own running trials but no longer exist (a killed earlier run)."""
    return {
        r["pid"]: "interrupted: its worker process ended before the trial finished"
        for r in _stored_records(Path(url))
        if _orphaned(r)
    }


def _orphaned(record: dict[str, Any]) -> bool:
    """A running trial whose worker process, on this host, no longer exists."""
    pid = record.get("pid")
    return (
        record.get("state") == "running"
        and record.get("host") == HOST
        and isinstance(pid, int)
        and not process_alive(pid)
    )


def stored_definition(
    spec, run_dir: Path, storage_override: str | None = None
) -> tuple[dict[str, Any], bool]:
    """The definition the project records for the study, and whether trials were trained
    under it: one finished (complete or pruned), or one running now, which may be on
    another machine sharing the project folder (a running trial whose process on this
    host is gone does not count). ``({}, False)`` for a project without one. Reads only."""
    project = project_path(spec, run_dir, storage_override)
    definition = _read_json(project / DEFINITION_FILE)
    if not definition:
        return {}, False
    trained = any(
        r.get("state") in ("complete", "pruned")
        or (r.get("state") == "running" and not _orphaned(r))
        for r in _stored_records(project)
    )
    return definition, trained


def record_definition(spec, project: Path) -> None:
    """Keep what the study's trials train in the project folder (``prepare`` does), for
    :func:`stored_definition`."""
    definition = study_definition(spec)
    path = project / DEFINITION_FILE
    if _read_json(path) != definition:
        _write_json(path, definition)


def retry_failed(spec, url: str) -> int:
    """Queue every failed trial for KerasTuner's own retry (``harness run --retry-failed``).

    KerasTuner re-runs a retried trial in place: same number, same parameters, and
    its new outcome replaces the failure (until then its state reads ``waiting``).
    It does not count toward the budget twice. Call it while no process holds the
    oracle (the orchestrator does, before starting any worker).
    """
    failed = [r for r in _stored_records(Path(url), spec) if r.get("state") == "failed"]
    return _retry_in_place(Path(url), failed)


def requeue_stopped(spec, url: str) -> int:
    """Hand every trial that stopped the study back to KerasTuner's retry, as
    :func:`retry_failed` does: it never trained, so it runs again (same number, same
    parameters) once the study is run again. Call it while no process holds the oracle."""
    stopped = [
        r for r in _stored_records(Path(url)) if r.get("state") == "failed" and r.get(STOPPED_STUDY)
    ]
    return _retry_in_place(Path(url), stopped)


def _retry_in_place(project: Path, records: list[dict[str, Any]]) -> int:
    """Queue these trials for KerasTuner's own retry: the oracle hands them out first, and
    each re-run replaces its trial's outcome (the record reads ``waiting`` until then)."""
    ids = [r["trial_id"] for r in records if r.get("trial_id") is not None]
    state = _read_json(project / "oracle.json")
    if not state or not ids:
        return 0
    for trial_id in ids:
        path = _record_path(project, trial_id)
        record = _read_json(path)
        if record:
            record.update(state="waiting", pid=None, **{ORPHANED: False, STOPPED_STUDY: False})
            _write_json(path, record)
    state["retry_queue"] = [*[t for t in state["retry_queue"] if t not in ids], *reversed(ids)]
    state["end_order"] = [t for t in state["end_order"] if t not in ids]
    # A trial cut short is still "ongoing" there, and KerasTuner's reload queues every
    # ongoing trial again: left in both, it would run twice.
    ongoing = state.get("ongoing_trials") or {}
    state["ongoing_trials"] = {k: v for k, v in ongoing.items() if v not in ids}
    _write_json(project / "oracle.json", state)
    return len(ids)


def search_over(spec, url: str) -> bool:
    """True when the oracle ended the search before the budget (grid done, space exhausted,
    too many failures in a row): the orchestrator then stops restarting workers."""
    return (Path(url) / STOPPED_FILE).is_file()


@contextlib.contextmanager
def _locked(path: Path):
    import fcntl  # POSIX only: imported here so the module imports everywhere

    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def completed_values(project: Path, spec) -> tuple[dict[int, list[float]], set[int]]:
    """The objective values of every complete trial (``number -> values``) and the numbers
    of every finished one, as :func:`harness.backends.keep.keep_trial_model` takes them."""
    done: dict[int, list[float]] = {}
    finished: set[int] = set()
    for record in _stored_records(project):
        if record.get("state") in ("complete", "pruned", "failed"):
            finished.add(record["number"])
        values = [(record.get("values") or {}).get(o.metric) for o in spec.objectives]
        if record.get("state") == "complete" and None not in values:
            done[record["number"]] = [float(v) for v in values]
    return done, finished
