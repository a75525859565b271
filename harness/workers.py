"""Worker processes: one per device, each pulling trials from the study's shared storage.

Trials always run in worker processes (even with one worker) so that a worker
can be pinned to a device before TensorFlow is imported, recycled when Keras's
per-fit memory leak adds up, or killed, without losing the study.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.backends import get_backend
from harness.backends.base import WorkerTask
from harness.context import StudyContext
from harness.devices import (  # noqa: F401 - the worker API, re-exported
    DEVICES_ENV,
    WorkerSlot,
    configure_tensorflow,
    discover_gpus,
    parse_devices,
    plan_workers,
    resident_memory_mb,
)
from harness.errors import HarnessError
from harness.evaluate import evaluate_when_done
from harness.logs import configure_logging, log_to_file
from harness.options import apply_options
from harness.plugins import load_plugins
from harness.quiet import start_tensorflow
from harness.study import load_study

log = logging.getLogger(__name__)

#: Exit code of a worker that stopped after ``recycle_after`` trials and wants a successor.
EXIT_RECYCLE = 4
#: Exit code of a worker that hit an error it reported on the error queue.
EXIT_REPORTED = 3


@dataclass
class WorkerJob:
    """Everything a worker process needs, picklable (no TensorFlow objects)."""

    study_path: str
    options: Any
    storage: str
    budget: int
    deadline: float | None
    max_trials: int | None
    slot: WorkerSlot
    memory_limit_mb: float | None = None


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the orchestrator dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main(job: WorkerJob, errors: Any, handover: Any = None) -> None:
    """Entry point of a worker process: pin the device, then run trials.

    A worker started early (``handover``, the receiving end of a pipe) gets ready
    (plugins, study, TensorFlow) while the orchestrator checks the data and prepares
    the storage, then waits for the storage and deadline; it exits quietly when the
    pipe is closed instead (the run ended before it needed this worker).
    """
    _die_with_parent()
    # The orchestrator stops a trial with SIGINT; a shell starting `harness run` as a
    # background job ignores SIGINT, and that disposition survives into this process.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.update(job.slot.env)
    configure_logging()
    try:
        plugins = load_plugins(job.options.extra_plugins)
        spec = apply_options(
            load_study(job.study_path, plugins, job.options.overrides, job.options.profile),
            job.options,
        )
        start_tensorflow(configure_tensorflow)
        if handover is not None:
            try:
                job = replace(job, **handover.recv())
            except EOFError:
                return
        run_dir = Path(job.options.runs_dir) / spec.name
        log_to_file(run_dir)
        context = StudyContext(spec, run_dir)
        task = WorkerTask(
            job.storage,
            budget=job.budget,
            deadline=job.deadline,
            max_trials=job.max_trials,
            memory_limit_mb=job.memory_limit_mb,
            worker=job.slot.worker_id,
            device=job.slot.device,
        )
        ran = get_backend(spec).run_worker(context, plugins, task)
        recycled = job.max_trials is not None and ran >= job.max_trials
        if recycled or (job.memory_limit_mb and resident_memory_mb() > job.memory_limit_mb):
            raise SystemExit(EXIT_RECYCLE)

        backend = get_backend(spec)
        evaluate_when_done(spec, plugins, run_dir, backend.records(spec, job.storage), job.budget)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator as one message
        message = str(exc) if isinstance(exc, HarnessError) else traceback.format_exc()
        errors.put((job.slot.worker_id, type(exc).__name__, message))
        raise SystemExit(EXIT_REPORTED) from None


def worker_process(job: WorkerJob, errors: Any, handover: Any = None) -> None:
    """Target of a worker process: ``worker_main``, then an exit that skips the interpreter's
    teardown.

    Everything a worker writes is on disk when ``worker_main`` returns (trial files, the
    storage, closed TensorBoard writers); what remains is TensorFlow's and Python's
    teardown, about a second per worker, which the orchestrator would wait for. So the
    log and the error queue are flushed, other non-daemon threads joined, and the process
    leaves with ``os._exit``.
    """
    code = 0
    try:
        worker_main(job, errors, handover)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    logging.shutdown()
    errors.close()
    errors.join_thread()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def stop_helper_processes() -> None:
    """Stop multiprocessing's resource tracker (started for the workers' error queue) and
    wait for it, so that no process this run started outlives ``harness run``; a later
    worker starts a new one when it needs it."""
    # lazy: harness.cli.main looks for it in sys.modules
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker, "_resource_tracker", None)
    stop = getattr(tracker, "_stop", None)  # CPython 3.8+; absent elsewhere: nothing to do
    if stop is not None:
        try:
            stop()
        except (OSError, ChildProcessError):
            pass


def start_worker(job: WorkerJob, errors: Any, handover: Any = None) -> mp.process.BaseProcess:
    """Start one worker in a fresh (spawned) interpreter."""
    ctx = mp.get_context("spawn")
    process = ctx.Process(
        target=worker_process,
        args=(job, errors) if handover is None else (job, errors, handover),
        name=f"harness-{job.slot.worker_id}",
    )
    process.start()
    return process


class WorkerLauncher:
    """A run's worker slots, their shared error queue, and the worker processes it starts.

    The first slot's worker can be started early (``start_early``), before the storage
    exists: a worker spends seconds importing TensorFlow, and it does that while the
    orchestrator checks the data and prepares the storage instead of after. ``start``
    hands it its job when its slot comes up; ``close`` stops it if it never does.
    """

    def __init__(self, slots: list[WorkerSlot]):
        self.slots = slots
        self.errors = mp.get_context("spawn").Queue()
        self._early: tuple[str, mp.process.BaseProcess, Any] | None = None

    def start_early(self, job: WorkerJob) -> None:
        """Start ``job.slot``'s worker now; its ``storage`` and ``deadline`` come later,
        from ``start``."""
        receiving, sending = mp.get_context("spawn").Pipe(duplex=False)
        process = start_worker(job, self.errors, handover=receiving)
        receiving.close()  # the worker holds its own copy
        self._early = (job.slot.worker_id, process, sending)

    def start(self, job: WorkerJob) -> mp.process.BaseProcess:
        """The worker for ``job.slot``: the one started early for it, given ``job``'s
        storage and deadline, or a new process."""
        if self._early is not None and self._early[0] == job.slot.worker_id:
            _, process, sending = self._early
            self._early = None
            try:
                sending.send({"storage": job.storage, "deadline": job.deadline})
            except OSError:  # it died while getting ready: its exit code tells the supervisor
                pass
            sending.close()
            return process
        return start_worker(job, self.errors)

    def close(self) -> None:
        """Stop a worker started early that was never handed its job, and let go of the
        error queue (its semaphores are unlinked when it is collected, which must happen
        before ``stop_helper_processes`` stops the resource tracker)."""
        if self._early is not None:
            _, process, sending = self._early
            self._early = None
            sending.close()
            process.terminate()  # it may still be importing TensorFlow: do not wait for that
            process.join(10)
        self.errors = None
