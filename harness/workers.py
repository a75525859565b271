"""Worker processes: one per device, each pulling trials from the study's shared storage.

Trials always run in worker processes (even with one worker) so that a worker
can be pinned to a device before TensorFlow is imported, recycled when Keras's
per-fit memory leak adds up, or killed, without losing the study.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import subprocess
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Exit code of a worker that stopped after ``recycle_after`` trials and wants a successor.
EXIT_RECYCLE = 4
#: Exit code of a worker that hit an error it reported on the error queue.
EXIT_REPORTED = 3

#: Inject a device list for tests or to override discovery, e.g. "0,1" (or "" for none).
DEVICES_ENV = "HARNESS_GPUS"


def discover_gpus() -> list[str]:
    """GPU indices visible on this machine, without importing TensorFlow.

    Uses ``HARNESS_GPUS`` when set (so tests can inject devices), else
    ``nvidia-smi -L``; an empty list means CPU only.
    """
    injected = os.environ.get(DEVICES_ENV)
    if injected is not None:
        return [d.strip() for d in injected.split(",") if d.strip()]
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def parse_devices(text: str | None, available: list[str]) -> list[str]:
    """``--devices``: ``all`` (default), or a comma list of GPU indices; ``cpu`` forces CPU."""
    if text is None or text == "all":
        return list(available)
    if text == "cpu":
        return []
    wanted = [d.strip() for d in text.split(",") if d.strip()]
    missing = [d for d in wanted if d not in available]
    if missing:
        from harness.errors import HarnessError

        raise HarnessError(
            f"--devices {text}: no GPU {', '.join(missing)} on this machine "
            f"(found: {', '.join(available) or 'none'}); use --devices all or cpu"
        )
    return wanted


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker runs: its id, its device and its environment overrides."""

    worker_id: str
    device: str
    env: dict[str, str] = field(default_factory=dict)


def plan_workers(count: int, gpus: list[str], cpu_count: int | None = None) -> list[WorkerSlot]:
    """Assign each of ``count`` workers one GPU (round-robin) or a share of the CPU threads.

    ``CUDA_VISIBLE_DEVICES`` is set for every worker (empty on CPU so that a
    CPU worker never grabs a GPU), and CPU workers split the cores between
    them so that they do not oversubscribe the machine.
    """
    cpu_count = cpu_count or os.cpu_count() or 1
    threads = max(1, cpu_count // count)
    slots = []
    for index in range(count):
        env = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
        if gpus:
            gpu = gpus[index % len(gpus)]
            env["CUDA_VISIBLE_DEVICES"] = gpu
            device = f"gpu:{gpu}"
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
            env["HARNESS_THREADS"] = str(threads)
            device = "cpu" if count == 1 else f"cpu:{index}"
        slots.append(WorkerSlot(f"w{index}", device, env))
    return slots


def configure_tensorflow() -> None:
    """Apply the worker's thread budget and GPU memory growth (call before building models)."""
    import tensorflow as tf

    threads = int(os.environ.get("HARNESS_THREADS", "0"))
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, threads)))
        except RuntimeError:  # already initialized in this process
            pass
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass


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


def resident_memory_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the orchestrator dies (even by SIGKILL)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_main(job: WorkerJob, errors: Any) -> None:
    """Entry point of a worker process: pin the device, then run trials."""
    _die_with_parent()
    os.environ.update(job.slot.env)
    from harness.logs import configure_logging, log_to_file

    configure_logging()
    from harness.backends import get_backend
    from harness.context import StudyContext
    from harness.options import apply_options
    from harness.plugins import load_plugins
    from harness.quiet import start_tensorflow
    from harness.study import load_study

    try:
        plugins = load_plugins(job.options.extra_plugins)
        spec = apply_options(
            load_study(job.study_path, plugins, job.options.overrides), job.options
        )
        run_dir = Path(job.options.runs_dir) / spec.name
        log_to_file(run_dir)
        start_tensorflow(configure_tensorflow)
        context = StudyContext(spec, run_dir)
        ran = get_backend(spec).run_worker(
            context,
            plugins,
            storage_url_=job.storage,
            budget=job.budget,
            deadline=job.deadline,
            max_trials=job.max_trials,
            memory_limit_mb=job.memory_limit_mb,
            worker=job.slot.worker_id,
            device=job.slot.device,
        )
        recycled = job.max_trials is not None and ran >= job.max_trials
        if recycled or (job.memory_limit_mb and resident_memory_mb() > job.memory_limit_mb):
            raise SystemExit(EXIT_RECYCLE)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator as one message
        from harness.errors import HarnessError

        message = str(exc) if isinstance(exc, HarnessError) else traceback.format_exc()
        errors.put((job.slot.worker_id, type(exc).__name__, message))
        raise SystemExit(EXIT_REPORTED) from None


def stop_helper_processes() -> None:
    """Stop multiprocessing's resource tracker (started for the workers' error queue) and
    wait for it, so that no process this run started outlives ``harness run``; a later
    worker starts a new one when it needs it."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker, "_resource_tracker", None)
    stop = getattr(tracker, "_stop", None)  # CPython 3.8+; absent elsewhere: nothing to do
    if stop is not None:
        try:
            stop()
        except (OSError, ChildProcessError):
            pass


def start_worker(job: WorkerJob, errors: Any) -> mp.process.BaseProcess:
    """Start one worker in a fresh (spawned) interpreter."""
    ctx = mp.get_context("spawn")
    process = ctx.Process(
        target=worker_main, args=(job, errors), name=f"harness-{job.slot.worker_id}"
    )
    process.start()
    return process
