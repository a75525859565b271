"""Errors a user can fix: the CLI prints them as one message and exits with code 2."""

from __future__ import annotations


class HarnessError(Exception):
    """A problem with the user's input (study file, plugin, data), with its fix in the message."""


class StudyFileError(HarnessError):
    """A study file that cannot be read or validated."""


class PluginError(HarnessError):
    """A plugin that cannot be loaded or that clashes with another one."""


class TrialFailed(Exception):
    """Raised inside a trial to record it as failed with a readable reason."""


class TrialPruned(Exception):
    """Raised by a backend's reporter to stop an unpromising trial early.

    ``reason``, when given, becomes the pruned trial's ``fail_reason`` (``harness show``,
    trials.csv); a pruner's routine stop gives none.
    """

    def __init__(self, message: str = "", *, reason: str | None = None):
        super().__init__(message or reason or "")
        self.reason = reason


class StudyAborted(HarnessError):
    """A trial hit a problem no other trial can avoid (missing data, broken plugin config)."""


def describe_exception(exc: BaseException) -> str:
    """One line for a trial's failure reason: the exception's type and first line, with the
    fix for running out of memory."""
    name = type(exc).__name__
    if name == "ResourceExhaustedError":
        return "out of memory (ResourceExhausted): lower batch_size, image_size or model size"
    if isinstance(exc, TrialFailed):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0] if text else ''}"[:500]
