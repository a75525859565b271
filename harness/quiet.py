"""Import TensorFlow without its native start-up chatter.

TensorFlow's C++ side logs oneDNN notices, "Could not find cuda drivers" and a
failed ``cuInit`` on every CPU-only start, before ``TF_CPP_MIN_LOG_LEVEL`` can
apply (absl logs them ahead of its own initialization). They would print once
per worker process. File descriptor 2 is pointed at /dev/null for the import
and the device probe only; Python exceptions still surface once it is restored.
``HARNESS_TF_LOGS=1`` keeps every line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LOGS_ENV = "HARNESS_TF_LOGS"


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Send what C/C++ code writes to stderr to /dev/null inside the block."""
    if os.environ.get(LOGS_ENV):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def start_tensorflow(configure: Callable[[], None] | None = None) -> None:
    """Import TensorFlow, run ``configure`` (thread pools must be set before the runtime
    starts) and probe the devices, all with native stderr silenced."""
    with native_stderr_silenced():
        import tensorflow as tf  # lazy: imports TensorFlow

        if configure is not None:
            configure()
        tf.config.list_physical_devices("GPU")
