"""Run a study: prepare storage, start workers, show progress, write results.

The orchestrating process never trains: it owns the storage set-up, the
lifecycle hooks ``harness_study_start`` / ``harness_study_end``, the progress
report and the results files (rewritten after every trial), and it has the best
trial(s) measured once on the test split when the study ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for_exits
from pathlib import Path
from typing import Any

from harness.backends import get_backend
from harness.backends.base import WorkerTask
from harness.context import StudyContext
from harness.errors import HarnessError
from harness.evaluate import (
    chosen_trials,
    evaluate_in_process_or_child,
    still_to_measure,
    testable,
)
from harness.logs import log_to_file
from harness.options import RunOptions, apply_options
from harness.plugins import HarnessPlugins
from harness.progress import TrialFeed
from harness.quiet import start_tensorflow
from harness.results import (
    BEST_CARD_FILE,
    BEST_FILE,
    BEST_MODEL_FILE,
    FINISHED_STATES,
    HISTORIES_FILE,
    MODELS_DIR,
    TABLE_FILE,
    TEST_FILE,
    build_table,
    counted_mask,
    finished_counted,
    make_folder,
    read_meta,
    read_table_file,
    read_test_results,
    resolve_storage,
    stored_storage,
    write_meta,
    write_results,
)
from harness.resume import check_resumes_same_study, study_definition
from harness.run_marker import marking_the_run
from harness.study import StudySpec
from harness.workers import (
    EXIT_RECYCLE,
    WorkerJob,
    WorkerLauncher,
    WorkerSlot,
    configure_tensorflow,
    discover_gpus,
    parse_devices,
    plan_workers,
)

log = logging.getLogger(__name__)

#: A worker killed from outside is replaced; this many deaths in one run stop the study.
MAX_WORKER_CRASHES = 5
#: Exit codes of ``harness run`` (the table in the README): 0 the study met its budget
#: with at least one complete trial, 1 every trial failed, 2 bad input, 3 this machine's
#: deadline passed while trials of the study still ran on other machines, 130 Ctrl-C.
EXIT_ALL_FAILED = 1
EXIT_OTHERS_RUNNING = 3
EXIT_INTERRUPTED = 130
#: The reason an interrupted trial records (and re-runs under).
INTERRUPTED_BY_USER = "interrupted by the user"
#: What a Ctrl-C stopped (``StudyOutcome.stopped``): a running trial, the run between two
#: trials, the test split's measurement after every trial had finished, or nothing left.
STOPPED_TRIAL = "trial"
STOPPED_BETWEEN_TRIALS = "between trials"
STOPPED_TEST_SPLIT = "test split"
STOPPED_AFTER_THE_END = "after the end"

#: How often the supervisor reads the storage for progress while no worker exits.
POLL_SECONDS = 0.5
#: How often a machine with nothing left to run reads the storage while the budget's
#: last trials run on other machines (and takes over those whose heartbeats stopped).
WAIT_SECONDS = 2.0

__all__ = [
    "RunOptions",
    "StudyOutcome",
    "apply_options",
    "run_study",
    "study_meta",
    "workers_started_early",
]


@dataclass
class StudyOutcome:
    """What a finished (or interrupted) run produced."""

    run_dir: Path
    table: Any
    spec: StudySpec
    interrupted: bool = False
    tested: dict[int, dict[str, float]] = field(default_factory=dict)
    #: What a Ctrl-C stopped (one of the ``STOPPED_*`` values), None when not interrupted.
    stopped: str | None = None

    @property
    def exit_code(self) -> int:
        """0: at least one trial completed; 1: the study ended without a complete trial
        (every trial failed); 3: this machine stopped (its deadline) while trials still ran
        on other machines; 130: interrupted by the user."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.running_elsewhere:
            return EXIT_OTHERS_RUNNING
        table = self.table
        if table.empty or not (table["state"] == "complete").any():
            return EXIT_ALL_FAILED
        return 0

    @property
    def running_elsewhere(self) -> int:
        """Trials of the budget still running (on other machines: this one's have ended)
        when this machine stopped short of the budget; 0 once it is met."""
        table = self.table
        if self.interrupted or table.empty:
            return 0
        counted = table[counted_mask(table)]
        if finished_counted(table).sum() >= self.spec.study.trials:
            return 0
        return int((counted["state"] == "running").sum())


def study_meta(
    spec: StudySpec,
    storage: str,
    overrides: dict[str, Any] | None = None,
    run_dir: Path | None = None,
) -> dict[str, Any]:
    """What ``study.json`` records so that ``show``, ``report`` and TensorBoard need no TOML
    (and ``harness evaluate`` can re-read the study with the same ``--set`` values)."""
    return {
        "name": spec.name,
        "study_file": str(Path(spec.path).resolve()),  # evaluate and export run from anywhere
        "backend": spec.study.backend,
        "storage": stored_storage(run_dir, storage) if run_dir else storage,
        "trials": spec.study.trials,
        "objectives": [o.model_dump() for o in spec.objectives],
        **study_definition(spec),  # components, literals, searched
        "overrides": dict(overrides or {}),
        "profile": spec.profile,
        "smoke": spec.smoke,  # harness evaluate measures a smoke-sized test split too
        "enqueued": len(spec.enqueue),  # hand-picked trials: the first ones (harness.noise)
    }


@contextlib.contextmanager
def workers_started_early(spec: StudySpec, options: RunOptions) -> Iterator[WorkerLauncher | None]:
    """Start the run's first worker now, so that it imports TensorFlow while this process
    checks the data and prepares the storage; pass what this yields to ``run_study``.

    Yields ``None`` for an in-process run. On leaving, a worker that was never handed its
    job (the data check failed, the study had nothing left to run) is stopped.
    """
    if options.in_process:
        yield None
        return
    spec = apply_options(spec, options)
    launcher = WorkerLauncher(plan_slots(spec, get_backend(spec), options))
    launcher.start_early(_worker_job(spec, options, launcher.slots[0], storage="", deadline=None))
    try:
        yield launcher
    finally:
        launcher.close()


def plan_slots(spec: StudySpec, backend: Any, options: RunOptions) -> list[WorkerSlot]:
    """The run's worker slots: one per ``workers``, pinned to ``--devices`` or the GPUs
    found, plus whatever processes the backend adds (KerasTuner's chief)."""
    slots = plan_workers(spec.study.workers, parse_devices(options.devices, discover_gpus()))
    if hasattr(backend, "distributed_slots"):  # e.g. KerasTuner's chief + workers
        slots = backend.distributed_slots(spec, slots)
    return slots


def _worker_job(
    spec: StudySpec, options: RunOptions, slot: WorkerSlot, storage: str, deadline: float | None
) -> WorkerJob:
    return WorkerJob(
        study_path=str(spec.path),
        options=options,
        storage=storage,
        budget=spec.study.trials,
        deadline=deadline,
        max_trials=spec.study.recycle_after or None,
        memory_limit_mb=spec.study.max_worker_memory_mb,
        slot=slot,
    )


def run_study(
    spec: StudySpec,
    plugins: HarnessPlugins,
    options: RunOptions,
    launcher: WorkerLauncher | None = None,
) -> StudyOutcome:
    """Run (or resume) a study until its budget or timeout; evaluate the best trial(s) once
    on the test split; return the results table.

    ``launcher`` is what ``workers_started_early`` yielded, if the caller used it.
    ``trials.csv``, ``histories.json`` and ``best.json`` are rewritten after every trial.
    """
    if options.in_process:
        start_tensorflow(configure_tensorflow)
    # Otherwise this process never imports TensorFlow: workers train, a spawned
    # process measures the test split, and the GPUs stay theirs.
    spec = apply_options(spec, options)
    run_dir = options.runs_dir / spec.name
    backend = get_backend(spec)
    previous, finished = _previous_definition(backend, spec, run_dir, options.storage)
    for notice in check_resumes_same_study(
        spec.name, previous, study_definition(spec), finished
    ):
        log.warning("%s", notice)
    with _new_run_dir_removed_on_error(run_dir):
        storage = backend.prepare(spec, run_dir, options.storage, retry=options.retry_failed)
    records = backend.records(spec, storage)
    _move_stale_results(run_dir, records)
    with marking_the_run(run_dir):
        return _run_prepared(
            spec, plugins, options, launcher, backend, storage, run_dir, records
        )


def _run_prepared(
    spec: StudySpec,
    plugins: HarnessPlugins,
    options: RunOptions,
    launcher: WorkerLauncher | None,
    backend: Any,
    storage: str,
    run_dir: Path,
    records: list,
) -> StudyOutcome:
    """``run_study`` once the storage is prepared (``records``: its trials then): the
    trials, the table, the test split."""
    log_path = log_to_file(run_dir)
    write_meta(run_dir, study_meta(spec, storage, options.overrides, run_dir))
    context = StudyContext(spec, run_dir)
    plugins.study_start(context)
    deadline = time.time() + spec.study.timeout if spec.study.timeout else None
    feed = TrialFeed(spec, run_dir, show_progress=options.show_progress, log_path=log_path)
    feed.prime(records)
    started_with = records
    interrupted = False
    tested: dict[int, dict[str, float]] = {}
    try:
        if options.in_process:
            while True:
                backend.run_worker(
                    context,
                    plugins,
                    WorkerTask(
                        storage,
                        budget=spec.study.trials,
                        deadline=deadline,
                        on_trial_done=lambda: feed.update(backend.records(spec, storage)),
                    ),
                )
                if not _wait_for_other_machines(spec, backend, storage, deadline, feed):
                    break
        else:
            _supervise(spec, backend, options, storage, deadline, feed, launcher)
    except KeyboardInterrupt:
        interrupted = True
        if options.in_process:
            backend.fail_orphans(spec, storage, {os.getpid(): INTERRUPTED_BY_USER})
        if hasattr(backend, "requeue_interrupted"):  # its parameters run first on resume
            backend.requeue_interrupted(spec, storage)
    finally:
        records = backend.records(spec, storage)
        feed.update(records)  # lines for trials that ended since the last poll
        feed.close()
        table = _write_table(spec, records, run_dir)
    if not interrupted:
        try:
            tested = evaluate_in_process_or_child(
                spec, plugins, options, run_dir, _chosen(spec, table), _evaluation_env(options)
            )
        except KeyboardInterrupt:
            interrupted = True
        if tested or interrupted:
            table = _write_table(spec, backend.records(spec, storage), run_dir)
    stopped = None
    if interrupted:
        records = backend.records(spec, storage)
        stopped = _what_was_stopped(spec, started_with, records, run_dir, table)
        if stopped in (STOPPED_TEST_SPLIT, STOPPED_AFTER_THE_END):
            tested = _measured(run_dir, _chosen(spec, table))
    plugins.study_end(context, table)
    return StudyOutcome(run_dir, table, spec, interrupted, tested, stopped)


def _chosen(spec: StudySpec, table: Any) -> list[int]:
    """The trials the test split measures (see ``harness.evaluate.chosen_trials``)."""
    objectives = [o.model_dump() for o in spec.objectives]
    return chosen_trials(table, objectives, enqueued=len(spec.enqueue))


def _measured(run_dir: Path, numbers: list[int]) -> dict[int, dict[str, float]]:
    """The test figures ``test.json`` holds for ``numbers``."""
    tests = read_test_results(run_dir)
    return {n: tests[n] for n in numbers if n in tests}


def _what_was_stopped(
    spec: StudySpec, started_with: list, records: list, run_dir: Path, table: Any
) -> str:
    """What a Ctrl-C stopped: a trial (one is newly marked interrupted), the run between
    trials (the budget is not met), the test split's measurement (the budget is met and a
    chosen trial is not measured yet), or nothing (it came after the end)."""
    earlier = {r.number for r in started_with if _interrupted(r)}
    if any(_interrupted(r) and r.number not in earlier for r in records):
        return STOPPED_TRIAL
    done = _finished_counted(records)
    if done < spec.study.trials:
        return STOPPED_BETWEEN_TRIALS
    if still_to_measure(run_dir, testable(run_dir, _chosen(spec, table))):
        return STOPPED_TEST_SPLIT
    return STOPPED_AFTER_THE_END


def _interrupted(record: Any) -> bool:
    return record.state == "failed" and str(record.fail_reason or "").startswith(
        INTERRUPTED_BY_USER
    )


def _previous_definition(
    backend: Any, spec: StudySpec, run_dir: Path, storage_override: str | None
) -> tuple[dict[str, Any], bool]:
    """What the study's earlier runs trained, and whether any of their trials finished:
    from the storage where the backend keeps it (shared storage: the same answer on every
    machine that joins), else from the run directory's ``study.json``."""
    if hasattr(backend, "stored_definition"):
        stored, finished = backend.stored_definition(spec, run_dir, storage_override)
        if stored:
            return stored, finished
    recorded = _recorded_meta(run_dir)
    return recorded, _has_finished(run_dir, recorded)


def _recorded_meta(run_dir: Path) -> dict[str, Any]:
    """The run directory's ``study.json``; empty when there is none or it is unreadable
    (it is rewritten below, as for a new study)."""
    try:
        return read_meta(run_dir)
    except HarnessError:
        return {}


def _has_finished(run_dir: Path, meta: dict[str, Any]) -> bool:
    """Whether the run directory's table holds a complete or pruned trial (a table that
    exists but cannot be read counts as holding one) whose storage is still there (a
    journal moved away takes its trials with it)."""
    stored = str(meta.get("storage") or "optuna.journal")
    if meta.get("backend", "optuna") == "optuna" and resolve_storage(run_dir, stored) is None:
        return False
    table_file = run_dir / TABLE_FILE
    try:
        table = read_table_file(table_file)
    except HarnessError:
        return table_file.exists()
    return bool(table["state"].isin(["complete", "pruned"]).any())


#: Result files derived from the storage: stale once the storage no longer has the study.
DERIVED_RESULTS = (
    TABLE_FILE, BEST_FILE, BEST_MODEL_FILE, BEST_CARD_FILE, HISTORIES_FILE, TEST_FILE, MODELS_DIR
)


def _move_stale_results(run_dir: Path, records: list) -> None:
    """Results of an earlier study whose storage is gone (its journal moved away, as the
    corrupt-journal message advises) would be shown and exported as this study's until
    a trial replaced them: with no complete trial in the storage, move them aside."""
    if any(record.state == "complete" for record in records):
        return
    stale = [name for name in DERIVED_RESULTS if (run_dir / name).exists()]
    if BEST_FILE not in stale and BEST_MODEL_FILE not in stale:
        return
    aside = run_dir / f"stale-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir(exist_ok=True)
    for name in stale:
        (run_dir / name).rename(aside / name)
    log.warning(
        "%s held the results of an earlier study that its storage no longer has (the journal "
        "was moved or replaced); moved %s to %s", run_dir, ", ".join(stale), aside.name,
    )


@contextlib.contextmanager
def _new_run_dir_removed_on_error(run_dir: Path):
    """Create ``run_dir``; if what follows refuses the run (a storage that does not match,
    an unreachable database), remove it again when this call created it."""
    created = run_dir
    while not created.parent.exists() and created.parent != created:
        created = created.parent  # the first folder this run would create
    created = None if run_dir.exists() else created
    make_folder(run_dir, "--runs-dir")
    try:
        yield
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _write_table(spec: StudySpec, records: list, run_dir: Path):
    objectives = [o.model_dump() for o in spec.objectives]
    table = build_table(records, objectives)
    return write_results(run_dir, table, objectives)


def _evaluation_env(options: RunOptions) -> dict[str, str]:
    """The environment of the first worker slot (its device) for the evaluation process."""
    if options.in_process:
        return {}
    slots = plan_workers(1, parse_devices(options.devices, discover_gpus()))
    return dict(slots[0].env)


def _supervise(
    spec,
    backend,
    options: RunOptions,
    storage: str,
    deadline: float | None,
    feed: TrialFeed,
    launcher: WorkerLauncher | None = None,
) -> None:
    """Keep ``workers`` processes pulling trials until the budget is met; report each trial."""
    budget = spec.study.trials
    launcher = launcher or WorkerLauncher(plan_slots(spec, backend, options))
    slots, errors = launcher.slots, launcher.errors
    running: dict[str, Any] = {}
    crashes = 0

    try:
        while True:
            records = backend.records(spec, storage)
            feed.update(records)
            done = _finished_counted(records)
            _raise_worker_error(errors, running)
            finished = done >= budget or (deadline is not None and time.time() >= deadline)
            if hasattr(backend, "search_over"):  # the backend ended early (grid exhausted)
                finished = finished or backend.search_over(spec, storage)
            for slot in slots:
                process = running.get(slot.worker_id)
                if process is not None and process.is_alive():
                    continue
                if process is not None and process.exitcode == 0:
                    continue  # budget or deadline reached from this worker's view: done
                if process is not None and process.exitcode not in (0, EXIT_RECYCLE):
                    _raise_worker_error(errors, running, wait=2.0)
                    crashes += 1
                    reason = (
                        f"interrupted: worker {slot.worker_id} died "
                        f"(exit code {process.exitcode})"
                    )
                    log.warning("%s; its running trial will be run again", reason)
                    backend.fail_orphans(spec, storage, {process.pid: reason})
                    if crashes > MAX_WORKER_CRASHES:
                        raise HarnessError(
                            f"workers died {crashes} times (last: {reason}); "
                            f"see {feed.log_path or 'the log above'}; lower batch_size or "
                            "image_size if memory ran out"
                        )
                running.pop(slot.worker_id, None)
                if not finished:
                    running[slot.worker_id] = launcher.start(
                        _worker_job(spec, options, slot, storage, deadline)
                    )
            idle = not any(p.is_alive() for p in running.values())
            all_done = len(running) == len(slots) and all(
                p.exitcode == 0 for p in running.values()
            )
            if idle and (finished or all_done):
                if finished or not _wait_for_other_machines(
                    spec, backend, storage, deadline, feed
                ):
                    break
                running.clear()  # a trial of the budget is free again: start the workers
                continue
            alive = [p.sentinel for p in running.values() if p.is_alive()]
            if alive:  # wakes as soon as a worker exits
                wait_for_exits(alive, timeout=POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        _stop_workers(running, interrupt=True)
        backend.fail_orphans(
            spec, storage, {p.pid: INTERRUPTED_BY_USER for p in running.values() if p.pid}
        )
        raise
    except BaseException:
        _stop_workers(running, interrupt=False)
        raise
    feed.update(backend.records(spec, storage))


def _finished_counted(records: list) -> int:
    """Trials that finished and count toward the budget."""
    return sum(1 for r in records if r.state in FINISHED_STATES and r.counted)


def _wait_for_other_machines(
    spec, backend, storage: str, deadline: float | None, feed: TrialFeed
) -> bool:
    """While this machine has nothing left to run but the budget's last trials run on
    other machines, read the storage every ``WAIT_SECONDS``: the study ends when they
    finish, not before. A trial whose machine stopped sending heartbeats is marked
    interrupted and enqueued again (``backend.fail_stale``). True as soon as a trial of
    the budget is free to run here; False once the budget is met, the deadline passed
    or nothing runs elsewhere. A backend without heartbeats (no ``fail_stale``) never
    waits."""
    if not hasattr(backend, "fail_stale"):
        return False
    budget = spec.study.trials
    while True:
        backend.fail_stale(spec, storage)
        records = backend.records(spec, storage)
        feed.update(records)
        done = _finished_counted(records)
        running = sum(1 for r in records if r.counted and r.state == "running")
        if done >= budget:
            return False
        if done + running < budget:
            return True
        left = None if deadline is None else deadline - time.time()
        if left is not None and left <= 0:
            return False
        time.sleep(WAIT_SECONDS if left is None else min(WAIT_SECONDS, left))


def _stop_workers(running: dict[str, Any], interrupt: bool) -> None:
    """End every worker: on Ctrl-C let each mark its trial interrupted (SIGINT, a few
    seconds), then terminate whatever is left, and reap them all."""
    processes = [p for p in running.values() if p.pid is not None]
    if interrupt:
        stop_at = time.time() + 2.0
        for process in processes:
            process.join(max(0.0, stop_at - time.time()))
        for process in processes:
            if process.is_alive():
                try:
                    os.kill(process.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        stop_at = time.time() + 10.0
        for process in processes:
            process.join(max(0.0, stop_at - time.time()))
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(10)


def _raise_worker_error(errors, running, wait: float = 0.0) -> None:
    try:
        worker_id, kind, message = errors.get(timeout=wait) if wait else errors.get_nowait()
    except queue.Empty:
        return
    _stop_workers(running, interrupt=False)
    raise HarnessError(f"worker {worker_id} stopped the study: {message.strip()}")
