"""Devices and processes: which GPUs exist, where each worker runs, and how much memory a
process holds. Nothing here imports TensorFlow at import time or starts a process."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

from harness.errors import HarnessError

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
        raise HarnessError(
            f"--devices {text}: no GPU {', '.join(missing)} on this machine "
            f"(found: {', '.join(available) or 'none'}); use --devices all or cpu"
        )
    return wanted


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity (``taskset``, a container's cpuset)
    where the platform reports it, else every CPU of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class WorkerSlot:
    """Where one worker runs: its id, its device and its environment overrides."""

    worker_id: str
    device: str
    env: dict[str, str] = field(default_factory=dict)


def plan_workers(count: int, gpus: list[str], cpu_count: int | None = None) -> list[WorkerSlot]:
    """Assign each of ``count`` workers one GPU (round-robin) or a share of the CPU threads.

    ``CUDA_VISIBLE_DEVICES`` is set for every worker (empty on CPU so that a
    CPU worker never grabs a GPU), and CPU workers split the cores this process may use
    (:func:`usable_cpus`) between them so that they do not oversubscribe the machine.
    """
    cpu_count = cpu_count or usable_cpus()
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
    import tensorflow as tf  # lazy: imports TensorFlow

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


def resident_memory_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20




def process_alive(pid: int) -> bool:
    """True if ``pid`` runs; a zombie (dead, not yet reaped by its parent) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True
