"""Run a study: prepare storage, start workers, show progress, write results.

The orchestrating process never trains: it owns the storage set-up, the
lifecycle hooks ``harness_study_start`` / ``harness_study_end``, the progress
bar and the results files.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness.backends import get_backend
from harness.context import StudyContext
from harness.errors import HarnessError
from harness.plugins import HarnessPlugins
from harness.results import build_table, write_meta, write_results
from harness.study import StudySpec
from harness.workers import (
    EXIT_RECYCLE,
    WorkerJob,
    configure_tensorflow,
    discover_gpus,
    keep_off_gpus,
    parse_devices,
    plan_workers,
    start_worker,
)

log = logging.getLogger(__name__)

#: A worker killed from outside is replaced; this many deaths in one run stop the study.
MAX_WORKER_CRASHES = 5


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


@dataclass
class StudyOutcome:
    """What a finished (or interrupted) run produced."""

    run_dir: Path
    table: Any
    spec: StudySpec
    interrupted: bool = False


def apply_options(spec: StudySpec, options: RunOptions) -> StudySpec:
    """Fold ``--smoke``, ``--trials``, ``--timeout``, ``--seed``, ``--workers``, ``--backend``
    into the spec.

    Workers call this too, on the study file they re-read, so that every
    process runs the same spec.
    """
    if options.smoke:
        from harness.smoke import smoke_spec

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
        spec.study = spec.study.model_copy(update=update)
    return spec


def study_meta(spec: StudySpec, storage: str) -> dict[str, Any]:
    """What ``study.json`` records so that ``show``, ``report`` and TensorBoard need no TOML."""
    return {
        "name": spec.name,
        "study_file": str(spec.path),
        "backend": spec.study.backend,
        "storage": storage,
        "objectives": [o.model_dump() for o in spec.objectives],
        "searched": {
            p.name: {
                "domain": p.distribution.describe(),
                "condition": p.condition.describe() if p.condition else None,
            }
            for p in spec.space.params
        },
        "literals": spec.space.literals,
    }


def run_study(spec: StudySpec, plugins: HarnessPlugins, options: RunOptions) -> StudyOutcome:
    """Run (or resume) a study until its budget or timeout; return the results table."""
    from harness.quiet import start_tensorflow

    # Lifecycle hooks in this process (e.g. TensorBoard's) use TensorFlow; only an
    # in-process run trains here, so otherwise the GPUs stay the workers'.
    start_tensorflow(configure_tensorflow if options.in_process else keep_off_gpus)
    spec = apply_options(spec, options)
    run_dir = options.runs_dir / spec.name
    run_dir.mkdir(parents=True, exist_ok=True)
    backend = get_backend(spec)
    storage = backend.prepare(spec, run_dir, options.storage, retry=options.retry_failed)
    write_meta(run_dir, study_meta(spec, storage))
    context = StudyContext(spec, run_dir)
    plugins.study_start(context)
    deadline = time.time() + spec.study.timeout if spec.study.timeout else None
    interrupted = False
    try:
        if options.in_process:
            backend.run_worker(
                context, plugins, storage_url_=storage, budget=spec.study.trials, deadline=deadline
            )
        else:
            _supervise(spec, backend, options, storage, deadline)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        table = build_table(
            backend.records(spec, storage), [o.model_dump() for o in spec.objectives]
        )
        write_results(run_dir, table, [o.model_dump() for o in spec.objectives])
    plugins.study_end(context, table)
    return StudyOutcome(run_dir, table, spec, interrupted)


def _supervise(spec, backend, options: RunOptions, storage: str, deadline: float | None) -> None:
    """Keep ``workers`` processes pulling trials until the budget is met; show progress."""
    budget = spec.study.trials
    gpus = parse_devices(options.devices, discover_gpus())
    slots = plan_workers(spec.study.workers, gpus)
    if hasattr(backend, "distributed_slots"):  # e.g. KerasTuner's chief + workers
        slots = backend.distributed_slots(spec, slots)
    errors = mp.get_context("spawn").Queue()
    running: dict[str, Any] = {}
    crashes = 0
    done, best = backend.progress(spec, storage)
    bar = tqdm(
        total=budget,
        initial=min(done, budget),
        desc=spec.name,
        unit="trial",
        disable=not options.show_progress,
        dynamic_ncols=True,
    )

    def job(slot):
        return WorkerJob(
            study_path=str(spec.path),
            options=options,
            storage=storage,
            budget=budget,
            deadline=deadline,
            max_trials=spec.study.recycle_after or None,
            memory_limit_mb=spec.study.max_worker_memory_mb,
            slot=slot,
        )

    try:
        while True:
            done, best = backend.progress(spec, storage)
            bar.n = min(done, budget)
            if best is not None:
                bar.set_postfix_str(f"best {spec.objectives[0].metric}={best:.4f}")
            bar.refresh()
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
                    reason = f"worker {slot.worker_id} died (exit code {process.exitcode})"
                    log.warning("%s; its running trial is marked failed", reason)
                    backend.fail_orphans(spec, storage, {process.pid: reason})
                    if crashes > MAX_WORKER_CRASHES:
                        raise HarnessError(
                            f"workers died {crashes} times (last: {reason}); "
                            "see the log above, lower batch_size or image_size if memory ran out"
                        )
                running.pop(slot.worker_id, None)
                if not finished:
                    running[slot.worker_id] = start_worker(job(slot), errors)
            idle = not any(p.is_alive() for p in running.values())
            all_done = len(running) == len(slots) and all(
                p.exitcode == 0 for p in running.values()
            )
            if idle and (finished or all_done):
                break
            time.sleep(0.5)
    except BaseException:
        for process in running.values():
            process.terminate()
        for process in running.values():
            process.join(10)
        raise
    finally:
        bar.close()


def _raise_worker_error(errors, running, wait: float = 0.0) -> None:
    try:
        worker_id, kind, message = errors.get(timeout=wait) if wait else errors.get_nowait()
    except queue.Empty:
        return
    for process in running.values():
        process.terminate()
    raise HarnessError(f"worker {worker_id} stopped the study: {message.strip()}")
