"""A plugin for subprocess tests (loaded with ``--plugin``): at every trial's start it appends
``number pid rss_mb device`` to ``$PROBE_DIR/trials.txt``, and it holds trial ``$PROBE_HOLD``
for two minutes so that a test can kill or interrupt it mid-trial."""

import os
import time
from pathlib import Path

import harness
from harness.workers import resident_memory_mb


@harness.hookimpl
def harness_trial_start(trial):
    """Record the trial's process, memory and visible device; hold it when asked."""
    device = repr(os.environ.get("CUDA_VISIBLE_DEVICES"))
    line = f"{trial.number} {os.getpid()} {resident_memory_mb():.1f} {device}\n"
    with open(Path(os.environ["PROBE_DIR"]) / "trials.txt", "a") as handle:
        handle.write(line)
    if trial.number == int(os.environ.get("PROBE_HOLD", "-1")):
        time.sleep(120)
