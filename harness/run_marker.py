"""Whether a ``harness run`` is running a study now: ``run.json`` in its run directory.

``harness show --watch`` stops once a study has ended. A study whose run was killed
(or stopped by ``--timeout`` before its budget) never reaches its budget, so the
watcher also needs to know that no run is left to finish it: the orchestrator keeps
``run.json`` (its pid and host) while it runs and removes it when it ends; a marker
whose process is gone (SIGKILL, a lost machine on this host) counts as no run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from harness.devices import process_alive
from harness.files import write_text_atomic

MARKER_FILE = "run.json"


@contextlib.contextmanager
def marking_the_run(run_dir: Path) -> Iterator[None]:
    """Keep ``run.json`` in ``run_dir`` while the block runs (this process's pid and host)."""
    marker = Path(run_dir) / MARKER_FILE
    mine = {"pid": os.getpid(), "host": socket.gethostname()}
    write_text_atomic(marker, json.dumps(mine))
    try:
        yield
    finally:
        try:
            if json.loads(marker.read_text(encoding="utf-8")) == mine:  # not a later run's
                marker.unlink(missing_ok=True)
        except (OSError, ValueError):
            pass


def run_active(run_dir: Path) -> bool:
    """Whether a ``harness run`` of this study is running: its marker is there and, when it
    was written on this host, its process still lives (another host's is trusted)."""
    marker = Path(run_dir) / MARKER_FILE
    try:
        owner = json.loads(marker.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        return True  # being rewritten, or unreadable: do not declare the run over
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return True
    pid = owner.get("pid")
    return isinstance(pid, int) and process_alive(pid)
