"""A plugin for subprocess tests (loaded with ``--plugin``): at every trial's start it appends
``number pid rss_mb device`` to ``$PROBE_DIR/trials.txt``, and it holds trial ``$PROBE_HOLD``
for two minutes so that a test can kill or interrupt it mid-trial; with ``$PROBE_HOLD_TEST`` it
holds the end-of-study test evaluation instead."""

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


@harness.hookimpl
def harness_test_evaluated(study, trial_number, metrics):
    """Hold the test evaluation (before test.json is written) when ``$PROBE_HOLD_TEST`` is
    set, after appending ``trial_number`` to ``$PROBE_DIR/tested.txt``."""
    if os.environ.get("PROBE_HOLD_TEST"):
        with open(Path(os.environ["PROBE_DIR"]) / "tested.txt", "a") as handle:
            handle.write(f"{trial_number}\n")
        time.sleep(120)
