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
    """Raised by a backend's reporter to stop an unpromising trial early."""
