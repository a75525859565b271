"""The program name to print in a command the user may copy: as they started harness.

``harness`` when it was found on ``PATH``; the path they typed otherwise
(``.venv/bin/harness``); ``python -m harness`` (that interpreter) when run as a
module. A resume line or a ``harness show`` hint then works when pasted back.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys

NAME = "harness"


def program() -> str:
    """How the user started harness, shell-quoted (``harness`` when it cannot tell, e.g.
    when ``harness.cli.main`` is called from other code)."""
    typed = sys.argv[0] if sys.argv else ""
    base = os.path.basename(typed)
    if base == "__main__.py" and os.path.basename(os.path.dirname(typed)) == NAME:
        return f"{_on_path_or_typed(sys.executable)} -m {NAME}"
    if not base.startswith(NAME):
        return NAME
    return _on_path_or_typed(typed)


def command(*words: str) -> str:
    """A command line to print: the program as started, then ``words`` shell-quoted."""
    return " ".join([program(), *(shlex.quote(word) for word in words)])


def _on_path_or_typed(path: str) -> str:
    """The bare name when ``PATH`` finds this very file under it, else ``path`` as typed."""
    base = os.path.basename(path)
    if os.sep not in path:
        return shlex.quote(base)
    found = shutil.which(base)
    if found and os.path.abspath(found) == os.path.abspath(path):
        return shlex.quote(base)
    return shlex.quote(path)


def sibling(name: str) -> str:
    """Another console script of this installation (``tensorboard``) as the user would type
    it: next to ``harness`` when harness was started by its path (``.venv/bin/tensorboard``),
    else the bare name."""
    typed = sys.argv[0] if sys.argv else ""
    if os.path.basename(typed).startswith(NAME) and os.sep in typed:
        candidate = os.path.join(os.path.dirname(typed), name)
        if os.path.isfile(candidate) and program() != NAME:
            return shlex.quote(candidate)
    return name
