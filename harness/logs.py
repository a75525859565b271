"""Logging: one line per warning in the terminal, every detail in ``runs/<study>/harness.log``.

The terminal gets one line per record (the first line of the message, never a
traceback); a record that carried a traceback says where the full text is.
Optuna's own "Trial N failed ... Traceback" records go only to the log file:
the run prints its own line for each failed trial.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path

LOG_FILE = "harness.log"
_FILE_HANDLER_NAME = "harness-file"


class OneLineFormatter(logging.Formatter):
    """``LEVEL: first line of the message`` plus where the traceback went, if any."""

    def __init__(self):
        super().__init__("%(levelname)s: %(message)s")
        self.log_path: Path | None = None

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage().strip().splitlines()
        text = f"{record.levelname.lower()}: {message[0] if message else ''}"
        if record.exc_info and self.log_path is not None:
            text += f" (details in {self.log_path})"
        return text


class _NotTrialFailures(logging.Filter):
    """Leave Optuna's per-trial failure records (with tracebacks) to the log file, and
    TensorFlow's retracing notes too: every trial builds a new model, so its functions
    are traced anew by design (more so when a study searches the image size)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name.startswith("tensorflow"):
            return "triggered tf.function retracing" not in message
        if not record.name.startswith("optuna"):
            return True
        return not (message.startswith("Trial ") and " failed" in message)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests and tqdm swap it)."""

    harness_terminal = True

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


_terminal_formatter = OneLineFormatter()


def configure_logging() -> None:
    """Quiet TensorFlow's and Optuna's start-up chatter; warnings as one terminal line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    root = logging.getLogger()
    if not any(getattr(h, "harness_terminal", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_terminal_formatter)
        handler.addFilter(_NotTrialFailures())
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*experimental feature.*")
    warnings.filterwarnings("ignore", message=".*`shuffle=True` was passed.*")
    warnings.filterwarnings("ignore", message=".*is deprecated and will be removed.*")
    # In Jupyter without ipywidgets, Optuna's import of tqdm.auto asks for them; the
    # progress bar is harness's own and shows as text there (harness.progress).
    warnings.filterwarnings("ignore", message="IProgress not found")


def log_to_file(run_dir: Path) -> Path:
    """Also write every warning, with its traceback, to ``run_dir/harness.log``."""
    path = run_dir / LOG_FILE
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _FILE_HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(path, encoding="utf-8", delay=True)
    handler.set_name(_FILE_HANDLER_NAME)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s: %(message)s")
    )
    root.addHandler(handler)
    _terminal_formatter.log_path = path
    return path
